package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// reconcileUser makes the remote end user exist and match the spec, and
// records its id in status. Conditions are left to finish.
func (r *SurgeEndUserReconciler) reconcileUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) error {
	desired := remote.FieldsOf(obj)
	current, found, err := r.observeUser(ctx, api, rep, obj)
	if err != nil {
		return err
	}
	if !found {
		if !obj.Spec.Allows(surgev1alpha1.ManagementCreate) {
			return r.notObserved(ctx, api, obj)
		}
		return r.createUser(ctx, api, rep, obj, desired)
	}
	// The finalizer guards the user from the moment status names it.
	if err := r.restoreFinalizer(ctx, obj); err != nil {
		return err
	}
	if !obj.Spec.Allows(surgev1alpha1.ManagementUpdate) {
		return driftOf(current, desired)
	}
	if userMatches(current, desired) {
		return nil
	}
	// Sent before the update: an attempt that gives up may still be
	// committed late, over this update or a later one.
	r.checks.recheckSoon(obj, r.Clock.Now().Add(r.SettleTime+time.Second))
	if err := api.Update(ctx, current.ID, desired); err != nil {
		return classifyRemoteError("update the end user", err, &obj.Spec)
	}
	if obj.Status.ObservedGeneration == obj.Generation {
		metrics.DriftCorrections.Inc()
		rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventDriftCorrected, "Update",
			"End user %s was changed outside the operator; restored it to the spec", current.ID)
	} else {
		rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventUpdated, "Update",
			"Updated end user %s to the spec", current.ID)
	}
	return nil
}

// observeUser finds the remote user of obj: the one in status, one that an
// unresolved create made, the one named in spec.userID, or one made for an
// earlier resource of the same namespace and name. found is false when a
// new user must be created. A user that another SurgeEndUser manages is
// never obj's: obj lets go of it and stalls.
func (r *SurgeEndUserReconciler) observeUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (remote.User, bool, error) {
	switch {
	case obj.Spec.UserID != "" && obj.Status.UserID != "" && obj.Spec.UserID != obj.Status.UserID:
		return remote.User{}, false, stalled(surgev1alpha1.ReasonUserIDConflict,
			"spec.userID names end user %s, but this SurgeEndUser already manages end user %s: to manage %s, delete this SurgeEndUser (with deletionPolicy Orphan to keep %s) and create one with spec.userID",
			obj.Spec.UserID, obj.Status.UserID, obj.Spec.UserID, obj.Status.UserID)
	case obj.Status.UserID != "":
		user, err := api.Get(ctx, obj.Status.UserID)
		if err == nil {
			if claimErr := r.checkClaim(ctx, obj, user); claimErr != nil {
				obj.Status.UserID = ""
				return remote.User{}, false, claimErr
			}
			return user, true, r.removeCopies(ctx, api, rep, obj, user)
		}
		if !remote.IsNotFound(err) {
			return remote.User{}, false, classifyRemoteError("read the end user", err, &obj.Spec)
		}
		if needsSearch(obj) {
			// The user was re-created once already, and the process
			// stopped before status recorded the new id.
			return r.recoverCreatedUser(ctx, api, rep, obj)
		}
		if !obj.Spec.Allows(surgev1alpha1.ManagementCreate) {
			gone := obj.Status.UserID
			obj.Status.UserID = ""
			return remote.User{}, false, stalled(surgev1alpha1.ReasonNotObserved,
				"End user %s was deleted in Surge outside the operator, and managementPolicies %q do not allow Create",
				gone, obj.Spec.ManagementPolicies)
		}
		if obj.Spec.UserID != "" {
			return remote.User{}, false, stalled(surgev1alpha1.ReasonAdoptedUserNotFound,
				"End user %s, adopted through spec.userID, was deleted in Surge outside the operator; delete this SurgeEndUser and create it again without spec.userID to make a new user",
				obj.Spec.UserID)
		}
		rep.Eventf(corev1.EventTypeWarning, surgev1alpha1.EventRecreated, "Create",
			"End user %s was deleted in Surge outside the operator; creating it again", obj.Status.UserID)
		obj.Status.UserID = ""
		return remote.User{}, false, nil

	case needsSearch(obj):
		// A user made by an unresolved create comes first: spec.userID set
		// meanwhile then stalls as a conflict instead of orphaning it.
		user, found, err := r.recoverCreatedUser(ctx, api, rep, obj)
		if err != nil || found || obj.Spec.UserID == "" {
			return user, found, err
		}
		return r.adoptNamedUser(ctx, api, rep, obj)
	case obj.Spec.UserID != "":
		return r.adoptNamedUser(ctx, api, rep, obj)
	}
	return r.findUserOfSameName(ctx, api, rep, obj)
}

// notObserved is the outcome of a resource whose user was not found, and
// whose managementPolicies do not allow Create. Until a listing has seen the
// whole account, the user may still turn up: the resource waits for it.
func (r *SurgeEndUserReconciler) notObserved(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser) error {
	answer, err := api.Lookup(ctx, time.Time{}, remote.IdentityWait)
	if err != nil {
		return classifyRemoteError("look for the end user to observe", err, &obj.Spec)
	}
	if !answer.Complete || len(answer.UserIDs) > 0 {
		return &waitingError{
			reason: surgev1alpha1.ReasonProgressing,
			message: fmt.Sprintf("Looking for the end user of this SurgeEndUser in account %s: waiting for a listing of the account",
				obj.Spec.AccountID),
			wait: intent.Recheck,
		}
	}
	return stalled(surgev1alpha1.ReasonNotObserved,
		"No end user in account %s carries this SurgeEndUser's namespace and name, and managementPolicies %q do not allow Create: set spec.userID to the end user to observe",
		obj.Spec.AccountID, obj.Spec.ManagementPolicies)
}

// removeCopies deletes the users that carry the uid of obj, or of the user
// status names, other than that user: creates that Surge committed later
// than the settle time, past every bound the protocol can wait for. It uses
// what the identity index knows and asks it to list the account again once
// a resync interval has passed, so that such a copy is found in the end.
// Users of another uid, such as one a person left on purpose with
// deletionPolicy Orphan, are no copies.
func (r *SurgeEndUserReconciler) removeCopies(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, named remote.User) error {
	if !obj.Spec.Allows(surgev1alpha1.ManagementDelete) {
		return nil
	}
	answer, err := api.Lookup(ctx, r.Clock.Now().Add(-r.ResyncInterval), 0)
	if err != nil {
		// The listing is a convenience here: a refusal shows elsewhere.
		return nil
	}
	others := slices.DeleteFunc(answer.UserIDs, func(userID string) bool { return userID == named.ID })
	users, err := r.usersOfIdentity(ctx, api, obj, others)
	if err != nil {
		return err
	}
	for _, user := range users {
		if !intent.IsCopy(user.Metadata[surgev1alpha1.MetadataUID], string(obj.UID), named.Metadata[surgev1alpha1.MetadataUID]) {
			continue
		}
		if err := api.Delete(ctx, user.ID); err != nil {
			return classifyRemoteError("delete a copy of the end user", err, &obj.Spec)
		}
		metrics.DuplicatesRemoved.Inc()
		rep.Eventf(corev1.EventTypeWarning, surgev1alpha1.EventDuplicateRemoved, "Delete",
			"Deleted end user %s, a copy of end user %s that Surge committed later than the settle time", user.ID, named.ID)
	}
	return nil
}

// adoptNamedUser takes the user spec.userID names, if obj may.
func (r *SurgeEndUserReconciler) adoptNamedUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (remote.User, bool, error) {
	readAt := r.Clock.Now()
	user, err := api.Get(ctx, obj.Spec.UserID)
	if remote.IsNotFound(err) {
		return remote.User{}, false, stalled(surgev1alpha1.ReasonAdoptedUserNotFound,
			"Surge has no end user %s: check spec.userID", obj.Spec.UserID)
	}
	if err != nil {
		return remote.User{}, false, classifyRemoteError("read the end user to adopt", err, &obj.Spec)
	}
	if err := r.checkInAccount(ctx, api, obj, user.ID, readAt); err != nil {
		return remote.User{}, false, err
	}
	if err := r.checkClaim(ctx, obj, user); err != nil {
		return remote.User{}, false, err
	}
	obj.Status.UserID = user.ID
	rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventAdopted, "Adopt",
		"Adopted existing end user %s", user.ID)
	return user, true, nil
}

// recoverCreatedUser settles obj's recorded intent to create: it takes the
// user that a create whose answer was lost made, or that obj had before it
// was restored, or finds that there is none, or says how long until that
// can be known.
func (r *SurgeEndUserReconciler) recoverCreatedUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (remote.User, bool, error) {
	resolution, found, err := r.resolveIntent(ctx, api, obj)
	if err != nil {
		return remote.User{}, false, err
	}
	switch resolution.Kind {
	case intent.Wait:
		return remote.User{}, false, createUnresolved(obj, resolution.Until.Sub(r.Clock.Now()))
	case intent.Found:
		if found.Metadata[surgev1alpha1.MetadataUID] == string(obj.UID) {
			rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventRecovered, "Adopt",
				"Found end user %s, created by an earlier attempt whose answer was lost", found.ID)
		} else {
			r.recordSameNameAdoption(rep, found.ID)
		}
		r.settleIntent(obj, found.ID)
		return found, true, nil
	}
	r.settleIntent(obj, "")
	return remote.User{}, false, nil
}

// resolveIntent asks the create intent's state machine whether a user of
// obj exists beyond the one status names, and looks obj's identity up in
// the account when it must. found is the user of a Found resolution.
func (r *SurgeEndUserReconciler) resolveIntent(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser) (intent.Resolution, remote.User, error) {
	now := r.Clock.Now()
	known := intent.Known{Now: now, Recorded: needsSearch(obj)}
	if known.Recorded {
		known.Horizon = r.intents.Horizon(obj.UID, now, time.Duration(obj.Status.CreateSettleSeconds)*time.Second)
	}
	resolution := intent.Resolve(known)
	if resolution.Kind != intent.Search {
		return resolution, remote.User{}, nil
	}
	answer, err := api.Lookup(ctx, resolution.Since, remote.IdentityWait)
	if err != nil {
		return intent.Resolution{}, remote.User{}, classifyRemoteError("look for an end user created by an earlier attempt", err, &obj.Spec)
	}
	users, err := r.usersOfIdentity(ctx, api, obj, answer.UserIDs)
	if err != nil {
		return intent.Resolution{}, remote.User{}, err
	}
	known.Listing = intent.Listing{Looked: true}
	if answer.Complete {
		known.Listing.ConclusiveSince = resolution.Since
	}
	byID := map[string]remote.User{}
	for _, user := range users {
		byID[user.ID] = user
		if user.Metadata[surgev1alpha1.MetadataUID] == string(obj.UID) && known.Listing.Own == "" {
			known.Listing.Own = user.ID
		}
	}
	if known.Listing.Own == "" && answer.Complete {
		sameName, ok, err := r.firstUnclaimed(ctx, obj, users)
		if err != nil {
			return intent.Resolution{}, remote.User{}, err
		}
		if ok {
			known.Listing.SameName = sameName.ID
		}
	}
	known.Now = r.Clock.Now()
	resolution = intent.Resolve(known)
	return resolution, byID[resolution.UserID], nil
}

// findUserOfSameName looks for a user made for an earlier SurgeEndUser of
// the same namespace and name, left in Surge by deletionPolicy Orphan or by a
// cluster that was rebuilt, and adopts it. It waits for the account's
// listing at most remote.IdentityWait: a new resource in a large account does not
// wait for the whole account.
func (r *SurgeEndUserReconciler) findUserOfSameName(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (remote.User, bool, error) {
	answer, err := api.Lookup(ctx, time.Time{}, remote.IdentityWait)
	if err != nil || len(answer.UserIDs) == 0 {
		// The listing is a convenience here: a refusal shows in the create.
		return remote.User{}, false, nil
	}
	candidates, err := r.usersOfIdentity(ctx, api, obj, answer.UserIDs)
	if err != nil {
		return remote.User{}, false, err
	}
	user, found, err := r.adoptUnclaimed(ctx, rep, obj, candidates)
	if err != nil || !found {
		return remote.User{}, false, err
	}
	obj.Status.UserID = user.ID
	return user, true, nil
}

// usersOfIdentity reads the users the index names for obj's identity, as
// Surge holds them now, dropping those deleted since.
func (r *SurgeEndUserReconciler) usersOfIdentity(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser, userIDs []string) ([]remote.User, error) {
	var users []remote.User
	for _, userID := range userIDs {
		user, err := api.Get(ctx, userID)
		if remote.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, classifyRemoteError("read the end user of an earlier SurgeEndUser of the same name", err, &obj.Spec)
		}
		if identity, ok := remote.IdentityOf(user); ok && identity == keyOf(obj) {
			users = append(users, user)
		}
	}
	return users, nil
}

// adoptUnclaimed returns the first of users, made for an earlier resource
// of obj's namespace and name, that no other resource keeps from obj, and
// records that obj adopts it.
func (r *SurgeEndUserReconciler) adoptUnclaimed(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, users []remote.User) (remote.User, bool, error) {
	user, found, err := r.firstUnclaimed(ctx, obj, users)
	if err != nil || !found {
		return remote.User{}, false, err
	}
	r.recordSameNameAdoption(rep, user.ID)
	return user, true, nil
}

func (r *SurgeEndUserReconciler) recordSameNameAdoption(rep *endUserReport, userID string) {
	rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventAdopted, "Adopt",
		"Adopted end user %s, made for an earlier SurgeEndUser of the same name", userID)
}

// firstUnclaimed returns the first of users, made for an earlier resource
// of obj's namespace and name, that no other resource keeps from obj.
func (r *SurgeEndUserReconciler) firstUnclaimed(ctx context.Context, obj *surgev1alpha1.SurgeEndUser, users []remote.User) (remote.User, bool, error) {
	for _, user := range users {
		err := r.checkClaim(ctx, obj, user)
		if isStall(err, surgev1alpha1.ReasonUserClaimed) {
			// Another resource has taken the user over since.
			continue
		}
		if err != nil {
			return remote.User{}, false, err
		}
		return user, true, nil
	}
	return remote.User{}, false, nil
}

// checkInAccount returns a UserNotInAccount stall unless Surge lists userID
// in spec.accountID: spec.userID adopts only a user of the resource's own
// account, which its project may allow. Surge has no other way to tell, so
// the account is walked: the identity index's walk, shared by every
// resource that waits, not one per resource. The user existed when it was
// read at readAt, so a conclusive listing that started later lists it if it
// is in the account.
//
// Surge's listing shows only users of the account, so a pass that listed
// the user settles it at once.
func (r *SurgeEndUserReconciler) checkInAccount(ctx context.Context, api EndUserRemote, obj *surgev1alpha1.SurgeEndUser, userID string, readAt time.Time) error {
	// A pass that listed the user proves it is in the account, whenever it
	// ran; only its absence needs a conclusive listing.
	if api.Listed(userID) {
		return nil
	}
	answer, err := api.Lookup(ctx, readAt, remote.IdentityWait)
	if err != nil {
		return classifyRemoteError("check that the end user to adopt is in the account", err, &obj.Spec)
	}
	switch {
	case api.Listed(userID):
		return nil
	case !answer.Complete:
		return &waitingError{
			reason: surgev1alpha1.ReasonProgressing,
			message: fmt.Sprintf("Checking that end user %s is in account %s: waiting for a listing of the account",
				userID, obj.Spec.AccountID),
			wait: intent.Recheck,
		}
	}
	return stalled(surgev1alpha1.ReasonUserNotInAccount,
		"End user %s is not in account %s: spec.userID can only adopt an end user of spec.accountID", userID, obj.Spec.AccountID)
}

func (r *SurgeEndUserReconciler) createUser(ctx context.Context, api EndUserRemote, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser, desired remote.Fields) error {
	leaveBy, err := r.recordCreateSent(ctx, rep, obj)
	if err != nil {
		return err
	}
	user, err := api.Create(ctx, desired, leaveBy)
	if err != nil {
		fate := remote.FateOf(err)
		horizon := r.intents.Sent(obj.UID, leaveBy, r.Clock.Now(), fate)
		if fate == intent.MaybeInFlight {
			// The user may exist: the account is searched at once, and a
			// user found is taken; only its absence waits for the settle
			// time.
			return &waitingError{
				reason: surgev1alpha1.ReasonCreateUnresolved,
				message: fmt.Sprintf("The answer to a create in account %s did not say whether it happened (%v): searching the account for the user before creating one again",
					obj.Spec.AccountID, err),
				wait: createUnresolvedSearchDelay,
			}
		}
		if horizon.Nothing {
			// Surge did not carry it out, and no earlier create is
			// unresolved: the next is sent at once.
			obj.Status.CreateSentAt, obj.Status.CreateSettleSeconds = nil, 0
		}
		// Otherwise Surge answered: the next attempt, after the backoff,
		// finds what it committed by a listing that starts after the
		// answer.
		return classifyRemoteError("create the end user", err, &obj.Spec)
	}
	obj.Status.UserID = user.ID
	obj.Status.CreateSentAt, obj.Status.CreateSettleSeconds = nil, 0
	r.intents.Forget(obj.UID)
	rep.Eventf(corev1.EventTypeNormal, surgev1alpha1.EventCreated, "Create",
		"Created end user %s in account %s", user.ID, obj.Spec.AccountID)
	return nil
}

// createUnresolvedSearchDelay is how soon a create whose fate is unknown is
// looked for: at once, but after the reconcile's status is written.
const createUnresolvedSearchDelay = time.Second

// recordCreateSent stores, before a create leaves, what a crash or a lost
// answer from here on needs, and returns the time by which the create must
// leave. First a new create marker and the finalizer, under an optimistic
// lock: the marker changes before every create, so that the write always
// happens and fails if the read it follows was stale. Then the latest time
// the create may leave, in status, written through the reconcile's report,
// which the reconcile's last write then starts from.
func (r *SurgeEndUserReconciler) recordCreateSent(ctx context.Context, rep *endUserReport, obj *surgev1alpha1.SurgeEndUser) (time.Time, error) {
	if err := r.patchMetadata(ctx, obj, func(o *surgev1alpha1.SurgeEndUser) {
		controllerutil.AddFinalizer(o, surgev1alpha1.Finalizer)
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[surgev1alpha1.AnnotationCreatePending] = r.Clock.Now().UTC().Format(time.RFC3339Nano)
	}); err != nil {
		return time.Time{}, err
	}
	// Only now, after a write under the lock, is it known that no earlier
	// intent was unsettled.
	leaveBy := r.intents.Record(obj.UID, r.Clock.Now())
	// Rounded up, because status keeps whole seconds. Only people read it:
	// the waits are measured on each process's own clock (intent.Ledger).
	sentAt := metav1.NewTime(leaveBy.Truncate(time.Second).Add(time.Second))
	obj.Status.CreateSentAt = &sentAt
	obj.Status.CreateSettleSeconds = int32(r.intents.Settle().Round(time.Second) / time.Second)
	obj.Status.CreateMarker = obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	if isReady(obj.Status) {
		// A re-create: the user status named is gone, and this write must
		// not show Ready beside no user.
		startingOutcome().apply(&obj.Status, obj.Generation)
	}
	if err := rep.Write(ctx); err != nil {
		return time.Time{}, err
	}
	return leaveBy, nil
}

// needsSearch says whether a user of obj may exist that status does not
// name: an intent to create is recorded and not settled.
func needsSearch(obj *surgev1alpha1.SurgeEndUser) bool {
	return intent.Record{
		SentAt:       obj.Status.CreateSentAt != nil,
		Marker:       obj.Annotations[surgev1alpha1.AnnotationCreatePending],
		CreateMarker: obj.Status.CreateMarker,
		Finalizer:    controllerutil.ContainsFinalizer(obj, surgev1alpha1.Finalizer),
		UserID:       obj.Status.UserID,
	}.Unsettled()
}

// settleIntent records that no create is unresolved any more, and the user
// it found, if any.
func (r *SurgeEndUserReconciler) settleIntent(obj *surgev1alpha1.SurgeEndUser, userID string) {
	obj.Status.CreateSentAt, obj.Status.CreateSettleSeconds = nil, 0
	obj.Status.CreateMarker = obj.Annotations[surgev1alpha1.AnnotationCreatePending]
	obj.Status.UserID = userID
	r.intents.Forget(obj.UID)
}

// createUnresolved is the wait of a resource whose last create may still
// be committed, or whose account is still being listed.
func createUnresolved(obj *surgev1alpha1.SurgeEndUser, wait time.Duration) error {
	return &waitingError{
		reason: surgev1alpha1.ReasonCreateUnresolved,
		message: fmt.Sprintf("An end user of this SurgeEndUser may exist in account %s that status does not name (a create whose answer was lost, or a restore): no user was found yet, and none is created until a complete listing of the account shows that Surge can no longer commit the earlier create",
			obj.Spec.AccountID),
		wait: max(wait, time.Second),
	}
}

// driftOf is how current differs from desired, for a resource that only
// reports it: nil when they match.
func driftOf(current remote.User, desired remote.Fields) error {
	fields := remote.DifferingFields(current, desired)
	if len(fields) == 0 {
		return nil
	}
	return &driftError{userID: current.ID, fields: fields}
}

// userMatches says whether the remote user already has the desired state,
// the operator's tags included.
func userMatches(current remote.User, desired remote.Fields) bool {
	return current.FirstName == desired.FirstName &&
		current.LastName == desired.LastName &&
		current.PhotoURL == desired.PhotoURL &&
		maps.Equal(current.Metadata, desired.Metadata)
}
