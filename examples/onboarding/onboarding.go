// Package onboarding is a platform team's controller of the kind the Surge
// operator is built for: every ConfigMap labelled
// onboarding.example.com/customer=true describes a new customer (data keys
// firstName and lastName), who gets a SurgeEndUser of the same name in the
// platform's Surge account. Deleting the ConfigMap deletes the SurgeEndUser,
// and with it the user in Surge.
package onboarding

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// CustomerLabel marks the ConfigMaps that describe customers.
const CustomerLabel = "onboarding.example.com/customer"

// Reconciler keeps one SurgeEndUser per customer ConfigMap.
type Reconciler struct {
	Client client.Client
	// AccountID is the platform's Surge account, where every customer's
	// user lives.
	AccountID string
}

// SetupWithManager registers the reconciler with mgr, whose scheme must
// know SurgeEndUsers (surgev1alpha1.AddToScheme).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("onboarding").
		For(&corev1.ConfigMap{}, builder.WithPredicates(predicate.NewPredicateFuncs(isCustomer))).
		Owns(&surgev1alpha1.SurgeEndUser{}).
		Complete(r)
}

func isCustomer(obj client.Object) bool {
	return obj.GetLabels()[CustomerLabel] == "true"
}

// Reconcile makes the customer's SurgeEndUser match the ConfigMap, or
// deletes it once the ConfigMap is gone.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	customer := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, req.NamespacedName, customer)
	if apierrors.IsNotFound(err) || (err == nil && !isCustomer(customer)) {
		return ctrl.Result{}, r.offboard(ctx, req.NamespacedName)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	endUser := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: customer.Name, Namespace: customer.Namespace}}
	_, err = controllerutil.CreateOrUpdate(ctx, r.Client, endUser, func() error {
		endUser.Spec.AccountID = r.AccountID
		endUser.Spec.FirstName = customer.Data["firstName"]
		endUser.Spec.LastName = customer.Data["lastName"]
		return controllerutil.SetControllerReference(customer, endUser, r.Client.Scheme())
	})
	return ctrl.Result{}, err
}

// offboard deletes the SurgeEndUser made for the customer of that name; the
// Surge operator then deletes the user in Surge before the object goes.
// Garbage collection would delete it too, through its owner reference, but
// only where a controller manager runs it, which envtest has not.
func (r *Reconciler) offboard(ctx context.Context, customer types.NamespacedName) error {
	endUser := &surgev1alpha1.SurgeEndUser{}
	if err := r.Client.Get(ctx, customer, endUser); err != nil {
		return client.IgnoreNotFound(err)
	}
	owner := metav1.GetControllerOf(endUser)
	if owner == nil || owner.Kind != "ConfigMap" || owner.Name != customer.Name {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, endUser))
}
