package onboarding_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/pkg/surgetest"

	"example.com/onboarding"
)

const account = "acct_01j9a43avnfqzbjfch6pygv1td"

func TestCustomerGetsASurgeUser(t *testing.T) {
	env := &envtest.Environment{CRDs: surgetest.CRDs()}
	cfg, err := env.Start()
	must(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	emu := surgetest.NewEmulator(t)
	emu.AddAccount(account)
	surgetest.StartOperator(t, cfg, emu)
	k8s := startOnboarding(t, cfg)

	customer := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: "default", Labels: map[string]string{onboarding.CustomerLabel: "true"}},
		Data:       map[string]string{"firstName": "Ada", "lastName": "Lovelace"},
	}
	must(t, k8s.Create(t.Context(), customer))
	endUser := &surgev1alpha1.SurgeEndUser{}
	eventually(t, "the SurgeEndUser Ready", func() bool {
		return k8s.Get(t.Context(), client.ObjectKeyFromObject(customer), endUser) == nil &&
			apimeta.IsStatusConditionTrue(endUser.Status.Conditions, "Ready")
	})
	if user, found := emu.User(endUser.Status.UserID); !found || user.FirstName != "Ada" || user.LastName != "Lovelace" {
		t.Fatalf("Surge has %+v (found: %t), want Ada Lovelace", user, found)
	}

	must(t, k8s.Delete(t.Context(), customer))
	eventually(t, "the user gone from Surge", func() bool { return len(emu.Users(account)) == 0 })
}

// startOnboarding runs the onboarding controller until the test ends and
// returns a client that knows SurgeEndUsers.
func startOnboarding(t *testing.T, cfg *rest.Config) client.Client {
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, surgev1alpha1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	must(t, err)
	must(t, (&onboarding.Reconciler{Client: mgr.GetClient(), AccountID: account}).SetupWithManager(mgr))
	go func() { _ = mgr.Start(t.Context()) }()
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	return k8s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !check(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}
