package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
)

// report is what status gathers about one SurgeEndUser; diagnose and
// render read only it, so that both are tested without a cluster.
type report struct {
	obj *surgev1alpha1.SurgeEndUser
	// project is the projectRef's project, nil when there is none or it
	// could not be read; projectErr says why it could not.
	project    *projectState
	projectErr error
	// secret is the token Secret's metadata, nil when there is none or it
	// could not be read; secretErr says why it could not.
	secret    *metav1.PartialObjectMetadata
	secretErr error
	events    []eventsv1.Event
	eventsErr error
}

// projectState is what status shows of either project kind.
type projectState struct {
	ref        string
	conditions []metav1.Condition
	generation int64
	observed   int64
}

func newStatusCommand(o *options) *cobra.Command {
	var events int
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME | surgeproject/NAME | clustersurgeproject/NAME",
		Short: "Show a SurgeEndUser's conditions, project, token Secret and events, and why it is not Ready; or a project's",
		Example: `  kubectl surge status ada-lovelace -n billing
  kubectl surge status ada-lovelace --events 30
  kubectl surge status surgeproject/surge -n billing    # its key, end users, held deletions`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			return validOutput(output)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			namespace, err := o.namespace()
			if err != nil {
				return err
			}
			if ref, isProject := projectOf(args[0], namespace); isProject {
				doc, err := gatherProject(cmd.Context(), c, ref)
				if err != nil {
					return err
				}
				if output != "" {
					return printDocument(o.streams.Out, output, doc)
				}
				return renderProject(o.streams.Out, doc, o.now())
			}
			r, err := gather(cmd.Context(), c, client.ObjectKey{Namespace: namespace, Name: args[0]}, events)
			if err != nil {
				return err
			}
			if output != "" {
				return printDocument(o.streams.Out, output, newStatusDocument(r, o.now()))
			}
			return render(o.streams.Out, r, o.now())
		},
	}
	cmd.Flags().IntVar(&events, "events", 10, "How many of the most recent events to show.")
	outputFlag(cmd, &output)
	return cmd
}

// gather reads the resource, its project, its token Secret's metadata (the
// token itself is never read) and its most recent events. Only a missing
// resource is an error: what else cannot be read is shown as such.
func gather(ctx context.Context, c client.Client, key client.ObjectKey, maxEvents int) (*report, error) {
	obj := &surgev1alpha1.SurgeEndUser{}
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("SurgeEndUser %s not found", key)
		}
		return nil, explain(err)
	}
	r := &report{obj: obj}
	if ref, named := credentials.RefOf(obj); named {
		r.project, r.projectErr = readProject(ctx, c, ref)
	}
	if spec := obj.Spec.TokenSecret; spec != nil {
		secret := &metav1.PartialObjectMetadata{}
		secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := c.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: spec.Name}, secret); err == nil {
			r.secret = secret
		} else {
			r.secretErr = err
		}
	}
	r.events, r.eventsErr = recentEvents(ctx, c, obj, maxEvents)
	return r, nil
}

func readProject(ctx context.Context, c client.Client, ref credentials.Ref) (*projectState, error) {
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
		return nil, err
	}
	return &projectState{ref: ref.String(), conditions: status.Conditions, generation: obj.GetGeneration(), observed: status.ObservedGeneration}, nil
}

// recentEvents returns the latest events about obj, newest first. The
// operator records them through events.k8s.io, whose field selectors find
// them by the resource's uid, so that events of an earlier resource of the
// same name are left out.
func recentEvents(ctx context.Context, c client.Client, obj *surgev1alpha1.SurgeEndUser, limit int) ([]eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	if err := c.List(ctx, list, client.InNamespace(obj.Namespace), client.MatchingFields{"regarding.uid": string(obj.UID)}); err != nil {
		return nil, err
	}
	events := list.Items
	slices.SortStableFunc(events, func(a, b eventsv1.Event) int { return lastSeen(b).Compare(lastSeen(a)) })
	return events[:min(limit, len(events))], nil
}

// lastSeen is when an event last happened, whichever of its fields says so.
func lastSeen(e eventsv1.Event) time.Time {
	seen := e.EventTime.Time
	if e.Series != nil && e.Series.LastObservedTime.After(seen) {
		seen = e.Series.LastObservedTime.Time
	}
	if e.DeprecatedLastTimestamp.After(seen) {
		seen = e.DeprecatedLastTimestamp.Time
	}
	if seen.IsZero() {
		seen = e.CreationTimestamp.Time
	}
	return seen
}

func render(w io.Writer, r *report, now time.Time) error {
	obj := r.obj
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", label, fmt.Sprintf(format, args...))
	}

	row("SurgeEndUser", "%s/%s", obj.Namespace, obj.Name)
	if ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady); ready != nil {
		row("Ready", "%s (%s) for %s", ready.Status, ready.Reason, age(ready.LastTransitionTime.Time, now))
	} else {
		row("Ready", "no condition yet")
	}
	row("Account", "%s", obj.Spec.AccountID)
	row("User", "%s", userLine(obj))
	row("Project", "%s", projectLine(r))
	if obj.Spec.TokenSecret != nil {
		row("Token", "%s", tokenLine(r, now))
	}
	row("Deletion policy", "%s", cmp.Or(string(obj.Spec.DeletionPolicy), string(surgev1alpha1.DeletionPolicyDelete)))
	if err := tw.Flush(); err != nil {
		return err
	}

	if reasons := diagnose(r, now); len(reasons) > 0 {
		fmt.Fprintln(w, "\nWhy not Ready:")
		for _, reason := range reasons {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(reason, "\n", "\n    "))
		}
	}

	fmt.Fprintln(w, "\nConditions:")
	if len(obj.Status.Conditions) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, condition := range obj.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", condition.Type, condition.Status, condition.Reason,
				age(condition.LastTransitionTime.Time, now), oneLine(condition.Message))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nEvents:")
	switch {
	case r.eventsErr != nil:
		fmt.Fprintf(w, "  cannot list them: %v\n", r.eventsErr)
	case len(r.events) == 0:
		fmt.Fprintln(w, "  none (events are kept for an hour by default)")
	default:
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  AGE\tTYPE\tREASON\tMESSAGE")
		for _, e := range r.events {
			reason := e.Reason
			if e.Series != nil && e.Series.Count > 1 {
				reason += fmt.Sprintf(" (x%d)", e.Series.Count)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", age(lastSeen(e), now), e.Type, reason, oneLine(e.Note))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func userLine(obj *surgev1alpha1.SurgeEndUser) string {
	switch {
	case obj.Status.UserID != "" && obj.Spec.UserID != "":
		return obj.Status.UserID + " (adopted through spec.userID)"
	case obj.Status.UserID != "":
		return obj.Status.UserID
	case obj.Spec.UserID != "":
		return "none yet; spec.userID asks to adopt " + obj.Spec.UserID
	}
	return "none yet"
}

func projectLine(r *report) string {
	ref, named := credentials.RefOf(r.obj)
	switch {
	case !named:
		return "none: the operator's own API key (SURGE_API_KEY)"
	case r.projectErr != nil && apierrors.IsNotFound(r.projectErr):
		return ref.String() + ", which does not exist"
	case r.projectErr != nil:
		return fmt.Sprintf("%s, which cannot be read: %v", ref, r.projectErr)
	}
	ready := apimeta.FindStatusCondition(r.project.conditions, surgev1alpha1.ConditionReady)
	if ready == nil {
		return ref.String() + ", not checked by the operator yet"
	}
	line := fmt.Sprintf("%s, Ready %s (%s)", ref, ready.Status, ready.Reason)
	if ready.Status != metav1.ConditionTrue {
		line += ": " + oneLine(ready.Message)
	}
	return line
}

func tokenLine(r *report, now time.Time) string {
	name := r.obj.Spec.TokenSecret.Name
	line := "Secret " + name
	switch {
	case r.secretErr != nil && apierrors.IsNotFound(r.secretErr):
		line += ", which does not exist yet"
	case r.secretErr != nil:
		line += fmt.Sprintf(", which cannot be read: %v", r.secretErr)
	case !controlledBy(r.secret, r.obj):
		line += ", which this SurgeEndUser does not own"
	}
	if token := r.obj.Status.Token; token != nil && token.SecretName == name {
		line += fmt.Sprintf("; token expires %s (%s), renewal %s (%s)",
			token.ExpiresAt.UTC().Format(time.RFC3339), relative(token.ExpiresAt.Time, now),
			token.RenewAt.UTC().Format(time.RFC3339), relative(token.RenewAt.Time, now))
	}
	return line
}

func controlledBy(secret *metav1.PartialObjectMetadata, obj *surgev1alpha1.SurgeEndUser) bool {
	owner := metav1.GetControllerOf(secret)
	return owner != nil && owner.UID == obj.UID
}

// diagnose says, in order of what to look at first, why the resource is
// not Ready or not up to date, and what would change that, one finding
// each, whose further lines say what to do. Nothing for a resource that is
// Ready with nothing pending.
func diagnose(r *report, now time.Time) []string {
	obj := r.obj
	var reasons []string
	paused := obj.Annotations[surgev1alpha1.AnnotationPaused] == "true"
	if !obj.DeletionTimestamp.IsZero() {
		why := "it is being deleted: the operator deletes the user in Surge (or lets it go, with deletionPolicy Orphan) before removing the finalizer " + surgev1alpha1.Finalizer
		if paused {
			why += "; it is paused, so the deletion waits for kubectl surge resume " + obj.Name
		}
		reasons = append(reasons, why)
	}
	if paused {
		reasons = append(reasons, fmt.Sprintf("it is paused (annotation %s: \"true\"): no calls to Surge until kubectl surge resume %s", surgev1alpha1.AnnotationPaused, obj.Name))
	}
	ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
	if ready == nil {
		return append(reasons, "the operator has not written its status yet: is it running, and does it watch namespace "+obj.Namespace+" (--watch-namespace)? It logs why it cannot start")
	}
	if obj.Status.ObservedGeneration < obj.Generation && !paused {
		reasons = append(reasons, fmt.Sprintf("the conditions describe generation %d of the spec, which is at %d: the operator has not finished with the latest change",
			obj.Status.ObservedGeneration, obj.Generation))
	}
	if ready.Status == metav1.ConditionTrue && ready.Reason != surgev1alpha1.ReasonTokenRenewalFailing {
		return reasons
	}
	stalled := apimeta.IsStatusConditionTrue(obj.Status.Conditions, surgev1alpha1.ConditionStalled)
	why := fmt.Sprintf("Ready is %s with reason %s: %s", ready.Status, ready.Reason, oneLine(ready.Message))
	if hint := hints[ready.Reason]; hint != "" {
		why += "\n" + hint + "."
	}
	if stalled {
		why += "\nIt is stalled: only a change by a person (the spec, the project, its Secret) or the next resync retries it."
	}
	reasons = append(reasons, why)
	if r.project != nil {
		if projectReady := apimeta.FindStatusCondition(r.project.conditions, surgev1alpha1.ConditionReady); projectReady != nil && projectReady.Status != metav1.ConditionTrue {
			reasons = append(reasons, fmt.Sprintf("%s is not Ready (%s): %s", r.project.ref, projectReady.Reason, oneLine(projectReady.Message)))
		}
	}
	if token := obj.Status.Token; ready.Reason == surgev1alpha1.ReasonTokenRenewalFailing && token != nil {
		reasons = append(reasons, fmt.Sprintf("the token in Secret %s stays valid for %s; Ready turns False when it expires",
			token.SecretName, duration.HumanDuration(token.ExpiresAt.Sub(now))))
	}
	return reasons
}

// hints say what to do about a reason, where the message alone may not.
var hints = map[string]string{
	surgev1alpha1.ReasonProgressing:           "The first calls to Surge are under way",
	surgev1alpha1.ReasonSurgeUnavailable:      "The operator retries with backoff; check that Surge, or the proxy in front of it, answers",
	surgev1alpha1.ReasonRateLimited:           "Nothing is wrong with the resource: it waits for a turn within Surge's rate limit",
	surgev1alpha1.ReasonCreateUnresolved:      "A create's answer was lost; the operator searches the account before creating again, and this settles by itself",
	surgev1alpha1.ReasonAPIKeyRejected:        "Put a valid key into the project's Secret (or the operator's SURGE_API_KEY); a rotated key is picked up within 20 seconds",
	surgev1alpha1.ReasonAccountNotFound:       "Check spec.accountID, and that the API key belongs to the project that owns the account",
	surgev1alpha1.ReasonRequestRejected:       "Surge refuses the spec as it stands: change the field the message names",
	surgev1alpha1.ReasonAdoptedUserNotFound:   "spec.userID names no user of Surge; it cannot be changed, so delete the resource and create it with the right id",
	surgev1alpha1.ReasonUserNotInAccount:      "spec.userID names a user of another account; delete the resource and create it with the right accountID or userID",
	surgev1alpha1.ReasonDeletionHeld:          "The mass-deletion brake holds this deletion; if it is meant, run kubectl surge release-deletions on the project",
	surgev1alpha1.ReasonUserClaimed:           "Another SurgeEndUser, named in the message, manages this user; delete one of the two",
	surgev1alpha1.ReasonUserIDConflict:        "spec.userID was set after the resource made or adopted another user; delete the resource to start over",
	surgev1alpha1.ReasonSecretNotOwned:        "A Secret of that name exists that this resource does not own; delete it, or choose another spec.tokenSecret.name",
	surgev1alpha1.ReasonSecretRejected:        "Kubernetes refused the token Secret: its validation or an admission policy; the message has its answer",
	surgev1alpha1.ReasonTokenRenewalFailing:   "The user is in sync, but minting a new token fails; the operator retries with backoff",
	surgev1alpha1.ReasonDeleteFailed:          "The user could not be deleted in Surge; the operator retries",
	credentials.ReasonNoProject:               "Name a SurgeProject or ClusterSurgeProject in spec.projectRef, or give the operator a key of its own",
	credentials.ReasonProjectNotFound:         "Create the project spec.projectRef names; projectRef cannot be changed",
	credentials.ReasonNamespaceNotAllowed:     "Add the namespace to the ClusterSurgeProject's namespaces, or label it to match its namespaceSelector",
	credentials.ReasonAccountNotAllowed:       "Add the account to the project's spec.accounts",
	credentials.ReasonAPIKeyUnreadable:        "Create the project's Secret with the key, or fix spec.apiKeySecretRef",
	credentials.ReasonAPIURLNotAllowed:        "Remove the project's spec.apiURL, or have the operator allow it (--allowed-surge-api-urls)",
	credentials.ReasonProjectDeleting:         "The project is being deleted and serves only deletions",
	credentials.ReasonClusterProjectNotServed: "This namespace's installation of the operator serves no ClusterSurgeProject: name a SurgeProject of the namespace",
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return duration.HumanDuration(now.Sub(t))
}

// relative reads like "in 9m" or "4m ago".
func relative(t, now time.Time) string {
	if t.After(now) {
		return "in " + duration.HumanDuration(t.Sub(now))
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
