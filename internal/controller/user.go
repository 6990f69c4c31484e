package controller

import (
	"context"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// Reserved metadata keys written on every remote user the operator manages.
// They tie the user to its resource, so that a create whose answer was lost
// can be found again instead of repeated.
const (
	MetadataUID       = surgev1alpha1.ReservedMetadataPrefix + "uid"
	MetadataNamespace = surgev1alpha1.ReservedMetadataPrefix + "namespace"
	MetadataName      = surgev1alpha1.ReservedMetadataPrefix + "name"
)

// reconcileUser makes the remote end user exist and match the spec, and
// records its id in status. Conditions are left to finish.
func (r *SurgeEndUserReconciler) reconcileUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) error {
	// Read before the marker is written below: only a marker left by an
	// earlier reconcile means a create may have happened.
	createMayHaveHappened := r.createMayHaveHappened(obj)
	freshMarker := obj.Status.UserID == "" && obj.Spec.UserID == "" && !hasCreatePending(obj)
	if err := r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		controllerutil.AddFinalizer(o, Finalizer)
		if freshMarker {
			markCreatePending(o, r.Clock.Now())
		}
	}); err != nil {
		return err
	}
	if freshMarker {
		// No create has been sent under this marker yet.
		r.unsentCreates.remember(obj)
	}

	desired := desiredFields(obj)
	remote, found, err := r.observeUser(ctx, api, obj, createMayHaveHappened)
	if err != nil {
		return err
	}
	if !found {
		return r.createUser(ctx, api, obj, desired)
	}
	if userMatches(remote, desired) {
		return nil
	}
	if _, err := api.UpdateUser(ctx, remote.ID, desired); err != nil {
		return classifySurgeError("update the end user", err, &obj.Spec)
	}
	if obj.Status.ObservedGeneration == obj.Generation {
		metrics.DriftCorrections.Inc()
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventDriftCorrected, "Update",
			"End user %s was changed outside the operator; restored it to the spec", remote.ID)
	} else {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventUpdated, "Update",
			"Updated end user %s to the spec", remote.ID)
	}
	return nil
}

// observeUser finds the remote user of obj: the one in status, the one named
// in spec.userID, or one whose create answer was lost. found is false when a
// new user must be created. A user that another SurgeEndUser manages is
// never obj's: obj lets go of it and stalls.
func (r *SurgeEndUserReconciler) observeUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser, createMayHaveHappened bool) (surge.User, bool, error) {
	switch {
	case obj.Spec.UserID != "" && obj.Status.UserID != "" && obj.Spec.UserID != obj.Status.UserID:
		return surge.User{}, false, stalled(ReasonUserIDConflict,
			"spec.userID names end user %s, but this SurgeEndUser already manages end user %s: to manage %s, delete this SurgeEndUser (with deletionPolicy Orphan to keep %s) and create one with spec.userID",
			obj.Spec.UserID, obj.Status.UserID, obj.Spec.UserID, obj.Status.UserID)
	case obj.Status.UserID != "":
		user, err := api.GetUser(ctx, obj.Status.UserID)
		if err == nil {
			if claimErr := r.checkClaim(ctx, obj, user); claimErr != nil {
				obj.Status.UserID = ""
				return surge.User{}, false, claimErr
			}
			return user, true, nil
		}
		if !surge.IsNotFound(err) {
			return surge.User{}, false, classifySurgeError("read the end user", err, &obj.Spec)
		}
		if createMayHaveHappened {
			// The user was re-created once already, and the process
			// stopped before status recorded the new id.
			return r.recoverCreatedUser(ctx, api, obj)
		}
		if obj.Spec.UserID != "" {
			return surge.User{}, false, stalled(ReasonAdoptedUserNotFound,
				"End user %s, adopted through spec.userID, was deleted in Surge outside the operator; delete this SurgeEndUser and create it again without spec.userID to make a new user",
				obj.Spec.UserID)
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventRecreated, "Create",
			"End user %s was deleted in Surge outside the operator; creating it again", obj.Status.UserID)
		obj.Status.UserID = ""
		return surge.User{}, false, nil

	case obj.Spec.UserID != "":
		user, err := api.GetUser(ctx, obj.Spec.UserID)
		if surge.IsNotFound(err) {
			return surge.User{}, false, stalled(ReasonAdoptedUserNotFound,
				"Surge has no end user %s: check spec.userID", obj.Spec.UserID)
		}
		if err != nil {
			return surge.User{}, false, classifySurgeError("read the end user to adopt", err, &obj.Spec)
		}
		if err := r.checkInAccount(ctx, api, obj, user.ID); err != nil {
			return surge.User{}, false, err
		}
		if err := r.checkClaim(ctx, obj, user); err != nil {
			return surge.User{}, false, err
		}
		obj.Status.UserID = user.ID
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventAdopted, "Adopt",
			"Adopted existing end user %s", user.ID)
		return user, true, nil

	case createMayHaveHappened:
		return r.recoverCreatedUser(ctx, api, obj)
	}
	return r.findUserOfSameName(ctx, api, obj)
}

// recoverCreatedUser takes the user an earlier create of obj made, whose
// answer was lost, if there is one.
func (r *SurgeEndUserReconciler) recoverCreatedUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	user, found, err := r.findCreatedUser(ctx, api, obj)
	if err != nil || !found {
		obj.Status.UserID = ""
		return surge.User{}, false, err
	}
	obj.Status.UserID = user.ID
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventRecovered, "Adopt",
		"Found end user %s, created by an earlier attempt whose answer was lost", user.ID)
	return user, true, nil
}

// checkInAccount returns a UserNotInAccount stall unless Surge lists userID
// in spec.accountID: spec.userID adopts only a user of the resource's own
// account, which its project may allow.
func (r *SurgeEndUserReconciler) checkInAccount(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser, userID string) error {
	found := false
	err := api.EachUser(ctx, obj.Spec.AccountID, func(user surge.User) bool {
		found = user.ID == userID
		return !found
	})
	if err != nil {
		return classifySurgeError("check that the end user to adopt is in the account", err, &obj.Spec)
	}
	if !found {
		return stalled(ReasonUserNotInAccount,
			"End user %s is not in account %s: spec.userID can only adopt an end user of spec.accountID", userID, obj.Spec.AccountID)
	}
	return nil
}

// findUserOfSameName looks for a user made for an earlier SurgeEndUser of
// the same namespace and name, left in Surge by deletionPolicy Orphan or by a
// cluster that was rebuilt, and adopts it.
func (r *SurgeEndUserReconciler) findUserOfSameName(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	userID, found := r.identities.lookup(ctx, api, obj.Spec.AccountID, keyOf(obj))
	if !found {
		return surge.User{}, false, nil
	}
	user, err := api.GetUser(ctx, userID)
	if surge.IsNotFound(err) {
		r.identities.forget(api.Scope(), obj.Spec.AccountID, keyOf(obj), userID)
		return surge.User{}, false, nil
	}
	if err != nil {
		return surge.User{}, false, classifySurgeError("read the end user of an earlier SurgeEndUser of the same name", err, &obj.Spec)
	}
	if err := r.checkClaim(ctx, obj, user); err != nil {
		// Another resource has taken the user over since: this one gets a
		// user of its own.
		if isStall(err, ReasonUserClaimed) {
			return surge.User{}, false, nil
		}
		return surge.User{}, false, err
	}
	obj.Status.UserID = user.ID
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventAdopted, "Adopt",
		"Adopted end user %s, made for an earlier SurgeEndUser of the same name", user.ID)
	return user, true, nil
}

// findCreatedUser searches the account for a user this resource created.
func (r *SurgeEndUserReconciler) findCreatedUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	users, err := api.ListUsers(ctx, obj.Spec.AccountID)
	if err != nil {
		return surge.User{}, false, classifySurgeError("look for an end user created by an earlier attempt", err, &obj.Spec)
	}
	r.identities.refresh(api.Scope(), obj.Spec.AccountID, users)
	for _, user := range users {
		if user.Metadata[MetadataUID] == string(obj.UID) {
			return user, true, nil
		}
	}
	return surge.User{}, false, nil
}

func (r *SurgeEndUserReconciler) createUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser, desired surge.UserFields) error {
	// The marker must be stored before the request leaves: a crash or a lost
	// answer from here on is recovered by findCreatedUser.
	if err := r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		markCreatePending(o, r.Clock.Now())
	}); err != nil {
		return err
	}
	// From here on, this marker's create may happen.
	r.unsentCreates.forget(obj.UID)
	user, err := api.CreateUser(ctx, obj.Spec.AccountID, desired)
	if err != nil {
		if surge.IsRefused(err) || surge.WasNotSent(err) {
			r.unsentCreates.remember(obj)
		}
		return classifySurgeError("create the end user", err, &obj.Spec)
	}
	obj.Status.UserID = user.ID
	r.identities.remember(api.Scope(), obj.Spec.AccountID, keyOf(obj), user.ID)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventCreated, "Create",
		"Created end user %s in account %s", user.ID, obj.Spec.AccountID)
	return nil
}

// createMayHaveHappened says whether an earlier create of obj may have
// happened without its user id reaching status: its marker is set, and a
// create was sent under it that Surge did not refuse.
func (r *SurgeEndUserReconciler) createMayHaveHappened(obj *surgev1alpha1.SurgeEndUser) bool {
	return hasCreatePending(obj) && !r.unsentCreates.unsent(obj)
}

func markCreatePending(obj *surgev1alpha1.SurgeEndUser, now time.Time) {
	if hasCreatePending(obj) {
		return
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	// Nanoseconds, so that a re-create never reuses the settled value.
	obj.Annotations[AnnotationCreatePending] = now.UTC().Format(time.RFC3339Nano)
}

// desiredFields is the whole state the remote user must have: the spec plus
// the reserved keys that tie it to this resource.
func desiredFields(obj *surgev1alpha1.SurgeEndUser) surge.UserFields {
	metadata := make(map[string]string, len(obj.Spec.Metadata)+3)
	maps.Copy(metadata, obj.Spec.Metadata)
	metadata[MetadataUID] = string(obj.UID)
	metadata[MetadataNamespace] = obj.Namespace
	metadata[MetadataName] = obj.Name
	return surge.UserFields{
		FirstName: obj.Spec.FirstName,
		LastName:  obj.Spec.LastName,
		PhotoURL:  obj.Spec.PhotoURL,
		Metadata:  metadata,
	}
}

// userMatches says whether the remote user already has the desired state.
func userMatches(remote surge.User, desired surge.UserFields) bool {
	return remote.FirstName == desired.FirstName &&
		remote.LastName == desired.LastName &&
		remote.PhotoURL == desired.PhotoURL &&
		maps.Equal(remote.Metadata, desired.Metadata)
}

// unsentCreateMarkers remembers, per resource, a create marker under which
// no create can have happened: none was sent yet, or Surge refused the last
// one sent with its own 4xx error (a 429, a validation error; not a 408 or a
// 409, nor a gateway's page: see surge.IsRefused). The next attempt
// then need not search the account first. An entry is dropped the moment a
// create is sent under it. It lives in memory: after a restart the search is
// made, which costs time but never correctness.
type unsentCreateMarkers struct {
	mu      sync.Mutex
	markers map[types.UID]string
}

func newUnsentCreateMarkers() *unsentCreateMarkers {
	return &unsentCreateMarkers{markers: map[types.UID]string{}}
}

func (m *unsentCreateMarkers) remember(obj *surgev1alpha1.SurgeEndUser) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markers[obj.UID] = obj.Annotations[AnnotationCreatePending]
}

func (m *unsentCreateMarkers) unsent(obj *surgev1alpha1.SurgeEndUser) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	marker, ok := m.markers[obj.UID]
	return ok && marker == obj.Annotations[AnnotationCreatePending]
}

func (m *unsentCreateMarkers) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.markers, uid)
}
