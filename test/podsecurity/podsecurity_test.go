package podsecurity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func restrictedSpec() corev1.PodSpec {
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:  "manager",
			Image: "surge-operator:test",
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// TestViolationsCatchEachBreach: a restricted pod passes, and each way of
// breaking the standard is caught.
func TestViolationsCatchEachBreach(t *testing.T) {
	if problems := Violations(restrictedSpec()); len(problems) > 0 {
		t.Fatalf("a restricted pod is reported: %v", problems)
	}
	mutations := map[string]func(*corev1.PodSpec){
		"runAsNonRoot unset":   func(s *corev1.PodSpec) { s.SecurityContext.RunAsNonRoot = nil },
		"running as root":      func(s *corev1.PodSpec) { s.SecurityContext.RunAsUser = ptr.To[int64](0) },
		"seccomp unset":        func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile = nil },
		"privilege escalation": func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true) },
		"capabilities kept":    func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Capabilities = nil },
		"capability added": func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		},
		"writable root filesystem": func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.ReadOnlyRootFilesystem = nil },
		"host network":             func(s *corev1.PodSpec) { s.HostNetwork = true },
		"host port": func(s *corev1.PodSpec) {
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
		},
	}
	for name, mutate := range mutations {
		spec := restrictedSpec()
		mutate(&spec)
		if len(Violations(spec)) == 0 {
			t.Errorf("a pod with %s passes", name)
		}
	}
}
