package helm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/surge-operator/surge-operator/test/manifests"
	"github.com/surge-operator/surge-operator/test/podsecurity"
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
		objects := renderChart(t, release, "surge-operator", chartDir)
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
metrics: {tls: {existingSecret: surge-metrics-tls}}
serviceMonitor: {enabled: true, clientCertSecret: prometheus-tls}
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

// TestDeploymentValues: the values that shape the manager's Deployment and
// pod reach it, and the API server accepts what they render.
func TestDeploymentValues(t *testing.T) {
	ctx := context.Background()
	// A namespace of its own: the install tests leave a release in
	// surge-operator, whose Deployment a dry run would collide with.
	namespace := restrictedNamespace(ctx, t, "rendered-values")
	// The API server admits a pod only with a PriorityClass that exists.
	priority := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "platform-critical"}, Value: 1000}
	if err := k8s.Create(ctx, priority); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objects := renderValues(t, `
strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}
revisionHistoryLimit: 3
logLevel: debug
priorityClassName: platform-critical
extraVolumes:
- name: proxy-ca
  configMap: {name: proxy-ca}
extraVolumeMounts:
- {name: proxy-ca, mountPath: /etc/proxy-ca, readOnly: true}
extraEnv:
- {name: SSL_CERT_DIR, value: /etc/proxy-ca}
`)
	deployment, manager := deploymentOf(t, objects)
	spec := deployment.Spec.Template.Spec
	checks := map[string]bool{
		"strategy": deployment.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && deployment.Spec.Strategy.RollingUpdate != nil &&
			deployment.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() == 0 && deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() == 1,
		"revisionHistoryLimit": deployment.Spec.RevisionHistoryLimit != nil && *deployment.Spec.RevisionHistoryLimit == 3,
		"logLevel":             slices.Contains(manager.Args, "--zap-log-level=debug"),
		"priorityClassName":    spec.PriorityClassName == "platform-critical",
		"extraVolumes":         len(spec.Volumes) == 1 && spec.Volumes[0].ConfigMap != nil && spec.Volumes[0].ConfigMap.Name == "proxy-ca",
		"extraVolumeMounts":    len(manager.VolumeMounts) == 1 && manager.VolumeMounts[0].MountPath == "/etc/proxy-ca" && manager.VolumeMounts[0].ReadOnly,
	}
	for value, ok := range checks {
		if !ok {
			t.Errorf("%s does not reach the Deployment", value)
		}
	}
	deployment.Namespace = namespace
	if err := k8s.Create(ctx, deployment, client.DryRunAll); err != nil {
		t.Errorf("the API server refuses the Deployment: %v", err)
	}
	podsecurity.ExpectRestricted(ctx, t, k8s, namespace, spec)

	deployment, manager = deploymentOf(t, render(t))
	if deployment.Spec.RevisionHistoryLimit == nil || *deployment.Spec.RevisionHistoryLimit != 10 || deployment.Spec.Strategy.Type != "" {
		t.Errorf("by default the Deployment keeps %v ReplicaSets with strategy %+v, want 10 and Kubernetes' default", deployment.Spec.RevisionHistoryLimit, deployment.Spec.Strategy)
	}
	if !slices.Contains(manager.Args, "--zap-log-level=info") {
		t.Errorf("the manager does not log at info by default: %v", manager.Args)
	}

	_, manager = deploymentOf(t, render(t, "--set", "logLevel=2"))
	if !slices.Contains(manager.Args, "--zap-log-level=2") {
		t.Errorf("logLevel=2 does not reach the manager: %v", manager.Args)
	}

	_, err := templateValues(t, "strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}")
	if err == nil || !strings.Contains(err.Error(), "strategy.rollingUpdate applies to type RollingUpdate only") {
		t.Errorf("strategy Recreate with rollingUpdate: got %v, want it refused with the reason", err)
	}
	deployment, _ = deploymentOf(t, renderValues(t, "strategy: {type: Recreate}"))
	if deployment.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy type Recreate renders %+v", deployment.Spec.Strategy)
	}
}

// TestCRDAnnotations: crds.annotations reach every CRD, beside the
// annotation that keeps them, which stays crds.keep's to set.
func TestCRDAnnotations(t *testing.T) {
	crds := ofKind(renderValues(t, "crds: {annotations: {argocd.argoproj.io/sync-options: ServerSideApply=true}}"), "CustomResourceDefinition")
	if len(crds) == 0 {
		t.Fatal("no CRD rendered")
	}
	for _, crd := range crds {
		annotations := crd.GetAnnotations()
		if annotations["argocd.argoproj.io/sync-options"] != "ServerSideApply=true" || annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is annotated %v, want crds.annotations and the keep policy", crd.GetName(), annotations)
		}
	}
	_, err := templateValues(t, "crds: {keep: false, annotations: {helm.sh/resource-policy: keep}}")
	if err == nil || !strings.Contains(err.Error(), "crds.annotations cannot set helm.sh/resource-policy") {
		t.Errorf("crds.annotations with helm.sh/resource-policy: got %v, want it refused in favour of crds.keep", err)
	}
}

// TestRBACCreate: rbac.create=false renders no role and no binding, and
// still the manager, running as its ServiceAccount.
func TestRBACCreate(t *testing.T) {
	objects := render(t, append([]string{"--set", "rbac.create=false", "--set", "serviceMonitor.enabled=true"}, monitoringSecrets...)...)
	for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
		for _, obj := range ofKind(objects, kind) {
			t.Errorf("rbac.create=false still renders %s", manifests.Describe(obj))
		}
	}
	deployment, _ := deploymentOf(t, objects)
	find(t, objects, "ServiceAccount", deployment.Spec.Template.Spec.ServiceAccountName)

	withRBAC := render(t)
	for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
		if len(ofKind(withRBAC, kind)) == 0 {
			t.Errorf("by default the chart renders no %s", kind)
		}
	}
}

// TestNetworkPolicy: the NetworkPolicy selects the manager's pod, lets in
// only connections to the metrics port, and lets out only DNS and the API
// server's and Surge's ports, narrowed to the peers given; the API server
// accepts it.
func TestNetworkPolicy(t *testing.T) {
	if policies := ofKind(render(t), "NetworkPolicy"); len(policies) != 0 {
		t.Errorf("the chart renders a NetworkPolicy by default")
	}

	objects := renderValues(t, `
networkPolicy:
  enabled: true
  metricsFrom:
  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
  apiServer:
    to: [{ipBlock: {cidr: 10.0.0.10/32}}]
  extraEgress:
  - to: [{ipBlock: {cidr: 10.1.0.0/16}}]
    ports: [{port: 3128, protocol: TCP}]
`)
	rendered := ofKind(objects, "NetworkPolicy")
	if len(rendered) != 1 {
		t.Fatalf("networkPolicy.enabled renders %d NetworkPolicies, want 1", len(rendered))
	}
	policy := &networkingv1.NetworkPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(rendered[0].Object, policy); err != nil {
		t.Fatal(err)
	}
	deployment, _ := deploymentOf(t, objects)
	selector, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
	if err != nil || !selector.Matches(labels.Set(deployment.Spec.Template.Labels)) || selector.Empty() {
		t.Errorf("the NetworkPolicy selects %v, want the manager's pod (labelled %v)", policy.Spec.PodSelector, deployment.Spec.Template.Labels)
	}
	if !slices.Equal(policy.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("the NetworkPolicy governs %v, want ingress and egress", policy.Spec.PolicyTypes)
	}

	ingress := policy.Spec.Ingress
	if len(ingress) != 1 || !slices.Equal(ports(ingress[0].Ports), []string{"TCP/8443"}) ||
		len(ingress[0].From) != 1 || ingress[0].From[0].NamespaceSelector == nil ||
		ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("the NetworkPolicy lets in %+v, want the metrics port from metricsFrom only", ingress)
	}

	want := []struct {
		what  string
		ports []string
		to    string
	}{
		{"the API server", []string{"TCP/443", "TCP/6443"}, "10.0.0.10/32"},
		{"Surge", []string{"TCP/443"}, "any"},
		{"DNS", []string{"TCP/53", "UDP/53"}, "kube-dns"},
		{"extraEgress", []string{"TCP/3128"}, "10.1.0.0/16"},
	}
	egress := policy.Spec.Egress
	if len(egress) != len(want) {
		t.Fatalf("the NetworkPolicy lets out %d rules, want %d: %+v", len(egress), len(want), egress)
	}
	for i, rule := range egress {
		to := "any"
		switch {
		case len(rule.To) == 1 && rule.To[0].IPBlock != nil:
			to = rule.To[0].IPBlock.CIDR
		case len(rule.To) == 1 && rule.To[0].PodSelector != nil && rule.To[0].NamespaceSelector != nil:
			to = rule.To[0].PodSelector.MatchLabels["k8s-app"]
		case len(rule.To) > 0:
			to = fmt.Sprint(rule.To)
		}
		if got := ports(rule.Ports); !slices.Equal(got, want[i].ports) || to != want[i].to {
			t.Errorf("egress to %s allows ports %v to %s, want %v to %s", want[i].what, got, to, want[i].ports, want[i].to)
		}
	}

	ctx := context.Background()
	policy.Namespace = restrictedNamespace(ctx, t, "rendered-values")
	if err := k8s.Create(ctx, policy, client.DryRunAll); err != nil {
		t.Errorf("the API server refuses the NetworkPolicy: %v", err)
	}
}

// ports lists NetworkPolicy ports as protocol/port, sorted.
func ports(list []networkingv1.NetworkPolicyPort) []string {
	var out []string
	for _, p := range list {
		protocol := "TCP"
		if p.Protocol != nil {
			protocol = string(*p.Protocol)
		}
		out = append(out, fmt.Sprintf("%s/%s", protocol, p.Port.String()))
	}
	slices.Sort(out)
	return out
}

// TestExtraObjects: extraObjects render as maps and as strings, each
// through the template engine.
func TestExtraObjects(t *testing.T) {
	objects := renderValues(t, `
extraObjects:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: '{{ include "surge-operator.fullname" . }}-extra'
    namespace: '{{ .Release.Namespace }}'
  data:
    release: '{{ .Release.Name }}'
- |
  apiVersion: v1
  kind: Secret
  metadata:
    name: {{ .Release.Name }}-api-key
    namespace: {{ .Release.Namespace }}
  stringData:
    api-key: {{ "from-a-template" | quote }}
`)
	configMap := find(t, objects, "ConfigMap", "surge-operator-extra")
	if release, _, _ := unstructured.NestedString(configMap.Object, "data", "release"); release != "surge-operator" || configMap.GetNamespace() != "surge-operator" {
		t.Errorf("the extra ConfigMap, a map, is not templated: %v", configMap.Object)
	}
	secret := find(t, objects, "Secret", "surge-operator-api-key")
	if key, _, _ := unstructured.NestedString(secret.Object, "stringData", "api-key"); key != "from-a-template" {
		t.Errorf("the extra Secret, a string, is not templated: %v", secret.Object)
	}
	if len(ofKind(render(t), "ConfigMap")) != 0 {
		t.Errorf("extraObjects render something by default")
	}
}

// TestServiceMonitor: the ServiceMonitor keeps the metrics' own labels,
// passes relabelings on, and scrapes over mutual TLS: Prometheus verifies
// the manager's certificate, of metrics.tls.existingSecret, by the name of
// the metrics Service, and presents its own, of clientCertSecret. No token,
// no insecureSkipVerify, no ServiceAccount token Secret. Without the two
// Secrets, the chart says it needs them.
func TestServiceMonitor(t *testing.T) {
	objects := renderChart(t, "scrape", "monitoring-test", chartDir, append([]string{"--set", "serviceMonitor.enabled=true"}, monitoringSecrets...)...)
	endpoint := monitorEndpoint(t, objects, "scrape-surge-operator")
	if endpoint["honorLabels"] != true {
		t.Errorf("the ServiceMonitor does not honor the metrics' labels by default, so the token alert would name the operator's namespace: %v", endpoint)
	}
	for _, insecure := range []string{"bearerTokenFile", "bearerTokenSecret", "authorization"} {
		if _, ok := endpoint[insecure]; ok {
			t.Errorf("the ServiceMonitor sends a token (%s)", insecure)
		}
	}
	tlsConfig, _, _ := unstructured.NestedMap(endpoint, "tlsConfig")
	skip, _, _ := unstructured.NestedBool(tlsConfig, "insecureSkipVerify")
	service := ofKind(objects, "Service")[0]
	want := map[string]string{
		"serverName":       service.GetName() + ".monitoring-test.svc",
		"ca.secret.name":   "prometheus-tls",
		"ca.secret.key":    "ca.crt",
		"cert.secret.name": "prometheus-tls",
		"cert.secret.key":  "tls.crt",
		"keySecret.name":   "prometheus-tls",
		"keySecret.key":    "tls.key",
	}
	for field, value := range want {
		got, _, _ := unstructured.NestedString(tlsConfig, strings.Split(field, ".")...)
		if got != value {
			t.Errorf("the ServiceMonitor's tlsConfig.%s is %q, want %q", field, got, value)
		}
	}
	if skip {
		t.Errorf("the ServiceMonitor skips verifying the manager's certificate")
	}
	for _, secret := range ofKind(objects, "Secret") {
		if secret.Object["type"] == "kubernetes.io/service-account-token" {
			t.Errorf("the chart renders a ServiceAccount token Secret, %s", secret.GetName())
		}
	}
	_, manager := deploymentOf(t, objects)
	if !slices.Contains(manager.Args, "--metrics-cert-dir=/etc/surge-operator/metrics-tls") ||
		!slices.Contains(manager.Args, "--metrics-client-ca=/etc/surge-operator/metrics-tls/ca.crt") ||
		!slices.ContainsFunc(manager.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/surge-operator/metrics-tls" }) {
		t.Errorf("the manager does not serve metrics with metrics.tls.existingSecret's certificate: %v, %v", manager.Args, manager.VolumeMounts)
	}

	for _, missing := range [][]string{
		{"--set", "serviceMonitor.clientCertSecret=prometheus-tls"},
		{"--set", "metrics.tls.existingSecret=surge-metrics-tls"},
	} {
		_, err := helm(append([]string{"template", "scrape", chartDir, "--set", "serviceMonitor.enabled=true"}, missing...)...)
		if err == nil || !strings.Contains(err.Error(), "serviceMonitor.enabled needs") {
			t.Errorf("a ServiceMonitor with only %v: got %v, want the chart to say which Secret it needs", missing, err)
		}
	}

	objects = renderValues(t, `
metrics: {port: 9443, tls: {existingSecret: surge-metrics-tls}}
serviceMonitor:
  enabled: true
  namespace: monitoring
  scrapeTimeout: 10s
  clientCertSecret: prometheus-tls
  honorLabels: false
  relabelings:
  - {action: replace, sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: node}
  metricRelabelings:
  - {action: drop, sourceLabels: [__name__], regex: workqueue_.*}
`)
	endpoint = monitorEndpoint(t, objects, "surge-operator")
	monitor := find(t, objects, "ServiceMonitor", "surge-operator")
	watched, _, _ := unstructured.NestedStringSlice(monitor.Object, "spec", "namespaceSelector", "matchNames")
	if monitor.GetNamespace() != "monitoring" || !slices.Equal(watched, []string{"surge-operator"}) {
		t.Errorf("with serviceMonitor.namespace the ServiceMonitor is in %q and looks in %v, want monitoring and the release namespace", monitor.GetNamespace(), watched)
	}
	if endpoint["scrapeTimeout"] != "10s" {
		t.Errorf("serviceMonitor.scrapeTimeout does not reach the ServiceMonitor: %v", endpoint)
	}
	ports, _, _ := unstructured.NestedSlice(ofKind(objects, "Service")[0].Object, "spec", "ports")
	_, manager = deploymentOf(t, objects)
	if len(ports) != 1 || fmt.Sprint(ports[0].(map[string]any)["port"]) != "9443" || manager.Ports[0].ContainerPort != 9443 ||
		!slices.Contains(manager.Args, "--metrics-bind-address=:9443") {
		t.Errorf("metrics.port does not reach the Service, the container and the flag: %v, %v, %v", ports, manager.Ports, manager.Args)
	}
	if endpoint["honorLabels"] != false {
		t.Errorf("serviceMonitor.honorLabels=false does not reach the ServiceMonitor: %v", endpoint)
	}
	relabelings, _, _ := unstructured.NestedSlice(endpoint, "relabelings")
	metricRelabelings, _, _ := unstructured.NestedSlice(endpoint, "metricRelabelings")
	if len(relabelings) != 1 || relabelings[0].(map[string]any)["targetLabel"] != "node" ||
		len(metricRelabelings) != 1 || metricRelabelings[0].(map[string]any)["regex"] != "workqueue_.*" {
		t.Errorf("the relabelings do not reach the ServiceMonitor: %v, %v", relabelings, metricRelabelings)
	}
}

// monitorEndpoint returns the one endpoint of the named ServiceMonitor,
// checking that it selects the metrics Service.
func monitorEndpoint(t *testing.T, objects []*unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	monitor := find(t, objects, "ServiceMonitor", name)
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("the ServiceMonitor has %d endpoints, want 1", len(endpoints))
	}
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	service := ofKind(objects, "Service")[0]
	for key, value := range selector {
		if service.GetLabels()[key] != value {
			t.Errorf("the ServiceMonitor selects %s=%s, which the metrics Service does not carry", key, value)
		}
	}
	return endpoints[0].(map[string]any)
}

// everyValue sets each value the chart has, apart from those that need
// the Prometheus Operator's CRDs.
const everyValue = `
nameOverride: surge
fullnameOverride: everything-surge
commonLabels: {team: platform}
image: {repository: registry.example.com/surge/operator, tag: v9.9.9, pullPolicy: IfNotPresent}
imagePullSecrets: [{name: registry-credentials}]
replicaCount: 2
deploymentAnnotations: {example.com/reloader: surge-api-key}
deploymentLabels: {example.com/tier: system}
strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
revisionHistoryLimit: 5
logLevel: debug
resources: {requests: {cpu: 50m, memory: 128Mi}, limits: {memory: 512Mi}}
priorityClassName: ""
podSecurityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
podAnnotations: {example.com/owner: platform}
podLabels: {example.com/tier: system}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: surge}}}}]}}
dnsConfig: {options: [{name: ndots, value: "1"}]}
initContainers: [{name: wait, image: registry.example.com/busybox:1, command: [sh, -c, "true"], securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}}}]
extraContainers: [{name: sidecar, image: registry.example.com/busybox:1, command: [sleep, infinity], securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}}}]
livenessProbe: {initialDelaySeconds: 10, periodSeconds: 15, timeoutSeconds: 2, failureThreshold: 4}
readinessProbe: {initialDelaySeconds: 3, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: surge}}}]
serviceAccount: {create: true, name: everything-manager, annotations: {example.com/role: manager}}
crds: {enabled: false, keep: true, annotations: {example.com/owner: platform}}
scope: {namespaces: [everything]}
rbac: {create: true}
leaderElection: true
shards: [{name: eu, replicaCount: 2, resources: {requests: {cpu: 50m, memory: 128Mi}, limits: {memory: 1Gi}}}]
extraArgs: [--resync-interval=5m]
extraEnv: [{name: SSL_CERT_DIR, value: /etc/proxy-ca}]
extraVolumes: [{name: proxy-ca, configMap: {name: proxy-ca, optional: true}}]
extraVolumeMounts: [{name: proxy-ca, mountPath: /etc/proxy-ca, readOnly: true}]
apiKey: {existingSecret: surge-api-key, key: api-key}
metrics: {port: 9443, tls: {existingSecret: surge-metrics-tls}}
podDisruptionBudget: {enabled: true, maxUnavailable: 1}
networkPolicy:
  enabled: true
  metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  apiServer: {ports: [6443], to: [{ipBlock: {cidr: 10.0.0.0/8}}]}
  surgeAPI: {ports: [443]}
  dns: {ports: [53]}
  extraIngress: [{from: [{podSelector: {}}], ports: [{port: 8081}]}]
  extraEgress: [{ports: [{port: 3128}]}]
grafanaDashboard: {enabled: true, labels: {grafana_dashboard: "1"}, annotations: {grafana_folder: Operators}}
extraObjects:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: proxy-ca, namespace: '{{ .Release.Namespace }}'}
  data: {ca.crt: ""}
`

// TestEveryValue: with every value set the chart passes helm lint --strict
// (the Prometheus Operator's objects included), and installs and
// uninstalls against a real API server.
func TestEveryValue(t *testing.T) {
	var defaults, every map[string]any
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &defaults); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(everyValue), &every); err != nil {
		t.Fatal(err)
	}
	for key := range defaults {
		if _, ok := every[key]; !ok && key != "serviceMonitor" && key != "prometheusRule" {
			t.Errorf("everyValue does not set %s", key)
		}
	}

	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(everyValue), 0o644); err != nil {
		t.Fatal(err)
	}
	monitoring := []string{"--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.clientCertSecret=prometheus-tls", "--set", "serviceMonitor.relabelings[0].action=keep",
		"--set", "serviceMonitor.relabelings[0].sourceLabels[0]=__name__", "--set", "prometheusRule.enabled=true"}
	if out, err := helm(append([]string{"lint", "--strict", chartDir, "--values", file}, monitoring...)...); err != nil || !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint --strict with every value: %v\n%s", err, out)
	}

	ctx := context.Background()
	namespace := restrictedNamespace(ctx, t, "everything")
	mustHelm(t, "install", "everything", chartDir, "--namespace", namespace, "--values", file)
	deployment := &appsv1.Deployment{}
	mustGet(ctx, t, namespace, "everything-surge", deployment)
	if deployment.Spec.Template.Labels["example.com/tier"] != "system" || deployment.Labels["team"] != "platform" {
		t.Errorf("the installed Deployment is labelled %v, its pod %v", deployment.Labels, deployment.Spec.Template.Labels)
	}
	mustGet(ctx, t, namespace, "everything-surge-shard-eu", &appsv1.Deployment{})
	mustGet(ctx, t, namespace, "everything-surge", &networkingv1.NetworkPolicy{})
	mustGet(ctx, t, namespace, "proxy-ca", &corev1.ConfigMap{})
	mustHelm(t, "uninstall", "everything", "--namespace", namespace)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(deployment), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Deployment after helm uninstall: got %v, want it gone", err)
	}
}

// TestEveryValueIsDocumented: the chart's README, which helm-docs writes
// from the "# --" comments of values.yaml, describes every value it lists,
// and lists every value at the top of values.yaml, so that no value goes
// undocumented.
func TestEveryValueIsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		cells := strings.Split(strings.TrimSpace(line), " | ")
		if len(cells) != 3 || !strings.HasPrefix(cells[0], "| `") {
			continue
		}
		key := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		if strings.TrimSpace(strings.TrimSuffix(cells[2], "|")) == "" {
			t.Errorf("the chart's README lists %s without a description: give it a \"# --\" comment in values.yaml", key)
		}
		documented[strings.SplitN(key, ".", 2)[0]] = true
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	for key := range values {
		if !documented[key] {
			t.Errorf("the chart's README does not list %s: run make chart-readme", key)
		}
	}
}
