package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what happens to the remote end user when its
// SurgeEndUser is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the end user in Surge before the resource goes.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the end user in Surge.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// ManagementPolicy is one thing the operator may do to the end user in
// Surge, with Crossplane's meaning.
// +kubebuilder:validation:Enum=Observe;Create;Update;Delete;"*"
type ManagementPolicy string

const (
	// ManagementObserve reads the end user: finds it, reports it in status,
	// and reports drift from the spec as Synced=False.
	ManagementObserve ManagementPolicy = "Observe"
	// ManagementCreate creates the end user when none is found; it also
	// allows minting component tokens.
	ManagementCreate ManagementPolicy = "Create"
	// ManagementUpdate writes the spec over the end user when they differ;
	// it also allows minting component tokens.
	ManagementUpdate ManagementPolicy = "Update"
	// ManagementDelete deletes the end user in Surge (deletionPolicy Delete,
	// and copies that Surge committed late). Without it, deleting the
	// resource leaves the end user in Surge.
	ManagementDelete ManagementPolicy = "Delete"
	// ManagementAll allows everything.
	ManagementAll ManagementPolicy = "*"
)

// Allows says whether the spec's managementPolicies allow p. No policies at
// all is the default, ["*"].
func (s *SurgeEndUserSpec) Allows(p ManagementPolicy) bool {
	return len(s.ManagementPolicies) == 0 || slices.Contains(s.ManagementPolicies, ManagementAll) || slices.Contains(s.ManagementPolicies, p)
}

// LeavesUserInSurge says whether deleting a resource of the spec leaves its
// user in Surge: deletionPolicy Orphan, or managementPolicies without
// Delete.
func (s *SurgeEndUserSpec) LeavesUserInSurge() bool {
	return s.DeletionPolicy == DeletionPolicyOrphan || !s.Allows(ManagementDelete)
}

// ReservedMetadataPrefix starts every metadata key the operator writes on the
// remote users it manages, to find them again after a lost response. Specs may
// not use it.
const ReservedMetadataPrefix = "surge-operator/"

// KindSurgeEndUser is the kind of SurgeEndUser, as owner references name it.
const KindSurgeEndUser = "SurgeEndUser"

// SurgeEndUserSpec is the desired state of an end user in Surge.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.userID) || (has(self.userID) && self.userID == oldSelf.userID)",message="userID can be set once and never changed or removed"
// +kubebuilder:validation:XValidation:rule="has(self.projectRef) == has(oldSelf.projectRef) && (!has(self.projectRef) || self.projectRef == oldSelf.projectRef)",message="projectRef is immutable: it can only be set when the SurgeEndUser is created"
// +kubebuilder:validation:XValidation:rule="!has(self.tokenSecret) || !has(self.managementPolicies) || self.managementPolicies.exists(p, p in ['*', 'Create', 'Update'])",message="tokenSecret needs managementPolicies that allow Create or Update (or \"*\"): minting a token is a write to Surge"
type SurgeEndUserSpec struct {
	// ProjectRef names the SurgeProject (in this namespace) or
	// ClusterSurgeProject whose API key manages this end user. Without it,
	// the operator's own key (SURGE_API_KEY) is used. It cannot change.
	// +optional
	ProjectRef *ProjectReference `json:"projectRef,omitempty"`

	// AccountID is the Surge account that owns the end user, such as
	// acct_01j9a43avnfqzbjfch6pygv1td. It cannot be changed: to move a user to
	// another account, create a new SurgeEndUser.
	// +required
	// +kubebuilder:validation:MinLength=6
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.startsWith('acct_')",message="accountID must be a Surge account id starting with acct_"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="accountID is immutable; create a new SurgeEndUser to use another account"
	AccountID string `json:"accountID"`

	// FirstName is the end user's first name, as the embedded components show it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	FirstName string `json:"firstName"`

	// LastName is the end user's last name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	LastName string `json:"lastName,omitempty"`

	// PhotoURL is the address of the end user's avatar.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="photoURL must be an absolute http or https URL"
	PhotoURL string `json:"photoURL,omitempty"`

	// Metadata holds free key/value pairs stored on the end user: at most 64,
	// keys of at most 64 characters, values of at most 512. Keys starting
	// with surge-operator/ are reserved for the operator.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('surge-operator/'))",message="metadata keys starting with surge-operator/ are reserved for the operator"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 64)",message="metadata keys must be at most 64 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 512)",message="metadata values must be at most 512 characters"
	Metadata map[string]string `json:"metadata,omitempty"`

	// UserID adopts an existing Surge end user (usr_...) instead of creating a
	// new one. It can be set once and never changed.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.startsWith('usr_')",message="userID must be a Surge user id starting with usr_"
	UserID string `json:"userID,omitempty"`

	// DeletionPolicy says whether deleting this resource deletes the end user
	// in Surge (Delete) or leaves it there (Orphan).
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// TokenSecret asks for a component token for this end user, kept fresh in
	// a Secret of the same namespace.
	// +optional
	TokenSecret *TokenSecretSpec `json:"tokenSecret,omitempty"`

	// ManagementPolicies says what the operator may do to the end user in
	// Surge, with Crossplane's meaning: Observe, Create, Update, Delete, or
	// "*" for all of them (the default). With ["Observe"] the operator only
	// reads: it finds the user by spec.userID or by this resource's
	// identity, reports it in status and reports drift from the spec as
	// Synced=False, and never writes to Surge. Without Delete, deleting the
	// resource leaves the user in Surge whatever deletionPolicy says.
	// +optional
	// +listType=set
	// +kubebuilder:default={"*"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:XValidation:rule="!('*' in self) || size(self) == 1",message="managementPolicies: \"*\" already allows everything and cannot be listed with other policies"
	// +kubebuilder:validation:XValidation:rule="'*' in self || 'Observe' in self",message="managementPolicies must include Observe: the operator cannot create, update or delete an end user it does not read"
	ManagementPolicies []ManagementPolicy `json:"managementPolicies,omitempty"`
}

// ProjectReference names a SurgeProject or a ClusterSurgeProject.
type ProjectReference struct {
	// Kind is SurgeProject or ClusterSurgeProject.
	// +required
	// +kubebuilder:validation:Enum=SurgeProject;ClusterSurgeProject
	Kind string `json:"kind"`

	// Name of the project. A SurgeProject is looked up in the SurgeEndUser's
	// own namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// TokenSecretSpec describes the Secret that holds the end user's component token.
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || duration(self.renewBefore).getSeconds() * 2 <= (has(self.durationSeconds) ? self.durationSeconds : 900)",message="renewBefore must be at most half the token lifetime (durationSeconds), so that each token is used at least as long as the next one is kept in reserve"
type TokenSecretSpec struct {
	// Name of the Secret, in the namespace of the SurgeEndUser.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// DurationSeconds is the lifetime of each token, from 15 to 3600 seconds.
	// +optional
	// +kubebuilder:default=900
	// +kubebuilder:validation:Minimum=15
	// +kubebuilder:validation:Maximum=3600
	DurationSeconds int32 `json:"durationSeconds,omitempty"`

	// RenewBefore is how long before expiry a new token is minted, such as
	// "5m". It must be at most half the lifetime. Defaults to a third of the
	// lifetime.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:MaxLength=32
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// Template adds labels and annotations to the Secret.
	// +optional
	Template *SecretTemplate `json:"template,omitempty"`
}

// SecretTemplate holds extra metadata for a Secret the operator writes.
type SecretTemplate struct {
	// Labels added to the Secret: at most 32, with the key and value syntax
	// of Kubernetes labels.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule=`self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || size(k.split('/')[0]) <= 253))`,message="template label keys must be Kubernetes label keys: an optional DNS subdomain prefix and /, then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule=`self.all(k, self[k].matches('^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$'))`,message="template label values must be Kubernetes label values: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	Labels map[string]LabelValue `json:"labels,omitempty"`
	// Annotations added to the Secret: at most 32, with the key syntax of
	// Kubernetes annotations and values of at most 4096 characters.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule=`self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || size(k.split('/')[0]) <= 253))`,message="template annotation keys must be Kubernetes annotation keys: an optional DNS subdomain prefix and /, then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 4096)",message="template annotation values must be at most 4096 characters"
	Annotations map[string]string `json:"annotations,omitempty"`
}

// LabelValue is the value of a Kubernetes label.
// +kubebuilder:validation:MaxLength=63
type LabelValue string

// SurgeEndUserStatus is the observed state of a SurgeEndUser.
type SurgeEndUserStatus struct {
	// ObservedGeneration is the generation of the spec that the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// UserID is the id of the end user in Surge.
	// +optional
	UserID string `json:"userID,omitempty"`

	// CreateMarker is the value of the surge.app/create-pending annotation
	// that status has accounted for. An annotation that holds another value
	// (a resource restored without its status, or left by an older operator)
	// means a user may exist for this namespace and name, so the account is
	// searched before anything is created.
	// +optional
	CreateMarker string `json:"createMarker,omitempty"`

	// CreateSentAt is set while a create sent to Surge is unresolved: its
	// answer was lost, so it may have happened, possibly late. The create
	// left by this time or not at all. Nothing is created again until the
	// user is found, or a listing of the account shows none that started
	// once Surge can no longer commit the create, as measured on the clock
	// of the operator process that reads it.
	// +optional
	CreateSentAt *metav1.Time `json:"createSentAt,omitempty"`

	// CreateSettleSeconds is how long after it left the operator that sent
	// the create assumed Surge may still commit it: twice its request
	// timeout. An operator that takes over waits at least that long, even
	// when its own request timeout is shorter.
	// +optional
	CreateSettleSeconds int32 `json:"createSettleSeconds,omitempty"`

	// Conditions are Ready, Reconciling and Stalled, following the kstatus
	// conventions.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Token describes the component token kept in the Secret.
	// +optional
	Token *TokenStatus `json:"token,omitempty"`
}

// TokenStatus describes the component token currently in the Secret.
type TokenStatus struct {
	// SecretName is the Secret that holds the token.
	SecretName string `json:"secretName"`
	// ExpiresAt is when the token stops being accepted.
	ExpiresAt metav1.Time `json:"expiresAt"`
	// RenewAt is when the operator mints the next token.
	RenewAt metav1.Time `json:"renewAt"`
	// RenewalRequest is the value of the surge.app/renew-token-requested-at
	// annotation that the token in the Secret answers. Status, not memory,
	// records it, so that a restart does not take an old request for a new
	// one; another value in the annotation mints a new token at once.
	// +optional
	RenewalRequest string `json:"renewalRequest,omitempty"`
}

// SurgeEndUser is an end user of a Surge account: a person in a platform's
// own app who sends and receives messages through Surge's embedded components.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=seu,categories=surge
// +kubebuilder:printcolumn:name="User ID",type=string,JSONPath=`.status.userID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Token Expires",type=string,JSONPath=`.status.token.expiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.userID) || has(oldSelf.spec.userID) || !has(oldSelf.status) || !has(oldSelf.status.userID) || oldSelf.status.userID == self.spec.userID",message="spec.userID cannot be added to a SurgeEndUser that already manages another end user (status.userID): delete it (with deletionPolicy Orphan to keep that user) and create one with spec.userID"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec.managementPolicies) || oldSelf.spec.managementPolicies.exists(p, p in ['*', 'Create']) || !has(self.spec.managementPolicies) || !self.spec.managementPolicies.exists(p, p in ['*', 'Create']) || (has(oldSelf.status) && has(oldSelf.status.userID))",message="managementPolicies cannot allow Create on a SurgeEndUser whose observation found no end user (status.userID is empty): the operator would make a new one beside a user it could not find. Set spec.userID to the user to manage, or delete this SurgeEndUser and create it again with the policies you want"
type SurgeEndUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   SurgeEndUserSpec   `json:"spec"`
	Status SurgeEndUserStatus `json:"status,omitempty"`
}

// GetStatus returns the status, for code that writes the status of any of
// the operator's kinds.
func (u *SurgeEndUser) GetStatus() *SurgeEndUserStatus { return &u.Status }

// SurgeEndUserList is a list of SurgeEndUsers.
// +kubebuilder:object:root=true
type SurgeEndUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SurgeEndUser `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SurgeEndUser{}, &SurgeEndUserList{})
}
