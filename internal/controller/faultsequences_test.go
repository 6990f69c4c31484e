package controller_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// These tests replay sequences of ordinary faults against one long-lived
// operator, so that what it keeps in memory between attempts is exercised.

func (f *fixture) usersNamed(name string) []emulator.User {
	var named []emulator.User
	for _, user := range f.Surge.Users(f.Account) {
		if user.Metadata[surgev1alpha1.MetadataName] == name {
			named = append(named, user)
		}
	}
	return named
}

// settleAccount makes the operator know the account, so that a create that
// follows is sent without listing it first.
func (f *fixture) settleAccount() {
	f.T.Helper()
	f.Create(f.endUser("first"))
	f.waitForReady("first")
}

func TestARefusedThenLostCreateDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	creates := "/accounts/" + f.Account
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: creates, Status: http.StatusTooManyRequests, Count: 1})
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: creates, DropResponse: true, Count: 1})
	f.Create(f.endUser("unlucky"))

	obj := f.waitForReady("unlucky")
	if users := f.usersNamed("unlucky"); len(users) != 1 || users[0].ID != obj.Status.UserID {
		t.Errorf("remote users %+v after a 429 then a lost answer, want exactly the one in status (%s)", users, obj.Status.UserID)
	}
}

func TestDeletionAfterARefusedThenLostCreateLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	creates := "/accounts/" + f.Account
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: creates, Status: http.StatusTooManyRequests, Count: 1})
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: creates, DropResponse: true, Count: 1})
	// Whatever is sent after the lost answer fails, so the resource is
	// deleted while its create is unresolved.
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: creates, Status: http.StatusServiceUnavailable})
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: creates, Status: http.StatusServiceUnavailable, Count: 3})
	f.Create(f.endUser("doomed"))
	f.Eventually("the lost create committed", 20*time.Second, func() (bool, string) {
		return len(f.usersNamed("doomed")) == 1, "no user yet"
	})

	f.Delete("doomed")
	f.WaitForGone("doomed")
	if users := f.usersNamed("doomed"); len(users) != 0 {
		t.Errorf("the deletion left %+v in Surge", users)
	}
}

// TestACreateThatMayHaveHappenedIsSearchedFor: a create answered with a
// gateway's 4xx page, a 408 or a 409 may have reached Surge and happened,
// so the next attempt searches the account before it creates again.
func TestACreateThatMayHaveHappenedIsSearchedFor(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	creates := "/accounts/" + f.Account + "/users"
	for name, fault := range map[string]emulator.Fault{
		"proxy-page": {Status: http.StatusNotFound, ProxyPage: true},
		"timeout":    {Status: http.StatusRequestTimeout},
		"conflict":   {Status: http.StatusConflict},
	} {
		fault.Method, fault.PathPrefix, fault.Count = http.MethodPost, creates, 1
		f.Surge.ResetRequests()
		f.Surge.InjectFault(fault)
		f.Create(f.endUser(name))
		f.waitForReady(name)

		var sent []string
		answered, searched := false, false
		for _, r := range f.Surge.Requests() {
			if r.Path != creates {
				continue
			}
			sent = append(sent, fmt.Sprintf("%s %d", r.Method, r.Status))
			switch {
			case r.Method == http.MethodPost && r.Status == fault.Status:
				answered = true
			case answered && r.Method == http.MethodGet:
				searched = true
			case answered && r.Method == http.MethodPost && !searched:
				t.Errorf("%s: created again without searching the account first: %v", name, sent)
			}
		}
		if !answered || !searched {
			t.Errorf("%s: requests to %s were %v, want the %d create, then a search", name, creates, sent, fault.Status)
		}
		if users := f.usersNamed(name); len(users) != 1 {
			t.Errorf("%s: %d remote users, want 1: %+v", name, len(users), users)
		}
	}
}

func hasCreatePending(obj *surgev1alpha1.SurgeEndUser) bool {
	marker, ok := obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	return ok && marker != obj.Status.CreateMarker
}

// crashedDuringRecreate leaves the world as a crash leaves it when the
// operator re-created a user deleted in Surge, the create was committed, and
// the process died before status recorded the new id: status names the old,
// deleted user and the create marker is set.
func (f *fixture) crashedDuringRecreate(name string) (oldID, newID string) {
	f.T.Helper()
	oldID = f.waitForReady(name).Status.UserID
	f.StopOperator()
	obj := f.Get(name)
	f.Surge.RemoveUser(oldID)
	recreated := f.Surge.PutUser(f.Account, emulator.User{FirstName: obj.Spec.FirstName, LastName: obj.Spec.LastName, Metadata: map[string]string{
		"team": "analytics", surgev1alpha1.MetadataUID: string(obj.UID), surgev1alpha1.MetadataNamespace: obj.Namespace, surgev1alpha1.MetadataName: obj.Name,
	}})
	f.Update(name, func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationCreatePending: time.Now().UTC().Format(time.RFC3339Nano)}
	})
	if !hasCreatePending(f.Get(name)) {
		f.T.Fatal("the re-create's marker is not pending")
	}
	return oldID, recreated.ID
}

func TestACrashDuringARecreateDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("phoenix"))
	_, newID := f.crashedDuringRecreate("phoenix")

	f.StartOperator()
	f.Eventually("the re-created user recorded", 20*time.Second, func() (bool, string) {
		obj := f.Get("phoenix")
		return obj.Status.UserID == newID && !hasCreatePending(obj), fmt.Sprintf("status.userID %s, annotations %v", obj.Status.UserID, obj.Annotations)
	})
	f.waitForReady("phoenix")
	if users := f.usersNamed("phoenix"); len(users) != 1 {
		t.Errorf("%d remote users after a crash during a re-create, want 1: %+v", len(users), users)
	}
}

// TestAFailedReadAfterACrashDuringARecreateDoesNotDuplicate: the first looks
// at the old user after the restart fail, retries included, so those
// reconciles learn nothing; the re-create's marker must still stand after
// them.
func TestAFailedReadAfterACrashDuringARecreateDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("phoenix"))
	oldID, newID := f.crashedDuringRecreate("phoenix")
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/" + oldID, Status: http.StatusServiceUnavailable, Count: 8})

	f.StartOperator()
	f.Eventually("the re-created user recorded", 30*time.Second, func() (bool, string) {
		obj := f.Get("phoenix")
		return obj.Status.UserID == newID, fmt.Sprintf("status.userID %s", obj.Status.UserID)
	})
	if users := f.usersNamed("phoenix"); len(users) != 1 {
		t.Errorf("%d remote users after a crash during a re-create and a failed read, want 1: %+v", len(users), users)
	}
}

func TestDeletionAfterACrashDuringARecreateLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("phoenix"))
	f.crashedDuringRecreate("phoenix")
	f.Delete("phoenix")

	f.StartOperator()
	f.WaitForGone("phoenix")
	if users := f.usersNamed("phoenix"); len(users) != 0 {
		t.Errorf("the deletion left %+v in Surge", users)
	}
}

// TestAnAccountThatCannotBeListedDoesNotBlockCreates: looking for a user
// of an earlier resource of the same name needs the whole account listed,
// which for a large account takes long; new resources do not wait for it.
func TestAnAccountThatCannotBeListedDoesNotBlockCreates(t *testing.T) {
	f := newFixture(t)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/accounts/" + f.Account, Status: http.StatusServiceUnavailable})
	f.Create(f.endUser("newcomer"))
	f.waitForCondition("newcomer", surgev1alpha1.ConditionReady, metav1.ConditionTrue, surgev1alpha1.ReasonSynced)
	if users := f.usersNamed("newcomer"); len(users) != 1 {
		t.Errorf("%d remote users, want 1", len(users))
	}
}

// TestAResourceGoneDuringItsCreateLeavesNoUser: the resource goes, its
// finalizer removed by hand, while the create is in flight; the user the
// create made is deleted once the operator finds the resource gone.
func TestAResourceGoneDuringItsCreateLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Latency: 2 * time.Second, Count: 1})
	f.Create(f.endUser("fleeting"))
	f.Eventually("the create in flight", 10*time.Second, func() (bool, string) {
		return f.Surge.CountRequests(http.MethodPost, "/accounts/") == 2, "no create yet"
	})
	f.Delete("fleeting")
	f.Update("fleeting", func(o *surgev1alpha1.SurgeEndUser) { o.Finalizers = nil })
	f.WaitForGone("fleeting")
	f.Eventually("the create answered", 10*time.Second, func() (bool, string) {
		var creates []emulator.Request
		for _, request := range f.Surge.Requests() {
			if request.Method == http.MethodPost {
				creates = append(creates, request)
			}
		}
		return len(creates) == 2 && creates[1].Status == http.StatusCreated, fmt.Sprintf("creates %+v", creates)
	})

	f.Eventually("no user left", 20*time.Second, func() (bool, string) {
		users := f.usersNamed("fleeting")
		return len(users) == 0, fmt.Sprintf("%d users left", len(users))
	})
}

// TestAUserIDSetAfterTheCreateIsRefused: spec.userID set once the
// resource already manages a user of its own is refused at admission,
// instead of being silently ignored or stalling the resource.
func TestAUserIDSetAfterTheCreateIsRefused(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("settled"))
	own := f.waitForReady("settled").Status.UserID
	other := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Grace"})
	obj := f.Get("settled")
	obj.Spec.UserID = other.ID
	err := k8s.Update(f.Ctx, obj)
	if err == nil || !strings.Contains(err.Error(), "spec.userID cannot be added to a SurgeEndUser that already manages another end user") {
		t.Fatalf("setting spec.userID to another user answered %v, want a refusal that says why", err)
	}
	if got := f.waitForReady("settled").Status.UserID; got != own {
		t.Errorf("status.userID %s, want the user it manages, %s", got, own)
	}
	if user, _ := f.Surge.User(other.ID); user.FirstName != "Grace" {
		t.Errorf("the user named in spec.userID was changed: %+v", user)
	}
}
