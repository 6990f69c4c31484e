package helm_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// renderValues renders the chart with values given as the text of a values
// file, and decodes the objects.
func renderValues(t *testing.T, values string, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := templateValues(t, values, flags...)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := manifests.Decode(strings.NewReader(out))
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	return objects
}

// TestNamesAndLabels: nameOverride, fullnameOverride, commonLabels,
// podLabels and podAnnotations reach the objects they name or label, and
// never the selectors.
func TestNamesAndLabels(t *testing.T) {
	t.Run("fullnameOverride names every object", func(t *testing.T) {
		objects := renderValues(t, "fullnameOverride: billing-surge")
		for _, obj := range objects {
			if obj.GetKind() == "CustomResourceDefinition" {
				continue
			}
			if !strings.HasPrefix(obj.GetName(), "billing-surge") {
				t.Errorf("%s is not named after fullnameOverride", manifests.Describe(obj))
			}
		}
		find(t, objects, "Service", "billing-surge-metrics")
		deployment, _ := deploymentOf(t, objects)
		if deployment.Spec.Template.Spec.ServiceAccountName != "billing-surge" {
			t.Errorf("the manager runs as %q, want the ServiceAccount named after fullnameOverride", deployment.Spec.Template.Spec.ServiceAccountName)
		}
	})

	t.Run("nameOverride replaces the chart's name", func(t *testing.T) {
		objects := renderValues(t, "nameOverride: surge", "--set", "podDisruptionBudget.enabled=true")
		deployment, _ := deploymentOf(t, objects)
		if deployment.Name != "surge-operator" {
			t.Errorf("with the release surge-operator, which holds the name surge, the Deployment is named %q", deployment.Name)
		}
		if got := deployment.Spec.Selector.MatchLabels["app.kubernetes.io/name"]; got != "surge" {
			t.Errorf("the selector's app.kubernetes.io/name is %q, want the nameOverride", got)
		}
		pdb := find(t, objects, "PodDisruptionBudget", "surge-operator")
		if got, _, _ := unstructured.NestedString(pdb.Object, "spec", "selector", "matchLabels", "app.kubernetes.io/name"); got != "surge" {
			t.Errorf("the PodDisruptionBudget selects app.kubernetes.io/name=%q, want the nameOverride", got)
		}
	})

	t.Run("a long release name leaves a valid Service name", func(t *testing.T) {
		release := "payments-platform-operators-production-eu-west-1"
		objects := renderChart(t, release, chartDir)
		for _, service := range ofKind(objects, "Service") {
			if problems := validation.IsDNS1035Label(service.GetName()); len(problems) > 0 {
				t.Errorf("Service %s: %v", service.GetName(), problems)
			}
		}
	})

	t.Run("commonLabels label everything but cannot move the selectors", func(t *testing.T) {
		objects := renderValues(t, `
commonLabels:
  team: platform
  app.kubernetes.io/part-of: messaging
  app.kubernetes.io/name: something-else
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
grafanaDashboard: {enabled: true}
podDisruptionBudget: {enabled: true}
`)
		for _, obj := range objects {
			labels := obj.GetLabels()
			if labels["team"] != "platform" || labels["app.kubernetes.io/part-of"] != "messaging" {
				t.Errorf("%s lacks the commonLabels: %v", manifests.Describe(obj), labels)
			}
			if labels["app.kubernetes.io/name"] != "surge-operator" {
				t.Errorf("commonLabels replaced the app.kubernetes.io/name label of %s: %v", manifests.Describe(obj), labels)
			}
		}
		deployment, _ := deploymentOf(t, objects)
		if deployment.Spec.Template.Labels["team"] != "platform" {
			t.Errorf("the manager's pod lacks the commonLabels: %v", deployment.Spec.Template.Labels)
		}
		if _, ok := deployment.Spec.Selector.MatchLabels["team"]; ok {
			t.Errorf("commonLabels reach the Deployment's selector, which cannot change after install: %v", deployment.Spec.Selector.MatchLabels)
		}
	})

	t.Run("podLabels and podAnnotations label the pod only", func(t *testing.T) {
		objects := renderValues(t, `
podLabels: {sidecar.istio.io/inject: "false", app.kubernetes.io/instance: elsewhere}
podAnnotations: {vault.hashicorp.com/agent-inject: "true"}
`)
		deployment, _ := deploymentOf(t, objects)
		pod := deployment.Spec.Template
		if pod.Labels["sidecar.istio.io/inject"] != "false" {
			t.Errorf("podLabels do not reach the pod: %v", pod.Labels)
		}
		if pod.Labels["app.kubernetes.io/instance"] != "surge-operator" {
			t.Errorf("podLabels replaced the label the Deployment selects its pods by: %v", pod.Labels)
		}
		if _, ok := deployment.Labels["sidecar.istio.io/inject"]; ok {
			t.Errorf("podLabels reach the Deployment itself: %v", deployment.Labels)
		}
		if pod.Annotations["vault.hashicorp.com/agent-inject"] != "true" || pod.Annotations["kubectl.kubernetes.io/default-container"] != "manager" {
			t.Errorf("the pod's annotations are %v, want podAnnotations besides the chart's own", pod.Annotations)
		}
	})
}
