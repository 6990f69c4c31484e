package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// reconcileDelete honours the deletion policy and releases the finalizer only
// once the remote user is gone (or orphaned on purpose, or managed by
// another resource). credentialsErr is why obj may not reach Surge, if it
// may not: the finalizer then stays only while a user may exist.
func (r *SurgeEndUserReconciler) reconcileDelete(ctx context.Context, api EndUserRemote, credentialsErr error, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, surgev1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).V(1).Info("Deleting", "userID", obj.Status.UserID, "searchNeeded", needsSearch(obj))
	if credentialsErr != nil && r.deletionNeedsSurge(obj) {
		return r.deletionBlocked(ctx, rep, obj, credentialsErr, false)
	}
	if r.deletionNeedsSurge(obj) {
		if err := r.brakeDeletion(ctx, rep, obj); err != nil {
			return r.deletionBlocked(ctx, rep, obj, err, false)
		}
	}
	remoteCtx, cancel := context.WithTimeout(ctx, r.RemoteTimeout)
	defer cancel()
	if err := r.deleteRemoteUser(remoteCtx, api, rep, obj); err != nil {
		return r.deletionBlocked(ctx, rep, obj, err, true)
	}
	return r.releaseFinalizer(ctx, rep, obj)
}

// deletionBlocked records why the user of obj cannot be deleted yet. A
// stall, which only a person can lift (a key Surge rejects, a key Secret
// gone, a project gone), also holds up the deletion of obj's namespace:
// once the namespace has been on its way out for TerminatingNamespaceGrace,
// obj lets go of its user, which stays in Surge, and says so.
func (r *SurgeEndUserReconciler) deletionBlocked(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, err error, userChecked bool) (ctrl.Result, error) {
	stall, stalled := errors.AsType[*stalledError](err)
	// A deletion the brake holds waits for a person, namespace or not.
	if !stalled || stall.reason == surgev1alpha1.ReasonDeletionHeld {
		return r.finish(ctx, rep, obj, err, userChecked)
	}
	namespace := &corev1.Namespace{}
	if getErr := r.Get(ctx, client.ObjectKey{Name: obj.Namespace}, namespace); getErr != nil || namespace.DeletionTimestamp.IsZero() {
		return r.finish(ctx, rep, obj, err, userChecked)
	}
	giveUpIn := namespace.DeletionTimestamp.Add(r.TerminatingNamespaceGrace).Sub(r.Clock.Now())
	if giveUpIn > 0 {
		result, finishErr := r.finish(ctx, rep, obj, err, userChecked)
		result.RequeueAfter = shortestWait(result.RequeueAfter, giveUpIn)
		return result, finishErr
	}
	what := "no end user"
	if obj.Status.UserID != "" {
		what = "end user " + obj.Status.UserID
	}
	// The event goes with the namespace, if Kubernetes takes it at all.
	rep.Eventf(corev1.EventTypeWarning, surgev1alpha1.EventLeftInSurge, "Delete",
		"Left %s in Surge: namespace %s has been on its way out for over %s, and the user cannot be deleted (%s: %s)",
		what, obj.Namespace, r.TerminatingNamespaceGrace, stall.reason, stall.message)
	result, releaseErr := r.releaseFinalizer(ctx, rep, obj)
	if releaseErr == nil && result.RequeueAfter == 0 {
		metrics.UsersLeftInSurge.Inc()
		log.FromContext(ctx).Info("Left the end user in Surge: the namespace is being deleted and the deletion of the user stayed stalled past the grace time",
			"userID", obj.Status.UserID, "reason", stall.reason, "grace", r.TerminatingNamespaceGrace)
	}
	return result, releaseErr
}

// releaseFinalizer lets obj go: its user is deleted, orphaned on purpose,
// or left behind.
func (r *SurgeEndUserReconciler) releaseFinalizer(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (ctrl.Result, error) {
	r.letGoOfBrake(obj)
	r.unstoredTokens.forget(obj.UID)
	r.intents.Forget(obj.UID)
	err := r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		controllerutil.RemoveFinalizer(o, surgev1alpha1.Finalizer)
	})
	rep.RecordEvents()
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetryDelay}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(err)
}

// deletionNeedsSurge says whether deleting obj calls Surge: a user may
// exist and the policy is to delete it.
func (r *SurgeEndUserReconciler) deletionNeedsSurge(obj *surgev1alpha1.SurgeEndUser) bool {
	return !obj.Spec.LeavesUserInSurge() && (obj.Status.UserID != "" || needsSearch(obj))
}

func (r *SurgeEndUserReconciler) deleteRemoteUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) error {
	if obj.Spec.LeavesUserInSurge() {
		if obj.Status.UserID == "" {
			return nil
		}
		why := "deletionPolicy is Orphan"
		if !obj.Spec.Allows(surgev1alpha1.ManagementDelete) {
			why = fmt.Sprintf("managementPolicies %q do not allow Delete", obj.Spec.ManagementPolicies)
		}
		rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventOrphaned, "Delete",
			"Left end user %s in Surge, as %s", obj.Status.UserID, why)
		return nil
	}
	var userIDs []string
	if obj.Status.UserID != "" {
		userIDs = append(userIDs, obj.Status.UserID)
	}
	for _, userID := range userIDs {
		if err := r.deleteUser(ctx, api, rep, obj, userID); err != nil {
			return err
		}
	}
	// A create may have happened whose answer was lost, a re-create
	// included, or the resource was restored without its status: every
	// user its intent may have made goes, one found at a time, until they
	// are known to be absent, or they would outlive the resource.
	for range maxUsersOfOneIntent {
		resolution, _, err := r.resolveIntent(ctx, api, obj)
		if err != nil {
			return err
		}
		switch resolution.Kind {
		case intent.Wait:
			return createUnresolved(obj, resolution.Until.Sub(r.Clock.Now()))
		case intent.Absent:
			return nil
		}
		if err := r.deleteUser(ctx, api, rep, obj, resolution.UserID); err != nil {
			return err
		}
	}
	return createUnresolved(obj, intent.Recheck)
}

// maxUsersOfOneIntent bounds the users one reconcile deletes for an
// unsettled intent; more are deleted at the next.
const maxUsersOfOneIntent = 5

// deleteUser deletes one user of obj in Surge, unless another resource
// holds it.
func (r *SurgeEndUserReconciler) deleteUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, userID string) error {
	if err := r.checkClaim(ctx, obj, remote.User{ID: userID}); err != nil {
		if !isStall(err, surgev1alpha1.ReasonUserClaimed) {
			return err
		}
		rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventReleased, "Delete",
			"Left end user %s in Surge: %s", userID, err)
		return nil
	}
	if err := api.Delete(ctx, userID); err != nil {
		return classifyRemoteError("delete the end user", err, &obj.Spec)
	}
	rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventDeleted, "Delete",
		"Deleted end user %s", userID)
	return nil
}
