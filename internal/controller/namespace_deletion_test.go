package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/operator"
)

// TestDeletingANamespaceDeletesItsUsersAndFinishes: kubectl delete
// namespace deletes everything in the namespace at once, the Secret with
// the project's key first of all. The key outlives the SurgeEndUsers that
// need it to delete their users, and then the namespace goes. The operator
// is down while the namespace's contents are deleted, so that it must read
// the key again, as after a failover or once its copy is older than the
// refresh interval.
func TestDeletingANamespaceDeletesItsUsersAndFinishes(t *testing.T) {
	const key = "sk_live_team_key_namespace_deletion"
	f := newTenantsFixture(t, nil)
	f.Surge.AddProject("team", key, teamAccount)
	secret := f.apiKeySecret(f.Namespace, "surge-key", key)
	f.surgeProject(f.Namespace, "surge", "surge-key")
	for i := range 5 {
		f.Create(f.endUser(fmt.Sprintf("user-%d", i), in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	}
	for i := range 5 {
		f.waitForReady(fmt.Sprintf("user-%d", i))
	}
	f.waitForGuard(secret)

	f.StopOperator()
	f.deleteNamespace(f.StartOperator, &corev1.Secret{}, &surgev1alpha1.SurgeProject{}, &surgev1alpha1.SurgeEndUser{})

	if users := f.Surge.Users(teamAccount); len(users) != 0 {
		t.Errorf("%d end users outlived their namespace: %+v", len(users), users)
	}
}

// TestAClusterSurgeProjectKeepsItsKeyWhileInUse: a key Secret deleted while
// a ClusterSurgeProject's end users need it stays readable, so that they
// still delete their users; it goes once the project does.
func TestAClusterSurgeProjectKeepsItsKeyWhileInUse(t *testing.T) {
	const key = "sk_live_team_key_cluster_guard"
	f := newTenantsFixture(t, nil)
	f.Surge.AddProject("team", key, teamAccount)
	secret := f.apiKeySecret(f.Namespace, "surge-key", key)
	project := f.clusterSurgeProject("guarded", "surge-key", func(spec *surgev1alpha1.ClusterSurgeProjectSpec) {
		spec.Namespaces = []string{f.Namespace}
	})
	f.Create(f.endUser("ada", in(f.Namespace, teamAccount), using(surgev1alpha1.KindClusterSurgeProject, project.Name)))
	f.waitForReady("ada")
	f.waitForGuard(secret)

	f.deleteObject(secret)
	f.deleteObject(project)
	f.StopOperator()
	f.StartOperator()
	f.Delete("ada")
	f.WaitForGone("ada")
	if users := f.Surge.Users(teamAccount); len(users) != 0 {
		t.Errorf("the end user outlived its resource: %+v", users)
	}
	f.waitForGoneObject(project)
	f.waitForGoneObject(secret)
}

// waitForGuard waits until a project guards the Secret.
func (f *fixture) waitForGuard(secret *corev1.Secret) {
	f.T.Helper()
	f.Eventually("the key's Secret guarded", 20*time.Second, func() (bool, string) {
		if err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return false, err.Error()
		}
		guarded := slices.ContainsFunc(secret.Finalizers, func(finalizer string) bool {
			return strings.HasPrefix(finalizer, surgev1alpha1.KeyGuardPrefix)
		})
		return guarded, fmt.Sprintf("finalizers %v", secret.Finalizers)
	})
}

// TestANamespaceWhoseKeyWasRevokedStillGoes: when the key that could delete
// the users is revoked, nothing can delete them; the namespace must still
// go. Past the grace time, each resource lets go of its user, counted in a
// metric: the namespace's events go with it.
func TestANamespaceWhoseKeyWasRevokedStillGoes(t *testing.T) {
	const key = "sk_live_team_key_revoked_namespace"
	f := newTenantsFixture(t, nil, func(o *operator.Options) { o.TerminatingNamespaceGrace = 5 * time.Second })
	f.Surge.AddProject("team", key, teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", key)
	f.surgeProject(f.Namespace, "surge", "surge-key")
	f.Create(f.endUser("ada", in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	userID := f.waitForReady("ada").Status.UserID
	f.Surge.RevokeAPIKey(key)
	leftBefore := counterValue(f.T, metrics.UsersLeftInSurge)

	f.deleteNamespace(func() {
		f.waitForConditionIn(f.Namespace, "ada", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonAPIKeyRejected)
	}, &corev1.Secret{}, &surgev1alpha1.SurgeProject{}, &surgev1alpha1.SurgeEndUser{})

	if _, left := f.Surge.User(userID); !left {
		t.Errorf("end user %s is gone from Surge, which the revoked key could not have done", userID)
	}
	if left := counterValue(f.T, metrics.UsersLeftInSurge) - leftBefore; left != 1 {
		t.Errorf("surge_operator_users_left_in_surge_total rose by %v, want 1", left)
	}
}

// deleteNamespace deletes the fixture's namespace as Kubernetes' namespace
// controller does, which envtest does not run: the namespace turns
// Terminating, everything in it is deleted at once, in the order of kinds,
// then meanwhile runs, and once nothing is left the namespace is
// finalized. It fails unless the namespace is gone within 2 minutes.
func (f *fixture) deleteNamespace(meanwhile func(), kinds ...client.Object) {
	f.T.Helper()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.Namespace}}
	f.deleteObject(namespace)
	for _, kind := range kinds {
		if err := k8s.DeleteAllOf(f.Ctx, kind, client.InNamespace(f.Namespace)); err != nil {
			f.T.Fatalf("deleting every %T: %v", kind, err)
		}
	}
	meanwhile()
	deadline := time.Now().Add(2 * time.Minute)
	lists := []client.ObjectList{&corev1.SecretList{}, &surgev1alpha1.SurgeProjectList{}, &surgev1alpha1.SurgeEndUserList{}}
	f.Eventually("the namespace emptied", time.Until(deadline), func() (bool, string) {
		for _, list := range lists {
			if err := k8s.List(f.Ctx, list, client.InNamespace(f.Namespace)); err != nil {
				return false, err.Error()
			}
			if items := apimeta.LenList(list); items > 0 {
				return false, fmt.Sprintf("%d left in %T", items, list)
			}
		}
		return true, ""
	})
	if err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(namespace), namespace); err != nil {
		f.T.Fatalf("reading the namespace: %v", err)
	}
	namespace.Spec.Finalizers = nil
	if err := k8s.SubResource("finalize").Update(f.Ctx, namespace); err != nil {
		f.T.Fatalf("finalizing the namespace: %v", err)
	}
	f.Eventually("the namespace gone", time.Until(deadline), func() (bool, string) {
		err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(namespace), namespace)
		return apierrors.IsNotFound(err), fmt.Sprintf("%v", err)
	})
}

func counterValue(t *testing.T, counter prometheus.Counter) float64 {
	t.Helper()
	metric := &dto.Metric{}
	if err := counter.Write(metric); err != nil {
		t.Fatalf("reading a counter: %v", err)
	}
	return metric.GetCounter().GetValue()
}
