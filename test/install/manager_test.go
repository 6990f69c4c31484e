package install_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/test/podsecurity"
)

func managerDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	deployment := &appsv1.Deployment{}
	findOne(t, "Deployment", deploymentName, deployment)
	return deployment
}

func managerContainer(t *testing.T, deployment *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range deployment.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("the Deployment has no container named manager")
	return corev1.Container{}
}

// TestNamespaceEnforcesRestrictedPodSecurity: the operator's namespace
// refuses any pod that is not restricted.
func TestNamespaceEnforcesRestrictedPodSecurity(t *testing.T) {
	ns := &corev1.Namespace{}
	findOne(t, "Namespace", namespace, ns)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s has pod-security.kubernetes.io/enforce=%q, want restricted", namespace, got)
	}
}

// TestManagerPodIsRestricted checks the manager's pod against the restricted
// Pod Security Standard, field by field and through Pod Security admission in
// the operator's namespace.
func TestManagerPodIsRestricted(t *testing.T) {
	podsecurity.ExpectRestricted(context.Background(), t, k8s, namespace, managerDeployment(t).Spec.Template.Spec)
}

// TestManagerWiring checks what decides whether the manager starts, stays
// healthy and can be scraped: its flags, probes, API key and metrics Service.
func TestManagerWiring(t *testing.T) {
	deployment := managerDeployment(t)
	container := managerContainer(t, deployment)

	flags := map[string]string{}
	args := container.Args
	if len(container.Command) > 1 {
		args = append(slices.Clone(container.Command[1:]), args...)
	}
	for _, arg := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !hasValue {
			value = "true"
		}
		flags[name] = value
	}
	if flags["leader-elect"] != "true" {
		t.Errorf("the manager runs without --leader-elect: two replicas (or a rollout) would reconcile at once")
	}

	// Health probes hit the port the manager serves them on.
	probePort := port(t, flags, "health-probe-bind-address", 8081)
	for name, probe := range map[string]*corev1.Probe{"liveness": container.LivenessProbe, "readiness": container.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("the manager has no HTTP %s probe", name)
			continue
		}
		if probe.HTTPGet.Path != want {
			t.Errorf("%s probe path is %q, want %q", name, probe.HTTPGet.Path, want)
		}
		if got := resolvePort(container, probe.HTTPGet.Port); got != probePort {
			t.Errorf("%s probe goes to port %d, the manager serves probes on %d", name, got, probePort)
		}
	}

	// The operator's own API key comes from the Secret users are told to
	// create, and the manager starts without it: projects may carry keys.
	var apiKey *corev1.EnvVar
	for i := range container.Env {
		if container.Env[i].Name == "SURGE_API_KEY" {
			apiKey = &container.Env[i]
		}
	}
	switch {
	case apiKey == nil:
		t.Errorf("the manager has no SURGE_API_KEY environment variable")
	case apiKey.ValueFrom == nil || apiKey.ValueFrom.SecretKeyRef == nil:
		t.Errorf("SURGE_API_KEY is not read from a Secret: %+v", apiKey)
	default:
		ref := apiKey.ValueFrom.SecretKeyRef
		if ref.Name != "surge-api-key" || ref.Key != "api-key" {
			t.Errorf("SURGE_API_KEY comes from Secret %q key %q, want Secret surge-api-key key api-key", ref.Name, ref.Key)
		}
		if ref.Optional == nil || !*ref.Optional {
			t.Errorf("SURGE_API_KEY's Secret is required: the pod cannot start in a cluster that keeps keys in projects only")
		}
	}

	// The metrics Service selects the manager's pod and reaches the port
	// that serves metrics, over HTTPS.
	if flags["metrics-secure"] == "false" {
		t.Errorf("the manager serves metrics without TLS and authorization")
	}
	metricsPort := port(t, flags, "metrics-bind-address", 8443)
	service := &corev1.Service{}
	findOne(t, "Service", metricsService, service)
	if len(service.Spec.Selector) == 0 {
		t.Fatalf("Service %s selects no pod", metricsService)
	}
	for k, v := range service.Spec.Selector {
		if deployment.Spec.Template.Labels[k] != v {
			t.Errorf("Service %s selects %s=%s, which the manager's pod does not carry", metricsService, k, v)
		}
	}
	if len(service.Spec.Ports) != 1 {
		t.Fatalf("Service %s has ports %+v, want one", metricsService, service.Spec.Ports)
	}
	servicePort := service.Spec.Ports[0]
	if servicePort.Port != 8443 || servicePort.Name != "https" {
		t.Errorf("Service %s exposes %s:%d, want https:8443", metricsService, servicePort.Name, servicePort.Port)
	}
	if got := resolvePort(container, servicePort.TargetPort); got != metricsPort {
		t.Errorf("Service %s targets port %d, the manager serves metrics on %d", metricsService, got, metricsPort)
	}

	// The pod runs as the ServiceAccount the RBAC binds.
	if got := deployment.Spec.Template.Spec.ServiceAccountName; got != namePrefix+"controller-manager" {
		t.Errorf("the manager runs as ServiceAccount %q", got)
	}
	if len(deployment.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("the Deployment selects no pods")
	}
	for k, v := range deployment.Spec.Selector.MatchLabels {
		if deployment.Spec.Template.Labels[k] != v {
			t.Errorf("the Deployment selects %s=%s, which its pod template does not carry", k, v)
		}
	}
	if r := container.Resources; r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("the manager should request CPU and memory and limit memory: %+v", r)
	}
	expectMemoryLimitFromContainer(t, container)
}

// expectMemoryLimitFromContainer: the manager derives its Go memory limit
// from the container's, and no GOMEMLIMIT overrides that with the whole limit.
func expectMemoryLimitFromContainer(t *testing.T, container corev1.Container) {
	t.Helper()
	var fromLimit bool
	for _, env := range container.Env {
		switch env.Name {
		case "GOMEMLIMIT":
			t.Errorf("GOMEMLIMIT is set in the Deployment; the manager derives it from %s", operator.ContainerMemoryLimitEnv)
		case operator.ContainerMemoryLimitEnv:
			ref := env.ValueFrom
			fromLimit = ref != nil && ref.ResourceFieldRef != nil && ref.ResourceFieldRef.Resource == "limits.memory" &&
				(ref.ResourceFieldRef.Divisor.IsZero() || ref.ResourceFieldRef.Divisor.Value() == 1)
		}
	}
	if !fromLimit {
		t.Errorf("%s is not the container's limits.memory in bytes: %+v", operator.ContainerMemoryLimitEnv, container.Env)
	}
}

// port is the port of a bind-address flag such as :8081, or its default.
func port(t *testing.T, flags map[string]string, flag string, fallback int) int {
	t.Helper()
	address, ok := flags[flag]
	if !ok {
		return fallback
	}
	i := strings.LastIndex(address, ":")
	n, err := strconv.Atoi(address[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("--%s=%s has no port", flag, address)
	}
	return n
}

// resolvePort turns a port number or a container port name into a number.
func resolvePort(container corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range container.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}
