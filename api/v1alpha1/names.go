package v1alpha1

// The names below are read and written by the operator and by every tool
// that inspects its resources (kubectl surge, dashboards, GitOps health
// checks): they are part of the API, and live here so that no client needs
// the controller's code to know them.

// Condition types, following the kstatus conventions: Ready is the summary,
// Reconciling is True while work is in flight and Stalled is True when only a
// person can make progress. Healthy resources carry neither of the latter two.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionPaused is True while the surge.app/paused annotation holds
	// every call to Surge back.
	ConditionPaused = "Paused"
	// ConditionSynced says, on a resource whose managementPolicies do not
	// allow Update, whether its end user in Surge matches the spec: the
	// operator reports drift there instead of repairing it.
	ConditionSynced = "Synced"
)

// Condition reasons. They double as event reasons where an event tells of the
// same thing.
const (
	ReasonSynced              = "Synced"
	ReasonProgressing         = "Progressing"
	ReasonSurgeUnavailable    = "SurgeUnavailable"
	ReasonAPIKeyRejected      = "APIKeyRejected"
	ReasonAccountNotFound     = "AccountNotFound"
	ReasonRequestRejected     = "RequestRejected"
	ReasonAdoptedUserNotFound = "AdoptedUserNotFound"
	ReasonUserClaimed         = "UserClaimed"
	ReasonUserNotInAccount    = "UserNotInAccount"
	ReasonUserIDConflict      = "UserIDConflict"
	ReasonDeleteFailed        = "DeleteFailed"
	ReasonSecretNotOwned      = "SecretNotOwned"
	ReasonSecretRejected      = "SecretRejected"
	ReasonTokenRenewalFailing = "TokenRenewalFailing"
	ReasonPaused              = "Paused"
	// ReasonRateLimited: Surge's rate limit holds the operator back; the
	// resource waits its turn, and nothing is wrong with it.
	ReasonRateLimited = "RateLimited"
	// ReasonCreateUnresolved: a create whose answer was lost may still be
	// committed, or a restored resource's user is being looked for; nothing
	// is created until the account's listing tells.
	ReasonCreateUnresolved = "CreateUnresolved"
	// ReasonDeletionHeld: the mass-deletion brake holds the deletion of the
	// user in Surge; a person releases it with AnnotationReleaseDeletions.
	ReasonDeletionHeld = "DeletionHeld"
	// ReasonObserved: the end user was found and read; managementPolicies
	// let the operator only report how it differs from the spec.
	ReasonObserved = "Observed"
	// ReasonDrifted: the end user differs from the spec, and
	// managementPolicies do not allow Update.
	ReasonDrifted = "Drifted"
	// ReasonNotObserved: no end user was found, and managementPolicies do
	// not allow Create.
	ReasonNotObserved = "NotObserved"
)

// Condition reasons of a SurgeProject or ClusterSurgeProject.
const (
	ReasonKeyAccepted = "APIKeyAccepted"
	ReasonInUse       = "InUse"
)

// Event reasons for the changes the operator makes in Surge and Kubernetes.
const (
	EventCreated        = "Created"
	EventAdopted        = "Adopted"
	EventRecovered      = "Recovered"
	EventUpdated        = "Updated"
	EventDriftCorrected = "DriftCorrected"
	EventRecreated      = "Recreated"
	EventDeleted        = "Deleted"
	EventOrphaned       = "Orphaned"
	EventReleased       = "Released"
	// EventLeftInSurge: the resource's namespace is being deleted and its
	// key stayed unusable past the grace time, so the resource went and its
	// user stayed in Surge.
	EventLeftInSurge = "LeftInSurge"
	// EventDeletionHeld: the mass-deletion brake holds the deletion of the
	// resource's user in Surge.
	EventDeletionHeld = "DeletionHeld"
	EventFailed       = "Failed"
	// EventDuplicateRemoved tells of a copy of the resource's user, which
	// Surge committed later than the settle time, removed in favour of the
	// user status names.
	EventDuplicateRemoved = "DuplicateRemoved"
	// EventTokenRenewed tells of a token minted because the annotation
	// surge.app/renew-token-requested-at asked for it; renewals on schedule
	// make no event.
	EventTokenRenewed = "TokenRenewed"
)

// Annotations the operator reads or writes on a SurgeEndUser.
const (
	// AnnotationCreatePending gets a new value before every create in
	// Surge. Once the new user's id is in status, status.createMarker
	// records the value in the same write, which settles it: no second
	// write removes it. A value that status has not recorded means a create
	// may have happened whose answer was lost, so the account is searched
	// before anything is created again.
	AnnotationCreatePending = "surge.app/create-pending"
	// AnnotationPaused set to "true" stops every call to Surge for the resource.
	AnnotationPaused = "surge.app/paused"
	// AnnotationReconcileRequestedAt set to a new value forces a check
	// against Surge at once.
	AnnotationReconcileRequestedAt = "surge.app/reconcile-requested-at"
	// AnnotationRenewTokenRequestedAt set to a new value mints a new
	// component token at once, whatever the renewal time: after a token
	// leaked, say. status.token.renewalRequest records the value answered.
	AnnotationRenewTokenRequestedAt = "surge.app/renew-token-requested-at"
	// AnnotationReleaseDeletions, on a SurgeProject or ClusterSurgeProject,
	// holds an RFC 3339 time: every deletion of its SurgeEndUsers requested
	// at or before it goes ahead, past the mass-deletion brake. On a
	// SurgeEndUser, any value releases that one deletion.
	AnnotationReleaseDeletions = "surge.app/release-deletions"
)

// Finalizers.
const (
	// Finalizer guards the remote end user: the resource goes only after
	// the user is deleted in Surge (or orphaned on purpose).
	Finalizer = "surge.app/end-user"
	// ProjectFinalizer keeps a project while SurgeEndUsers use it, so that
	// their deletions can still reach Surge.
	ProjectFinalizer = "surge.app/project-in-use"
	// KeyGuardPrefix, followed by a project's uid, is the finalizer and the
	// label a project puts on the Secret that holds its key: the key must
	// outlive the SurgeEndUsers that need it to delete their users, also
	// when a namespace deletes everything in it at once. Each project
	// guards with its own, and lifts only its own.
	KeyGuardPrefix = "surge.app/key-of-"
)

// Reserved metadata keys written on every remote user the operator manages.
// They tie the user to its resource, so that a create whose answer was lost
// can be found again instead of repeated.
const (
	MetadataUID       = ReservedMetadataPrefix + "uid"
	MetadataNamespace = ReservedMetadataPrefix + "namespace"
	MetadataName      = ReservedMetadataPrefix + "name"
)

// Keys of the token Secret's data.
const (
	SecretKeyToken     = "token"
	SecretKeyExpiresAt = "expiresAt"
	SecretKeyUserID    = "userID"
)

// LabelShard is the label by which the chart's shards share out
// SurgeEndUsers: a shard reconciles those labelled with its name, and the
// main instance those no shard takes (--watch-label-selector).
const LabelShard = "surge.app/shard"

// Labels of every Secret the operator writes. The manager caches only
// Secrets carrying LabelManagedBy.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelManagedByValue = "surge-operator"
	// LabelEndUser holds the uid of the SurgeEndUser the Secret belongs to:
	// a name may be longer than the 63 characters of a label value, a uid
	// never is.
	LabelEndUser = "surge.app/end-user"
)

// Annotations of every Secret the operator writes.
const (
	// AnnotationEndUser holds the name of the SurgeEndUser the Secret
	// belongs to, for people reading the Secret.
	AnnotationEndUser = "surge.app/end-user"
	// AnnotationTemplateKeys lists the label and annotation keys the
	// operator wrote from spec.tokenSecret.template, so that a key later
	// dropped from the template is removed while keys that others (a
	// policy engine, a mutating webhook) add to the Secret are left alone.
	AnnotationTemplateKeys = "surge.app/template-keys"
)
