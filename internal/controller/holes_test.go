package controller_test

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// These tests replay sequences that once made a second user, orphaned one,
// or let one resource take another's.

// TestACreateThatSurgeCommitsLateDoesNotDuplicate: the create's client
// gives up (the attempt timeout of the test kit is 3 s) and Surge commits
// it two seconds later. A listing right after the timeout shows no user;
// only one that starts once the create cannot commit any more may say so.
func TestACreateThatSurgeCommitsLateDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Latency: 5 * time.Second, Count: 1})
	f.Create(f.endUser("tardy"))

	obj := f.waitForReadyWithin("tardy", 40*time.Second)
	if users := f.usersNamed("tardy"); len(users) != 1 || users[0].ID != obj.Status.UserID {
		t.Errorf("remote users %+v after a create committed late, want exactly the one in status (%s)", users, obj.Status.UserID)
	}
}

// TestARestoredResourceAdoptsItsUser: a resource re-created from an export
// (new uid, no status, the create marker kept) takes the user of its
// namespace and name instead of making a second one.
func TestARestoredResourceAdoptsItsUser(t *testing.T) {
	f := newFixture(t)
	export, userID := f.loseWithItsUser("restored")
	f.Create(exported(export))
	f.StartOperator()

	if got := f.waitForReady("restored").Status.UserID; got != userID {
		t.Errorf("the restored resource manages %s, want its user %s", got, userID)
	}
	if users := f.usersNamed("restored"); len(users) != 1 {
		t.Errorf("%d remote users after a restore, want 1: %+v", len(users), users)
	}
}

// loseWithItsUser creates the resource, waits until it has a user, and
// loses it while the operator is stopped, as a cluster rebuilt from a backup
// does: it returns the resource as exported before, and its user's id. The
// operator is left stopped.
func (f *fixture) loseWithItsUser(name string) (*surgev1alpha1.SurgeEndUser, string) {
	f.T.Helper()
	f.Create(f.endUser(name))
	userID := f.waitForReady(name).Status.UserID
	export := f.Get(name)
	f.StopOperator()
	f.Update(name, func(o *surgev1alpha1.SurgeEndUser) { o.Finalizers = nil })
	f.Delete(name)
	f.WaitForGone(name)
	return export, userID
}

// exported is obj as kubectl get -o yaml, stripped of what the API server
// sets, would re-create it, restored an hour after the first create: a
// marker written shortly before may belong to a create still in flight.
func exported(obj *surgev1alpha1.SurgeEndUser) *surgev1alpha1.SurgeEndUser {
	annotations := maps.Clone(obj.Annotations)
	annotations[surgev1alpha1.AnnotationCreatePending] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	return &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: obj.Name, Annotations: annotations, Labels: obj.Labels},
		Spec:       obj.Spec,
	}
}

// TestASquatterDoesNotTakeARecreatedVictimsUser: a resource of another
// namespace stalled on a user it names in spec.userID, older than the
// victim's resource once that is lost and applied again, does not win the
// user by age.
func TestASquatterDoesNotTakeARecreatedVictimsUser(t *testing.T) {
	f := newTenantsFixture(t, []string{"squatters"})
	squatters := f.Namespaces["squatters"]
	f.Create(f.endUser("victim"))
	victim := f.waitForReady("victim")
	f.Create(f.endUser("squatter", in(squatters, f.Account), adopting(victim.Status.UserID, "Mallory")))
	f.waitForConditionIn(squatters, "squatter", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserClaimed)

	f.StopOperator()
	f.Update("victim", func(o *surgev1alpha1.SurgeEndUser) { o.Finalizers = nil })
	f.Delete("victim")
	f.WaitForGone("victim")
	f.Create(f.endUser("victim"))
	f.requestCheck(squatters, "squatter")
	f.StartOperator()

	if got := f.waitForReady("victim").Status.UserID; got != victim.Status.UserID {
		t.Errorf("the re-applied victim manages %s, want its user %s", got, victim.Status.UserID)
	}
	f.waitForConditionIn(squatters, "squatter", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonUserClaimed)
	if user, _ := f.Surge.User(victim.Status.UserID); user.FirstName != "Ada" || user.Metadata[surgev1alpha1.MetadataNamespace] != f.Namespace {
		t.Errorf("the victim's user was taken over: %+v", user)
	}
}

// TestAReplaceDuringAnUnresolvedCreateDoesNotDuplicate: kubectl replace (or
// Argo CD's Replace=true) drops the create marker annotation while the
// create's answer is lost and the account cannot be listed.
func TestAReplaceDuringAnUnresolvedCreateDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	listing := emulator.Fault{Method: http.MethodGet, PathPrefix: "/accounts/" + f.Account, Status: http.StatusServiceUnavailable}
	f.Surge.InjectFault(listing)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, DropResponse: true, Count: 1})
	f.Create(f.endUser("replaced"))
	f.Eventually("the lost create committed", 20*time.Second, func() (bool, string) {
		return len(f.usersNamed("replaced")) == 1, "no user yet"
	})

	f.Update("replaced", func(o *surgev1alpha1.SurgeEndUser) { o.Annotations = nil })
	time.Sleep(2 * time.Second)
	f.Surge.ClearFaults()

	obj := f.waitForReadyWithin("replaced", 40*time.Second)
	if users := f.usersNamed("replaced"); len(users) != 1 || users[0].ID != obj.Status.UserID {
		t.Errorf("remote users %+v after a replace during an unresolved create, want exactly the one in status (%s)", users, obj.Status.UserID)
	}
}

// TestALostCreateInALargeAccountIsFound: listing the account takes longer
// than the remote timeout of one reconcile; the search goes on across
// reconciles instead of starting over from the first page.
func TestALostCreateInALargeAccountIsFound(t *testing.T) {
	f := newFixtureWithPageSize(t, 5, func(o *operator.Options) { o.RemoteTimeout = 2 * time.Second })
	f.settleAccount()
	for i := range 60 {
		f.Surge.PutUser(f.Account, emulator.User{FirstName: fmt.Sprintf("Other%d", i)})
	}
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/accounts/" + f.Account, Latency: 300 * time.Millisecond})
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, DropResponse: true, Count: 1})
	f.Create(f.endUser("needle"))

	obj := f.waitForReadyWithin("needle", 60*time.Second)
	if users := f.usersNamed("needle"); len(users) != 1 || users[0].ID != obj.Status.UserID {
		t.Errorf("remote users %+v, want exactly the one in status (%s)", users, obj.Status.UserID)
	}
}

// TestPresetCreateMarkersShareTheAccountsListing: a tenant who presets the
// create marker on many resources makes each of them search the account;
// the searches share the account's listing instead of each holding one.
// "No user" takes two passes that started after the settle time (the
// second confirms that no deletion overlapped the first), and the
// resources that arrive while a pass runs take one more to find their
// users early: 8 resources share at most 5 passes, where one each would be
// 16.
func TestPresetCreateMarkersShareTheAccountsListing(t *testing.T) {
	f := newFixtureWithPageSize(t, 5)
	for i := range 10 {
		f.Surge.PutUser(f.Account, emulator.User{FirstName: fmt.Sprintf("Other%d", i)})
	}
	f.Surge.ResetRequests()
	const resources = 8
	for i := range resources {
		f.Create(f.endUser(fmt.Sprintf("preset-%d", i), func(o *surgev1alpha1.SurgeEndUser) {
			o.Annotations = map[string]string{surgev1alpha1.AnnotationCreatePending: "2026-01-01T00:00:00Z"}
		}))
	}
	for i := range resources {
		f.waitForReady(fmt.Sprintf("preset-%d", i))
	}
	pages := (len(f.Surge.Users(f.Account)) + 4) / 5
	if listed := f.Surge.CountRequests(http.MethodGet, "/accounts/"+f.Account); listed > 5*pages {
		t.Errorf("%d list requests for %d resources with a preset marker in an account of %d pages, want the account listed at most 5 times", listed, resources, pages)
	}
}

// TestARefusedResourceDoesNotBlockAdoption: a resource that may not reach
// Surge at all (its project does not exist) names a user in spec.userID
// first; it does not keep a resource that may from adopting it.
func TestARefusedResourceDoesNotBlockAdoption(t *testing.T) {
	f := newFixture(t)
	loose := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Grace"})
	f.Create(f.endUser("refused", adopting(loose.ID, "Mallory"), using(surgev1alpha1.KindSurgeProject, "nowhere")))
	f.waitForCondition("refused", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, "ProjectNotFound")
	f.Create(f.endUser("rightful", adopting(loose.ID, "Grace")))

	if got := f.waitForReady("rightful").Status.UserID; got != loose.ID {
		t.Errorf("rightful manages %q, want %s", got, loose.ID)
	}
}

// TestAnUpdateCommittedLateIsRepaired: an update's first attempt gives up
// and its retry succeeds; a newer update follows; then Surge commits the
// first attempt, late, over the newer state. The operator checks again
// within its settle time instead of leaving it until the next resync.
func TestAnUpdateCommittedLateIsRepaired(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("revised"))
	userID := f.waitForReady("revised").Status.UserID
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPatch, PathPrefix: "/users/" + userID, Latency: 6 * time.Second, Count: 1})
	sent := time.Now()
	f.Update("revised", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "First" })
	f.Eventually("the retried update committed", 10*time.Second, func() (bool, string) {
		user, _ := f.Surge.User(userID)
		return user.FirstName == "First", "first name " + user.FirstName
	})
	f.waitForReady("revised")
	f.Update("revised", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Second" })
	f.waitForReady("revised")
	time.Sleep(time.Until(sent.Add(7 * time.Second)))
	if user, _ := f.Surge.User(userID); user.FirstName != "First" {
		t.Logf("the late attempt did not land over the newer update (first name %s): nothing to repair", user.FirstName)
	}

	f.Eventually("the newer update restored", 15*time.Second, func() (bool, string) {
		user, _ := f.Surge.User(userID)
		return user.FirstName == "Second", "first name " + user.FirstName
	})
}

func (f *fixture) waitForReadyWithin(name string, timeout time.Duration) *surgev1alpha1.SurgeEndUser {
	f.T.Helper()
	var obj *surgev1alpha1.SurgeEndUser
	f.Eventually(name+" Ready", timeout, func() (bool, string) {
		obj = f.Get(name)
		for _, c := range obj.Status.Conditions {
			if c.Type == surgev1alpha1.ConditionReady && c.Status == metav1.ConditionTrue && c.ObservedGeneration == obj.Generation {
				return true, ""
			}
		}
		return false, fmt.Sprintf("status %+v", obj.Status)
	})
	return obj
}

// TestASpecChangedDuringARecreateIsApplied: the spec changes while the
// operator re-creates a user deleted in Surge, after the reconcile read the
// resource and before it recorded the send time. The status write answers
// with the newer resource; the create still carries the spec it read, so
// the newer generation must not pass for done.
func TestASpecChangedDuringARecreateIsApplied(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("phoenix"))
	oldID := f.waitForReady("phoenix").Status.UserID
	f.Surge.RemoveUser(oldID)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/" + oldID, Latency: 2 * time.Second, Count: 1})
	f.Update("phoenix", func(o *surgev1alpha1.SurgeEndUser) {
		metav1.SetMetaDataAnnotation(&o.ObjectMeta, surgev1alpha1.AnnotationReconcileRequestedAt, "1")
	})
	f.Eventually("the read of the deleted user in flight", 10*time.Second, func() (bool, string) {
		return f.Surge.CountRequests(http.MethodGet, "/users/"+oldID) == 1, "no read yet"
	})
	f.Update("phoenix", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Grace" })

	f.Eventually("the re-created user has the newer spec", 15*time.Second, func() (bool, string) {
		obj := f.Get("phoenix")
		user, found := f.Surge.User(obj.Status.UserID)
		return found && user.FirstName == "Grace", fmt.Sprintf("status.userID %q, remote %+v", obj.Status.UserID, user)
	})
}
