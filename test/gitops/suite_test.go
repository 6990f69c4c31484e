// Package gitops_test checks what GitOps tools conclude from the status the
// operator writes: kstatus (Flux, kpt, cli-utils) and the Argo CD health
// script in config/argocd. The objects they judge are live ones, written by
// the real manager running against envtest and the Surge emulator.
package gitops_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operatortest"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot   = "../.."
	testAPIKey = "sk_demo_gitops"
)

var (
	cluster *operatortest.Cluster
	k8s     client.Client
)

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(logLevel())))
	var err error
	cluster, err = operatortest.StartCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = cluster.Client
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

// fixture is one test's world (see operatortest.World) with the views of
// it that GitOps tools take.
type fixture struct {
	*operatortest.World
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{World: operatortest.NewWorld(t, cluster, operatortest.Settings{
		NamespacePrefix: "gitops",
		APIKey:          testAPIKey,
	})}
}

func (f *fixture) create(name string) {
	f.T.Helper()
	f.Create(&surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: f.Account,
			FirstName: "Ada",
			LastName:  "Lovelace",
		},
	})
}

// requestReconcile asks the operator to compare with Surge now, through the
// annotation the README documents.
func (f *fixture) requestReconcile(name string) {
	f.T.Helper()
	f.Update(name, func(obj *surgev1alpha1.SurgeEndUser) {
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations["surge.app/reconcile-requested-at"] = time.Now().Format(time.RFC3339Nano)
	})
}

// live reads the object from the API server as a GitOps tool sees it: as
// unstructured content, not through the operator's types.
func (f *fixture) live(name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(surgev1alpha1.GroupVersion.WithKind("SurgeEndUser"))
	err := k8s.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: name}, u)
	return u, err
}

// waitForState polls the live object until state holds for it, and returns
// that very snapshot, so that what the test then judges is the state it
// waited for.
func (f *fixture) waitForState(name, what string, state func(*surgev1alpha1.SurgeEndUser) bool) *unstructured.Unstructured {
	f.T.Helper()
	var snapshot *unstructured.Unstructured
	f.Eventually(name+" "+what, 30*time.Second, func() (bool, string) {
		u, err := f.live(name)
		if err != nil {
			return false, err.Error()
		}
		typed := &surgev1alpha1.SurgeEndUser{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
			return false, err.Error()
		}
		if !state(typed) {
			return false, fmt.Sprintf("generation %d, status %+v", typed.Generation, typed.Status)
		}
		snapshot = u
		return true, ""
	})
	return snapshot
}

// logLevel keeps the expected reconcile errors of these tests out of the
// output unless TEST_VERBOSE_LOGS is set.
func logLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.FatalLevel
}
