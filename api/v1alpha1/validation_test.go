package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

var k8s client.Client

func TestMain(m *testing.M) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		panic("starting envtest (run through make test, which builds its binaries): " + err.Error())
	}
	k8s, err = client.New(cfg, client.Options{})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// apply creates the manifest as a person would with kubectl, without the Go
// types' help, so that only the CRD schema and its CEL rules decide.
func apply(t *testing.T, manifest string) (*unstructured.Unstructured, error) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	obj.SetNamespace("default")
	return obj, k8s.Create(context.Background(), obj)
}

const validManifest = `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata:
  generateName: valid-
spec:
  accountID: acct_01j9a43avnfqzbjfch6pygv1td
  firstName: Ada
`

func TestValidManifestIsAcceptedWithDefaults(t *testing.T) {
	obj, err := apply(t, validManifest+`
  tokenSecret:
    name: ada-token
`)
	if err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
	policy, _, _ := unstructured.NestedString(obj.Object, "spec", "deletionPolicy")
	if policy != "Delete" {
		t.Errorf("deletionPolicy defaulted to %q, want Delete", policy)
	}
	duration, _, _ := unstructured.NestedInt64(obj.Object, "spec", "tokenSecret", "durationSeconds")
	if duration != 900 {
		t.Errorf("durationSeconds defaulted to %d, want 900", duration)
	}
	policies, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "managementPolicies")
	if !slices.Equal(policies, []string{"*"}) {
		t.Errorf("managementPolicies defaulted to %q, want [\"*\"]", policies)
	}
}

func TestInvalidManifestsAreRefusedWithReadableMessages(t *testing.T) {
	cases := []struct {
		name     string
		manifest string
		message  string
	}{
		{"missing firstName", `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {generateName: invalid-}
spec:
  accountID: acct_01j9a43avnfqzbjfch6pygv1td
`, "spec.firstName: Required value"},
		{"empty firstName", `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {generateName: invalid-}
spec:
  accountID: acct_01j9a43avnfqzbjfch6pygv1td
  firstName: ""
`, "spec.firstName: Invalid value"},
		{"empty accountID", `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {generateName: invalid-}
spec:
  accountID: ""
  firstName: Ada
`, "accountID must be a Surge account id starting with acct_"},
		{"account id without prefix", `
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {generateName: invalid-}
spec:
  accountID: account_123456
  firstName: Ada
`, "accountID must be a Surge account id starting with acct_"},
		{"unknown deletionPolicy", validManifest + "  deletionPolicy: Keep\n", `spec.deletionPolicy: Unsupported value: "Keep"`},
		{"durationSeconds too short", validManifest + "  tokenSecret: {name: t, durationSeconds: 14}\n", "spec.tokenSecret.durationSeconds: Invalid value: 14"},
		{"durationSeconds too long", validManifest + "  tokenSecret: {name: t, durationSeconds: 3601}\n", "spec.tokenSecret.durationSeconds: Invalid value: 3601"},
		{"renewBefore not shorter than the lifetime", validManifest + "  tokenSecret: {name: t, durationSeconds: 60, renewBefore: 1m}\n", "renewBefore must be at most half the token lifetime"},
		{"renewBefore leaves almost no time between mints", validManifest + "  tokenSecret: {name: t, durationSeconds: 15, renewBefore: 14s}\n", "renewBefore must be at most half the token lifetime"},
		{"renewBefore over half the default lifetime", validManifest + "  tokenSecret: {name: t, renewBefore: 8m}\n", "renewBefore must be at most half the token lifetime"},
		{"metadata key too long", validManifest + "  metadata: {" + strings.Repeat("k", 65) + ": x}\n", "metadata keys must be at most 64 characters"},
		{"metadata value too long", validManifest + "  metadata: {note: " + strings.Repeat("v", 513) + "}\n", "metadata values must be at most 512 characters"},
		{"template label key not a label key", validManifest + "  tokenSecret: {name: t, template: {labels: {'bad key': x}}}\n", "template label keys must be Kubernetes label keys"},
		{"template label key with a long name", validManifest + "  tokenSecret: {name: t, template: {labels: {example.com/" + strings.Repeat("n", 64) + ": x}}}\n", "template label keys must be Kubernetes label keys"},
		{"template label value too long", validManifest + "  tokenSecret: {name: t, template: {labels: {app: " + strings.Repeat("v", 64) + "}}}\n", "spec.tokenSecret.template.labels.app: Too long"},
		{"template label value with a space", validManifest + "  tokenSecret: {name: t, template: {labels: {app: 'in box'}}}\n", "template label values must be Kubernetes label values"},
		{"template annotation key not a key", validManifest + "  tokenSecret: {name: t, template: {annotations: {'/x': z}}}\n", "template annotation keys must be Kubernetes annotation keys"},
		{"template annotation value too long", validManifest + "  tokenSecret: {name: t, template: {annotations: {note: " + strings.Repeat("v", 4097) + "}}}\n", "template annotation values must be at most 4096 characters"},
		{"reserved metadata key", validManifest + "  metadata: {surge-operator/uid: x}\n", "metadata keys starting with surge-operator/ are reserved"},
		{"photoURL not a URL", validManifest + "  photoURL: not a url\n", "photoURL must be an absolute http or https URL"},
		{"userID without prefix", validManifest + "  userID: user_1\n", "userID must be a Surge user id starting with usr_"},
		{"unknown management policy", validManifest + "  managementPolicies: [Observe, Adopt]\n", `spec.managementPolicies[1]: Unsupported value: "Adopt"`},
		{"* with another policy", validManifest + "  managementPolicies: ['*', Observe]\n", `managementPolicies: "*" already allows everything`},
		{"policies without Observe", validManifest + "  managementPolicies: [Create, Update]\n", "managementPolicies must include Observe"},
		{"no policies", validManifest + "  managementPolicies: []\n", "spec.managementPolicies: Invalid value"},
		{"token with observe-only policies", validManifest + "  managementPolicies: [Observe]\n  tokenSecret: {name: t}\n", "tokenSecret needs managementPolicies that allow Create or Update"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apply(t, tc.manifest)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want the API server to refuse it as invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("message %q does not say %q", err.Error(), tc.message)
			}
		})
	}
}

func TestLimitsAreInclusive(t *testing.T) {
	manifest := validManifest + `
  metadata:
    ` + strings.Repeat("k", 64) + `: ` + strings.Repeat("v", 512) + `
  tokenSecret:
    name: t
    durationSeconds: 16
    renewBefore: 8s
    template:
      labels:
        app.kubernetes.io/name: inbox
        ` + strings.Repeat("l", 63) + `: ` + strings.Repeat("v", 63) + `
        empty: ""
      annotations:
        reloader.example.com/match: "true"
        note: ` + strings.Repeat("v", 4096) + `
`
	if _, err := apply(t, manifest); err != nil {
		t.Fatalf("a manifest at every limit refused: %v", err)
	}
}

func TestImmutableFieldsCannotChange(t *testing.T) {
	cases := []struct {
		name    string
		extra   string
		mutate  func(obj *unstructured.Unstructured)
		message string
	}{
		{"accountID changed", "", func(obj *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(obj.Object, "acct_01j9a43avnfqzbjfch6pygv1zz", "spec", "accountID")
		}, "accountID is immutable"},
		{"userID changed", "  userID: usr_01jrzhe8d9enptypyx360pcmxu\n", func(obj *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(obj.Object, "usr_01jrzhe8d9enptypyx360pcmzz", "spec", "userID")
		}, "userID can be set once and never changed or removed"},
		{"userID removed", "  userID: usr_01jrzhe8d9enptypyx360pcmxu\n", func(obj *unstructured.Unstructured) {
			unstructured.RemoveNestedField(obj.Object, "spec", "userID")
		}, "userID can be set once and never changed or removed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := apply(t, validManifest+tc.extra)
			if err != nil {
				t.Fatalf("valid manifest refused: %v", err)
			}
			tc.mutate(obj)
			err = k8s.Update(context.Background(), obj)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want the change refused as invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("message %q does not say %q", err.Error(), tc.message)
			}
		})
	}
}

func TestUserIDCanBeSetOnce(t *testing.T) {
	obj, err := apply(t, validManifest)
	if err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
	_ = unstructured.SetNestedField(obj.Object, "usr_01jrzhe8d9enptypyx360pcmxu", "spec", "userID")
	if err := k8s.Update(context.Background(), obj); err != nil {
		t.Fatalf("setting userID for the first time refused: %v", err)
	}
}

// spec.userID added to a resource that already manages another user is
// refused at admission, instead of stalling the resource.
func TestUserIDCannotBeAddedOverAnotherUser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		userID  string
		refused bool
	}{
		{"another user", "usr_01jrzhe8d9enptypyx360pcmzz", true},
		{"the user it manages", "usr_01jrzhe8d9enptypyx360pcmxu", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := apply(t, validManifest)
			if err != nil {
				t.Fatalf("valid manifest refused: %v", err)
			}
			_ = unstructured.SetNestedField(obj.Object, "usr_01jrzhe8d9enptypyx360pcmxu", "status", "userID")
			if err := k8s.Status().Update(context.Background(), obj); err != nil {
				t.Fatalf("recording status.userID: %v", err)
			}
			_ = unstructured.SetNestedField(obj.Object, tc.userID, "spec", "userID")
			err = k8s.Update(context.Background(), obj)
			switch {
			case tc.refused && err == nil:
				t.Fatal("spec.userID naming another user than status.userID was accepted")
			case tc.refused && !strings.Contains(err.Error(), "spec.userID cannot be added to a SurgeEndUser that already manages another end user"):
				t.Errorf("message %q does not say why", err.Error())
			case !tc.refused && err != nil:
				t.Errorf("spec.userID naming the user status names refused: %v", err)
			}
		})
	}
}

// managementPolicies that start allowing Create are refused on a resource
// whose observation found no user: the operator would make a new one.
func TestManagementPoliciesCannotGainCreateWithoutAnObservedUser(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed string
		policies []any
		refused  bool
	}{
		{"no user observed, to *", "", []any{"*"}, true},
		{"no user observed, to Observe and Create", "", []any{"Observe", "Create"}, true},
		{"no user observed, to Observe and Update", "", []any{"Observe", "Update"}, false},
		{"a user observed, to *", "usr_01jrzhe8d9enptypyx360pcmxu", []any{"*"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := apply(t, validManifest+"  managementPolicies: [Observe]\n")
			if err != nil {
				t.Fatalf("valid manifest refused: %v", err)
			}
			if tc.observed != "" {
				_ = unstructured.SetNestedField(obj.Object, tc.observed, "status", "userID")
				if err := k8s.Status().Update(context.Background(), obj); err != nil {
					t.Fatalf("recording status.userID: %v", err)
				}
			}
			_ = unstructured.SetNestedSlice(obj.Object, tc.policies, "spec", "managementPolicies")
			err = k8s.Update(context.Background(), obj)
			switch {
			case tc.refused && err == nil:
				t.Fatal("the change was accepted")
			case tc.refused && !strings.Contains(err.Error(), "managementPolicies cannot allow Create on a SurgeEndUser whose observation found no end user"):
				t.Errorf("message %q does not say why", err.Error())
			case !tc.refused && err != nil:
				t.Errorf("the change was refused: %v", err)
			}
		})
	}
}
