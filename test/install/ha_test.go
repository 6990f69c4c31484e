package install_test

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/surge-operator/surge-operator/test/podsecurity"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// TestHAComponent builds config/default with config/ha: two replicas that
// elect a leader, spread over nodes, and a PodDisruptionBudget that lets a
// drain take only one of them at a time. The result must apply cleanly.
func TestHAComponent(t *testing.T) {
	objects := kustomizeDefaultWithComponent(t, "ha")
	var deployment appsv1.Deployment
	var budget policyv1.PodDisruptionBudget
	for _, obj := range objects {
		switch obj.GetKind() {
		case "Deployment":
			fromUnstructured(t, obj, &deployment)
		case "PodDisruptionBudget":
			fromUnstructured(t, obj, &budget)
		}
	}
	if got := deployment.Spec.Replicas; got == nil || *got != 2 {
		t.Errorf("config/ha runs %v replicas, want 2", got)
	}
	if budget.Namespace != namespace || budget.Name != deploymentName {
		t.Errorf("the PodDisruptionBudget lands as %s/%s, want %s/%s", budget.Namespace, budget.Name, namespace, deploymentName)
	}
	if budget.Spec.MaxUnavailable == nil || budget.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("the PodDisruptionBudget allows %v unavailable, want 1", budget.Spec.MaxUnavailable)
	}
	podLabels := labels.Set(deployment.Spec.Template.Labels)
	if budget.Spec.Selector == nil || !labels.SelectorFromSet(budget.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget selects %v, which the manager's pods (%v) do not match", budget.Spec.Selector, podLabels)
	}
	affinity := deployment.Spec.Template.Spec.Affinity
	if affinity == nil || affinity.PodAntiAffinity == nil || len(affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Fatalf("config/ha does not spread the replicas over nodes: %+v", affinity)
	}
	term := affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil ||
		!labels.SelectorFromSet(term.LabelSelector.MatchLabels).Matches(podLabels) {
		t.Errorf("the anti-affinity does not keep the manager's pods apart by node: %+v", term)
	}
	manager := managerContainer(t, &deployment)
	if !slices.Contains(manager.Args, "--leader-elect") {
		t.Errorf("config/ha runs two replicas without --leader-elect: both would reconcile: %v", manager.Args)
	}
	podsecurity.ExpectRestricted(context.Background(), t, k8s, namespace, deployment.Spec.Template.Spec)
	expectCleanDryRun(context.Background(), t, objects)
}

func fromUnstructured(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("reading %s: %v", manifests.Describe(obj), err)
	}
}
