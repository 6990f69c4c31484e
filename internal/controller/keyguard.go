package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;patch

// guardKey keeps the project's guard on the Secret that holds its key, and
// only there: a Secret the project named before lets go of it. With keep
// false, the project lets go of every Secret, once no SurgeEndUser needs
// its key any more. A Secret being deleted keeps the guard it has, but gets
// none: Kubernetes adds no finalizer to an object on its way out.
func (r *ProjectReconciler) guardKey(ctx context.Context, obj projectObject, keep bool) error {
	guard := surgev1alpha1.KeyGuardPrefix + string(obj.GetUID())
	want := keySecretOf(obj)
	guarded := &corev1.SecretList{}
	if err := r.APIReader.List(ctx, guarded, client.HasLabels{guard}); err != nil {
		return fmt.Errorf("listing the Secrets %s guards: %w", refOfProject(obj), err)
	}
	holds := false
	for i := range guarded.Items {
		secret := &guarded.Items[i]
		if keep && client.ObjectKeyFromObject(secret) == want {
			holds = controllerutil.ContainsFinalizer(secret, guard)
			continue
		}
		if err := r.setGuard(ctx, secret, guard, false); err != nil {
			return err
		}
	}
	if !keep || holds {
		return nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, want, secret); err != nil || !secret.DeletionTimestamp.IsZero() {
		// A Secret that is missing shows in the project's key check.
		return client.IgnoreNotFound(err)
	}
	return r.setGuard(ctx, secret, guard, true)
}

// setGuard puts the guard on the Secret, or takes it off, under an
// optimistic lock: the finalizers of others are never lost.
func (r *ProjectReconciler) setGuard(ctx context.Context, secret *corev1.Secret, guard string, on bool) error {
	before := secret.DeepCopy()
	if on {
		controllerutil.AddFinalizer(secret, guard)
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		secret.Labels[guard] = "true"
	} else {
		controllerutil.RemoveFinalizer(secret, guard)
		delete(secret.Labels, guard)
	}
	err := r.Patch(ctx, secret, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if err == nil || (!on && apierrors.IsNotFound(err)) {
		return nil
	}
	return fmt.Errorf("guarding the key in Secret %s/%s: %w", secret.Namespace, secret.Name, err)
}

// keySecretOf is the Secret the project names for its key.
func keySecretOf(obj projectObject) types.NamespacedName {
	if cluster, ok := obj.(*surgev1alpha1.ClusterSurgeProject); ok {
		return types.NamespacedName{Namespace: cluster.Spec.APIKeySecretRef.Namespace, Name: cluster.Spec.APIKeySecretRef.Name}
	}
	project := obj.(*surgev1alpha1.SurgeProject)
	return types.NamespacedName{Namespace: project.Namespace, Name: project.Spec.APIKeySecretRef.Name}
}
