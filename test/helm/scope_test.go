package helm_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
	"github.com/surge-operator/surge-operator/test/manifests"
)

// scopedTeam is one team of TestTwoReleasesEachInItsNamespaces: its own
// release of the chart, in namespace ops, watching namespace team only.
type scopedTeam struct {
	name, ops, team, account, key string
	stop                          context.CancelFunc
}

// TestTwoReleasesEachInItsNamespaces: two teams install the chart in one
// cluster, each with scope.namespaces set to its own namespace. Each
// operator, running as its release's ServiceAccount under the RBAC the
// release installed, makes its team's end user and no other: it may not
// read the other team's Secrets or resources, it leaves the other team's
// resources alone, and it refuses a ClusterSurgeProject, which neither
// serves.
func TestTwoReleasesEachInItsNamespaces(t *testing.T) {
	ctx := context.Background()
	ensureCRDs(ctx, t)
	surge := emulator.New(emulator.Options{})
	server := httptest.NewServer(surge)
	t.Cleanup(server.Close)
	objects, err := client.New(adminConfig, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	teams := []*scopedTeam{
		{name: "alpha", account: "acct_01j9a43avnfqzbjfch6pyalpha", key: "sk_live_alpha_0123456789abcdef"},
		{name: "beta", account: "acct_01j9a43avnfqzbjfch6pybetaa", key: "sk_live_beta_0123456789abcdefg"},
	}
	for _, team := range teams {
		team.ops, team.team = "ops-"+team.name, "team-"+team.name
		for _, namespace := range []string{team.ops, team.team} {
			if err := objects.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		mustHelm(t, "install", team.ops, chartDir, "--namespace", team.ops,
			"--set", "crds.enabled=false", "--set", "scope.namespaces={"+team.team+"}")
		t.Cleanup(func() { _, _ = helm("uninstall", team.ops, "--namespace", team.ops) })

		surge.AddProject(team.name, team.key, team.account)
		create(ctx, t, objects, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: team.team, Name: "surge-key"},
			StringData: map[string]string{"api-key": team.key},
		})
		create(ctx, t, objects, &surgev1alpha1.SurgeProject{
			ObjectMeta: metav1.ObjectMeta{Namespace: team.team, Name: "surge"},
			Spec: surgev1alpha1.SurgeProjectSpec{
				APIKeySecretRef: surgev1alpha1.SecretKeyReference{Name: "surge-key"},
				ProjectSettings: surgev1alpha1.ProjectSettings{Accounts: []string{team.account}},
			},
		})
		create(ctx, t, objects, scopedEndUser(team, "ada", surgev1alpha1.KindSurgeProject, "surge"))
		team.stop = startReleaseOperator(t, team, server.URL)
	}

	for _, team := range teams {
		waitForScoped(t, objects, team.team, "ada", func(ready *metav1.Condition) bool {
			return ready != nil && ready.Status == metav1.ConditionTrue
		})
		if users := surge.Users(team.account); len(users) != 1 {
			t.Errorf("team %s's account holds %d users, want its one end user", team.name, len(users))
		}
	}

	// Neither release's ServiceAccount may reach the other team's
	// namespace, nor list end users across the cluster.
	for i, team := range teams {
		other := teams[1-i]
		for _, attributes := range []authorizationv1.ResourceAttributes{
			{Namespace: other.team, Verb: "get", Resource: "secrets", Name: "surge-key"},
			{Namespace: other.team, Verb: "patch", Group: "surge.app", Resource: "surgeendusers", Name: "ada"},
			{Verb: "list", Group: "surge.app", Resource: "surgeendusers"},
			{Verb: "list", Group: "surge.app", Resource: "clustersurgeprojects"},
		} {
			review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               fmt.Sprintf("system:serviceaccount:%s:%s-surge-operator", team.ops, team.ops),
				ResourceAttributes: &attributes,
			}}
			if err := objects.Create(ctx, review); err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed {
				t.Errorf("release %s may %s %s %s/%s", team.ops, attributes.Verb, attributes.Resource, attributes.Namespace, attributes.Name)
			}
		}
	}

	// A ClusterSurgeProject is refused, not read.
	alpha, beta := teams[0], teams[1]
	create(ctx, t, objects, scopedEndUser(alpha, "grace", surgev1alpha1.KindClusterSurgeProject, "shared"))
	waitForScoped(t, objects, alpha.team, "grace", func(ready *metav1.Condition) bool {
		return ready != nil && ready.Reason == "ClusterProjectNotServed"
	})

	// With beta's operator stopped, a change to beta's end user waits for
	// it: alpha's does not take it up.
	beta.stop()
	changed := &surgev1alpha1.SurgeEndUser{}
	if err := objects.Get(ctx, client.ObjectKey{Namespace: beta.team, Name: "ada"}, changed); err != nil {
		t.Fatal(err)
	}
	changed.Spec.FirstName = "Augusta"
	if err := objects.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if err := objects.Get(ctx, client.ObjectKeyFromObject(changed), changed); err != nil {
		t.Fatal(err)
	}
	if changed.Status.ObservedGeneration == changed.Generation || surge.Users(beta.account)[0].FirstName != "Ada" {
		t.Errorf("team beta's end user was reconciled while only team alpha's operator ran")
	}

	beta.stop = startReleaseOperator(t, beta, server.URL)
	for _, team := range teams {
		for _, name := range []string{"ada", "grace"} {
			obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: team.team, Name: name}}
			if err := objects.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}
	for _, team := range teams {
		deadline := time.Now().Add(30 * time.Second)
		for len(surge.Users(team.account)) > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if users := surge.Users(team.account); len(users) != 0 {
			t.Errorf("team %s's account still holds %d users after its end users were deleted", team.name, len(users))
		}
	}
}

func scopedEndUser(team *scopedTeam, name, kind, project string) *surgev1alpha1.SurgeEndUser {
	return &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: team.team, Name: name},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID:  team.account,
			FirstName:  "Ada",
			ProjectRef: &surgev1alpha1.ProjectReference{Kind: kind, Name: project},
		},
	}
}

// startReleaseOperator runs the operator as the release's Deployment would:
// as its ServiceAccount, with the flags scope.namespaces sets and leader
// election in the release namespace. It returns what stops it.
func startReleaseOperator(t *testing.T, team *scopedTeam, surgeURL string) context.CancelFunc {
	t.Helper()
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: team.ops, Name: team.ops + "-surge-operator"}}
	mgr, err := operator.NewManager(operatortest.Impersonating(adminConfig, account), operator.Options{
		SurgeAPIURL:             surgeURL,
		Namespaces:              []string{team.team},
		IgnoreClusterProjects:   true,
		LeaderElection:          true,
		LeaderElectionNamespace: team.ops,
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		Rebuildable:             true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("the operator of %s stopped: %v", team.ops, err)
		}
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func waitForScoped(t *testing.T, objects client.Client, namespace, name string, ok func(ready *metav1.Condition) bool) {
	t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := objects.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
		ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
		if err == nil && ok(ready) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: Ready is %+v (%v)", namespace, name, ready, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func create(ctx context.Context, t *testing.T, objects client.Client, obj client.Object) {
	t.Helper()
	if err := objects.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// ensureCRDs installs the chart's CRDs when no release has yet, marked as
// the release TestInstallUpgradeUninstall installs, which then adopts them,
// whichever runs first.
func ensureCRDs(ctx context.Context, t *testing.T) {
	t.Helper()
	crds := ofKind(renderChart(t, release, release, chartDir, "--include-crds"), "CustomResourceDefinition")
	for _, crd := range crds {
		crd.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm"})
		crd.SetAnnotations(map[string]string{
			"meta.helm.sh/release-name":      release,
			"meta.helm.sh/release-namespace": release,
			"helm.sh/resource-policy":        "keep",
		})
		if err := k8s.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if err := manifests.WaitEstablished(ctx, k8s, crd.GetName()); err != nil {
			t.Fatal(err)
		}
	}
}
