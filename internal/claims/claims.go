// Package claims decides which SurgeEndUser holds a remote user when more
// than one claims it: one end user is managed by one SurgeEndUser at most.
// The controller asks it before it touches a user, and kubectl surge plan
// asks it to say what applying manifests would do.
package claims

import (
	"cmp"
	"time"

	"k8s.io/apimachinery/pkg/types"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// Hold is how strongly a resource holds a user.
type Hold int

const (
	// AsksOnly: the resource names the user in spec.userID.
	AsksOnly Hold = iota
	// TaggedIdentity: the user's tags name the resource's namespace and
	// name, which a resource re-created or restored under that name (with
	// a new uid) inherits.
	TaggedIdentity
	// Manages: the resource recorded the user's id in status, or the user
	// carries its uid.
	Manages
)

// Claimant is a SurgeEndUser that claims a remote user.
type Claimant struct {
	Name    types.NamespacedName
	UID     types.UID
	Created time.Time
	Hold    Hold
}

// HoldOf is how obj holds user.
func HoldOf(obj *surgev1alpha1.SurgeEndUser, user remote.User) Hold {
	switch identity, tagged := remote.IdentityOf(user); {
	case obj.Status.UserID == user.ID || (user.Metadata[surgev1alpha1.MetadataUID] != "" && user.Metadata[surgev1alpha1.MetadataUID] == string(obj.UID)):
		return Manages
	case tagged && identity == keyOf(obj):
		return TaggedIdentity
	}
	return AsksOnly
}

// Of is obj as a claimant holding a user by hold.
func Of(obj *surgev1alpha1.SurgeEndUser, hold Hold) Claimant {
	return Claimant{Name: keyOf(obj), UID: obj.UID, Created: obj.CreationTimestamp.Time, Hold: hold}
}

// ahead says whether a comes before b for the same remote user: the one
// that holds it more strongly, then the older one, then an arbitrary but
// stable order. Age decides only between equals: a claim from another
// namespace never takes a user from the resource its tags name.
func ahead(a, b Claimant) bool {
	if a.Hold != b.Hold {
		return a.Hold > b.Hold
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return cmp.Less(a.UID, b.UID)
}

// Holder returns the first of others that comes before me, if any: the
// live resource that keeps the user from me.
func Holder(me Claimant, others []Claimant) (Claimant, bool) {
	var holder Claimant
	found := false
	for _, other := range others {
		if other.UID == me.UID || !ahead(other, me) {
			continue
		}
		if !found || ahead(other, holder) {
			holder, found = other, true
		}
	}
	return holder, found
}

// Released says whether obj has let go of its user: it is being deleted
// with deletionPolicy Orphan.
func Released(obj *surgev1alpha1.SurgeEndUser) bool {
	return !obj.DeletionTimestamp.IsZero() && obj.Spec.DeletionPolicy == surgev1alpha1.DeletionPolicyOrphan
}

// Resources are where the claimants of a user are found.
type Resources struct {
	// Naming are the SurgeEndUsers that name the user in spec.userID or
	// status.userID.
	Naming []*surgev1alpha1.SurgeEndUser
	// Tagged reads the SurgeEndUser of a namespace and name, nil when
	// there is none: the one the user's tags name.
	Tagged func(types.NamespacedName) (*surgev1alpha1.SurgeEndUser, error)
	// Admitted says whether a resource's project lets it reach Surge.
	Admitted func(*surgev1alpha1.SurgeEndUser) (bool, error)
}

// Claimants are the live SurgeEndUsers that claim user: those naming it,
// and the one of the namespace and name its identity tags carry. A resource
// that has released its user claims nothing, and one that only asks for the
// user claims it only while its project admits it: a resource refused
// before any call to Surge (a missing project, a foreign account) blocks no
// one.
func Claimants(user remote.User, in Resources) ([]Claimant, error) {
	var claimants []Claimant
	tagged, hasTags := remote.IdentityOf(user)
	taggedFound := false
	for _, item := range in.Naming {
		if Released(item) {
			continue
		}
		hold := HoldOf(item, user)
		if hold == AsksOnly {
			admitted, err := in.Admitted(item)
			if err != nil {
				return nil, err
			}
			if !admitted {
				continue
			}
		}
		taggedFound = taggedFound || keyOf(item) == tagged
		claimants = append(claimants, Of(item, hold))
	}
	if !hasTags || taggedFound {
		return claimants, nil
	}
	owner, err := in.Tagged(tagged)
	if err != nil || owner == nil || Released(owner) {
		return claimants, err
	}
	return append(claimants, Of(owner, HoldOf(owner, user))), nil
}

func keyOf(obj *surgev1alpha1.SurgeEndUser) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
}
