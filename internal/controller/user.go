package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// reconcileUser makes the remote end user exist and match the spec, and
// records its id in status. Conditions are left to finish.
func (r *SurgeEndUserReconciler) reconcileUser(ctx context.Context, api SurgeAPI, original, obj *surgev1alpha1.SurgeEndUser) error {
	desired := desiredFields(obj)
	remote, found, err := r.observeUser(ctx, api, obj)
	if err != nil {
		return err
	}
	if !found {
		return r.createUser(ctx, api, original, obj, desired)
	}
	// The finalizer guards the user from the moment status names it.
	if err := r.restoreFinalizer(ctx, obj); err != nil {
		return err
	}
	if userMatches(remote, desired) {
		return nil
	}
	// Sent before the update: an attempt that gives up may still be
	// committed late, over this update or a later one.
	r.checks.recheckSoon(obj, r.Clock.Now().Add(r.SettleTime+time.Second))
	if _, err := api.UpdateUser(ctx, remote.ID, desired); err != nil {
		return classifySurgeError("update the end user", err, &obj.Spec)
	}
	if obj.Status.ObservedGeneration == obj.Generation {
		metrics.DriftCorrections.Inc()
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventDriftCorrected, "Update",
			"End user %s was changed outside the operator; restored it to the spec", remote.ID)
	} else {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventUpdated, "Update",
			"Updated end user %s to the spec", remote.ID)
	}
	return nil
}

// observeUser finds the remote user of obj: the one in status, one that an
// unresolved create made, the one named in spec.userID, or one made for an
// earlier resource of the same namespace and name. found is false when a
// new user must be created. A user that another SurgeEndUser manages is
// never obj's: obj lets go of it and stalls.
func (r *SurgeEndUserReconciler) observeUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	switch {
	case obj.Spec.UserID != "" && obj.Status.UserID != "" && obj.Spec.UserID != obj.Status.UserID:
		return surge.User{}, false, stalled(surgev1alpha1.ReasonUserIDConflict,
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
		if needsSearch(obj) {
			// The user was re-created once already, and the process
			// stopped before status recorded the new id.
			return r.recoverCreatedUser(ctx, api, obj)
		}
		if obj.Spec.UserID != "" {
			return surge.User{}, false, stalled(surgev1alpha1.ReasonAdoptedUserNotFound,
				"End user %s, adopted through spec.userID, was deleted in Surge outside the operator; delete this SurgeEndUser and create it again without spec.userID to make a new user",
				obj.Spec.UserID)
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, surgev1alpha1.EventRecreated, "Create",
			"End user %s was deleted in Surge outside the operator; creating it again", obj.Status.UserID)
		obj.Status.UserID = ""
		return surge.User{}, false, nil

	case needsSearch(obj):
		// A user made by an unresolved create comes first: spec.userID set
		// meanwhile then stalls as a conflict instead of orphaning it.
		user, found, err := r.recoverCreatedUser(ctx, api, obj)
		if err != nil || found || obj.Spec.UserID == "" {
			return user, found, err
		}
		return r.adoptNamedUser(ctx, api, obj)
	case obj.Spec.UserID != "":
		return r.adoptNamedUser(ctx, api, obj)
	}
	return r.findUserOfSameName(ctx, api, obj)
}

// adoptNamedUser takes the user spec.userID names, if obj may.
func (r *SurgeEndUserReconciler) adoptNamedUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	user, err := api.GetUser(ctx, obj.Spec.UserID)
	if surge.IsNotFound(err) {
		return surge.User{}, false, stalled(surgev1alpha1.ReasonAdoptedUserNotFound,
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
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventAdopted, "Adopt",
		"Adopted existing end user %s", user.ID)
	return user, true, nil
}

// recoverCreatedUser looks for the user of obj that a create whose answer
// was lost may have made, or that a resource of obj's namespace and name
// had before obj was restored, and takes it.
func (r *SurgeEndUserReconciler) recoverCreatedUser(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	found, err := r.searchIdentity(ctx, api, obj)
	if err != nil {
		return surge.User{}, false, err
	}
	if found.own != nil {
		resolveSearch(obj, found.own.ID)
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventRecovered, "Adopt",
			"Found end user %s, created by an earlier attempt whose answer was lost", found.own.ID)
		return *found.own, true, nil
	}
	user, adopted, err := r.adoptUnclaimed(ctx, obj, found.sameName)
	if err != nil {
		return surge.User{}, false, err
	}
	resolveSearch(obj, user.ID)
	return user, adopted, nil
}

// identityUsers are the users that carry a resource's namespace and name.
type identityUsers struct {
	// own is the one tagged with the resource's uid: its own create made it.
	own      *surge.User
	sameName []surge.User
}

// searchIdentity finds the users of obj's namespace and name. Without one
// of obj's own, it answers only once a listing that started after Surge can
// have committed obj's last create is complete, whatever the time it takes
// to list the account; until then it returns a CreateUnresolved wait.
func (r *SurgeEndUserReconciler) searchIdentity(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (identityUsers, error) {
	since := r.searchSince(obj)
	answer, err := r.identities.lookup(ctx, api, obj.Spec.AccountID, keyOf(obj), since, identityWait)
	if err != nil {
		return identityUsers{}, classifySurgeError("look for an end user created by an earlier attempt", err, &obj.Spec)
	}
	users, err := r.usersOfIdentity(ctx, api, obj, answer.userIDs)
	if err != nil {
		return identityUsers{}, err
	}
	var found identityUsers
	for i := range users {
		if users[i].Metadata[surgev1alpha1.MetadataUID] == string(obj.UID) {
			found.own = &users[i]
			return found, nil
		}
	}
	if !answer.complete {
		return identityUsers{}, createUnresolved(obj, since, r.Clock.Now())
	}
	found.sameName = users
	return found, nil
}

// findUserOfSameName looks for a user made for an earlier SurgeEndUser of
// the same namespace and name, left in Surge by deletionPolicy Orphan or by a
// cluster that was rebuilt, and adopts it. It waits for the account's
// listing at most identityWait: a new resource in a large account does not
// wait for the whole account.
func (r *SurgeEndUserReconciler) findUserOfSameName(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser) (surge.User, bool, error) {
	answer, err := r.identities.lookup(ctx, api, obj.Spec.AccountID, keyOf(obj), time.Time{}, identityWait)
	if err != nil || len(answer.userIDs) == 0 {
		// The listing is a convenience here: a refusal shows in the create.
		return surge.User{}, false, nil
	}
	candidates, err := r.usersOfIdentity(ctx, api, obj, answer.userIDs)
	if err != nil {
		return surge.User{}, false, err
	}
	user, found, err := r.adoptUnclaimed(ctx, obj, candidates)
	if err != nil || !found {
		return surge.User{}, false, err
	}
	obj.Status.UserID = user.ID
	return user, true, nil
}

// usersOfIdentity reads the users the index names for obj's identity, as
// Surge holds them now, dropping those deleted since.
func (r *SurgeEndUserReconciler) usersOfIdentity(ctx context.Context, api SurgeAPI, obj *surgev1alpha1.SurgeEndUser, userIDs []string) ([]surge.User, error) {
	var users []surge.User
	for _, userID := range userIDs {
		user, err := api.GetUser(ctx, userID)
		if surge.IsNotFound(err) {
			r.identities.forget(api.Scope(), obj.Spec.AccountID, keyOf(obj), userID)
			continue
		}
		if err != nil {
			return nil, classifySurgeError("read the end user of an earlier SurgeEndUser of the same name", err, &obj.Spec)
		}
		if identity, ok := identityOf(user); ok && identity == keyOf(obj) {
			users = append(users, user)
		}
	}
	return users, nil
}

// adoptUnclaimed returns the first of users, made for an earlier resource
// of obj's namespace and name, that no other resource keeps from obj, and
// records that obj adopts it.
func (r *SurgeEndUserReconciler) adoptUnclaimed(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, users []surge.User) (surge.User, bool, error) {
	for _, user := range users {
		err := r.checkClaim(ctx, obj, user)
		if isStall(err, surgev1alpha1.ReasonUserClaimed) {
			// Another resource has taken the user over since.
			continue
		}
		if err != nil {
			return surge.User{}, false, err
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventAdopted, "Adopt",
			"Adopted end user %s, made for an earlier SurgeEndUser of the same name", user.ID)
		return user, true, nil
	}
	return surge.User{}, false, nil
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
		return stalled(surgev1alpha1.ReasonUserNotInAccount,
			"End user %s is not in account %s: spec.userID can only adopt an end user of spec.accountID", userID, obj.Spec.AccountID)
	}
	return nil
}

func (r *SurgeEndUserReconciler) createUser(ctx context.Context, api SurgeAPI, original, obj *surgev1alpha1.SurgeEndUser, desired surge.UserFields) error {
	if err := r.recordCreateSent(ctx, original, obj); err != nil {
		return err
	}
	user, err := api.CreateUser(surge.SendBy(ctx, obj.Status.CreateSentAt.Time), obj.Spec.AccountID, desired)
	if err != nil {
		if surge.IsRefused(err) || surge.WasNotSent(err) {
			// Surge did not carry it out, and no earlier create is
			// unresolved: one is sent only once the last is settled.
			obj.Status.CreateSentAt = nil
		}
		return classifySurgeError("create the end user", err, &obj.Spec)
	}
	obj.Status.UserID = user.ID
	obj.Status.CreateSentAt = nil
	r.identities.remember(api.Scope(), obj.Spec.AccountID, keyOf(obj), user.ID)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, surgev1alpha1.EventCreated, "Create",
		"Created end user %s in account %s", user.ID, obj.Spec.AccountID)
	return nil
}

// recordCreateSent stores, before a create leaves, what a crash or a lost
// answer from here on needs: the finalizer and the create marker on the
// resource, which a restore keeps, and the send time in status, which
// kubectl replace keeps. Both are written only now, once the lookup of a
// user of the same name found none. original becomes the status written, so
// that the reconcile's last write clears the send time when the create is
// settled.
func (r *SurgeEndUserReconciler) recordCreateSent(ctx context.Context, original, obj *surgev1alpha1.SurgeEndUser) error {
	if err := r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		controllerutil.AddFinalizer(o, surgev1alpha1.Finalizer)
		if _, marked := o.Annotations[surgev1alpha1.AnnotationCreatePending]; !marked {
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[surgev1alpha1.AnnotationCreatePending] = r.Clock.Now().UTC().Format(time.RFC3339Nano)
		}
	}); err != nil {
		return err
	}
	// The create leaves by this time or not at all (surge.SendBy). Rounded
	// up, because status keeps whole seconds.
	sentAt := metav1.NewTime(r.Clock.Now().Add(createSendWindow).Truncate(time.Second).Add(time.Second))
	obj.Status.CreateSentAt = &sentAt
	obj.Status.CreateMarker = obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	if err := r.writeStatus(ctx, original, obj); err != nil {
		return err
	}
	original.Status = *obj.Status.DeepCopy()
	return nil
}

// createSendWindow is how long a create may take to leave once its send
// time is recorded: the status write, then the client's turn under the rate
// limit. A create whose turn comes later is held back and tried again.
const createSendWindow = 3 * time.Second

// needsSearch says whether a user of obj may exist that status does not
// name: a create is unresolved, or the create marker is one status has not
// accounted for (a restore without status, or an older operator's).
func needsSearch(obj *surgev1alpha1.SurgeEndUser) bool {
	if obj.Status.CreateSentAt != nil {
		return true
	}
	marker, marked := obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	return marked && marker != obj.Status.CreateMarker
}

// searchSince is when a listing must have started for "no user" to be
// conclusive: after Surge can have committed the last create sent.
func (r *SurgeEndUserReconciler) searchSince(obj *surgev1alpha1.SurgeEndUser) time.Time {
	if sentAt := obj.Status.CreateSentAt; sentAt != nil {
		return sentAt.Add(r.SettleTime)
	}
	// A marker status has not accounted for (a restore, a crash between the
	// two writes before a create, or an older operator) was written at most
	// markerToSend before its create left, if one did.
	marked, err := time.Parse(time.RFC3339Nano, obj.Annotations[surgev1alpha1.AnnotationCreatePending])
	if err != nil {
		return time.Time{}
	}
	return minTime(marked, r.Clock.Now()).Add(markerToSend + r.SettleTime)
}

// markerToSend bounds the time from writing a create marker to sending the
// create: this operator writes the send time in between, and older ones
// looked for a user of the same name, for at most identityWait.
const markerToSend = identityWait + 10*time.Second

// resolveSearch records that no create is unresolved any more, and the user
// it found, if any.
func resolveSearch(obj *surgev1alpha1.SurgeEndUser, userID string) {
	obj.Status.CreateSentAt = nil
	obj.Status.CreateMarker = obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	obj.Status.UserID = userID
}

// createUnresolved is the wait of a resource whose last create may still
// be committed, or whose account is still being listed.
func createUnresolved(obj *surgev1alpha1.SurgeEndUser, since, now time.Time) error {
	return &waitingError{
		reason: surgev1alpha1.ReasonCreateUnresolved,
		message: fmt.Sprintf("An end user of this SurgeEndUser may exist in account %s that status does not name (a create whose answer was lost, or a restore): waiting for a listing of the account that started after %s before creating one",
			obj.Spec.AccountID, since.UTC().Format(time.RFC3339)),
		wait: max(since.Sub(now), createUnresolvedRecheck),
	}
}

// createUnresolvedRecheck is how often a resource waiting for a listing of
// its account looks again.
const createUnresolvedRecheck = 5 * time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// desiredFields is the whole state the remote user must have: the spec plus
// the reserved keys that tie it to this resource.
func desiredFields(obj *surgev1alpha1.SurgeEndUser) surge.UserFields {
	metadata := make(map[string]string, len(obj.Spec.Metadata)+3)
	maps.Copy(metadata, obj.Spec.Metadata)
	metadata[surgev1alpha1.MetadataUID] = string(obj.UID)
	metadata[surgev1alpha1.MetadataNamespace] = obj.Namespace
	metadata[surgev1alpha1.MetadataName] = obj.Name
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
