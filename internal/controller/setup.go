package controller

import (
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// Backoff after transient failures: fast enough to ride out a blip, slow
// enough that an outage of Surge is not hammered.
const (
	retryBaseDelay = 500 * time.Millisecond
	retryMaxDelay  = 5 * time.Minute
)

func newRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](retryBaseDelay, retryMaxDelay)
}

// meaningfulChange lets through the changes a person or tool makes (spec,
// annotations, deletion, the finalizer removed) and drops the status updates
// the operator writes itself, which need no reconcile.
func meaningfulChange() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() ||
				controllerutil.ContainsFinalizer(e.ObjectOld, surgev1alpha1.Finalizer) && !controllerutil.ContainsFinalizer(e.ObjectNew, surgev1alpha1.Finalizer)
		}},
	)
}

// tokenSecretChange lets through the changes to a token Secret that may need
// a repair: an update or a deletion. Only the operator creates token
// Secrets, and the reconcile that created one has just seen it.
func tokenSecretChange() predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}
}
