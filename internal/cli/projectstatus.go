package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
)

// projectKinds are the TYPE/NAME prefixes status takes for a project, as
// kubectl spells them.
var projectKinds = map[string]string{
	"surgeproject":        surgev1alpha1.KindSurgeProject,
	"clustersurgeproject": surgev1alpha1.KindClusterSurgeProject,
}

// projectOf says whether arg names a project, as surgeproject/NAME or
// clustersurgeproject/NAME, and which.
func projectOf(arg, namespace string) (credentials.Ref, bool) {
	prefix, name, found := strings.Cut(arg, "/")
	kind, known := projectKinds[strings.ToLower(prefix)]
	if !found || !known {
		return credentials.Ref{}, false
	}
	ref := credentials.Ref{Kind: kind, Name: name}
	if kind == surgev1alpha1.KindSurgeProject {
		ref.Namespace = namespace
	}
	return ref, true
}

// projectDocument is what status shows of a project, as text or with -o.
type projectDocument struct {
	Project    string             `json:"project"`
	Ready      *metav1.Condition  `json:"ready,omitempty"`
	KeySecret  string             `json:"keySecret"`
	EndUsers   int32              `json:"endUsers"`
	Deleting   bool               `json:"deleting"`
	Held       []string           `json:"deletionsHeld"`
	Released   string             `json:"releasedDeletionsUntil,omitempty"`
	Conditions []metav1.Condition `json:"conditions"`
}

// gatherProject reads the project and the SurgeEndUsers whose deletion the
// brake holds.
func gatherProject(ctx context.Context, c client.Client, ref credentials.Ref) (*projectDocument, error) {
	var obj client.Object
	var status *surgev1alpha1.SurgeProjectStatus
	switch ref.Kind {
	case surgev1alpha1.KindClusterSurgeProject:
		p := &surgev1alpha1.ClusterSurgeProject{}
		obj, status = p, &p.Status
	default:
		p := &surgev1alpha1.SurgeProject{}
		obj, status = p, &p.Status
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%s not found", ref)
		}
		return nil, explain(err)
	}
	doc := &projectDocument{
		Project:    ref.String(),
		Ready:      apimeta.FindStatusCondition(status.Conditions, surgev1alpha1.ConditionReady),
		EndUsers:   status.EndUsers,
		Deleting:   !obj.GetDeletionTimestamp().IsZero(),
		Held:       []string{},
		Released:   obj.GetAnnotations()[surgev1alpha1.AnnotationReleaseDeletions],
		Conditions: status.Conditions,
	}
	endUsers := &surgev1alpha1.SurgeEndUserList{}
	if err := c.List(ctx, endUsers, client.InNamespace(ref.Namespace)); err != nil {
		return nil, explain(err)
	}
	for _, e := range endUsers.Items {
		if used, named := credentials.RefOf(&e); named && used == ref && deletionHeld(&e) {
			doc.Held = append(doc.Held, e.Namespace+"/"+e.Name)
		}
	}
	doc.KeySecret = keySecretOf(obj)
	return doc, nil
}

// keySecretOf is the Secret the project names for its key.
func keySecretOf(obj client.Object) string {
	if p, cluster := obj.(*surgev1alpha1.ClusterSurgeProject); cluster {
		return p.Spec.APIKeySecretRef.Namespace + "/" + p.Spec.APIKeySecretRef.Name
	}
	p := obj.(*surgev1alpha1.SurgeProject)
	return p.Namespace + "/" + p.Spec.APIKeySecretRef.Name
}

func deletionHeld(obj *surgev1alpha1.SurgeEndUser) bool {
	ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
	return ready != nil && ready.Reason == surgev1alpha1.ReasonDeletionHeld
}

func renderProject(w io.Writer, doc *projectDocument, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("Project", "%s", doc.Project)
	if ready := doc.Ready; ready != nil {
		row("Ready", "%s (%s) for %s", ready.Status, ready.Reason, age(ready.LastTransitionTime.Time, now))
	} else {
		row("Ready", "no condition yet")
	}
	row("Key", "Secret %s", doc.KeySecret)
	row("End users", "%d", doc.EndUsers)
	if doc.Deleting {
		row("Deleting", "yes: it goes once no SurgeEndUser uses it")
	}
	row("Deletions held", "%d", len(doc.Held))
	if doc.Released != "" {
		row("Released until", "%s", doc.Released)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(doc.Held) > 0 {
		fmt.Fprintf(w, "\nHeld by the mass-deletion brake (kubectl surge release-deletions lets them go):\n")
		for _, name := range doc.Held {
			fmt.Fprintf(w, "  - %s\n", name)
		}
	}
	fmt.Fprintln(w, "\nConditions:")
	if len(doc.Conditions) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, condition := range doc.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", condition.Type, condition.Status, condition.Reason,
			age(condition.LastTransitionTime.Time, now), oneLine(condition.Message))
	}
	return tw.Flush()
}
