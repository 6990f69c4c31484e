package controller_test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/controller"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func TestCreatesTheEndUserAndRecordsItsID(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("ada", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.PhotoURL = "https://example.com/ada.png"
	}))

	obj := f.waitForReady("ada")
	remote, ok := f.surge.User(obj.Status.UserID)
	if !ok {
		t.Fatalf("status.userID %q is not a user in Surge", obj.Status.UserID)
	}
	if remote.AccountID != f.account || remote.FirstName != "Ada" || remote.LastName != "Lovelace" || remote.PhotoURL != "https://example.com/ada.png" {
		t.Errorf("remote user %+v does not match the spec", remote)
	}
	wantMetadata := map[string]string{
		"team":                       "analytics",
		controller.MetadataUID:       string(obj.UID),
		controller.MetadataNamespace: f.namespace,
		controller.MetadataName:      "ada",
	}
	if !maps.Equal(remote.Metadata, wantMetadata) {
		t.Errorf("remote metadata %v, want %v", remote.Metadata, wantMetadata)
	}
	if got := f.surge.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("%d create requests, want exactly 1", got)
	}
	if !containsString(obj.Finalizers, controller.Finalizer) {
		t.Errorf("finalizers %v lack %s", obj.Finalizers, controller.Finalizer)
	}
	if _, pending := obj.Annotations[controller.AnnotationCreatePending]; pending {
		t.Errorf("create marker left behind after success")
	}
	if note := f.waitForEvent("ada", controller.EventCreated); !strings.Contains(note, obj.Status.UserID) {
		t.Errorf("Created event %q does not name the user", note)
	}
}

func TestSpecChangesArePatchedToSurge(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("grace"))
	userID := f.waitForReady("grace").Status.UserID

	f.update("grace", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.FirstName = "Grace"
		o.Spec.LastName = ""
		o.Spec.Metadata = map[string]string{"team": "compilers"}
	})
	f.eventually("remote user updated", 10*time.Second, func() (bool, string) {
		remote, _ := f.surge.User(userID)
		return remote.FirstName == "Grace" && remote.LastName == "" && remote.Metadata["team"] == "compilers", fmt.Sprintf("%+v", remote)
	})
	obj := f.waitForReady("grace")
	if obj.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", obj.Status.ObservedGeneration)
	}
	if obj.Status.UserID != userID {
		t.Errorf("user id changed from %s to %s on update", userID, obj.Status.UserID)
	}
	f.waitForEvent("grace", controller.EventUpdated)
	if got := f.surge.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("%d creates, want 1", got)
	}
}

func TestASettledResourceCostsNothing(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("quiet"))
	f.waitForReady("quiet")
	time.Sleep(500 * time.Millisecond)
	settled := f.get("quiet")
	f.surge.ResetRequests()

	f.consistently("no writes and no Surge calls while nothing changes", 3*time.Second, func() (bool, string) {
		now := f.get("quiet")
		if now.ResourceVersion != settled.ResourceVersion {
			return false, fmt.Sprintf("resource written: %s -> %s", settled.ResourceVersion, now.ResourceVersion)
		}
		if requests := f.surge.Requests(); len(requests) > 0 {
			return false, fmt.Sprintf("Surge called: %+v", requests)
		}
		return true, ""
	})
}

func TestAdoptsAnExistingUser(t *testing.T) {
	f := newFixture(t)
	existing := f.surge.PutUser(f.account, emulator.User{FirstName: "Old", Metadata: map[string]string{"source": "legacy"}})

	f.create(f.endUser("adopted", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = existing.ID }))
	obj := f.waitForReady("adopted")
	if obj.Status.UserID != existing.ID {
		t.Fatalf("status.userID %s, want the adopted %s", obj.Status.UserID, existing.ID)
	}
	remote, _ := f.surge.User(existing.ID)
	if remote.FirstName != "Ada" || remote.Metadata["source"] != "" || remote.Metadata[controller.MetadataUID] != string(obj.UID) {
		t.Errorf("adopted user not brought to the spec: %+v", remote)
	}
	if got := f.surge.CountRequests(http.MethodPost, "/accounts/"); got != 0 {
		t.Errorf("%d creates while adopting, want 0", got)
	}
	f.waitForEvent("adopted", controller.EventAdopted)
}

func TestAdoptingAnUnknownUserStalls(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("ghost", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = "usr_01jrzhe8d9enptypyx360pcmxu" }))
	obj := f.waitForCondition("ghost", "Stalled", metav1.ConditionTrue, controller.ReasonAdoptedUserNotFound)
	if ready := conditionOf(obj, "Ready"); ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "spec.userID") {
		t.Errorf("Ready %+v should be False and point at spec.userID", ready)
	}
	if len(f.surge.AllUsers()) != 0 {
		t.Errorf("users created while adoption failed: %+v", f.surge.AllUsers())
	}
}

func TestDeletionDeletesTheRemoteUser(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("leaving"))
	userID := f.waitForReady("leaving").Status.UserID

	f.delete("leaving")
	f.waitForGone("leaving")
	if _, ok := f.surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource", userID)
	}
}

func TestDeletionWithOrphanPolicyKeepsTheRemoteUser(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("kept", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan }))
	userID := f.waitForReady("kept").Status.UserID

	f.delete("kept")
	f.waitForGone("kept")
	if _, ok := f.surge.User(userID); !ok {
		t.Errorf("remote user %s deleted despite deletionPolicy Orphan", userID)
	}
	if got := f.surge.CountRequests(http.MethodDelete, "/users/"); got != 0 {
		t.Errorf("%d delete requests with Orphan policy", got)
	}
}

func TestDeletionOfAUserAlreadyGoneFromSurgeCompletes(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("vanished"))
	userID := f.waitForReady("vanished").Status.UserID
	f.surge.RemoveUser(userID)

	f.delete("vanished")
	f.waitForGone("vanished")
}

func TestDeletionWaitsForSurgeAndKeepsTheFinalizerMeanwhile(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("stubborn"))
	userID := f.waitForReady("stubborn").Status.UserID
	f.surge.InjectFault(emulator.Fault{Method: http.MethodDelete, PathPrefix: "/users/" + userID, Status: http.StatusServiceUnavailable, Count: 4})

	f.delete("stubborn")
	f.waitForCondition("stubborn", "Reconciling", metav1.ConditionTrue, controller.ReasonSurgeUnavailable)
	f.waitForGone("stubborn")
	if _, ok := f.surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource", userID)
	}
}

func TestRejectedKeyStallsQuietlyAndHealsWhenFixed(t *testing.T) {
	f := newFixture(t, withResync(4*time.Second))
	f.surge.SetAPIKey("sk_live_rotated")
	f.create(f.endUser("locked"))

	obj := f.waitForCondition("locked", "Stalled", metav1.ConditionTrue, controller.ReasonAPIKeyRejected)
	ready := conditionOf(obj, "Ready")
	if ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "API key") {
		t.Errorf("Ready %+v should be False and name the API key", ready)
	}
	if strings.Contains(ready.Message, testAPIKey) {
		t.Errorf("the API key leaked into status: %q", ready.Message)
	}
	if conditionOf(obj, "Reconciling") != nil {
		t.Errorf("Reconciling set on a stalled resource")
	}
	f.waitForEvent("locked", controller.EventFailed)

	f.surge.ResetRequests()
	time.Sleep(6 * time.Second)
	// One retry per resync interval (4s here, 10m by default), not a hot loop.
	if got := len(f.surge.Requests()); got > 2 {
		t.Errorf("%d requests in 6s while stalled, want at most 2", got)
	}

	f.surge.SetAPIKey(testAPIKey)
	obj = f.waitForReady("locked")
	if len(f.surge.AllUsers()) != 1 {
		t.Errorf("%d remote users after recovery, want 1", len(f.surge.AllUsers()))
	}
	if conditionOf(obj, "Stalled") != nil {
		t.Errorf("Stalled left on a Ready resource")
	}
}

func TestUnknownAccountStalls(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("nowhere", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.AccountID = "acct_01j9a43avnfqzbjfch6pygvzzz" }))
	obj := f.waitForCondition("nowhere", "Stalled", metav1.ConditionTrue, controller.ReasonAccountNotFound)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "spec.accountID") || !strings.Contains(msg, "acct_01j9a43avnfqzbjfch6pygvzzz") {
		t.Errorf("Ready message %q should point at spec.accountID", msg)
	}
}

func TestRequestRefusedBySurgeStallsUntilTheSpecChanges(t *testing.T) {
	f := newFixture(t)
	f.surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.account, Status: http.StatusUnprocessableEntity, Count: 1})
	f.create(f.endUser("refused"))
	obj := f.waitForCondition("refused", "Stalled", metav1.ConditionTrue, controller.ReasonRequestRejected)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "fix the spec") {
		t.Errorf("Ready message %q should say to fix the spec", msg)
	}

	f.update("refused", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Fixed" })
	f.waitForReady("refused")
	if len(f.surge.AllUsers()) != 1 {
		t.Errorf("%d remote users, want 1", len(f.surge.AllUsers()))
	}
}

func TestSurgeOutageRetriesWithBackoffAndCreatesOnce(t *testing.T) {
	f := newFixture(t)
	f.surge.InjectFault(emulator.Fault{PathPrefix: "/accounts/" + f.account, Status: http.StatusBadGateway, Count: 6})
	f.create(f.endUser("patient"))

	f.waitForCondition("patient", "Reconciling", metav1.ConditionTrue, controller.ReasonSurgeUnavailable)
	f.waitForReady("patient")
	if n := len(f.surge.Users(f.account)); n != 1 {
		t.Errorf("%d remote users after an outage, want exactly 1", n)
	}
}

func TestCreateWithLostResponseDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.account, DropResponse: true, Count: 1})
	f.create(f.endUser("lost"))

	obj := f.waitForReady("lost")
	users := f.surge.Users(f.account)
	if len(users) != 1 {
		t.Fatalf("%d remote users after a lost create response, want exactly 1", len(users))
	}
	if obj.Status.UserID != users[0].ID {
		t.Errorf("status.userID %s, remote user %s", obj.Status.UserID, users[0].ID)
	}
	f.waitForEvent("lost", controller.EventRecovered)
}

func TestDeletionDuringAnUnresolvedCreateLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	// A first resource makes the operator index the account, so that the
	// next create needs no listing before it is sent.
	f.create(f.endUser("first"))
	f.waitForReady("first")

	f.surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.account, DropResponse: true, Count: 1})
	// The listing that would resolve the lost create fails for a while, so
	// the deletion arrives while the create is still unresolved.
	f.surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/accounts/" + f.account, Status: http.StatusServiceUnavailable, Count: 6})
	f.create(f.endUser("doomed"))
	f.eventually("create attempted", 10*time.Second, func() (bool, string) {
		return len(f.surge.Users(f.account)) == 2, "no create yet"
	})
	if obj := f.get("doomed"); obj.Status.UserID != "" {
		t.Fatalf("create resolved before the test could delete it; status.userID %s", obj.Status.UserID)
	}

	f.delete("doomed")
	f.waitForGone("doomed")
	if users := f.surge.Users(f.account); len(users) != 1 || users[0].Metadata[controller.MetadataName] != "first" {
		t.Errorf("remote users leaked by a deletion during an unresolved create: %+v", users)
	}
}

func TestDriftIsCorrectedAtTheNextCheck(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("drifting"))
	userID := f.waitForReady("drifting").Status.UserID
	f.surge.EditUser(userID, func(u *emulator.User) {
		u.FirstName = "Changed"
		u.Metadata = map[string]string{"intruder": "yes"}
	})

	f.update("drifting", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{controller.AnnotationReconcileRequestedAt: "1"}
	})
	f.eventually("drift corrected", 10*time.Second, func() (bool, string) {
		remote, _ := f.surge.User(userID)
		return remote.FirstName == "Ada" && remote.Metadata["intruder"] == "" && remote.Metadata["team"] == "analytics", fmt.Sprintf("%+v", remote)
	})
	f.waitForEvent("drifting", controller.EventDriftCorrected)
}

func TestUserDeletedOutOfBandIsCreatedAgain(t *testing.T) {
	f := newFixture(t, withResync(2*time.Second))
	f.create(f.endUser("phoenix"))
	oldID := f.waitForReady("phoenix").Status.UserID
	f.surge.RemoveUser(oldID)

	f.eventually("user created again", 15*time.Second, func() (bool, string) {
		obj := f.get("phoenix")
		return obj.Status.UserID != "" && obj.Status.UserID != oldID, "status.userID " + obj.Status.UserID
	})
	obj := f.waitForReady("phoenix")
	if _, ok := f.surge.User(obj.Status.UserID); !ok {
		t.Errorf("new user %s not in Surge", obj.Status.UserID)
	}
	f.waitForEvent("phoenix", controller.EventRecreated)
}

func conditionOf(obj *surgev1alpha1.SurgeEndUser, conditionType string) *metav1.Condition {
	for i := range obj.Status.Conditions {
		if obj.Status.Conditions[i].Type == conditionType {
			return &obj.Status.Conditions[i]
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func TestRecreatedResourceFindsTheUserItOrphaned(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("returning", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan }))
	userID := f.waitForReady("returning").Status.UserID
	f.delete("returning")
	f.waitForGone("returning")

	// A fresh operator, as after a cluster was rebuilt, knows nothing of it.
	f.restartOperator()
	f.create(f.endUser("returning", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Ada Augusta" }))
	obj := f.waitForReady("returning")
	if obj.Status.UserID != userID {
		t.Errorf("recreated resource has user %s, want the orphaned %s", obj.Status.UserID, userID)
	}
	if n := len(f.surge.Users(f.account)); n != 1 {
		t.Errorf("%d remote users, want the one orphaned user", n)
	}
	remote, _ := f.surge.User(userID)
	if remote.FirstName != "Ada Augusta" || remote.Metadata[controller.MetadataUID] != string(obj.UID) {
		t.Errorf("adopted user not brought to the new spec and identity: %+v", remote)
	}
	f.waitForEvent("returning", controller.EventAdopted)
}

func TestPausedResourceMakesNoCallsUntilResumed(t *testing.T) {
	f := newFixture(t)
	f.create(f.endUser("paused"))
	userID := f.waitForReady("paused").Status.UserID

	f.update("paused", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{controller.AnnotationPaused: "true"}
	})
	f.waitForCondition("paused", "Paused", metav1.ConditionTrue, controller.ReasonPaused)
	f.surge.ResetRequests()
	f.update("paused", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Paused" })
	f.delete("paused")
	f.consistently("no Surge calls while paused", 2*time.Second, func() (bool, string) {
		return len(f.surge.Requests()) == 0, fmt.Sprintf("%+v", f.surge.Requests())
	})
	if _, ok := f.surge.User(userID); !ok {
		t.Fatalf("remote user deleted while paused")
	}

	f.update("paused", func(o *surgev1alpha1.SurgeEndUser) { delete(o.Annotations, controller.AnnotationPaused) })
	f.waitForGone("paused")
	if _, ok := f.surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource after the pause ended", userID)
	}
}
