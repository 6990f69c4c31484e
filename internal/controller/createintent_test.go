package controller_test

import (
	"net/http"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// Round-4 finding (d): a create whose fate is known, or whose user is
// found, does not wait out the settle time. The operator here settles
// creates as deployed, 60 seconds after they leave, so that a wait for it
// shows.
func withDeployedSettleTime() fixtureOption {
	return func(o *operator.Options) { o.SurgeAttemptTimeout = operator.DefaultSurgeAttemptTimeout }
}

// quickly is the latency a user gets from a create that Surge answered or
// whose user was found.
const quickly = 10 * time.Second

// readyQuicklyAndOnce waits for the resource to be Ready within quickly,
// with exactly one user in Surge.
func (f *fixture) readyQuicklyAndOnce(name string) {
	f.T.Helper()
	obj := f.waitForReadyWithin(name, quickly)
	if users := f.usersNamed(name); len(users) != 1 || users[0].ID != obj.Status.UserID {
		f.T.Errorf("remote users named %s: %+v, want exactly the one in status (%s)", name, users, obj.Status.UserID)
	}
}

func TestThreeAnswered503sOnACreateGiveReadyWithinSeconds(t *testing.T) {
	f := newFixture(t, withDeployedSettleTime())
	f.settleAccount()
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Status: http.StatusServiceUnavailable, Count: 3})
	f.Create(f.endUser("patient"))
	f.readyQuicklyAndOnce("patient")
}

func TestALostAnswerToACommittedCreateIsAdoptedAtOnce(t *testing.T) {
	f := newFixture(t, withDeployedSettleTime())
	f.settleAccount()
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, DropResponse: true, Count: 1})
	f.Create(f.endUser("unheard"))
	f.readyQuicklyAndOnce("unheard")
}

// Round-4 finding (e): a user deleted in Surge outside the operator is
// re-created; while Surge rate-limits the re-create, the resource names no
// user and is not Ready.
func TestAUserDeletedInSurgeIsNotReadyWhileItsRecreateIsRateLimited(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("vanished"))
	deleted := f.waitForReady("vanished").Status.UserID
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	f.Surge.RemoveUser(deleted)
	f.Update("vanished", func(obj *surgev1alpha1.SurgeEndUser) {
		obj.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "now"}
	})

	f.Eventually("status lets go of the deleted user", 20*time.Second, func() (bool, string) {
		obj := f.Get("vanished")
		return obj.Status.UserID != deleted, "status.userID " + obj.Status.UserID
	})
	obj := f.Get("vanished")
	if ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady); obj.Status.UserID == "" && ready != nil && ready.Status == metav1.ConditionTrue {
		t.Errorf("Ready=True (%s) while status names no user: %+v", ready.Reason, obj.Status)
	}
}

// Round-4 finding (f): the settle time is recorded with each create. An
// operator whose own is shorter, say after --surge-request-timeout was
// lowered in an upgrade, still waits for the one the create was sent under.
func TestATakeOverWaitsForTheSettleTimeTheCreateWasSentUnder(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	f.StopOperator()
	f.Create(f.endUser("inherited", func(o *surgev1alpha1.SurgeEndUser) {
		o.Finalizers = []string{surgev1alpha1.Finalizer}
		o.Annotations = map[string]string{surgev1alpha1.AnnotationCreatePending: time.Now().UTC().Format(time.RFC3339Nano)}
	}))
	obj := f.Get("inherited")
	sentAt := metav1.NewTime(time.Now().Add(time.Second))
	obj.Status.CreateSentAt, obj.Status.CreateMarker = &sentAt, obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	obj.Status.CreateSettleSeconds = 120
	if err := k8s.Status().Update(f.Ctx, obj); err != nil {
		t.Fatal(err)
	}
	f.Surge.ResetRequests()
	f.StartOperator()

	// The operator's own settle time here is 6 seconds: before the fix, it
	// created again after about 10.
	time.Sleep(15 * time.Second)
	if creates := f.Surge.CountRequests(http.MethodPost, "/accounts/"); creates != 0 {
		t.Errorf("%d creates sent within 15 s of a create sent under a settle time of 120 s", creates)
	}
	f.waitForCondition("inherited", "Ready", metav1.ConditionFalse, surgev1alpha1.ReasonCreateUnresolved)
}

// Round-4 finding (d): on SIGTERM the operator lets a create in flight
// finish and records its user, instead of leaving it for the next leader
// to search for.
func TestAStoppingOperatorRecordsTheCreateItHasInFlight(t *testing.T) {
	f := newFixture(t)
	f.settleAccount()
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/" + f.Account, Latency: 1500 * time.Millisecond, Count: 1})
	f.Create(f.endUser("inflight"))
	f.Eventually("the create is on its way", 10*time.Second, func() (bool, string) {
		return f.Get("inflight").Status.CreateSentAt != nil, "no send time in status yet"
	})
	time.Sleep(500 * time.Millisecond)
	f.StopOperator()

	obj := f.Get("inflight")
	users := f.usersNamed("inflight")
	if obj.Status.UserID == "" || len(users) != 1 || users[0].ID != obj.Status.UserID {
		t.Errorf("after the stop, status names user %q and Surge holds %+v: want the user of the create that was in flight, recorded", obj.Status.UserID, users)
	}
}

// Round-4 finding (c): a resource restored from a backup, with its
// finalizer and create marker but without its status and with a new uid,
// and deleted before it adopted its user, deletes that user before it goes.
func TestARestoredResourceDeletedBeforeItAdoptsDeletesItsUser(t *testing.T) {
	f := newFixture(t)
	export, userID := f.loseWithItsUser("restored")
	restored := exported(export)
	restored.Finalizers = []string{surgev1alpha1.Finalizer}
	f.Create(restored)
	f.Delete("restored")
	f.StartOperator()

	f.WaitForGone("restored")
	if user, found := f.Surge.User(userID); found {
		t.Errorf("the restored resource went, and its user %s remains in Surge: %+v", userID, user)
	}
}
