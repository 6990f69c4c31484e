package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// leaseName is the operator's Lease, whose holder leads.
const leaseName = "surge-operator.surge.app"

// checkResult is one line of check: what was checked, whether it holds, and
// what was seen.
type checkResult struct {
	what   string
	ok     bool
	detail string
}

func newCheckCommand(o *options) *cobra.Command {
	var operatorNamespace string
	var allNamespaces bool
	var output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that SurgeEndUsers can be served: the CRDs, the leading operator, each project's key and Surge",
		Long: `check reads what the operator reports and prints one line per check, ok or
FAIL: the CRDs are installed; the operator runs and one replica leads (its
Lease ` + leaseName + ` is held and renewed); each SurgeProject of the namespace
(or of all namespaces, with -A) and each ClusterSurgeProject has a key that
Surge accepts; and Surge answered the operator's last key checks. It exits 1
when a check fails. It reads the cluster only, and calls no Surge API itself:
the operator's answers are the ones that count.`,
		Example: `  kubectl surge check -n billing
  kubectl surge check -A --operator-namespace platform`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return validOutput(output)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			namespace := ""
			if !allNamespaces {
				if namespace, err = o.namespace(); err != nil {
					return err
				}
			}
			results := runChecks(cmd.Context(), c, operatorNamespace, namespace, o.now())
			failed := 0
			docs := make([]checkDocument, 0, len(results))
			for _, r := range results {
				if !r.ok {
					failed++
				}
				docs = append(docs, checkDocument{Check: r.what, OK: r.ok, Detail: r.detail})
			}
			if output != "" {
				if err := printDocument(o.streams.Out, output, docs); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					mark := "ok  "
					if !r.ok {
						mark = "FAIL"
					}
					fmt.Fprintf(o.streams.Out, "%s  %s: %s\n", mark, r.what, r.detail)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d checks failed", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&operatorNamespace, "operator-namespace", "surge-operator", "The namespace the operator runs in, which holds its Lease.")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Check the SurgeProjects of every namespace.")
	outputFlag(cmd, &output)
	return cmd
}

// runChecks runs every check; a check whose input cannot be read fails,
// saying why.
func runChecks(ctx context.Context, c client.Client, operatorNamespace, namespace string, now time.Time) []checkResult {
	results := []checkResult{checkCRDs(ctx, c), checkLeader(ctx, c, operatorNamespace, now)}
	projects, err := listProjects(ctx, c, namespace)
	if err != nil {
		return append(results, checkResult{what: "projects", detail: explain(err).Error()})
	}
	if len(projects) == 0 {
		results = append(results, checkResult{what: "projects", ok: true, detail: "none here: SurgeEndUsers use the operator's own key"})
	}
	reachable, unreachable := "", ""
	for _, p := range projects {
		ready := apimeta.FindStatusCondition(p.conditions, surgev1alpha1.ConditionReady)
		switch {
		case ready == nil:
			results = append(results, checkResult{what: p.ref, detail: "no Ready condition yet: the operator has not checked its key"})
		case ready.Status == "True":
			results = append(results, checkResult{what: p.ref, ok: true, detail: "Surge accepts its key"})
			reachable = p.ref
		default:
			results = append(results, checkResult{what: p.ref, detail: fmt.Sprintf("Ready=%s (%s): %s", ready.Status, ready.Reason, ready.Message)})
			if ready.Reason == surgev1alpha1.ReasonSurgeUnavailable {
				unreachable = p.ref
			}
		}
	}
	switch {
	case unreachable != "":
		results = append(results, checkResult{what: "Surge", detail: "the operator could not reach Surge for the key of " + unreachable})
	case reachable != "":
		results = append(results, checkResult{what: "Surge", ok: true, detail: "answered the operator's key check of " + reachable})
	default:
		results = append(results, checkResult{what: "Surge", ok: true, detail: "no key check to tell from"})
	}
	return results
}

func checkCRDs(ctx context.Context, c client.Client) checkResult {
	for _, list := range []client.ObjectList{&surgev1alpha1.SurgeEndUserList{}, &surgev1alpha1.SurgeProjectList{}, &surgev1alpha1.ClusterSurgeProjectList{}} {
		if err := c.List(ctx, list, client.Limit(1)); err != nil {
			return checkResult{what: "CRDs", detail: explain(err).Error()}
		}
	}
	return checkResult{what: "CRDs", ok: true, detail: "SurgeEndUser, SurgeProject and ClusterSurgeProject are served"}
}

// checkLeader reads the operator's Lease: held, and renewed within its
// duration, means a replica runs and leads.
func checkLeader(ctx context.Context, c client.Client, operatorNamespace string, now time.Time) checkResult {
	const what = "operator"
	lease := &coordinationv1.Lease{}
	err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, lease)
	if apierrors.IsNotFound(err) {
		return checkResult{what: what, detail: fmt.Sprintf("no Lease %s in namespace %s: the operator does not run there (see --operator-namespace), or runs without --leader-elect", leaseName, operatorNamespace)}
	}
	if err != nil {
		return checkResult{what: what, detail: err.Error()}
	}
	spec := lease.Spec
	if spec.HolderIdentity == nil || *spec.HolderIdentity == "" || spec.RenewTime == nil {
		return checkResult{what: what, detail: "no replica leads: the last leader released its Lease, and none took it"}
	}
	age := now.Sub(spec.RenewTime.Time)
	if spec.LeaseDurationSeconds != nil && age > time.Duration(*spec.LeaseDurationSeconds)*time.Second {
		return checkResult{what: what, detail: fmt.Sprintf("leader %s last renewed its Lease %s ago: it is gone, and no standby took over", *spec.HolderIdentity, duration.HumanDuration(age))}
	}
	return checkResult{what: what, ok: true, detail: fmt.Sprintf("leader %s, Lease renewed %s ago", *spec.HolderIdentity, duration.HumanDuration(max(age, 0)))}
}

// listProjects lists the SurgeProjects of namespace (all when empty) and
// every ClusterSurgeProject.
func listProjects(ctx context.Context, c client.Client, namespace string) ([]projectState, error) {
	var projects []projectState
	namespaced := &surgev1alpha1.SurgeProjectList{}
	if err := c.List(ctx, namespaced, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	for _, p := range namespaced.Items {
		projects = append(projects, projectState{ref: surgev1alpha1.KindSurgeProject + " " + p.Namespace + "/" + p.Name, conditions: p.Status.Conditions})
	}
	cluster := &surgev1alpha1.ClusterSurgeProjectList{}
	if err := c.List(ctx, cluster); err != nil {
		return nil, err
	}
	for _, p := range cluster.Items {
		projects = append(projects, projectState{ref: surgev1alpha1.KindClusterSurgeProject + " " + p.Name, conditions: p.Status.Conditions})
	}
	return projects, nil
}
