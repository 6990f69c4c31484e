package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// indexUserID indexes SurgeEndUsers by the remote user they name, in
// spec.userID or status.userID, so that finding every resource that claims
// a user is a lookup in the cache.
const indexUserID = "surge.app/user-id"

// claimant is a SurgeEndUser that claims a remote user.
type claimant struct {
	name    types.NamespacedName
	uid     types.UID
	created time.Time
	hold    holdRank
}

// holdRank is how strongly a resource holds a user.
type holdRank int

const (
	// asksOnly: the resource names the user in spec.userID.
	asksOnly holdRank = iota
	// taggedIdentity: the user's tags name the resource's namespace and
	// name, which a resource re-created or restored under that name (with
	// a new uid) inherits.
	taggedIdentity
	// manages: the resource recorded the user's id in status, or the user
	// carries its uid.
	manages
)

// holdOf is how obj holds user.
func holdOf(obj *surgev1alpha1.SurgeEndUser, user remote.User) holdRank {
	switch identity, tagged := remote.IdentityOf(user); {
	case obj.Status.UserID == user.ID || (user.Metadata[surgev1alpha1.MetadataUID] != "" && user.Metadata[surgev1alpha1.MetadataUID] == string(obj.UID)):
		return manages
	case tagged && identity == keyOf(obj):
		return taggedIdentity
	}
	return asksOnly
}

// ahead says whether a comes before b for the same remote user: the one
// that holds it more strongly, then the older one, then an arbitrary but
// stable order. Age decides only between equals: a claim from another
// namespace never takes a user from the resource its tags name.
func ahead(a, b claimant) bool {
	if a.hold != b.hold {
		return a.hold > b.hold
	}
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	return cmp.Less(a.uid, b.uid)
}

// claimHolder returns the first of others that comes before me, if any:
// the live resource that keeps the user from me.
func claimHolder(me claimant, others []claimant) (claimant, bool) {
	var holder claimant
	found := false
	for _, other := range others {
		if other.uid == me.uid || !ahead(other, me) {
			continue
		}
		if !found || ahead(other, holder) {
			holder, found = other, true
		}
	}
	return holder, found
}

// userClaimed is the stall of a resource kept from a user that another
// resource manages.
func userClaimed(userID string, holder claimant) error {
	return stalled(surgev1alpha1.ReasonUserClaimed,
		"End user %s is managed by SurgeEndUser %s; one end user can be managed by one SurgeEndUser only, so this one makes no call that would touch it: remove spec.userID or delete this SurgeEndUser (its deletion leaves the user alone)",
		userID, holder.name)
}

// checkClaim returns a UserClaimed stall when another live SurgeEndUser
// comes before obj for user. The evidence is the cache's index of user ids
// and, when user was read from Surge, its identity tags.
func (r *SurgeEndUserReconciler) checkClaim(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, user remote.User) error {
	me := claimantOf(obj, holdOf(obj, user))
	others, err := r.claimantsOf(ctx, user)
	if err != nil {
		return err
	}
	if holder, claimed := claimHolder(me, others); claimed {
		return userClaimed(user.ID, holder)
	}
	return nil
}

// claimantsOf lists the live SurgeEndUsers that claim user: those naming it
// in spec or status, and the one of the namespace and name its identity
// tags carry. A resource being deleted with deletionPolicy Orphan has let
// go of its user, and one that only asks for the user claims it only while
// its project admits it: a resource refused before any call to Surge
// (a missing project, a foreign account) blocks no one.
func (r *SurgeEndUserReconciler) claimantsOf(ctx context.Context, user remote.User) ([]claimant, error) {
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := r.List(ctx, list, client.MatchingFields{indexUserID: user.ID}); err != nil {
		return nil, fmt.Errorf("listing the SurgeEndUsers of end user %s: %w", user.ID, err)
	}
	var claimants []claimant
	tagged, hasTags := remote.IdentityOf(user)
	taggedFound := false
	for i := range list.Items {
		item := &list.Items[i]
		if releasedItsUser(item) {
			continue
		}
		hold := holdOf(item, user)
		if hold == asksOnly {
			admitted, err := r.admitted(ctx, item)
			if err != nil {
				return nil, err
			}
			if !admitted {
				continue
			}
		}
		taggedFound = taggedFound || keyOf(item) == tagged
		claimants = append(claimants, claimantOf(item, hold))
	}
	if !hasTags || taggedFound {
		return claimants, nil
	}
	owner, err := r.taggedOwner(ctx, tagged, user.ID)
	if err != nil || owner == nil || releasedItsUser(owner) {
		return claimants, err
	}
	return append(claimants, claimantOf(owner, holdOf(owner, user))), nil
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

func claimantOf(obj *surgev1alpha1.SurgeEndUser, hold holdRank) claimant {
	return claimant{name: keyOf(obj), uid: obj.UID, created: obj.CreationTimestamp.Time, hold: hold}
}

func releasedItsUser(obj *surgev1alpha1.SurgeEndUser) bool {
	return !obj.DeletionTimestamp.IsZero() && obj.Spec.DeletionPolicy == surgev1alpha1.DeletionPolicyOrphan
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
