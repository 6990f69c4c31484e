package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/metrics"
)

// minPercentLimit is the fewest deletions the percentage rule allows in a
// window: in a project of a few users, one deletion is a large share.
const minPercentLimit = 5

// DeletionBrake holds the deletions of users in Surge past a threshold per
// project: a wrong commit in a GitOps repository can delete hundreds of
// resources at once, and a user deleted in Surge loses its history for
// good. Once a deletion is held, every later one of the project is held too,
// until a person releases them: the brake does not trickle.
type DeletionBrake struct {
	// Limit is how many deletions a project may make in Window; negative
	// turns the brake off.
	Limit  int
	Window time.Duration
	// Percent, when positive, lowers Limit to that share of the project's
	// SurgeEndUsers, but not below minPercentLimit.
	Percent int

	mu     sync.Mutex
	scopes map[string]*scopeDeletions
}

// scopeDeletions is what the brake knows of one project's deletions.
type scopeDeletions struct {
	// admitted are the deletions let through in the window, by when.
	admitted map[types.UID]time.Time
	// engagedAt is when the brake first held a deletion, zero while it
	// holds none.
	engagedAt time.Time
	held      map[types.UID]bool
	// peakUsers is the most SurgeEndUsers the project had since its window
	// began: the share is of the users it had before these deletions.
	peakUsers int
}

// deletionRequest is one resource's deletion, as the brake weighs it.
type deletionRequest struct {
	scope string
	uid   types.UID
	// requestedAt is the resource's deletion time.
	requestedAt time.Time
	// releasedAt is the latest release of the project's deletions, zero
	// when there was none; released says the resource itself is released.
	releasedAt time.Time
	released   bool
	// heldBefore says the resource's status shows it held: a hold survives
	// a restart or a failover.
	heldBefore bool
	// users is how many SurgeEndUsers use the project; negative when not
	// known, which leaves the percentage out.
	users int
}

// admit says whether the deletion may go now, and counts it if so. held is
// how many deletions of the project the brake holds now.
func (b *DeletionBrake) admit(request deletionRequest, now time.Time) (admitted bool, held int) {
	if b.Limit < 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.scope(request.scope)
	defer func() { held = len(s.held) }()
	for uid, at := range s.admitted {
		if now.Sub(at) >= b.Window {
			delete(s.admitted, uid)
		}
	}
	if len(s.admitted) == 0 {
		s.peakUsers = 0
	}
	s.peakUsers = max(s.peakUsers, request.users)
	released := request.released || (!request.releasedAt.IsZero() && !request.requestedAt.After(request.releasedAt))
	if !s.engagedAt.IsZero() && request.releasedAt.After(s.engagedAt) {
		// A person approved the burst: the window starts again.
		s.engagedAt, s.held, s.admitted = time.Time{}, map[types.UID]bool{}, map[types.UID]time.Time{}
	}
	if _, ok := s.admitted[request.uid]; ok || released {
		delete(s.held, request.uid)
		return true, 0
	}
	if request.heldBefore || !s.engagedAt.IsZero() || len(s.admitted) >= b.limitFor(s.peakUsers) {
		if s.engagedAt.IsZero() {
			s.engagedAt = now
		}
		s.held[request.uid] = true
		return false, 0
	}
	s.admitted[request.uid] = now
	return true, 0
}

// forget drops a resource that goes without its deletion being admitted:
// orphaned on purpose, or given up. Once the brake holds nothing, it
// lets go. It returns how many deletions it still holds.
func (b *DeletionBrake) forget(scope string, uid types.UID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.scope(scope)
	delete(s.held, uid)
	if len(s.held) == 0 {
		s.engagedAt = time.Time{}
	}
	return len(s.held)
}

func (b *DeletionBrake) limitFor(users int) int {
	if b.Percent <= 0 || users < 0 {
		return b.Limit
	}
	return min(b.Limit, max(minPercentLimit, users*b.Percent/100))
}

func (b *DeletionBrake) scope(scope string) *scopeDeletions {
	if b.scopes == nil {
		b.scopes = map[string]*scopeDeletions{}
	}
	s, ok := b.scopes[scope]
	if !ok {
		s = &scopeDeletions{admitted: map[types.UID]time.Time{}, held: map[types.UID]bool{}}
		b.scopes[scope] = s
	}
	return s
}

// brakeDeletion returns a DeletionHeld stall while the mass-deletion brake
// holds the deletion of obj's user in Surge.
func (r *SurgeEndUserReconciler) brakeDeletion(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) error {
	if r.Brake == nil {
		return nil
	}
	request := deletionRequest{
		uid:         obj.UID,
		requestedAt: obj.DeletionTimestamp.Time,
		released:    obj.Annotations[surgev1alpha1.AnnotationReleaseDeletions] != "",
		heldBefore:  deletionHeldBefore(obj.Status),
		users:       -1,
	}
	release := "annotate this SurgeEndUser with " + surgev1alpha1.AnnotationReleaseDeletions + "=true"
	scope, scopeLabel := brakeScope(obj)
	request.scope = scope
	if ref, named := credentials.RefOf(obj); named {
		endUsers, err := endUsersUsing(ctx, r.Client, ref)
		if err != nil {
			return err
		}
		request.users = len(endUsers)
		request.releasedAt = r.releaseTimeOf(ctx, ref)
		release = "kubectl surge release-deletions, or annotate " + ref.String() + " with " + surgev1alpha1.AnnotationReleaseDeletions + "=<the time now, RFC 3339>"
	}
	admitted, held := r.Brake.admit(request, r.Clock.Now())
	metrics.DeletionsHeld.WithLabelValues(scopeLabel).Set(float64(held))
	if admitted {
		return nil
	}
	message := fmt.Sprintf("The mass-deletion brake holds the deletion of this end user in Surge: more deletions were asked for than %d in %s (or %d%% of the project's SurgeEndUsers). If they are meant, release them: %s",
		r.Brake.Limit, r.Brake.Window, r.Brake.Percent, release)
	if !request.heldBefore {
		rep.Eventf(corev1.EventTypeWarning, surgev1alpha1.EventDeletionHeld, "Delete", "%s", message)
	}
	return stalled(surgev1alpha1.ReasonDeletionHeld, "%s", message)
}

// letGoOfBrake drops obj from the brake's holds as it goes.
func (r *SurgeEndUserReconciler) letGoOfBrake(obj *surgev1alpha1.SurgeEndUser) {
	if r.Brake == nil {
		return
	}
	scope, scopeLabel := brakeScope(obj)
	metrics.DeletionsHeld.WithLabelValues(scopeLabel).Set(float64(r.Brake.forget(scope, obj.UID)))
}

// brakeScope is the project whose deletions obj's counts against, and its
// metric label: the operator's own key for a resource without a project.
func brakeScope(obj *surgev1alpha1.SurgeEndUser) (scope, label string) {
	if ref, named := credentials.RefOf(obj); named {
		return ref.String(), ref.String()
	}
	return "", metrics.ScopeOperatorKey
}

// releaseTimeOf is the time of the project's last release of deletions,
// zero when it has none or it cannot be read.
func (r *SurgeEndUserReconciler) releaseTimeOf(ctx context.Context, ref credentials.Ref) time.Time {
	var project client.Object = &surgev1alpha1.SurgeProject{}
	if ref.Kind == surgev1alpha1.KindClusterSurgeProject {
		project = &surgev1alpha1.ClusterSurgeProject{}
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, project); err != nil {
		return time.Time{}
	}
	releasedAt, err := time.Parse(time.RFC3339, project.GetAnnotations()[surgev1alpha1.AnnotationReleaseDeletions])
	if err != nil {
		return time.Time{}
	}
	return releasedAt
}

// deletionHeldBefore says whether the status shows the deletion held.
func deletionHeldBefore(status surgev1alpha1.SurgeEndUserStatus) bool {
	stall := apimeta.FindStatusCondition(status.Conditions, surgev1alpha1.ConditionStalled)
	return stall != nil && stall.Status == metav1.ConditionTrue && stall.Reason == surgev1alpha1.ReasonDeletionHeld
}
