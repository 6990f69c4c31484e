package controller_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// Accounts of other projects than the fixture's default one.
const (
	teamAccount      = "acct_01j9a43avnfqzbjfch6pyteam1"
	teamOtherAccount = "acct_01j9a43avnfqzbjfch6pyteam2"
	elsewhereAccount = "acct_01j9a43avnfqzbjfch6pyelsew"
)

func (f *fixture) getIn(namespace, name string) (*surgev1alpha1.SurgeEndUser, error) {
	obj := &surgev1alpha1.SurgeEndUser{}
	return obj, k8s.Get(f.Ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
}

func (f *fixture) createObject(obj client.Object) {
	f.T.Helper()
	if err := k8s.Create(f.Ctx, obj); err != nil {
		f.T.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func (f *fixture) deleteObject(obj client.Object) {
	f.T.Helper()
	if err := k8s.Delete(f.Ctx, obj); client.IgnoreNotFound(err) != nil {
		f.T.Fatalf("deleting %T %s: %v", obj, obj.GetName(), err)
	}
}

func (f *fixture) waitForGoneObject(obj client.Object) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%T %s gone", obj, obj.GetName()), 20*time.Second, func() (bool, string) {
		err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(obj), obj)
		if err == nil {
			return false, fmt.Sprintf("still there, finalizers %v", obj.GetFinalizers())
		}
		return client.IgnoreNotFound(err) == nil, err.Error()
	})
}

// apiKeySecret stores key as a project's Secret would hold it.
func (f *fixture) apiKeySecret(namespace, name, key string) *corev1.Secret {
	f.T.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Data:       map[string][]byte{surgev1alpha1.DefaultAPIKeySecretKey: []byte(key)},
	}
	f.createObject(secret)
	return secret
}

func (f *fixture) surgeProject(namespace, name, secretName string, accounts ...string) *surgev1alpha1.SurgeProject {
	f.T.Helper()
	project := &surgev1alpha1.SurgeProject{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: surgev1alpha1.SurgeProjectSpec{
			APIKeySecretRef: surgev1alpha1.SecretKeyReference{Name: secretName},
			ProjectSettings: surgev1alpha1.ProjectSettings{Accounts: accounts},
		},
	}
	f.createObject(project)
	return project
}

// clusterSurgeProject makes a ClusterSurgeProject named after the fixture,
// with its key in the fixture's namespace.
func (f *fixture) clusterSurgeProject(name, secretName string, mutate func(*surgev1alpha1.ClusterSurgeProjectSpec)) *surgev1alpha1.ClusterSurgeProject {
	f.T.Helper()
	project := &surgev1alpha1.ClusterSurgeProject{
		ObjectMeta: metav1.ObjectMeta{Name: f.Namespace + "-" + name},
		Spec: surgev1alpha1.ClusterSurgeProjectSpec{
			APIKeySecretRef: surgev1alpha1.NamespacedSecretKeyReference{
				Namespace: f.Namespace, SecretKeyReference: surgev1alpha1.SecretKeyReference{Name: secretName}},
		},
	}
	mutate(&project.Spec)
	f.createObject(project)
	return project
}

func using(kind, project string) func(*surgev1alpha1.SurgeEndUser) {
	return func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: kind, Name: project}
	}
}

func in(namespace, account string) func(*surgev1alpha1.SurgeEndUser) {
	return func(o *surgev1alpha1.SurgeEndUser) {
		o.Namespace = namespace
		o.Spec.AccountID = account
	}
}

func adopting(userID, firstName string) func(*surgev1alpha1.SurgeEndUser) {
	return func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.UserID = userID
		o.Spec.FirstName = firstName
	}
}

func (f *fixture) requestCheck(namespace, name string) {
	f.T.Helper()
	f.Eventually("request a check of "+name, 10*time.Second, func() (bool, string) {
		obj, err := f.getIn(namespace, name)
		if err != nil {
			return false, err.Error()
		}
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations[surgev1alpha1.AnnotationReconcileRequestedAt] = time.Now().Format(time.RFC3339Nano)
		if err := k8s.Update(f.Ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func (f *fixture) waitForProjectCondition(project client.Object, status metav1.ConditionStatus, reason string, endUsers int32) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%s Ready=%s %s with %d end users", project.GetName(), status, reason, endUsers), 20*time.Second, func() (bool, string) {
		if err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(project), project); err != nil {
			return false, err.Error()
		}
		projectStatus := project.(interface {
			GetStatus() *surgev1alpha1.SurgeProjectStatus
		}).GetStatus()
		ready := apimeta.FindStatusCondition(projectStatus.Conditions, surgev1alpha1.ConditionReady)
		if ready == nil || ready.Status != status || ready.Reason != reason || projectStatus.EndUsers != endUsers {
			return false, fmt.Sprintf("status %+v", projectStatus)
		}
		return true, ""
	})
}

// TestATenantCannotTakeOverAnotherTenantsUser replays an attack from a
// namespace whose owner may only apply SurgeEndUsers: naming another
// namespace's user in spec.userID, with a token Secret, then deleting.
func TestATenantCannotTakeOverAnotherTenantsUser(t *testing.T) {
	f := newTenantsFixture(t, []string{"tenant-b"})
	f.Surge.AddAccount(elsewhereAccount)
	tenantB := f.Namespaces["tenant-b"]
	f.Create(f.endUser("ada-lovelace"))
	ada := f.waitForReady("ada-lovelace").Status.UserID

	// One names an unrelated account, one copies Ada's manifest whole.
	f.Create(f.endUser("thief", in(tenantB, elsewhereAccount), adopting(ada, "Mallory"), withToken("thief-token", 900, 0)))
	f.Create(f.endUser("copycat", in(tenantB, f.Account), adopting(ada, "Mallory"), withToken("copycat-token", 900, 0)))
	f.waitForConditionIn(tenantB, "thief", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserNotInAccount)
	copycat := f.waitForConditionIn(tenantB, "copycat", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserClaimed)
	ready := apimeta.FindStatusCondition(copycat.Status.Conditions, surgev1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, f.Namespace+"/ada-lovelace") {
		t.Errorf("copycat's Ready condition does not name the resource holding the user: %+v", ready)
	}
	if copycat.Status.UserID != "" {
		t.Errorf("copycat recorded user %s", copycat.Status.UserID)
	}

	untouched := func() (bool, string) {
		user, ok := f.Surge.User(ada)
		switch {
		case !ok:
			return false, "Ada's user was deleted"
		case user.FirstName != "Ada":
			return false, "Ada was renamed to " + user.FirstName
		case f.Surge.CountRequests(http.MethodPatch, "/users/"+ada) > 0:
			return false, "Ada's user was patched"
		case f.Surge.CountRequests(http.MethodPost, "/users/"+ada+"/tokens") > 0:
			return false, "a token was minted for Ada"
		case f.Surge.CountRequests(http.MethodDelete, "/users/"+ada) > 0:
			return false, "Ada's user was sent a DELETE"
		}
		for _, name := range []string{"thief-token", "copycat-token"} {
			if err := k8s.Get(f.Ctx, client.ObjectKey{Namespace: tenantB, Name: name}, &corev1.Secret{}); err == nil {
				return false, "Secret " + name + " exists"
			}
		}
		return true, ""
	}
	f.consistently("Ada untouched while the tenant's resources exist", 2*time.Second, untouched)

	f.deleteObject(&surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "thief"}})
	f.deleteObject(&surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "copycat"}})
	f.waitForGoneObject(&surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "thief"}})
	f.waitForGoneObject(&surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "copycat"}})
	f.requestCheck(f.Namespace, "ada-lovelace")
	f.consistently("Ada untouched after the tenant's resources are gone", 2*time.Second, untouched)
	if got := f.waitForReady("ada-lovelace").Status.UserID; got != ada {
		t.Errorf("Ada's resource now manages %s instead of %s", got, ada)
	}
}

// TestAUserWhoseTagsWereStrippedIsStillClaimed: the tags on the user are
// not the only evidence; the resource that records the user holds it.
func TestAUserWhoseTagsWereStrippedIsStillClaimed(t *testing.T) {
	f := newTenantsFixture(t, []string{"tenant-b"})
	tenantB := f.Namespaces["tenant-b"]
	f.Create(f.endUser("ada-lovelace"))
	ada := f.waitForReady("ada-lovelace").Status.UserID
	f.Surge.EditUser(ada, func(u *emulator.User) { u.Metadata = nil })

	f.Create(f.endUser("copycat", in(tenantB, f.Account), adopting(ada, "Mallory")))
	f.waitForConditionIn(tenantB, "copycat", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserClaimed)
	if user, _ := f.Surge.User(ada); user.FirstName != "Ada" {
		t.Errorf("Ada was renamed to %s", user.FirstName)
	}
}

// TestAReleasedUserCanBeAdoptedAgain: once the resource that managed a user
// is deleted with deletionPolicy Orphan, another may adopt the user.
func TestAReleasedUserCanBeAdoptedAgain(t *testing.T) {
	f := newTenantsFixture(t, []string{"tenant-b"})
	tenantB := f.Namespaces["tenant-b"]
	f.Create(f.endUser("ada-lovelace", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan }))
	ada := f.waitForReady("ada-lovelace").Status.UserID
	f.Create(f.endUser("successor", in(tenantB, f.Account), adopting(ada, "Augusta")))
	f.waitForConditionIn(tenantB, "successor", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserClaimed)

	f.Delete("ada-lovelace")
	f.WaitForGone("ada-lovelace")
	f.requestCheck(tenantB, "successor")
	successor := f.waitForConditionIn(tenantB, "successor", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	if successor.Status.UserID != ada {
		t.Fatalf("successor manages %q, want the released %s", successor.Status.UserID, ada)
	}
	user, _ := f.Surge.User(ada)
	if user.FirstName != "Augusta" || user.Metadata[surgev1alpha1.MetadataNamespace] != tenantB {
		t.Errorf("the adopted user is %+v, want it renamed and tagged for %s/successor", user, tenantB)
	}
}

// TestASurgeProjectServesItsNamespaceAndAccountsOnly: a tenant's own project
// reaches only what its key and its account list allow, and nothing outside
// its namespace can name it.
func TestASurgeProjectServesItsNamespaceAndAccountsOnly(t *testing.T) {
	f := newTenantsFixture(t, []string{"tenant-a", "tenant-b"})
	tenantA, tenantB := f.Namespaces["tenant-a"], f.Namespaces["tenant-b"]
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamAccount, teamOtherAccount)
	f.apiKeySecret(tenantA, "surge-key", "sk_live_team_key_0123456789")
	project := f.surgeProject(tenantA, "surge", "surge-key", teamAccount)
	f.Create(f.endUser("ada-lovelace"))
	ada := f.waitForReady("ada-lovelace").Status.UserID

	useProject := using(surgev1alpha1.KindSurgeProject, "surge")
	f.Create(f.endUser("grace", in(tenantA, teamAccount), useProject))
	f.Create(f.endUser("unlisted", in(tenantA, teamOtherAccount), useProject))
	f.Create(f.endUser("neighbour", in(tenantB, teamAccount), useProject))
	f.Create(f.endUser("intruder", in(tenantA, teamAccount), useProject, adopting(ada, "Mallory")))

	f.waitForConditionIn(tenantA, "grace", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	f.waitForConditionIn(tenantA, "unlisted", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, "AccountNotAllowed")
	f.waitForConditionIn(tenantB, "neighbour", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, "ProjectNotFound")
	f.waitForConditionIn(tenantA, "intruder", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonAdoptedUserNotFound)
	f.waitForProjectCondition(project, metav1.ConditionTrue, surgev1alpha1.ReasonKeyAccepted, 3)

	if users := f.Surge.Users(teamAccount); len(users) != 1 || users[0].FirstName != "Ada" || users[0].Metadata[surgev1alpha1.MetadataName] != "grace" {
		t.Errorf("team account holds %+v, want grace's user alone", users)
	}
	if users := f.Surge.Users(teamOtherAccount); len(users) != 0 {
		t.Errorf("an account the project does not list holds %+v", users)
	}
	if user, _ := f.Surge.User(ada); user.FirstName != "Ada" {
		t.Errorf("the default project's user was renamed to %q", user.FirstName)
	}
}

// TestAClusterSurgeProjectServesTheNamespacesItSelects: a namespace outside
// the project's boundary is refused, and recovers by itself once labelled.
func TestAClusterSurgeProjectServesTheNamespacesItSelects(t *testing.T) {
	f := newTenantsFixture(t, []string{"listed", "labelled"})
	listed, labelled := f.Namespaces["listed"], f.Namespaces["labelled"]
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", "sk_live_team_key_0123456789")
	project := f.clusterSurgeProject("shared", "surge-key", func(spec *surgev1alpha1.ClusterSurgeProjectSpec) {
		spec.Namespaces = []string{listed}
		spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"surge.app/tenant": "true"}}
	})
	useProject := using(surgev1alpha1.KindClusterSurgeProject, project.Name)
	f.Create(f.endUser("grace", in(listed, teamAccount), useProject))
	f.Create(f.endUser("alan", in(labelled, teamAccount), useProject))
	f.waitForConditionIn(listed, "grace", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	f.waitForConditionIn(labelled, "alan", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, "NamespaceNotAllowed")
	if n := len(f.Surge.Users(teamAccount)); n != 1 {
		t.Fatalf("team account holds %d users, want grace's alone", n)
	}

	namespace := &corev1.Namespace{}
	f.Eventually("label namespace", 10*time.Second, func() (bool, string) {
		if err := k8s.Get(f.Ctx, client.ObjectKey{Name: labelled}, namespace); err != nil {
			return false, err.Error()
		}
		namespace.Labels["surge.app/tenant"] = "true"
		if err := k8s.Update(f.Ctx, namespace); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	f.waitForConditionIn(labelled, "alan", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)

	for _, name := range []client.ObjectKey{{Namespace: listed, Name: "grace"}, {Namespace: labelled, Name: "alan"}} {
		f.deleteObject(&surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}})
	}
	f.deleteObject(project)
	f.waitForGoneObject(project)
	if n := len(f.Surge.Users(teamAccount)); n != 0 {
		t.Errorf("%d users left in Surge after their resources and project were deleted", n)
	}
}

// TestARotatedKeyIsPickedUpWithoutARestart: the project's Secret changes,
// Surge refuses the old key, and the next call goes through with the new
// one; a key Surge refuses shows on the project.
func TestARotatedKeyIsPickedUpWithoutARestart(t *testing.T) {
	f := newTenantsFixture(t, []string{"tenant-a"})
	tenantA := f.Namespaces["tenant-a"]
	const oldKey, newKey = "sk_live_team_key_old_0123456789", "sk_live_team_key_new_0123456789"
	f.Surge.AddProject("team", oldKey, teamAccount)
	secret := f.apiKeySecret(tenantA, "surge-key", oldKey)
	project := f.surgeProject(tenantA, "surge", "surge-key")
	f.Create(f.endUser("grace", in(tenantA, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	grace := f.waitForConditionIn(tenantA, "grace", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced).Status.UserID
	f.waitForProjectCondition(project, metav1.ConditionTrue, surgev1alpha1.ReasonKeyAccepted, 1)

	f.Surge.AddProject("team", newKey)
	f.Surge.RevokeAPIKey(oldKey)
	// The project's guard on the Secret changes it too: write the new key
	// on the Secret as it is now, as kubectl does.
	f.Eventually("the new key stored", 10*time.Second, func() (bool, string) {
		if err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return false, err.Error()
		}
		secret.Data[surgev1alpha1.DefaultAPIKeySecretKey] = []byte(newKey)
		err := k8s.Update(f.Ctx, secret)
		return err == nil, fmt.Sprint(err)
	})
	f.Eventually("rename grace", 10*time.Second, func() (bool, string) {
		obj, err := f.getIn(tenantA, "grace")
		if err != nil {
			return false, err.Error()
		}
		obj.Spec.FirstName = "Grace"
		return k8s.Update(f.Ctx, obj) == nil, "conflict"
	})
	f.waitForConditionIn(tenantA, "grace", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	if user, _ := f.Surge.User(grace); user.FirstName != "Grace" {
		t.Errorf("the rename did not reach Surge with the new key: %+v", user)
	}
	f.waitForProjectCondition(project, metav1.ConditionTrue, surgev1alpha1.ReasonKeyAccepted, 1)

	f.Surge.RevokeAPIKey(newKey)
	f.waitForProjectCondition(project, metav1.ConditionFalse, surgev1alpha1.ReasonAPIKeyRejected, 1)
}

// TestRunsWithoutAKeyOfItsOwn: without SURGE_API_KEY the operator starts;
// a resource without projectRef stalls saying what to set, one with a
// project works.
func TestRunsWithoutAKeyOfItsOwn(t *testing.T) {
	f := newTenantsFixture(t, nil, func(o *operator.Options) { o.SurgeAPIKey = "" })
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", "sk_live_team_key_0123456789")
	f.surgeProject(f.Namespace, "surge", "surge-key")

	f.Create(f.endUser("ada-lovelace"))
	f.Create(f.endUser("grace", in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	stalled := f.waitForCondition("ada-lovelace", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, "NoProject")
	if message := apimeta.FindStatusCondition(stalled.Status.Conditions, surgev1alpha1.ConditionReady).Message; !strings.Contains(message, "spec.projectRef") {
		t.Errorf("the stall does not say what to set: %q", message)
	}
	f.waitForReady("grace")
	if n := len(f.Surge.Users(f.Account)); n != 0 {
		t.Errorf("a resource without a key created %d users", n)
	}
}

// TestAProjectInUseIsKeptUntilItsEndUsersAreGone: deleting a project does
// not strand the deletions of the end users that use it.
func TestAProjectInUseIsKeptUntilItsEndUsersAreGone(t *testing.T) {
	f := newTenantsFixture(t, nil)
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", "sk_live_team_key_0123456789")
	project := f.surgeProject(f.Namespace, "surge", "surge-key")
	f.Create(f.endUser("grace", in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	f.waitForReady("grace")

	f.deleteObject(project)
	f.waitForProjectCondition(project, metav1.ConditionFalse, surgev1alpha1.ReasonInUse, 1)
	if ready := apimeta.FindStatusCondition(project.Status.Conditions, surgev1alpha1.ConditionReady); !strings.Contains(ready.Message, f.Namespace+"/grace") {
		t.Errorf("the InUse condition does not say which SurgeEndUser holds the project: %q", ready.Message)
	}
	// A project on its way out takes no new work: a user made now would
	// outlive the key that can delete it.
	f.Create(f.endUser("latecomer", in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	f.waitForCondition("latecomer", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, credentials.ReasonProjectDeleting)
	if users := f.Surge.Users(teamAccount); len(users) != 1 {
		t.Errorf("%d users in Surge, want grace's only: %+v", len(users), users)
	}
	f.Delete("latecomer")
	f.WaitForGone("latecomer")
	f.Delete("grace")
	f.WaitForGone("grace")
	f.waitForGoneObject(project)
	if users := f.Surge.Users(teamAccount); len(users) != 0 {
		t.Errorf("the end user outlived its resource: %+v", users)
	}
}

// TestAThrottledProjectDoesNotSlowAnother: each project has a client of its
// own, so a project whose Surge answers 429 with a long Retry-After holds
// back its own end users only.
func TestAThrottledProjectDoesNotSlowAnother(t *testing.T) {
	f := newTenantsFixture(t, []string{"throttled", "fine"})
	throttledSurge := emulator.New(emulator.Options{APIKey: "sk_live_team_key_throttled_0123", Accounts: []string{teamAccount}})
	server := httptest.NewServer(throttledSurge)
	t.Cleanup(server.Close)
	throttledSurge.InjectFault(emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Minute})
	f.apiKeySecret(f.Namespace, "throttled-key", "sk_live_team_key_throttled_0123")
	throttled := f.clusterSurgeProject("throttled", "throttled-key", func(spec *surgev1alpha1.ClusterSurgeProjectSpec) {
		spec.APIURL = server.URL
	})
	t.Cleanup(func() {
		for _, name := range []string{"waiting-0", "waiting-1", "waiting-2"} {
			obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespaces["throttled"], Name: name}}
			_ = k8s.Delete(f.Ctx, obj)
			_ = k8s.Patch(f.Ctx, obj, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
		}
		_ = k8s.Delete(f.Ctx, throttled)
		_ = k8s.Patch(f.Ctx, throttled, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	})
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamOtherAccount)
	f.apiKeySecret(f.Namespaces["fine"], "surge-key", "sk_live_team_key_0123456789")
	f.surgeProject(f.Namespaces["fine"], "surge", "surge-key")

	for i := range 3 {
		f.Create(f.endUser(fmt.Sprintf("waiting-%d", i), in(f.Namespaces["throttled"], teamAccount), using(surgev1alpha1.KindClusterSurgeProject, throttled.Name)))
	}
	f.Eventually("the throttled Surge answers 429", 10*time.Second, func() (bool, string) {
		return throttledSurge.CountRequests("", "/") > 0, "no request yet"
	})
	start := time.Now()
	for i := range 3 {
		f.Create(f.endUser(fmt.Sprintf("served-%d", i), in(f.Namespaces["fine"], teamOtherAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	}
	for i := range 3 {
		f.waitForConditionIn(f.Namespaces["fine"], fmt.Sprintf("served-%d", i), surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	}
	t.Logf("the other project's end users were Ready %s after they were created", time.Since(start).Round(time.Millisecond))
	if n := len(throttledSurge.Users(teamAccount)); n != 0 {
		t.Errorf("the throttled Surge created %d users", n)
	}
}
