package helm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/surge-operator/surge-operator/test/manifests"
)

const umbrellaRelease = "platform"

// umbrellaChart builds, in a temporary directory, the chart a platform team
// writes to install this one along with its other components: this chart
// under charts/, declared as a dependency with the usual enabled condition,
// and globals that the other components read.
func umbrellaChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "platform")
	if err := os.CopyFS(filepath.Join(dir, "charts", "surge-operator"), os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version string `json:"version"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml": `apiVersion: v2
name: platform
description: A platform team's installation, of which surge-operator is one part.
version: 1.0.0
icon: https://example.com/platform.png
dependencies:
- name: surge-operator
  version: ` + chart.Version + `
  condition: surge-operator.enabled
`,
		"values.yaml": `global:
  imageRegistry: registry.example.com
  storageClass: fast
surge-operator:
  replicaCount: 2
  apiKey:
    existingSecret: surge-api-key
`,
		// A template of the umbrella's own, as umbrella charts have.
		filepath.Join("templates", "configmap.yaml"): `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  registry: {{ .Values.global.imageRegistry }}
`,
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// renderChart runs helm template on any chart, as any release in any
// namespace, and decodes the objects.
func renderChart(t *testing.T, release, namespace, chart string, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", release, chart, "--namespace", namespace}, flags...)
	objects, err := manifests.Decode(strings.NewReader(mustHelm(t, args...)))
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	return objects
}

// TestSubchart: the chart lints, renders and installs as a dependency of an
// umbrella chart, whose globals reach it and whose condition turns it off.
func TestSubchart(t *testing.T) {
	umbrella := umbrellaChart(t)

	if out, err := helm("lint", "--strict", umbrella); err != nil || !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint --strict of the umbrella chart: %v\n%s", err, out)
	}

	objects := renderChart(t, umbrellaRelease, umbrellaRelease, umbrella)
	deployment, manager := deploymentOf(t, objects)
	if deployment.Name != "platform-surge-operator" {
		t.Errorf("the Deployment is named %q, want it after the umbrella's release: platform-surge-operator", deployment.Name)
	}
	if deployment.Spec.Replicas == nil || *deployment.Spec.Replicas != 2 {
		t.Errorf("the umbrella's surge-operator.replicaCount does not reach the Deployment: %v", deployment.Spec.Replicas)
	}
	if apiKey := envVar(manager, "SURGE_API_KEY"); apiKey == nil || apiKey.ValueFrom == nil || apiKey.ValueFrom.SecretKeyRef == nil ||
		apiKey.ValueFrom.SecretKeyRef.Name != "surge-api-key" {
		t.Errorf("the umbrella's surge-operator.apiKey does not reach the manager: %+v", apiKey)
	}
	if len(ofKind(objects, "CustomResourceDefinition")) == 0 {
		t.Errorf("the subchart renders no CRD")
	}
	find(t, objects, "ConfigMap", "platform-settings")

	for _, obj := range renderChart(t, umbrellaRelease, umbrellaRelease, umbrella, "--set", "surge-operator.enabled=false") {
		if obj.GetLabels()["app.kubernetes.io/name"] == "surge-operator" {
			t.Errorf("surge-operator.enabled=false still renders %s", manifests.Describe(obj))
		}
	}
}

// TestSubchartInstalls installs the umbrella chart and uninstalls it. The
// CRDs stay with the suite's standalone release, which owns them: a cluster
// takes its CRDs from one release.
func TestSubchartInstalls(t *testing.T) {
	ctx := context.Background()
	namespace := restrictedNamespace(ctx, t, umbrellaRelease)
	umbrella := umbrellaChart(t)

	mustHelm(t, "install", umbrellaRelease, umbrella, "--namespace", namespace, "--set", "surge-operator.crds.enabled=false")
	deployment := &appsv1.Deployment{}
	mustGet(ctx, t, namespace, "platform-surge-operator", deployment)
	if deployment.Labels["app.kubernetes.io/instance"] != umbrellaRelease {
		t.Errorf("the subchart's Deployment is labelled instance %q, want the umbrella's release", deployment.Labels["app.kubernetes.io/instance"])
	}

	mustHelm(t, "uninstall", umbrellaRelease, "--namespace", namespace)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(deployment), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the subchart's Deployment after helm uninstall of the umbrella: got %v, want it gone", err)
	}
}
