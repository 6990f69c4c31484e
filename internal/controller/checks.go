package controller

import (
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// checkTracker remembers when each resource was last compared with Surge, so
// that reconciles set off by the operator's own writes, or by a Secret event,
// call Surge only when a check is due. It lives in memory: after a restart, a
// resource whose status says it was settled gets its first check at a time
// firstCheckAfterStart picks, so that a restart does not check every
// resource at once; any other resource is checked at once.
type checkTracker struct {
	mu sync.Mutex
	// firstCheckAfterStart is how long after its first reconcile a settled
	// resource nothing is remembered of is first checked.
	firstCheckAfterStart func() time.Duration
	checks               map[types.NamespacedName]check
	// recheckBy asks for the next check no later than this, for a resource
	// whose update Surge may still commit late (a request whose client gave
	// up): a stale state landing after a newer one is then repaired within
	// the settle time, not at the next resync.
	recheckBy map[types.NamespacedName]time.Time
}

type check struct {
	uid         types.UID
	generation  int64
	requestedAt string
	dueAt       time.Time
	// stall is how the check stalled, nil when it succeeded: until the
	// next check it stays the resource's condition.
	stall error
}

// concludes says whether the check is of obj as it is now: the same
// resource, at the same generation, with no check asked for since.
func (c check) concludes(obj *surgev1alpha1.SurgeEndUser) bool {
	return c.uid == obj.UID && c.generation == obj.Generation &&
		c.requestedAt == obj.Annotations[surgev1alpha1.AnnotationReconcileRequestedAt]
}

func newCheckTracker(firstCheckAfterStart func() time.Duration) *checkTracker {
	return &checkTracker{
		firstCheckAfterStart: firstCheckAfterStart,
		checks:               map[types.NamespacedName]check{},
		recheckBy:            map[types.NamespacedName]time.Time{},
	}
}

// due says whether obj must be compared with Surge now and, if not, how long
// until it must. The record, not obj's status, says whether this generation
// was concluded: the cache may not have caught up with the status just
// written, and a reconcile set off meanwhile must not go to Surge again.
// Only with no record, as after a restart, does the status count: a
// settled resource then waits for its first check, unless a check was asked
// for, which may have come while no operator ran.
func (t *checkTracker) due(obj *surgev1alpha1.SurgeEndUser, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	last, ok := t.checks[keyOf(obj)]
	if !ok && settledInStatus(obj) && obj.Annotations[surgev1alpha1.AnnotationReconcileRequestedAt] == "" {
		last = check{uid: obj.UID, generation: obj.Generation, dueAt: now.Add(t.firstCheckAfterStart())}
		t.checks[keyOf(obj)] = last
		ok = true
	}
	t.mu.Unlock()
	if !ok || !last.concludes(obj) {
		return true, 0
	}
	wait := last.dueAt.Sub(now)
	return wait <= 0, wait
}

// resync says whether a due check of obj only confirms a settled resource:
// its user is known, and nothing about the resource changed since its last
// check succeeded, or, with no check remembered since a restart, since its
// status was last concluded. The reads of such a check give way to new
// work in the Surge client.
func (t *checkTracker) resync(obj *surgev1alpha1.SurgeEndUser) bool {
	if obj.Status.UserID == "" || !obj.DeletionTimestamp.IsZero() {
		return false
	}
	t.mu.Lock()
	last, ok := t.checks[keyOf(obj)]
	t.mu.Unlock()
	if !ok {
		return settledInStatus(obj)
	}
	return last.stall == nil && last.concludes(obj)
}

// settledInStatus says whether obj's status says its last check found its
// user as this generation of its spec asks, with no create unresolved: none
// sent whose answer was lost, and no create marker status has not
// accounted for. A resource whose status still says it is paused was not
// checked during the pause: its first check after the pause is due at once.
func settledInStatus(obj *surgev1alpha1.SurgeEndUser) bool {
	return obj.Status.UserID != "" && obj.DeletionTimestamp.IsZero() &&
		obj.Status.ObservedGeneration == obj.Generation &&
		apimeta.IsStatusConditionTrue(obj.Status.Conditions, surgev1alpha1.ConditionReady) &&
		!apimeta.IsStatusConditionTrue(obj.Status.Conditions, surgev1alpha1.ConditionPaused) &&
		obj.Status.CreateSentAt == nil &&
		obj.Annotations[surgev1alpha1.AnnotationCreatePending] == obj.Status.CreateMarker
}

// recheckSoon asks that the check after the current one of obj come no
// later than at.
func (t *checkTracker) recheckSoon(obj *surgev1alpha1.SurgeEndUser, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recheckBy[keyOf(obj)] = at
}

// record notes that obj was compared with Surge with a final outcome, a
// success or a stall, and when it is due again: at dueAt, or sooner if the
// check asked for it. It returns when that is.
func (t *checkTracker) record(obj *surgev1alpha1.SurgeEndUser, dueAt time.Time, stall error) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if soon, ok := t.recheckBy[keyOf(obj)]; ok {
		delete(t.recheckBy, keyOf(obj))
		if soon.Before(dueAt) {
			dueAt = soon
		}
	}
	t.checks[keyOf(obj)] = check{
		uid:         obj.UID,
		generation:  obj.Generation,
		requestedAt: obj.Annotations[surgev1alpha1.AnnotationReconcileRequestedAt],
		dueAt:       dueAt,
		stall:       stall,
	}
	return dueAt
}

// standingStall is how the last check of obj stalled, or nil.
func (t *checkTracker) standingStall(obj *surgev1alpha1.SurgeEndUser) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, ok := t.checks[keyOf(obj)]
	if !ok || !last.concludes(obj) {
		return nil
	}
	return last.stall
}

func (t *checkTracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.checks, key)
	delete(t.recheckBy, key)
}

func keyOf(obj *surgev1alpha1.SurgeEndUser) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
}
