package install_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// TestPrometheusMonitorCanBeAdded follows config/prometheus' instructions:
// list ../prometheus under config/default's components. The ServiceMonitor
// must then land next to the metrics Service and scrape its HTTPS port over
// mutual TLS, verifying the certificate the manager now serves, with no
// token. config/default alone must not need the Prometheus Operator.
func TestPrometheusMonitorCanBeAdded(t *testing.T) {
	for _, obj := range installed {
		if obj.GetKind() == "ServiceMonitor" {
			t.Errorf("config/default installs %s, which fails without the Prometheus Operator's CRDs", manifests.Describe(obj))
		}
	}

	objects := kustomizeDefaultWithComponent(t, "prometheus")
	var monitors, services []*unstructured.Unstructured
	var manager *unstructured.Unstructured
	for _, obj := range objects {
		switch {
		case obj.GetKind() == "ServiceMonitor":
			monitors = append(monitors, obj)
		case obj.GetKind() == "Service" && obj.GetName() == metricsService:
			services = append(services, obj)
		case obj.GetKind() == "Deployment":
			manager = obj
		}
	}
	if len(monitors) != 1 || len(services) != 1 {
		t.Fatalf("with ../prometheus, config/default builds %d ServiceMonitors and %d Services named %s; want one each", len(monitors), len(services), metricsService)
	}
	monitor, service := monitors[0], services[0]
	if monitor.GetNamespace() != namespace {
		t.Errorf("%s is in namespace %q, want %q (a ServiceMonitor only selects Services of its own namespace by default)", manifests.Describe(monitor), monitor.GetNamespace(), namespace)
	}
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	if len(selector) == 0 {
		t.Errorf("%s selects every Service", manifests.Describe(monitor))
	}
	for key, value := range selector {
		if service.GetLabels()[key] != value {
			t.Errorf("%s selects %s=%s, which Service %s does not carry", manifests.Describe(monitor), key, value, metricsService)
		}
	}
	servicePorts, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports")
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) == 0 {
		t.Fatalf("%s has no endpoints", manifests.Describe(monitor))
	}
	for _, e := range endpoints {
		endpoint, _ := e.(map[string]any)
		if endpoint["scheme"] != "https" {
			t.Errorf("%s scrapes with scheme %v; the manager serves metrics over https", manifests.Describe(monitor), endpoint["scheme"])
		}
		found := false
		for _, p := range servicePorts {
			if port, _ := p.(map[string]any); port["name"] == endpoint["port"] {
				found = true
			}
		}
		if !found {
			t.Errorf("%s scrapes port %v, which Service %s does not name", manifests.Describe(monitor), endpoint["port"], metricsService)
		}
		for _, insecure := range []string{"bearerTokenFile", "bearerTokenSecret", "authorization"} {
			if _, ok := endpoint[insecure]; ok {
				t.Errorf("%s sends a token (%s)", manifests.Describe(monitor), insecure)
			}
		}
		tlsConfig, _, _ := unstructured.NestedMap(endpoint, "tlsConfig")
		if skip, _, _ := unstructured.NestedBool(tlsConfig, "insecureSkipVerify"); skip {
			t.Errorf("%s skips verifying the manager's certificate", manifests.Describe(monitor))
		}
		if serverName, _, _ := unstructured.NestedString(tlsConfig, "serverName"); serverName != metricsService+"."+namespace+".svc" {
			t.Errorf("%s verifies the name %q, want the metrics Service's, %s.%s.svc", manifests.Describe(monitor), serverName, metricsService, namespace)
		}
		if key, _, _ := unstructured.NestedString(tlsConfig, "keySecret", "name"); key == "" {
			t.Errorf("%s presents no client certificate", manifests.Describe(monitor))
		}
	}
	containers, _, _ := unstructured.NestedSlice(manager.Object, "spec", "template", "spec", "containers")
	container, _ := containers[0].(map[string]any)
	managerArgs, _, _ := unstructured.NestedStringSlice(container, "args")
	if !slices.Contains(managerArgs, "--metrics-cert-dir=/etc/surge-operator/metrics-tls") ||
		!slices.Contains(managerArgs, "--metrics-client-ca=/etc/surge-operator/metrics-tls/ca.crt") {
		t.Errorf("with ../prometheus the manager does not serve metrics with a certificate of its Secret: %v", managerArgs)
	}
}

// TestAlertsComponent follows config/alerts' instructions: listed under
// components in config/default, it installs the PrometheusRule in the
// operator's namespace, with the operator's prefix.
func TestAlertsComponent(t *testing.T) {
	objects := kustomizeDefaultWithComponent(t, "alerts")
	var rules []*unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() == "PrometheusRule" {
			rules = append(rules, obj)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("config/default with config/alerts builds %d PrometheusRules, want 1", len(rules))
	}
	if rules[0].GetNamespace() != namespace || rules[0].GetName() != namePrefix+"alerts" {
		t.Errorf("the alerts land as %s, want %s/%salerts", manifests.Describe(rules[0]), namespace, namePrefix)
	}
	if len(objects) != len(installed)+1 {
		t.Errorf("config/default with config/alerts builds %d objects, want its own %d and the PrometheusRule", len(objects), len(installed))
	}
}

// kustomizeDefaultWithComponent builds config/default with one of the
// components of config/ added, as the component's instructions say.
func kustomizeDefaultWithComponent(t *testing.T, component string) []*unstructured.Unstructured {
	t.Helper()
	return kustomizeDefaultWith(t, func(k map[string]any) { k["components"] = []any{"../" + component} })
}

// kustomizeDefaultWith builds a copy of config/default whose kustomization
// edit has changed.
func kustomizeDefaultWith(t *testing.T, edit func(kustomization map[string]any)) []*unstructured.Unstructured {
	t.Helper()
	config := filepath.Join(t.TempDir(), "config")
	if err := os.CopyFS(config, os.DirFS(filepath.Join(repoRoot, "config"))); err != nil {
		t.Fatal(err)
	}
	kustomization := filepath.Join(config, "default", "kustomization.yaml")
	raw, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	edit(k)
	if raw, err = yaml.Marshal(k); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kustomization, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	objects, err := kustomize(filepath.Join(config, "default"))
	if err != nil {
		t.Fatal(err)
	}
	return objects
}
