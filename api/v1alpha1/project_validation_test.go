package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// applyClusterScoped creates a cluster-scoped manifest as kubectl would.
func applyClusterScoped(t *testing.T, manifest string) error {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	return k8s.Create(context.Background(), obj)
}

func TestProjectsAreValidated(t *testing.T) {
	cases := []struct {
		name     string
		manifest string
		cluster  bool
		message  string
	}{
		{"a SurgeProject without a Secret", `
apiVersion: surge.app/v1alpha1
kind: SurgeProject
metadata: {generateName: invalid-}
spec: {}
`, false, "spec.apiKeySecretRef: Required value"},
		{"an account that is not an account id", `
apiVersion: surge.app/v1alpha1
kind: SurgeProject
metadata: {generateName: invalid-}
spec:
  apiKeySecretRef: {name: surge-key}
  accounts: [customer-1]
`, false, "accounts must be Surge account ids starting with acct_"},
		{"an apiURL that is not a URL", `
apiVersion: surge.app/v1alpha1
kind: SurgeProject
metadata: {generateName: invalid-}
spec:
  apiKeySecretRef: {name: surge-key}
  apiURL: surge
`, false, "apiURL must be an absolute http or https URL"},
		{"a ClusterSurgeProject's Secret without a namespace", `
apiVersion: surge.app/v1alpha1
kind: ClusterSurgeProject
metadata: {generateName: invalid-}
spec:
  apiKeySecretRef: {name: surge-key}
`, true, "spec.apiKeySecretRef.namespace: Required value"},
		{"a projectRef of an unknown kind", validManifest + "  projectRef: {kind: Project, name: surge}\n", false, `spec.projectRef.kind: Unsupported value: "Project"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.cluster {
				err = applyClusterScoped(t, tc.manifest)
			} else {
				_, err = apply(t, tc.manifest)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want the API server to refuse it as invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("message %q does not say %q", err.Error(), tc.message)
			}
		})
	}
}

func TestAProjectKeyDefaultsToAPIKey(t *testing.T) {
	obj, err := apply(t, `
apiVersion: surge.app/v1alpha1
kind: SurgeProject
metadata: {generateName: valid-}
spec:
  apiKeySecretRef: {name: surge-key}
`)
	if err != nil {
		t.Fatalf("valid project refused: %v", err)
	}
	if key, _, _ := unstructured.NestedString(obj.Object, "spec", "apiKeySecretRef", "key"); key != "api-key" {
		t.Errorf("apiKeySecretRef.key defaulted to %q, want api-key", key)
	}
}

func TestProjectRefCannotChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string
		mutate func(obj *unstructured.Unstructured)
	}{
		{"added", "", func(obj *unstructured.Unstructured) {
			_ = unstructured.SetNestedMap(obj.Object, map[string]any{"kind": "SurgeProject", "name": "surge"}, "spec", "projectRef")
		}},
		{"changed", "  projectRef: {kind: SurgeProject, name: surge}\n", func(obj *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(obj.Object, "ClusterSurgeProject", "spec", "projectRef", "kind")
		}},
		{"removed", "  projectRef: {kind: SurgeProject, name: surge}\n", func(obj *unstructured.Unstructured) {
			unstructured.RemoveNestedField(obj.Object, "spec", "projectRef")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := apply(t, validManifest+tc.before)
			if err != nil {
				t.Fatalf("valid manifest refused: %v", err)
			}
			tc.mutate(obj)
			err = k8s.Update(context.Background(), obj)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "projectRef is immutable") {
				t.Errorf("want the change refused with a message naming projectRef, got %v", err)
			}
		})
	}
}
