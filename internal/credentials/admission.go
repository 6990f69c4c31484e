package credentials

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// Reasons a resource may not use a project. They are condition reasons on
// the SurgeEndUser.
const (
	ReasonNoProject           = "NoProject"
	ReasonProjectNotFound     = "ProjectNotFound"
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	ReasonAccountNotAllowed   = "AccountNotAllowed"
	ReasonAPIKeyUnreadable    = "APIKeySecretUnreadable"
	ReasonAPIURLNotAllowed    = "APIURLNotAllowed"
	ReasonProjectDeleting     = "ProjectDeleting"
	// ReasonClusterProjectNotServed: the resource names a
	// ClusterSurgeProject, and its installation serves none.
	ReasonClusterProjectNotServed = "ClusterProjectNotServed"
)

// Refusal says why a resource may not use Surge through its project. Only a
// person can fix it; no call to Surge is made meanwhile.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// project is what admission and the client cache need of either project
// kind.
type project struct {
	// ref is how SurgeEndUsers name the project: its kind, and its namespace
	// for a SurgeProject.
	ref       Ref
	secret    types.NamespacedName
	secretKey string
	apiURL    string
	accounts  []string
	// namespaces and selector are a ClusterSurgeProject's namespace
	// boundary; a SurgeProject serves its own namespace only.
	namespaces []string
	selector   *metav1.LabelSelector
	// deleting is set once the project is being deleted: it then serves
	// only the deletions of the SurgeEndUsers that use it.
	deleting bool
}

// Ref identifies a project. Namespace is empty for a ClusterSurgeProject.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

// String reads like "SurgeProject team-a/surge" or "ClusterSurgeProject shared".
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// RefOf is the project obj names, and false when it names none.
func RefOf(obj *surgev1alpha1.SurgeEndUser) (Ref, bool) {
	ref := obj.Spec.ProjectRef
	if ref == nil {
		return Ref{}, false
	}
	if ref.Kind == surgev1alpha1.KindClusterSurgeProject {
		return Ref{Kind: ref.Kind, Name: ref.Name}, true
	}
	return Ref{Kind: surgev1alpha1.KindSurgeProject, Namespace: obj.Namespace, Name: ref.Name}, true
}

func fromSurgeProject(p *surgev1alpha1.SurgeProject) project {
	return project{
		ref:       Ref{Kind: surgev1alpha1.KindSurgeProject, Namespace: p.Namespace, Name: p.Name},
		secret:    types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.APIKeySecretRef.Name},
		secretKey: keyOrDefault(p.Spec.APIKeySecretRef.Key),
		apiURL:    p.Spec.APIURL,
		accounts:  p.Spec.Accounts,
		deleting:  !p.DeletionTimestamp.IsZero(),
	}
}

func fromClusterSurgeProject(p *surgev1alpha1.ClusterSurgeProject) project {
	ref := p.Spec.APIKeySecretRef
	return project{
		ref:        Ref{Kind: surgev1alpha1.KindClusterSurgeProject, Name: p.Name},
		secret:     types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name},
		secretKey:  keyOrDefault(ref.Key),
		apiURL:     p.Spec.APIURL,
		accounts:   p.Spec.Accounts,
		namespaces: p.Spec.Namespaces,
		selector:   p.Spec.NamespaceSelector,
		deleting:   !p.DeletionTimestamp.IsZero(),
	}
}

func keyOrDefault(key string) string {
	if key == "" {
		return surgev1alpha1.DefaultAPIKeySecretKey
	}
	return key
}

// admit decides whether obj, of namespace, may use p. namespace is needed
// only for a ClusterSurgeProject's selector. A project being deleted serves
// deletions only: an end user created through it now would outlive the key
// that can delete it.
func admit(p project, namespace *corev1.Namespace, obj *surgev1alpha1.SurgeEndUser) *Refusal {
	if p.deleting && obj.DeletionTimestamp.IsZero() {
		return refuse(ReasonProjectDeleting,
			"%s is being deleted: it serves only the deletion of the SurgeEndUsers that use it; delete this SurgeEndUser, or name another project",
			p.ref)
	}
	accountID := obj.Spec.AccountID
	if refusal := admitNamespace(p, namespace); refusal != nil {
		return refusal
	}
	if len(p.accounts) > 0 && !slices.Contains(p.accounts, accountID) {
		return refuse(ReasonAccountNotAllowed,
			"%s does not allow account %s (it allows %d accounts): use an account it lists, or ask its owner to add this one",
			p.ref, accountID, len(p.accounts))
	}
	return nil
}

func admitNamespace(p project, namespace *corev1.Namespace) *Refusal {
	if p.ref.Kind == surgev1alpha1.KindSurgeProject {
		if namespace.Name != p.ref.Namespace {
			return refuse(ReasonNamespaceNotAllowed, "%s serves only namespace %s", p.ref, p.ref.Namespace)
		}
		return nil
	}
	if len(p.namespaces) == 0 && p.selector == nil {
		return nil
	}
	if slices.Contains(p.namespaces, namespace.Name) {
		return nil
	}
	if p.selector != nil {
		selector, err := metav1.LabelSelectorAsSelector(p.selector)
		if err != nil {
			return refuse(ReasonNamespaceNotAllowed, "%s has an invalid namespaceSelector: %v", p.ref, err)
		}
		if selector.Matches(labels.Set(namespace.Labels)) {
			return nil
		}
	}
	return refuse(ReasonNamespaceNotAllowed,
		"%s does not allow namespace %s: ask its owner to add the namespace to spec.namespaces or to label it to match spec.namespaceSelector",
		p.ref, namespace.Name)
}
