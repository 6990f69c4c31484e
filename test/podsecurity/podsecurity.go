// Package podsecurity checks a pod template against the restricted Pod
// Security Standard, for the suites that check what users install: the
// kustomize installation and the Helm chart apply the very same check.
package podsecurity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ExpectRestricted checks spec twice: field by field, and by creating (as a
// dry run) a pod from it in namespace, whose Pod Security admission must
// enforce the restricted standard.
func ExpectRestricted(ctx context.Context, t *testing.T, k8s client.Client, namespace string, spec corev1.PodSpec) {
	t.Helper()
	if problems := Violations(spec); len(problems) > 0 {
		t.Errorf("the pod does not meet the restricted Pod Security Standard:\n  %s", strings.Join(problems, "\n  "))
	}

	ns := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		t.Fatalf("reading namespace %s: %v", namespace, err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Fatalf("namespace %s has pod-security.kubernetes.io/enforce=%q, want restricted", namespace, got)
	}
	if err := dryRunCreate(ctx, k8s, namespace, "restricted-check", spec); err != nil {
		t.Errorf("the API server refuses the pod in %s: %v", namespace, err)
	}
	// Pod Security admission really enforces in that namespace: the same pod
	// allowed to escalate its privileges is refused.
	escalating := spec.DeepCopy()
	for i := range escalating.Containers {
		if escalating.Containers[i].SecurityContext == nil {
			escalating.Containers[i].SecurityContext = &corev1.SecurityContext{}
		}
		escalating.Containers[i].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	}
	if err := dryRunCreate(ctx, k8s, namespace, "escalating-check", *escalating); !apierrors.IsForbidden(err) {
		t.Errorf("a pod allowing privilege escalation in %s: got %v, want it forbidden by Pod Security admission", namespace, err)
	}
}

func dryRunCreate(ctx context.Context, k8s client.Client, namespace, name string, spec corev1.PodSpec) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       spec,
	}
	return k8s.Create(ctx, pod, client.DryRunAll)
}

// Violations checks a pod spec against the restricted Pod Security Standard
// (the "latest" version of its controls that apply to this pod), plus a
// read-only root filesystem, which the manager needs no less.
func Violations(spec corev1.PodSpec) []string {
	var problems []string
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		problems = append(problems, "uses host namespaces")
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			problems = append(problems, fmt.Sprintf("volume %s is a hostPath", v.Name))
		}
	}
	if pod.RunAsUser != nil && *pod.RunAsUser == 0 {
		problems = append(problems, "pod runs as user 0")
	}
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	if len(containers) == 0 {
		problems = append(problems, "no containers")
	}
	for _, c := range containers {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		fail := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("container %s: ", c.Name)+fmt.Sprintf(format, args...))
		}
		if !ptr.Deref(sc.RunAsNonRoot, ptr.Deref(pod.RunAsNonRoot, false)) {
			fail("runAsNonRoot is not true")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			fail("runs as user 0")
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			fail("seccompProfile is not RuntimeDefault or Localhost")
		}
		if !ptr.Equal(sc.AllowPrivilegeEscalation, ptr.To(false)) {
			fail("allowPrivilegeEscalation is not false")
		}
		if ptr.Deref(sc.Privileged, false) {
			fail("is privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			fail("does not drop ALL capabilities")
		} else if slices.ContainsFunc(sc.Capabilities.Add, func(c corev1.Capability) bool { return c != "NET_BIND_SERVICE" }) {
			fail("adds capabilities %v", sc.Capabilities.Add)
		}
		if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
			fail("readOnlyRootFilesystem is not true")
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				fail("uses host port %d", p.HostPort)
			}
		}
	}
	return problems
}
