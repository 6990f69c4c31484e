package helm_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/surge-operator/surge-operator/test/podsecurity"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// valueSets are the configurations the chart must lint and render under.
var valueSets = map[string][]string{
	"defaults": nil,
	"everything on": {
		"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
		"--set", "grafanaDashboard.enabled=true", "--set", "podDisruptionBudget.enabled=true",
		"--set", "apiKey.existingSecret=surge-api-key", "--set", "replicaCount=2",
		"--set", "metrics.tls.existingSecret=surge-metrics-tls", "--set", "serviceMonitor.clientCertSecret=prometheus-tls",
	},
	"existing service account, no CRDs, no leader election": {
		"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=platform-operators",
		"--set", "crds.enabled=false", "--set", "leaderElection=false",
	},
	"pinned by digest from a private registry": {
		"--set", "image.repository=registry.example.com:5000/surge/operator",
		"--set", "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"--set", "imagePullSecrets[0].name=registry-credentials",
	},
}

func TestLint(t *testing.T) {
	for name, flags := range valueSets {
		t.Run(name, func(t *testing.T) {
			out := mustHelm(t, append([]string{"lint", "--strict", chartDir}, flags...)...)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestTemplateRendersTheInstallation renders what
// `helm template t charts/surge-operator --include-crds --set serviceMonitor.enabled=true --set prometheusRule.enabled=true`
// shows, and checks that the monitoring objects appear only when asked for.
func TestTemplateRendersTheInstallation(t *testing.T) {
	kinds := func(objects []*unstructured.Unstructured) map[string]int {
		count := map[string]int{}
		for _, obj := range objects {
			count[obj.GetKind()]++
		}
		return count
	}
	full := kinds(render(t, append([]string{"--include-crds", "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"}, monitoringSecrets...)...))
	for _, kind := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "ServiceMonitor", "PrometheusRule"} {
		if full[kind] == 0 {
			t.Errorf("the chart renders no %s with monitoring on; got %v", kind, full)
		}
	}
	defaults := kinds(render(t))
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap", "PodDisruptionBudget"} {
		if defaults[kind] != 0 {
			t.Errorf("the chart renders a %s by default, which fails without its CRD or is not asked for", kind)
		}
	}
	if defaults["CustomResourceDefinition"] == 0 {
		t.Errorf("the chart renders no CRD by default")
	}
}

func TestMisspeltValueIsRefused(t *testing.T) {
	for _, flag := range []string{"image.tagg=v1", "replicaCont=2", "crds.kep=false", "serviceMonitor.enable=true"} {
		_, err := helm("template", "surge-operator", chartDir, "--set", flag)
		if err == nil || !strings.Contains(err.Error(), "additional properties") {
			t.Errorf("--set %s: got %v, want it refused by values.schema.json", flag, err)
		}
	}
}

// TestChartCarriesConfig: the chart's CRDs and the manager's rules are those
// of config/, so that the chart and kustomize install the same operator.
func TestChartCarriesConfig(t *testing.T) {
	rendered := render(t)
	crds := map[string]*unstructured.Unstructured{}
	for _, crd := range ofKind(rendered, "CustomResourceDefinition") {
		crds[crd.GetName()] = crd
	}
	sources, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range sources {
		for _, want := range manifests.ReadFile(t, source) {
			got, ok := crds[want.GetName()]
			if !ok {
				t.Errorf("the chart has no CRD %s of %s; run make chart", want.GetName(), source)
				continue
			}
			if !reflect.DeepEqual(got.Object["spec"], want.Object["spec"]) {
				t.Errorf("the chart's CRD %s differs from %s; run make chart", want.GetName(), source)
			}
			if got.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s is not kept on uninstall by default", got.GetName())
			}
			delete(crds, want.GetName())
		}
	}
	for name := range crds {
		t.Errorf("the chart has CRD %s, which config/crd/bases does not", name)
	}

	var wantRules []any
	for _, role := range manifests.ReadFile(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml")) {
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		wantRules = append(wantRules, rules...)
	}
	manager := find(t, rendered, "ClusterRole", "surge-operator-manager")
	if gotRules, _, _ := unstructured.NestedSlice(manager.Object, "rules"); !reflect.DeepEqual(gotRules, wantRules) {
		t.Errorf("the manager's ClusterRole grants\n%v\nbut config/rbac/role.yaml says\n%v", gotRules, wantRules)
	}
	// The suites run the operator with config/rbac's roles; the chart's
	// copies of the others must grant the same.
	for _, copied := range []struct{ source, kind, name string }{
		{"leader_election_role.yaml", "Role", "surge-operator-leader-election"},
		{"metrics_auth_role.yaml", "ClusterRole", "surge-operator-metrics-auth"},
	} {
		source := manifests.ReadFile(t, filepath.Join(repoRoot, "config", "rbac", copied.source))
		wantRules, _, _ := unstructured.NestedSlice(source[0].Object, "rules")
		got := find(t, rendered, copied.kind, copied.name)
		if gotRules, _, _ := unstructured.NestedSlice(got.Object, "rules"); !reflect.DeepEqual(gotRules, wantRules) {
			t.Errorf("the chart's %s %s grants\n%v\nbut config/rbac/%s says\n%v", copied.kind, copied.name, gotRules, copied.source, wantRules)
		}
	}

	if crds := ofKind(render(t, "--set", "crds.enabled=false"), "CustomResourceDefinition"); len(crds) > 0 {
		t.Errorf("crds.enabled=false still renders %d CRDs", len(crds))
	}
	for _, crd := range ofKind(render(t, "--set", "crds.keep=false"), "CustomResourceDefinition") {
		if _, kept := crd.GetAnnotations()["helm.sh/resource-policy"]; kept {
			t.Errorf("crds.keep=false still keeps CRD %s", crd.GetName())
		}
	}
}

func find(t *testing.T, objects []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range ofKind(objects, kind) {
		if obj.GetName() == name {
			return obj
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func deploymentOf(t *testing.T, objects []*unstructured.Unstructured) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	deployments := ofKind(objects, "Deployment")
	if len(deployments) != 1 {
		t.Fatalf("the chart renders %d Deployments, want 1", len(deployments))
	}
	deployment := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(deployments[0].Object, deployment); err != nil {
		t.Fatal(err)
	}
	for _, c := range deployment.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return deployment, c
		}
	}
	t.Fatalf("the Deployment has no manager container")
	return nil, corev1.Container{}
}

func envVar(container corev1.Container, name string) *corev1.EnvVar {
	for i := range container.Env {
		if container.Env[i].Name == name {
			return &container.Env[i]
		}
	}
	return nil
}

// TestValuesReachTheDeployment sets each value of the contract and looks
// for it where the Deployment uses it.
func TestValuesReachTheDeployment(t *testing.T) {
	deployment, manager := deploymentOf(t, render(t))
	if manager.Image != "ghcr.io/surge-operator/surge-operator:v0.1.0" {
		t.Errorf("the default image is %q, want the chart's appVersion", manager.Image)
	}
	if env := envVar(manager, "SURGE_API_KEY"); env != nil {
		t.Errorf("without apiKey.existingSecret the manager still gets SURGE_API_KEY: %+v", env)
	}
	if !slices.Contains(manager.Args, "--leader-elect") {
		t.Errorf("leader election is off by default: %v", manager.Args)
	}
	if env := envVar(manager, "CONTAINER_MEMORY_LIMIT"); env == nil || env.ValueFrom == nil || env.ValueFrom.ResourceFieldRef == nil ||
		env.ValueFrom.ResourceFieldRef.Resource != "limits.memory" || envVar(manager, "GOMEMLIMIT") != nil {
		t.Errorf("the manager does not derive its Go memory limit from the container's limits.memory: %+v", manager.Env)
	}
	// The Lease lives where the leader-election Role lets the manager write.
	if !slices.Contains(manager.Args, "--leader-election-namespace="+deployment.Namespace) {
		t.Errorf("the Lease is not kept in the release namespace %s, where the leader-election Role applies: %v", deployment.Namespace, manager.Args)
	}
	if r := manager.Resources; r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("the manager should request CPU and memory and limit memory by default: %+v", r)
	}

	objects := render(t,
		"--set", "image.repository=registry.example.com/surge/operator", "--set", "image.tag=v9.9.9", "--set", "image.pullPolicy=Always",
		"--set", "imagePullSecrets[0].name=registry-credentials",
		"--set", "replicaCount=3",
		"--set", "resources.limits.memory=1Gi",
		"--set", "nodeSelector.pool=system",
		"--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
		"--set", "topologySpreadConstraints[0].maxSkew=1", "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"--set", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
		"--set", "serviceAccount.name=surge", "--set", "serviceAccount.annotations.team=platform",
		"--set", "extraArgs[0]=--watch-namespace=team-a",
		"--set", "extraEnv[0].name=SURGE_API_URL", "--set", "extraEnv[0].value=https://surge.example.com",
		"--set", "apiKey.existingSecret=surge-credentials", "--set", "apiKey.key=token",
		"--set", "podDisruptionBudget.enabled=true",
		"--set", "global.imagePullSecrets[0]=umbrella-credentials", "--set", "global.imagePullSecrets[1].name=registry-credentials",
		"--set", "deploymentAnnotations.example\\.com/reloader=surge-credentials", "--set", "deploymentLabels.tier=system",
		"--set", "dnsConfig.options[0].name=ndots", "--set-string", "dnsConfig.options[0].value=1",
		"--set", "initContainers[0].name=wait-for-proxy", "--set", "initContainers[0].image=registry.example.com/wait:1",
		"--set", "extraContainers[0].name=proxy", "--set", "extraContainers[0].image=registry.example.com/proxy:1",
		"--set", "livenessProbe.failureThreshold=6", "--set", "readinessProbe.periodSeconds=30",
	)
	deployment, manager = deploymentOf(t, objects)
	spec := deployment.Spec.Template.Spec
	checks := map[string]bool{
		"image":            manager.Image == "registry.example.com/surge/operator:v9.9.9",
		"image.pullPolicy": manager.ImagePullPolicy == corev1.PullAlways,
		"imagePullSecrets and global.imagePullSecrets, each once": slices.Equal(spec.ImagePullSecrets,
			[]corev1.LocalObjectReference{{Name: "umbrella-credentials"}, {Name: "registry-credentials"}}),
		"deploymentAnnotations":     deployment.Annotations["example.com/reloader"] == "surge-credentials",
		"deploymentLabels":          deployment.Labels["tier"] == "system",
		"dnsConfig":                 spec.DNSConfig != nil && len(spec.DNSConfig.Options) == 1 && spec.DNSConfig.Options[0].Name == "ndots",
		"initContainers":            len(spec.InitContainers) == 1 && spec.InitContainers[0].Name == "wait-for-proxy",
		"extraContainers":           len(spec.Containers) == 2 && spec.Containers[1].Name == "proxy",
		"livenessProbe":             manager.LivenessProbe != nil && manager.LivenessProbe.FailureThreshold == 6 && manager.LivenessProbe.HTTPGet != nil,
		"readinessProbe":            manager.ReadinessProbe != nil && manager.ReadinessProbe.PeriodSeconds == 30 && manager.ReadinessProbe.HTTPGet != nil,
		"replicaCount":              deployment.Spec.Replicas != nil && *deployment.Spec.Replicas == 3,
		"resources":                 manager.Resources.Limits.Memory().String() == "1Gi",
		"nodeSelector":              spec.NodeSelector["pool"] == "system",
		"tolerations":               len(spec.Tolerations) == 1 && spec.Tolerations[0].Key == "dedicated",
		"affinity":                  spec.Affinity != nil && spec.Affinity.NodeAffinity != nil,
		"topologySpreadConstraints": len(spec.TopologySpreadConstraints) == 1 && spec.TopologySpreadConstraints[0].TopologyKey == "topology.kubernetes.io/zone",
		"serviceAccount.name":       spec.ServiceAccountName == "surge",
		"extraArgs":                 slices.Contains(manager.Args, "--watch-namespace=team-a"),
		"extraEnv":                  envVar(manager, "SURGE_API_URL") != nil && envVar(manager, "SURGE_API_URL").Value == "https://surge.example.com",
	}
	for value, ok := range checks {
		if !ok {
			t.Errorf("%s does not reach the Deployment", value)
		}
	}
	switch apiKey := envVar(manager, "SURGE_API_KEY"); {
	case apiKey == nil || apiKey.ValueFrom == nil || apiKey.ValueFrom.SecretKeyRef == nil:
		t.Errorf("with apiKey.existingSecret the manager does not read SURGE_API_KEY from a Secret: %+v", apiKey)
	case apiKey.ValueFrom.SecretKeyRef.Name != "surge-credentials" || apiKey.ValueFrom.SecretKeyRef.Key != "token":
		t.Errorf("SURGE_API_KEY comes from Secret %q key %q, want surge-credentials key token", apiKey.ValueFrom.SecretKeyRef.Name, apiKey.ValueFrom.SecretKeyRef.Key)
	}
	if sa := find(t, objects, "ServiceAccount", "surge"); sa.GetAnnotations()["team"] != "platform" {
		t.Errorf("serviceAccount.annotations do not reach the ServiceAccount: %v", sa.GetAnnotations())
	}
	pdb := find(t, objects, "PodDisruptionBudget", "surge-operator")
	selector, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	for key, value := range selector {
		if deployment.Spec.Template.Labels[key] != value {
			t.Errorf("the PodDisruptionBudget selects %s=%s, which the manager's pod does not carry", key, value)
		}
	}

	_, pinned := deploymentOf(t, render(t, "--set", "image.tag=v9.9.9", "--set", "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	if pinned.Image != "ghcr.io/surge-operator/surge-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("with image.digest the image is %q, want it pinned by the digest", pinned.Image)
	}
}

// TestOneReplicaWithoutLeaderElection: leader election may be turned off
// for a single replica only; more, in the main Deployment or a shard's,
// would reconcile at once and is refused with a message saying so.
func TestOneReplicaWithoutLeaderElection(t *testing.T) {
	objects := render(t, "--set", "leaderElection=false")
	_, manager := deploymentOf(t, objects)
	if slices.Contains(manager.Args, "--leader-elect") || slices.ContainsFunc(manager.Args, isLeaderElectionFlag) {
		t.Errorf("leaderElection=false still elects a leader: %v", manager.Args)
	}
	if roles := ofKind(objects, "Role"); len(roles) != 0 {
		t.Errorf("leaderElection=false still renders the leader-election Role")
	}
	for name, flags := range map[string][]string{
		"replicaCount": {"--set", "replicaCount=2"},
		"shard eu":     {"--set", "shards[0].name=eu", "--set", "shards[0].replicaCount=3"},
	} {
		_, err := helm(append([]string{"template", "surge-operator", chartDir, "--set", "leaderElection=false"}, flags...)...)
		if err == nil || !strings.Contains(err.Error(), name+" asks for") || !strings.Contains(err.Error(), "leaderElection") {
			t.Errorf("%v with leaderElection=false: got %v, want it refused naming %s and leaderElection", flags, err, name)
		}
	}
}

// TestRenderedPodIsRestricted applies to the chart's Deployment the
// restricted Pod Security check that test/install applies to config/default.
func TestRenderedPodIsRestricted(t *testing.T) {
	ctx := context.Background()
	namespace := restrictedNamespace(ctx, t, "restricted-render")
	for name, flags := range valueSets {
		t.Run(name, func(t *testing.T) {
			deployment, _ := deploymentOf(t, render(t, flags...))
			podsecurity.ExpectRestricted(ctx, t, k8s, namespace, deployment.Spec.Template.Spec)
		})
	}
}

// restrictedNamespace creates a namespace labelled as docs/install.md tells
// users to label the release namespace.
func restrictedNamespace(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	if err := k8s.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// TestMonitoringObjects: the PrometheusRule holds the rules of config/alerts
// and the dashboard ConfigMap the dashboard's JSON, labelled for Grafana's
// sidecar.
func TestMonitoringObjects(t *testing.T) {
	objects := render(t, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.labels.release=prometheus",
		"--set", "grafanaDashboard.enabled=true")
	rule := find(t, objects, "PrometheusRule", "surge-operator")
	alerts := manifests.ReadFile(t, filepath.Join(repoRoot, "config", "alerts", "prometheus_rule.yaml"))
	if len(alerts) != 1 || !reflect.DeepEqual(rule.Object["spec"], alerts[0].Object["spec"]) {
		t.Errorf("the chart's PrometheusRule differs from config/alerts; run make chart")
	}
	if rule.GetLabels()["release"] != "prometheus" {
		t.Errorf("prometheusRule.labels do not reach the PrometheusRule: %v", rule.GetLabels())
	}

	dashboard := find(t, objects, "ConfigMap", "surge-operator-dashboard")
	if dashboard.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard ConfigMap lacks the label Grafana's sidecar looks for: %v", dashboard.GetLabels())
	}
	want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "surge-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(dashboard.Object, "data")
	if strings.TrimSpace(data["surge-operator.json"]) != strings.TrimSpace(string(want)) {
		t.Errorf("the dashboard ConfigMap does not hold dashboards/surge-operator.json")
	}
}

func isLeaderElectionFlag(arg string) bool {
	return strings.HasPrefix(arg, "--leader-election-")
}

// TestShardsRenderADeploymentEach: every shard gets a Deployment that
// reconciles the SurgeEndUsers labelled with its name under a Lease of its
// own, and the main Deployment takes those no shard does.
func TestShardsRenderADeploymentEach(t *testing.T) {
	objects := render(t, "--set", "shards[0].name=b", "--set", "shards[1].name=c",
		"--set", "shards[1].replicaCount=2", "--set", "shards[1].resources.limits.memory=2Gi")
	args := map[string][]string{}
	for _, obj := range ofKind(objects, "Deployment") {
		deployment := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, deployment); err != nil {
			t.Fatal(err)
		}
		manager := deployment.Spec.Template.Spec.Containers[0]
		args[deployment.Name] = manager.Args
		shard := deployment.Spec.Template.Labels["surge.app/shard"]
		if deployment.Spec.Selector.MatchLabels["surge.app/shard"] != shard {
			t.Errorf("%s selects pods of shard %q, its pods are of shard %q", deployment.Name, deployment.Spec.Selector.MatchLabels["surge.app/shard"], shard)
		}
		if deployment.Name == "surge-operator-shard-c" && (*deployment.Spec.Replicas != 2 || manager.Resources.Limits.Memory().String() != "2Gi") {
			t.Errorf("shard c has %d replicas and %v, want 2 and a 2Gi limit", *deployment.Spec.Replicas, manager.Resources.Limits)
		}
	}
	want := map[string][]string{
		"surge-operator":         {"--watch-label-selector=surge.app/shard notin (b,c)"},
		"surge-operator-shard-b": {"--watch-label-selector=surge.app/shard=b", "--leader-election-id=surge-operator-shard-b.surge.app"},
		"surge-operator-shard-c": {"--watch-label-selector=surge.app/shard=c", "--leader-election-id=surge-operator-shard-c.surge.app"},
	}
	if len(args) != len(want) {
		t.Fatalf("the chart renders Deployments %v, want %v", slices.Collect(maps.Keys(args)), slices.Collect(maps.Keys(want)))
	}
	for name, flags := range want {
		for _, flag := range flags {
			if !slices.Contains(args[name], flag) {
				t.Errorf("%s runs with %v, without %s", name, args[name], flag)
			}
		}
	}
	if slices.ContainsFunc(args["surge-operator"], func(arg string) bool { return strings.HasPrefix(arg, "--leader-election-id") }) {
		t.Error("the main Deployment changed its Lease, which an upgrade would split from the running leader's")
	}

	if _, err := helm("template", "surge-operator", chartDir, "--set", "shards[0].name=b", "--set", "shards[1].name=b"); err == nil {
		t.Error("a shard listed twice was rendered")
	}
}
