package controller_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func TestCreatesTheEndUserAndRecordsItsID(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("ada", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.PhotoURL = "https://example.com/ada.png"
	}))

	obj := f.waitForReady("ada")
	remote, ok := f.Surge.User(obj.Status.UserID)
	if !ok {
		t.Fatalf("status.userID %q is not a user in Surge", obj.Status.UserID)
	}
	if remote.AccountID != f.Account || remote.FirstName != "Ada" || remote.LastName != "Lovelace" || remote.PhotoURL != "https://example.com/ada.png" {
		t.Errorf("remote user %+v does not match the spec", remote)
	}
	wantMetadata := map[string]string{
		"team":                          "analytics",
		surgev1alpha1.MetadataUID:       string(obj.UID),
		surgev1alpha1.MetadataNamespace: f.Namespace,
		surgev1alpha1.MetadataName:      "ada",
	}
	if !maps.Equal(remote.Metadata, wantMetadata) {
		t.Errorf("remote metadata %v, want %v", remote.Metadata, wantMetadata)
	}
	if got := f.Surge.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("%d create requests, want exactly 1", got)
	}
	if !containsString(obj.Finalizers, surgev1alpha1.Finalizer) {
		t.Errorf("finalizers %v lack %s", obj.Finalizers, surgev1alpha1.Finalizer)
	}
	if marker := obj.Annotations[surgev1alpha1.AnnotationCreatePending]; marker == "" || obj.Status.CreateMarker != marker {
		t.Errorf("status.createMarker %q does not settle the create marker %q", obj.Status.CreateMarker, marker)
	}
	if note := f.waitForEvent("ada", surgev1alpha1.EventCreated); !strings.Contains(note, obj.Status.UserID) {
		t.Errorf("Created event %q does not name the user", note)
	}
}

func TestSpecChangesArePatchedToSurge(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("grace"))
	userID := f.waitForReady("grace").Status.UserID

	f.Update("grace", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.FirstName = "Grace"
		o.Spec.LastName = ""
		o.Spec.Metadata = map[string]string{"team": "compilers"}
	})
	f.Eventually("remote user updated", 10*time.Second, func() (bool, string) {
		remote, _ := f.Surge.User(userID)
		return remote.FirstName == "Grace" && remote.LastName == "" && remote.Metadata["team"] == "compilers", fmt.Sprintf("%+v", remote)
	})
	obj := f.waitForReady("grace")
	if obj.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", obj.Status.ObservedGeneration)
	}
	if obj.Status.UserID != userID {
		t.Errorf("user id changed from %s to %s on update", userID, obj.Status.UserID)
	}
	f.waitForEvent("grace", surgev1alpha1.EventUpdated)
	if got := f.Surge.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("%d creates, want 1", got)
	}
}

func TestASettledResourceCostsNothing(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("quiet"))
	f.waitForReady("quiet")
	time.Sleep(500 * time.Millisecond)
	settled := f.Get("quiet")
	f.Surge.ResetRequests()

	f.consistently("no writes and no Surge calls while nothing changes", 3*time.Second, func() (bool, string) {
		now := f.Get("quiet")
		if now.ResourceVersion != settled.ResourceVersion {
			return false, fmt.Sprintf("resource written: %s -> %s", settled.ResourceVersion, now.ResourceVersion)
		}
		if requests := f.Surge.Requests(); len(requests) > 0 {
			return false, fmt.Sprintf("Surge called: %+v", requests)
		}
		return true, ""
	})
}

func TestAdoptsAnExistingUser(t *testing.T) {
	f := newFixture(t)
	existing := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Old", Metadata: map[string]string{"source": "legacy"}})

	f.Create(f.endUser("adopted", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = existing.ID }))
	obj := f.waitForReady("adopted")
	if obj.Status.UserID != existing.ID {
		t.Fatalf("status.userID %s, want the adopted %s", obj.Status.UserID, existing.ID)
	}
	remote, _ := f.Surge.User(existing.ID)
	if remote.FirstName != "Ada" || remote.Metadata["source"] != "" || remote.Metadata[surgev1alpha1.MetadataUID] != string(obj.UID) {
		t.Errorf("adopted user not brought to the spec: %+v", remote)
	}
	if got := f.Surge.CountRequests(http.MethodPost, "/accounts/"); got != 0 {
		t.Errorf("%d creates while adopting, want 0", got)
	}
	f.waitForEvent("adopted", surgev1alpha1.EventAdopted)
}

func TestAdoptingAnUnknownUserStalls(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("ghost", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = "usr_01jrzhe8d9enptypyx360pcmxu" }))
	obj := f.waitForCondition("ghost", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonAdoptedUserNotFound)
	if ready := conditionOf(obj, "Ready"); ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "spec.userID") {
		t.Errorf("Ready %+v should be False and point at spec.userID", ready)
	}
	if len(f.Surge.AllUsers()) != 0 {
		t.Errorf("users created while adoption failed: %+v", f.Surge.AllUsers())
	}
}

func TestDeletionDeletesTheRemoteUser(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("leaving"))
	userID := f.waitForReady("leaving").Status.UserID

	f.Delete("leaving")
	f.WaitForGone("leaving")
	if _, ok := f.Surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource", userID)
	}
}

func TestDeletionWithOrphanPolicyKeepsTheRemoteUser(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("kept", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan }))
	userID := f.waitForReady("kept").Status.UserID

	f.Delete("kept")
	f.WaitForGone("kept")
	if _, ok := f.Surge.User(userID); !ok {
		t.Errorf("remote user %s deleted despite deletionPolicy Orphan", userID)
	}
	if got := f.Surge.CountRequests(http.MethodDelete, "/users/"); got != 0 {
		t.Errorf("%d delete requests with Orphan policy", got)
	}
}

func TestDeletionOfAUserAlreadyGoneFromSurgeCompletes(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("vanished"))
	userID := f.waitForReady("vanished").Status.UserID
	f.Surge.RemoveUser(userID)

	f.Delete("vanished")
	f.WaitForGone("vanished")
}

func TestDeletionWaitsForSurgeAndKeepsTheFinalizerMeanwhile(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("stubborn"))
	userID := f.waitForReady("stubborn").Status.UserID
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodDelete, PathPrefix: "/users/" + userID, Status: http.StatusServiceUnavailable, Count: 4})

	f.Delete("stubborn")
	f.waitForCondition("stubborn", "Reconciling", metav1.ConditionTrue, surgev1alpha1.ReasonSurgeUnavailable)
	f.WaitForGone("stubborn")
	if _, ok := f.Surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource", userID)
	}
}

func TestRejectedKeyStallsQuietlyAndHealsWhenFixed(t *testing.T) {
	f := newFixture(t, withResync(4*time.Second))
	f.Surge.SetAPIKey("sk_live_rotated")
	f.Create(f.endUser("locked"))

	obj := f.waitForCondition("locked", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonAPIKeyRejected)
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
	f.waitForEvent("locked", surgev1alpha1.EventFailed)

	f.Surge.ResetRequests()
	time.Sleep(6 * time.Second)
	// One retry per resync interval (4s here, 10m by default), not a hot loop.
	if got := len(f.Surge.Requests()); got > 2 {
		t.Errorf("%d requests in 6s while stalled, want at most 2", got)
	}

	f.Surge.SetAPIKey(testAPIKey)
	obj = f.waitForReady("locked")
	if len(f.Surge.AllUsers()) != 1 {
		t.Errorf("%d remote users after recovery, want 1", len(f.Surge.AllUsers()))
	}
	if conditionOf(obj, "Stalled") != nil {
		t.Errorf("Stalled left on a Ready resource")
	}
}

func TestUnknownAccountStalls(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("nowhere", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.AccountID = "acct_01j9a43avnfqzbjfch6pygvzzz" }))
	obj := f.waitForCondition("nowhere", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonAccountNotFound)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "spec.accountID") || !strings.Contains(msg, "acct_01j9a43avnfqzbjfch6pygvzzz") {
		t.Errorf("Ready message %q should point at spec.accountID", msg)
	}
}

func TestRequestRefusedBySurgeStallsUntilTheSpecChanges(t *testing.T) {
	f := newFixture(t)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Status: http.StatusUnprocessableEntity, Count: 1})
	f.Create(f.endUser("refused"))
	obj := f.waitForCondition("refused", "Stalled", metav1.ConditionTrue, surgev1alpha1.ReasonRequestRejected)
	if msg := conditionOf(obj, "Ready").Message; !strings.Contains(msg, "fix the spec") {
		t.Errorf("Ready message %q should say to fix the spec", msg)
	}

	f.Update("refused", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Fixed" })
	f.waitForReady("refused")
	if len(f.Surge.AllUsers()) != 1 {
		t.Errorf("%d remote users, want 1", len(f.Surge.AllUsers()))
	}
}

func TestSurgeOutageRetriesWithBackoffAndCreatesOnce(t *testing.T) {
	f := newFixture(t)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Status: http.StatusBadGateway, Count: 3})
	f.Create(f.endUser("patient"))

	f.waitForCondition("patient", "Reconciling", metav1.ConditionTrue, surgev1alpha1.ReasonSurgeUnavailable)
	// A 5xx may come from a create Surge carried out: each is settled by
	// listing the account once the create can no longer commit.
	f.waitForReadyWithin("patient", 60*time.Second)
	if n := len(f.Surge.Users(f.Account)); n != 1 {
		t.Errorf("%d remote users after an outage, want exactly 1", n)
	}
}

func TestCreateWithLostResponseDoesNotDuplicate(t *testing.T) {
	f := newFixture(t)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, DropResponse: true, Count: 1})
	f.Create(f.endUser("lost"))

	obj := f.waitForReady("lost")
	users := f.Surge.Users(f.Account)
	if len(users) != 1 {
		t.Fatalf("%d remote users after a lost create response, want exactly 1", len(users))
	}
	if obj.Status.UserID != users[0].ID {
		t.Errorf("status.userID %s, remote user %s", obj.Status.UserID, users[0].ID)
	}
	f.waitForEvent("lost", surgev1alpha1.EventRecovered)
}

func TestDeletionDuringAnUnresolvedCreateLeavesNoUser(t *testing.T) {
	f := newFixture(t)
	// A first resource makes the operator index the account, so that the
	// next create needs no listing before it is sent.
	f.Create(f.endUser("first"))
	f.waitForReady("first")

	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, DropResponse: true, Count: 1})
	// The listing that would resolve the lost create fails for a while, so
	// the deletion arrives while the create is still unresolved.
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/accounts/" + f.Account, Status: http.StatusServiceUnavailable, Count: 6})
	f.Create(f.endUser("doomed"))
	f.Eventually("create attempted", 10*time.Second, func() (bool, string) {
		return len(f.Surge.Users(f.Account)) == 2, "no create yet"
	})
	if obj := f.Get("doomed"); obj.Status.UserID != "" {
		t.Fatalf("create resolved before the test could delete it; status.userID %s", obj.Status.UserID)
	}

	f.Delete("doomed")
	f.WaitForGone("doomed")
	if users := f.Surge.Users(f.Account); len(users) != 1 || users[0].Metadata[surgev1alpha1.MetadataName] != "first" {
		t.Errorf("remote users leaked by a deletion during an unresolved create: %+v", users)
	}
}

func TestDriftIsCorrectedAtTheNextCheck(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("drifting"))
	userID := f.waitForReady("drifting").Status.UserID
	f.Surge.EditUser(userID, func(u *emulator.User) {
		u.FirstName = "Changed"
		u.Metadata = map[string]string{"intruder": "yes"}
	})

	f.Update("drifting", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "1"}
	})
	f.Eventually("drift corrected", 10*time.Second, func() (bool, string) {
		remote, _ := f.Surge.User(userID)
		return remote.FirstName == "Ada" && remote.Metadata["intruder"] == "" && remote.Metadata["team"] == "analytics", fmt.Sprintf("%+v", remote)
	})
	f.waitForEvent("drifting", surgev1alpha1.EventDriftCorrected)
}

func TestUserDeletedOutOfBandIsCreatedAgain(t *testing.T) {
	f := newFixture(t, withResync(2*time.Second))
	f.Create(f.endUser("phoenix"))
	oldID := f.waitForReady("phoenix").Status.UserID
	f.Surge.RemoveUser(oldID)

	f.Eventually("user created again", 15*time.Second, func() (bool, string) {
		obj := f.Get("phoenix")
		return obj.Status.UserID != "" && obj.Status.UserID != oldID, "status.userID " + obj.Status.UserID
	})
	obj := f.waitForReady("phoenix")
	if _, ok := f.Surge.User(obj.Status.UserID); !ok {
		t.Errorf("new user %s not in Surge", obj.Status.UserID)
	}
	f.waitForEvent("phoenix", surgev1alpha1.EventRecreated)
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
	f.Create(f.endUser("returning", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan }))
	userID := f.waitForReady("returning").Status.UserID
	f.Delete("returning")
	f.WaitForGone("returning")

	// A fresh operator, as after a cluster was rebuilt, knows nothing of it.
	f.RestartOperator()
	f.Create(f.endUser("returning", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Ada Augusta" }))
	obj := f.waitForReady("returning")
	if obj.Status.UserID != userID {
		t.Errorf("recreated resource has user %s, want the orphaned %s", obj.Status.UserID, userID)
	}
	if n := len(f.Surge.Users(f.Account)); n != 1 {
		t.Errorf("%d remote users, want the one orphaned user", n)
	}
	remote, _ := f.Surge.User(userID)
	if remote.FirstName != "Ada Augusta" || remote.Metadata[surgev1alpha1.MetadataUID] != string(obj.UID) {
		t.Errorf("adopted user not brought to the new spec and identity: %+v", remote)
	}
	f.waitForEvent("returning", surgev1alpha1.EventAdopted)
}

func TestPausedResourceMakesNoCallsUntilResumed(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("paused"))
	userID := f.waitForReady("paused").Status.UserID

	f.Update("paused", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationPaused: "true"}
	})
	f.waitForCondition("paused", "Paused", metav1.ConditionTrue, surgev1alpha1.ReasonPaused)
	f.Surge.ResetRequests()
	f.Update("paused", func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Paused" })
	f.Delete("paused")
	f.consistently("no Surge calls while paused", 2*time.Second, func() (bool, string) {
		return len(f.Surge.Requests()) == 0, fmt.Sprintf("%+v", f.Surge.Requests())
	})
	if _, ok := f.Surge.User(userID); !ok {
		t.Fatalf("remote user deleted while paused")
	}

	f.Update("paused", func(o *surgev1alpha1.SurgeEndUser) { delete(o.Annotations, surgev1alpha1.AnnotationPaused) })
	f.WaitForGone("paused")
	if _, ok := f.Surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource after the pause ended", userID)
	}
}

func TestProxy404AtResyncIsNotTakenForADeletedUser(t *testing.T) {
	f := newFixture(t, withResync(2*time.Second))
	f.Create(f.endUser("proxied"))
	userID := f.waitForReady("proxied").Status.UserID
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/" + userID, Status: http.StatusNotFound, ProxyPage: true})

	f.waitForCondition("proxied", "Reconciling", metav1.ConditionTrue, surgev1alpha1.ReasonSurgeUnavailable)
	if users := f.Surge.Users(f.Account); len(users) != 1 || users[0].ID != userID {
		t.Errorf("remote users after a proxy's 404: %+v, want only %s", users, userID)
	}

	f.Surge.ClearFaults()
	if obj := f.waitForReady("proxied"); obj.Status.UserID != userID {
		t.Errorf("status.userID %s after the proxy recovered, want %s", obj.Status.UserID, userID)
	}
	if got := f.Surge.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("%d creates, want 1", got)
	}
}

func TestProxy404DuringDeletionKeepsTheFinalizer(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("guarded"))
	userID := f.waitForReady("guarded").Status.UserID
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodDelete, PathPrefix: "/users/" + userID, Status: http.StatusNotFound, ProxyPage: true})

	f.Delete("guarded")
	f.waitForCondition("guarded", "Reconciling", metav1.ConditionTrue, surgev1alpha1.ReasonSurgeUnavailable)
	f.consistently("the resource waits for the user to be deleted", 2*time.Second, func() (bool, string) {
		obj := f.Get("guarded")
		return containsString(obj.Finalizers, surgev1alpha1.Finalizer), fmt.Sprintf("finalizers %v", obj.Finalizers)
	})

	f.Surge.ClearFaults()
	f.WaitForGone("guarded")
	if _, ok := f.Surge.User(userID); ok {
		t.Errorf("remote user %s outlived its resource", userID)
	}
}

func TestNewResourceSaysReconcilingBeforeSurgeAnswers(t *testing.T) {
	f := newFixture(t)
	f.Surge.SetLatency(3 * time.Second)
	f.Create(f.endUser("fresh"))

	obj := f.waitForCondition("fresh", "Reconciling", metav1.ConditionTrue, "")
	for _, request := range f.Surge.Requests() {
		if request.Status != 0 {
			t.Fatalf("Reconciling was written only after Surge answered %s %s", request.Method, request.Path)
		}
	}
	if ready := conditionOf(obj, "Ready"); ready == nil || ready.Status == metav1.ConditionTrue {
		t.Errorf("Ready %+v on a resource not yet in Surge, want it present and not True", ready)
	}

	f.Surge.SetLatency(0)
	if obj := f.waitForReady("fresh"); conditionOf(obj, "Reconciling") != nil {
		t.Errorf("Reconciling left on a Ready resource")
	}
}

func TestFinalizerRemovedByHandIsRestoredAtOnce(t *testing.T) {
	f := newFixture(t, withResync(10*time.Minute))
	f.Create(f.endUser("unguarded"))
	f.waitForReady("unguarded")

	f.Update("unguarded", func(o *surgev1alpha1.SurgeEndUser) {
		o.Finalizers = slices.DeleteFunc(o.Finalizers, func(s string) bool { return s == surgev1alpha1.Finalizer })
	})
	f.Eventually("finalizer restored", 5*time.Second, func() (bool, string) {
		obj := f.Get("unguarded")
		return containsString(obj.Finalizers, surgev1alpha1.Finalizer), fmt.Sprintf("finalizers %v", obj.Finalizers)
	})
}
