package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultAPIKeySecretKey is the Secret data key that holds the API key when
// apiKeySecretRef.key is not set.
const DefaultAPIKeySecretKey = "api-key"

// Kinds a SurgeEndUser's projectRef can name.
const (
	KindSurgeProject        = "SurgeProject"
	KindClusterSurgeProject = "ClusterSurgeProject"
)

// ProjectSettings are the settings both project kinds share.
type ProjectSettings struct {
	// APIURL is the base URL of the Surge API. Defaults to the operator's
	// --surge-api-url. A SurgeProject may only name a URL the operator
	// allows (--allowed-surge-api-urls), so that a tenant cannot send the key
	// elsewhere.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="apiURL must be an absolute http or https URL"
	APIURL string `json:"apiURL,omitempty"`

	// Accounts lists the Surge accounts (acct_...) whose end users may be
	// managed through this project. Empty allows every account the key
	// reaches.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(a, a.startsWith('acct_'))",message="accounts must be Surge account ids starting with acct_"
	Accounts []string `json:"accounts,omitempty"`
}

// SecretKeyReference names a key of a Secret in the project's own namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key of the Secret's data that holds the API key.
	// +optional
	// +kubebuilder:default=api-key
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// NamespacedSecretKeyReference names a key of a Secret in a given namespace.
type NamespacedSecretKeyReference struct {
	// Namespace of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	SecretKeyReference `json:",inline"`
}

// SurgeProjectSpec is a Surge project's API key, for the SurgeEndUsers of
// the project's own namespace.
type SurgeProjectSpec struct {
	// APIKeySecretRef names the Secret, in this namespace, that holds the
	// project's API key (sk_live_... or sk_demo_...).
	// +required
	APIKeySecretRef SecretKeyReference `json:"apiKeySecretRef"`

	ProjectSettings `json:",inline"`
}

// ClusterSurgeProjectSpec is a Surge project's API key, for SurgeEndUsers of
// the namespaces it allows.
type ClusterSurgeProjectSpec struct {
	// APIKeySecretRef names the Secret that holds the project's API key.
	// +required
	APIKeySecretRef NamespacedSecretKeyReference `json:"apiKeySecretRef"`

	ProjectSettings `json:",inline"`

	// Namespaces whose SurgeEndUsers may use this project. With neither
	// namespaces nor namespaceSelector, every namespace may.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects, by their labels, namespaces whose
	// SurgeEndUsers may use this project, in addition to namespaces.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// SurgeProjectStatus is the observed state of a project of either kind.
type SurgeProjectStatus struct {
	// ObservedGeneration is the generation of the spec that the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready, Reconciling and Stalled, following the kstatus
	// conventions. Ready is True when the API key's Secret is readable and
	// Surge accepts the key.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// EndUsers is the number of SurgeEndUsers that reference the project.
	// +optional
	EndUsers int32 `json:"endUsers"`
}

// SurgeProject holds the API key of a Surge project for the SurgeEndUsers of
// its namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=surge
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="End Users",type=integer,JSONPath=`.status.endUsers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SurgeProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   SurgeProjectSpec   `json:"spec"`
	Status SurgeProjectStatus `json:"status,omitempty"`
}

// SurgeProjectList is a list of SurgeProjects.
// +kubebuilder:object:root=true
type SurgeProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SurgeProject `json:"items"`
}

// ClusterSurgeProject holds the API key of a Surge project for the
// SurgeEndUsers of the namespaces it allows.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=surge
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="End Users",type=integer,JSONPath=`.status.endUsers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterSurgeProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   ClusterSurgeProjectSpec `json:"spec"`
	Status SurgeProjectStatus      `json:"status,omitempty"`
}

// ClusterSurgeProjectList is a list of ClusterSurgeProjects.
// +kubebuilder:object:root=true
type ClusterSurgeProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterSurgeProject `json:"items"`
}

// GetStatus returns the status, shared by both project kinds.
func (p *SurgeProject) GetStatus() *SurgeProjectStatus { return &p.Status }

// GetStatus returns the status, shared by both project kinds.
func (p *ClusterSurgeProject) GetStatus() *SurgeProjectStatus { return &p.Status }

func init() {
	SchemeBuilder.Register(&SurgeProject{}, &SurgeProjectList{}, &ClusterSurgeProject{}, &ClusterSurgeProjectList{})
}
