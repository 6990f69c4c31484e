package controller

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/remote"
)

func TestRenewalTime(t *testing.T) {
	expiry := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		spread      float64
		want        time.Time
	}{
		{"default is a third of the lifetime", 15 * time.Minute, 0, 0, expiry.Add(-5 * time.Minute)},
		{"jitter brings it forward by up to a tenth", 15 * time.Minute, 0, 0.999, expiry.Add(-5*time.Minute - 30*time.Second)},
		{"jitter is capped at a minute", time.Hour, 30 * time.Minute, 0.999, expiry.Add(-31 * time.Minute)},
		{"explicit renewBefore", time.Minute, 10 * time.Second, 0, expiry.Add(-10 * time.Second)},
		{"whole seconds, rounded earlier, as status stores them", 15 * time.Second, 0, 0.5, expiry.Add(-6 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := renewalTime(expiry, tc.lifetime, tc.renewBefore, tc.spread)
			if !got.Equal(tc.want) {
				t.Errorf("renewalTime = %s, want %s", got, tc.want)
			}
			if got.Nanosecond() != 0 {
				t.Errorf("renewal time %s has a fraction of a second", got)
			}
		})
	}
}

func TestRenewalAfterMint(t *testing.T) {
	minted := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		expiresAt   time.Time
		requested   time.Duration
		renewBefore time.Duration
		spread      float64
		want        time.Time
	}{
		{"clocks agree: renewBefore ahead of expiry", minted.Add(15 * time.Minute), 15 * time.Minute, 5 * time.Minute, 0, minted.Add(10 * time.Minute)},
		{"clocks agree: default a third of the lifetime", minted.Add(15 * time.Minute), 15 * time.Minute, 0, 0, minted.Add(10 * time.Minute)},
		{"jitter brings it forward", minted.Add(15 * time.Minute), 15 * time.Minute, 5 * time.Minute, 0.999, minted.Add(9*time.Minute + 30*time.Second)},
		{"Surge's clock lags: renewBefore capped at half of what remains here", minted.Add(10 * time.Second), time.Minute, 20 * time.Second, 0, minted.Add(5 * time.Second)},
		{"Surge granted less than asked: planned from the grant", minted.Add(time.Minute), time.Hour, 50 * time.Minute, 0, minted.Add(30 * time.Second)},
		{"Surge's clock runs ahead: never later than the requested lifetime allows", minted.Add(20 * time.Minute), 15 * time.Minute, 5 * time.Minute, 0, minted.Add(10 * time.Minute)},
		{"expiry already past here: the requested lifetime is assumed", minted.Add(-time.Minute), 15 * time.Minute, 5 * time.Minute, 0, minted.Add(10 * time.Minute)},
		{"a lifetime of seconds still waits a while", minted.Add(2 * time.Second), time.Minute, 20 * time.Second, 0, minted.Add(5 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := renewalAfterMint(minted, tc.expiresAt, tc.requested, tc.renewBefore, tc.spread)
			if !got.Equal(tc.want) {
				t.Errorf("renewalAfterMint = %s after the mint, want %s", got.Sub(minted), tc.want.Sub(minted))
			}
			if !got.After(minted) {
				t.Errorf("renewal %s is not after the mint %s", got, minted)
			}
		})
	}
}

func TestMergeOwnedKeys(t *testing.T) {
	cases := []struct {
		name    string
		current map[string]string
		own     map[string]string
		written []string
		want    map[string]string
	}{
		{"new Secret", nil, map[string]string{"app": "inbox"}, nil, map[string]string{"app": "inbox"}},
		{"others' keys kept", map[string]string{"app": "inbox", "policy": "ok"}, map[string]string{"app": "inbox"}, []string{"app"}, map[string]string{"app": "inbox", "policy": "ok"}},
		{"own key corrected", map[string]string{"app": "edited"}, map[string]string{"app": "inbox"}, []string{"app"}, map[string]string{"app": "inbox"}},
		{"key dropped from the template removed", map[string]string{"app": "inbox", "tier": "web", "policy": "ok"}, map[string]string{"app": "inbox"}, []string{"app", "tier"}, map[string]string{"app": "inbox", "policy": "ok"}},
		{"key never written is not the operator's to remove", map[string]string{"tier": "web"}, map[string]string{}, nil, map[string]string{"tier": "web"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mergeOwnedKeys(tc.current, tc.own, tc.written); !maps.Equal(got, tc.want) {
				t.Errorf("mergeOwnedKeys = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTemplateKeysRoundTrip(t *testing.T) {
	value := formatTemplateKeys(map[string]string{"tier": "web", "app": "inbox"}, map[string]string{"example.com/match": "true"})
	if value != "labels=app,tier;annotations=example.com/match" {
		t.Errorf("formatted %q", value)
	}
	labels, annotations := parseTemplateKeys(value)
	if !slices.Equal(labels, []string{"app", "tier"}) || !slices.Equal(annotations, []string{"example.com/match"}) {
		t.Errorf("parsed %v %v", labels, annotations)
	}
	if labels, annotations := parseTemplateKeys(formatTemplateKeys(nil, nil)); labels != nil || annotations != nil {
		t.Errorf("an empty template parsed as %v %v", labels, annotations)
	}
}

func TestPlannedRenewalKeepsThePlanOfTheSameToken(t *testing.T) {
	expiry := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	planned := expiry.Add(-7 * time.Minute)
	current := &surgev1alpha1.TokenStatus{ExpiresAt: metav1.NewTime(expiry), RenewAt: metav1.NewTime(planned)}
	if got := plannedRenewal(current, expiry, 15*time.Minute, 0); !got.Equal(planned) {
		t.Errorf("plan for the stored token moved from %s to %s", planned, got)
	}
	newer := expiry.Add(10 * time.Minute)
	if got := plannedRenewal(current, newer, 15*time.Minute, 0); !got.Before(newer) || got.Equal(planned) {
		t.Errorf("a new token kept the old plan: %s", got)
	}
}

func TestRenewalRequested(t *testing.T) {
	answered := func(value string) *surgev1alpha1.TokenStatus {
		return &surgev1alpha1.TokenStatus{SecretName: "ada-token", RenewalRequest: value}
	}
	cases := []struct {
		name       string
		annotation string
		status     *surgev1alpha1.TokenStatus
		want       bool
	}{
		{"no annotation", "", answered(""), false},
		{"no annotation, an earlier request answered", "", answered("2026-11-22T12:00:00Z"), false},
		{"a new value", "2026-11-22T12:05:00Z", answered("2026-11-22T12:00:00Z"), true},
		{"the first value ever", "2026-11-22T12:00:00Z", answered(""), true},
		{"the value the token answers", "2026-11-22T12:00:00Z", answered("2026-11-22T12:00:00Z"), false},
		{"no token yet: the first mint answers it", "2026-11-22T12:00:00Z", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &surgev1alpha1.SurgeEndUser{Status: surgev1alpha1.SurgeEndUserStatus{Token: tc.status}}
			if tc.annotation != "" {
				obj.Annotations = map[string]string{surgev1alpha1.AnnotationRenewTokenRequestedAt: tc.annotation}
			}
			if got := renewalRequested(obj); got != tc.want {
				t.Errorf("renewalRequested = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	resync := 10 * time.Minute
	transient := classifyRemoteError("create the end user", errors.New("connection refused"), &surgev1alpha1.SurgeEndUserSpec{})
	limited := classifyRemoteError("create the end user", &remote.Error{Kind: remote.RateLimited, Wait: 3 * time.Second}, &surgev1alpha1.SurgeEndUserSpec{})
	limitedWithoutWait := classifyRemoteError("read the end user", &remote.Error{Kind: remote.RateLimited}, &surgev1alpha1.SurgeEndUserSpec{})
	asked := classifyRemoteError("create the end user", &remote.Error{Kind: remote.Unavailable, Wait: 90 * time.Second}, &surgev1alpha1.SurgeEndUserSpec{})
	renewalLimited := &degradedError{message: "renewal held back", err: limited}
	cases := []struct {
		name                        string
		err                         error
		wasReady                    bool
		ready                       metav1.ConditionStatus
		reason                      string
		reconciling, stalled, final bool
		requeueAfter                time.Duration
		retried, periodic           bool
	}{
		{"success", nil, false, metav1.ConditionTrue, surgev1alpha1.ReasonSynced, false, false, true, resync, false, true},
		{"stall waits for the resync", stalled(surgev1alpha1.ReasonAPIKeyRejected, "key"), false, metav1.ConditionFalse, surgev1alpha1.ReasonAPIKeyRejected, false, true, true, resync, false, true},
		{"transient backs off", transient, false, metav1.ConditionFalse, surgev1alpha1.ReasonSurgeUnavailable, true, false, false, 0, true, false},
		{"degraded stays ready", &degradedError{message: "renewal failed", err: transient}, true, metav1.ConditionTrue, surgev1alpha1.ReasonTokenRenewalFailing, false, false, true, 0, true, false},
		{"unknown error is in progress", errors.New("boom"), false, metav1.ConditionFalse, surgev1alpha1.ReasonProgressing, true, false, false, 0, true, false},
		{"a wait Surge asked for replaces the backoff", asked, false, metav1.ConditionFalse, surgev1alpha1.ReasonSurgeUnavailable, true, false, false, 90 * time.Second, false, false},
		{"rate limited new resource waits its turn", limited, false, metav1.ConditionFalse, surgev1alpha1.ReasonRateLimited, true, false, false, 3 * time.Second, false, false},
		{"rate limited without a wait waits a little", limitedWithoutWait, false, metav1.ConditionFalse, surgev1alpha1.ReasonRateLimited, true, false, false, minRateLimitedWait, false, false},
		{"rate limited Ready resource stays Ready", limited, true, metav1.ConditionTrue, surgev1alpha1.ReasonSynced, false, false, true, 3 * time.Second, false, false},
		{"rate limited token renewal stays Ready without backoff", renewalLimited, true, metav1.ConditionTrue, surgev1alpha1.ReasonSynced, false, false, true, 3 * time.Second, false, false},
		{"drift only observed stays Ready", &driftError{userID: "usr_1", fields: []string{"firstName"}}, false, metav1.ConditionTrue, surgev1alpha1.ReasonObserved, false, false, true, resync, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outcome := summarize(tc.err, "ok", resync, tc.wasReady)
			status := &surgev1alpha1.SurgeEndUserStatus{}
			if tc.wasReady {
				// The status of the last reconcile, which a wait must keep.
				summarize(nil, "ok", resync, false).apply(status, 3)
			}
			outcome.apply(status, 3)
			result, err := outcome.result()
			ready := findCondition(status, surgev1alpha1.ConditionReady)
			if ready == nil || ready.Status != tc.ready || ready.Reason != tc.reason || ready.ObservedGeneration != 3 {
				t.Errorf("Ready = %+v, want %s/%s at generation 3", ready, tc.ready, tc.reason)
			}
			if got := findCondition(status, surgev1alpha1.ConditionReconciling) != nil; got != tc.reconciling {
				t.Errorf("Reconciling present = %v, want %v", got, tc.reconciling)
			}
			if got := findCondition(status, surgev1alpha1.ConditionStalled) != nil; got != tc.stalled {
				t.Errorf("Stalled present = %v, want %v", got, tc.stalled)
			}
			if got := status.ObservedGeneration == 3; got != tc.final {
				t.Errorf("observedGeneration stamped = %v, want %v", got, tc.final)
			}
			if (err != nil) != tc.retried {
				t.Errorf("returned error %v, want retry %v", err, tc.retried)
			}
			if result.RequeueAfter != tc.requeueAfter {
				t.Errorf("RequeueAfter = %s, want %s", result.RequeueAfter, tc.requeueAfter)
			}
			if lowPriority := result.Priority != nil && *result.Priority == handler.LowPriority; lowPriority != tc.periodic {
				t.Errorf("requeued at low priority = %v, want %v", lowPriority, tc.periodic)
			}
		})
	}
}

func TestCheckTracker(t *testing.T) {
	tracker := newCheckTracker(func() time.Duration { return time.Minute })
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "n", UID: "u1", Generation: 2}}
	obj.Status.ObservedGeneration = 2

	if due, _ := tracker.due(obj, now); !due {
		t.Fatal("never checked, yet not due")
	}
	tracker.record(obj, now.Add(time.Minute), nil)
	if due, wait := tracker.due(obj, now.Add(10*time.Second)); due || wait != 50*time.Second {
		t.Errorf("checked 10s ago: due=%v wait=%s, want not due for 50s", due, wait)
	}
	if due, _ := tracker.due(obj, now.Add(time.Minute)); !due {
		t.Error("not due at the recorded time")
	}
	changed := obj.DeepCopy()
	changed.Generation = 3
	if due, _ := tracker.due(changed, now); !due {
		t.Error("spec changed, yet not due")
	}
	requested := obj.DeepCopy()
	requested.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "now"}
	if due, _ := tracker.due(requested, now); !due {
		t.Error("check requested by annotation, yet not due")
	}
	recreated := obj.DeepCopy()
	recreated.UID = "u2"
	if due, _ := tracker.due(recreated, now); !due {
		t.Error("a new resource of the same name, yet not due")
	}
}

func TestCheckTrackerResync(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// checked is the resource as last checked, nil when never since
		// the start.
		checked    *surgev1alpha1.SurgeEndUser
		checkStall error
		now        *surgev1alpha1.SurgeEndUser
		want       bool
	}{
		{name: "settled and checked before", checked: settledEndUser(), now: settledEndUser(), want: true},
		{name: "settled, first check since a restart", now: settledEndUser(), want: true},
		{name: "never created", now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status.UserID = "" })},
		{name: "spec changed since the check", checked: settledEndUser(), now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Generation = 3 })},
		{name: "spec changed before a restart", now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Generation = 3 })},
		{name: "not Ready before a restart", now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status.Conditions = nil })},
		{name: "the last check stalled", checked: settledEndUser(), checkStall: errors.New("stalled"), now: settledEndUser()},
		{
			name: "a check was asked for", checked: settledEndUser(),
			now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "now"}
			}),
		},
		{name: "being deleted", checked: settledEndUser(), now: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.DeletionTimestamp = &metav1.Time{Time: now} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tracker := newCheckTracker(func() time.Duration { return time.Minute })
			if tc.checked != nil {
				tracker.record(tc.checked, now, tc.checkStall)
			}
			if got := tracker.resync(tc.now); got != tc.want {
				t.Errorf("resync = %t, want %t", got, tc.want)
			}
		})
	}
}

// settledEndUser is a resource Ready for its generation with a user, as
// mutate leaves it; each call has conditions of its own.
func settledEndUser(mutate ...func(*surgev1alpha1.SurgeEndUser)) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "n", UID: "u1", Generation: 2}}
	obj.Status.ObservedGeneration = 2
	obj.Status.UserID = "usr_1"
	obj.Status.Conditions = []metav1.Condition{{Type: surgev1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: surgev1alpha1.ReasonSynced}}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

// TestTheFirstCheckAfterAStart: after a restart, a resource whose status
// says it was settled waits for the first check the tracker picks; any other
// is checked at once.
func TestTheFirstCheckAfterAStart(t *testing.T) {
	const firstCheck = 7 * time.Minute
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		obj     *surgev1alpha1.SurgeEndUser
		wantDue bool
	}{
		{name: "settled", obj: settledEndUser()},
		{name: "never created", obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status.UserID = "" }), wantDue: true},
		{name: "spec changed while no operator ran", obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Generation = 3 }), wantDue: true},
		{name: "not Ready", obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status.Conditions[0].Status = metav1.ConditionFalse }), wantDue: true},
		{
			name: "settled under the create marker status accounted for",
			obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Annotations = map[string]string{surgev1alpha1.AnnotationCreatePending: "m1"}
				o.Status.CreateMarker = "m1"
			}),
		},
		{
			name: "a create marker status has not accounted for, as after a crash during a re-create",
			obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Annotations = map[string]string{surgev1alpha1.AnnotationCreatePending: "m2"}
				o.Status.CreateMarker = "m1"
			}),
			wantDue: true,
		},
		{
			name: "the pause just ended",
			obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Status.Conditions = append(o.Status.Conditions, metav1.Condition{Type: surgev1alpha1.ConditionPaused, Status: metav1.ConditionTrue, Reason: surgev1alpha1.ReasonPaused})
			}),
			wantDue: true,
		},
		{
			name:    "a create whose answer was lost",
			obj:     settledEndUser(func(o *surgev1alpha1.SurgeEndUser) { o.Status.CreateSentAt = &metav1.Time{Time: now} }),
			wantDue: true,
		},
		{
			name: "a check was asked for",
			obj: settledEndUser(func(o *surgev1alpha1.SurgeEndUser) {
				o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "2026-12-06T11:00:00Z"}
			}),
			wantDue: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tracker := newCheckTracker(func() time.Duration { return firstCheck })
			due, wait := tracker.due(tc.obj, now)
			if due != tc.wantDue {
				t.Fatalf("due = %t, want %t", due, tc.wantDue)
			}
			if due {
				return
			}
			if wait != firstCheck {
				t.Errorf("first check in %s, want %s", wait, firstCheck)
			}
			if due, _ := tracker.due(tc.obj, now.Add(firstCheck)); !due {
				t.Error("not due at the first check's time")
			}
			if !tracker.resync(tc.obj) {
				t.Error("the first check of a settled resource does not count as a resync")
			}
		})
	}
}

func TestCheckTrackerKeepsTheStallUntilTheNextCheck(t *testing.T) {
	tracker := newCheckTracker(func() time.Duration { return time.Minute })
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "n", UID: "u1", Generation: 2}}
	refused := stalled(surgev1alpha1.ReasonRequestRejected, "refused")

	tracker.record(obj, now.Add(time.Minute), refused)
	if got := tracker.standingStall(obj); got != refused {
		t.Errorf("standing stall %v, want %v", got, refused)
	}
	changed := obj.DeepCopy()
	changed.Generation = 3
	if got := tracker.standingStall(changed); got != nil {
		t.Errorf("a stall of generation 2 stands for generation 3: %v", got)
	}
	tracker.record(obj, now.Add(time.Minute), nil)
	if got := tracker.standingStall(obj); got != nil {
		t.Errorf("a stall stands after a successful check: %v", got)
	}
}

func TestTokenStepRuns(t *testing.T) {
	transient := classifyRemoteError("read the end user", errors.New("connection refused"), &surgev1alpha1.SurgeEndUserSpec{})
	cases := []struct {
		name    string
		userErr error
		userID  string
		want    bool
	}{
		{"user in order", nil, "usr_1", true},
		{"Surge refuses the spec of a known user", stalled(surgev1alpha1.ReasonRequestRejected, "refused"), "usr_1", true},
		{"Surge refused the create: no user", stalled(surgev1alpha1.ReasonRequestRejected, "refused"), "", false},
		{"key rejected: a mint would be too", stalled(surgev1alpha1.ReasonAPIKeyRejected, "key"), "usr_1", false},
		{"adopted user gone", stalled(surgev1alpha1.ReasonAdoptedUserNotFound, "gone"), "usr_1", false},
		{"user in doubt", transient, "usr_1", false},
		{"drift only observed", &driftError{userID: "usr_1", fields: []string{"firstName"}}, "usr_1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tokenStepRuns(tc.userErr, tc.userID); got != tc.want {
				t.Errorf("tokenStepRuns = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSummarizeSteps(t *testing.T) {
	resync := 10 * time.Minute
	refused := stalled(surgev1alpha1.ReasonRequestRejected, "Surge refused to update the end user")
	transient := classifyRemoteError("mint a component token", errors.New("connection refused"), &surgev1alpha1.SurgeEndUserSpec{})
	cases := []struct {
		name         string
		err          error
		ready        metav1.ConditionStatus
		reason       string
		stalled      bool
		requeueAfter time.Duration
		retried      bool
	}{
		{"both steps in order", joinSteps(nil, nil), metav1.ConditionTrue, surgev1alpha1.ReasonSynced, false, resync, false},
		{"token step failed alone", joinSteps(nil, transient), metav1.ConditionFalse, surgev1alpha1.ReasonSurgeUnavailable, false, 0, true},
		{"user stalled, token renewed", joinSteps(refused, nil), metav1.ConditionFalse, surgev1alpha1.ReasonRequestRejected, true, resync, false},
		{"user stalled, token renewal failing", joinSteps(refused, &degradedError{message: "renewal failed", err: transient}), metav1.ConditionFalse, surgev1alpha1.ReasonRequestRejected, true, 0, true},
		{"user stalled, token stalled", joinSteps(refused, stalled(surgev1alpha1.ReasonSecretNotOwned, "not ours")), metav1.ConditionFalse, surgev1alpha1.ReasonRequestRejected, true, resync, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outcome := summarize(tc.err, "ok", resync, false)
			status := &surgev1alpha1.SurgeEndUserStatus{}
			outcome.apply(status, 1)
			result, err := outcome.result()
			if ready := findCondition(status, surgev1alpha1.ConditionReady); ready.Status != tc.ready || ready.Reason != tc.reason {
				t.Errorf("Ready = %s/%s, want %s/%s", ready.Status, ready.Reason, tc.ready, tc.reason)
			}
			if got := findCondition(status, surgev1alpha1.ConditionStalled) != nil; got != tc.stalled {
				t.Errorf("Stalled present = %v, want %v", got, tc.stalled)
			}
			if (err != nil) != tc.retried || result.RequeueAfter != tc.requeueAfter {
				t.Errorf("result %+v, %v; want requeue after %s, retry %v", result, err, tc.requeueAfter, tc.retried)
			}
		})
	}
}

func findCondition(status *surgev1alpha1.SurgeEndUserStatus, conditionType string) *metav1.Condition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == conditionType {
			return &status.Conditions[i]
		}
	}
	return nil
}

func TestGone(t *testing.T) {
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", UID: "uid-1"}}
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "surge.app", Resource: "surgeendusers"}, "ada")
	for _, tc := range []struct {
		name    string
		current *surgev1alpha1.SurgeEndUser
		err     error
		want    bool
	}{
		{"the resource is still there", &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", UID: "uid-1"}}, nil, false},
		{"the resource is not found", &surgev1alpha1.SurgeEndUser{}, notFound, true},
		{"another resource took the name", &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", UID: "uid-2"}}, nil, true},
		{"the read failed", &surgev1alpha1.SurgeEndUser{}, apierrors.NewServiceUnavailable("etcd is down"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gone(obj, tc.current, tc.err); got != tc.want {
				t.Errorf("gone = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReconcileTriggers(t *testing.T) {
	base := func() *surgev1alpha1.SurgeEndUser {
		return &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", Generation: 1, Finalizers: []string{surgev1alpha1.Finalizer}}}
	}
	deleted := metav1.Now()
	cases := []struct {
		name   string
		change func(*surgev1alpha1.SurgeEndUser)
		want   bool
	}{
		{"a status write", func(o *surgev1alpha1.SurgeEndUser) { o.Status.UserID = "usr_1" }, false},
		{"a spec change", func(o *surgev1alpha1.SurgeEndUser) { o.Generation = 2 }, true},
		{"an annotation", func(o *surgev1alpha1.SurgeEndUser) {
			o.Annotations = map[string]string{surgev1alpha1.AnnotationPaused: "true"}
		}, true},
		{"the deletion", func(o *surgev1alpha1.SurgeEndUser) { o.DeletionTimestamp = &deleted }, true},
		{"the finalizer removed by hand", func(o *surgev1alpha1.SurgeEndUser) { o.Finalizers = nil }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed := base()
			c.change(changed)
			if got := meaningfulChange().Update(event.UpdateEvent{ObjectOld: base(), ObjectNew: changed}); got != c.want {
				t.Errorf("reconcile %t, want %t", got, c.want)
			}
		})
	}
	t.Run("the finalizer added by the operator", func(t *testing.T) {
		without := base()
		without.Finalizers = nil
		if meaningfulChange().Update(event.UpdateEvent{ObjectOld: without, ObjectNew: base()}) {
			t.Error("the operator's own finalizer write asks for another reconcile")
		}
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ada-token"}}
	if tokenSecretChange().Create(event.CreateEvent{Object: secret}) {
		t.Error("the operator's own Secret create asks for another reconcile")
	}
	if !tokenSecretChange().Update(event.UpdateEvent{ObjectOld: secret, ObjectNew: secret}) || !tokenSecretChange().Delete(event.DeleteEvent{Object: secret}) {
		t.Error("a changed or deleted token Secret is not repaired")
	}
}

func TestSyncedCondition(t *testing.T) {
	drift := &driftError{userID: "usr_1", fields: []string{"firstName", "metadata.team"}}
	cases := []struct {
		name         string
		err          error
		allowsUpdate bool
		userID       string
		want         metav1.ConditionStatus
		reason       string
	}{
		{"the operator repairs drift itself", drift, true, "usr_1", "", ""},
		{"no user observed", stalled(surgev1alpha1.ReasonNotObserved, "none"), false, "", "", ""},
		{"drift reported", drift, false, "usr_1", metav1.ConditionFalse, surgev1alpha1.ReasonDrifted},
		{"drift beside a failed token step", joinSteps(drift, errors.New("mint failed")), false, "usr_1", metav1.ConditionFalse, surgev1alpha1.ReasonDrifted},
		{"matching", nil, false, "usr_1", metav1.ConditionTrue, surgev1alpha1.ReasonObserved},
		{"the user check stalled", stalled(surgev1alpha1.ReasonUserClaimed, "claimed"), false, "usr_1", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := syncedCondition(tc.err, tc.allowsUpdate, tc.userID)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("Synced = %+v, want none", got)
			case tc.want != "" && (got == nil || got.Status != tc.want || got.Reason != tc.reason):
				t.Errorf("Synced = %+v, want %s/%s", got, tc.want, tc.reason)
			case tc.reason == surgev1alpha1.ReasonDrifted && !strings.Contains(got.Message, "firstName, metadata.team"):
				t.Errorf("Synced says %q, which does not name the fields", got.Message)
			}
		})
	}
}
