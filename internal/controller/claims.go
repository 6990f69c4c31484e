package controller

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/claims"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// indexUserID indexes SurgeEndUsers by the remote user they name, in
// spec.userID or status.userID, so that finding every resource that claims
// a user is a lookup in the cache.
const indexUserID = "surge.app/user-id"

// userClaimed is the stall of a resource kept from a user that another
// resource manages.
func userClaimed(userID string, holder claims.Claimant) error {
	return stalled(surgev1alpha1.ReasonUserClaimed,
		"End user %s is managed by SurgeEndUser %s; one end user can be managed by one SurgeEndUser only, so this one makes no call that would touch it: remove spec.userID or delete this SurgeEndUser (its deletion leaves the user alone)",
		userID, holder.Name)
}

// checkClaim returns a UserClaimed stall when another live SurgeEndUser
// comes before obj for user. The evidence is the cache's index of user ids
// and, when user was read from Surge, its identity tags.
func (r *SurgeEndUserReconciler) checkClaim(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, user remote.User) error {
	me := claims.Of(obj, claims.HoldOf(obj, user))
	others, err := r.claimantsOf(ctx, user)
	if err != nil {
		return err
	}
	if holder, claimed := claims.Holder(me, others); claimed {
		return userClaimed(user.ID, holder)
	}
	return nil
}

// claimantsOf lists the live SurgeEndUsers that claim user (see
// claims.Claimants), from the cache's index of user ids.
func (r *SurgeEndUserReconciler) claimantsOf(ctx context.Context, user remote.User) ([]claims.Claimant, error) {
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := r.List(ctx, list, client.MatchingFields{indexUserID: user.ID}); err != nil {
		return nil, fmt.Errorf("listing the SurgeEndUsers of end user %s: %w", user.ID, err)
	}
	naming := make([]*surgev1alpha1.SurgeEndUser, len(list.Items))
	for i := range list.Items {
		naming[i] = &list.Items[i]
	}
	return claims.Claimants(user, claims.Resources{
		Naming: naming,
		Tagged: func(key types.NamespacedName) (*surgev1alpha1.SurgeEndUser, error) {
			return r.taggedOwner(ctx, key, user.ID)
		},
		Admitted: func(obj *surgev1alpha1.SurgeEndUser) (bool, error) { return r.admitted(ctx, obj) },
	})
}

// admitted says whether obj's project lets it reach Surge.
func (r *SurgeEndUserReconciler) admitted(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (bool, error) {
	err := r.Remote.Admits(ctx, obj)
	if _, refused := errors.AsType[*credentials.Refusal](err); refused {
		return false, nil
	}
	return err == nil, err
}

// taggedOwner reads the resource of the namespace and name a user's tags
// carry, nil when there is none. The cache may not cover its namespace; the
// API server then answers.
func (r *SurgeEndUserReconciler) taggedOwner(ctx context.Context, key types.NamespacedName, userID string) (*surgev1alpha1.SurgeEndUser, error) {
	owner := &surgev1alpha1.SurgeEndUser{}
	err := r.Get(ctx, key, owner)
	if err != nil && !apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, owner)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading SurgeEndUser %s, named by the tags of end user %s: %w", key, userID, err)
	}
	return owner, nil
}

// userIDsOf is the index function of indexUserID.
func userIDsOf(o client.Object) []string {
	obj, ok := o.(*surgev1alpha1.SurgeEndUser)
	if !ok {
		return nil
	}
	var ids []string
	if obj.Spec.UserID != "" {
		ids = append(ids, obj.Spec.UserID)
	}
	if obj.Status.UserID != "" && obj.Status.UserID != obj.Spec.UserID {
		ids = append(ids, obj.Status.UserID)
	}
	return ids
}
