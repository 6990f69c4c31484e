// Package install_test checks the installation manifests that users apply:
// it builds config/default with kustomize, as `kubectl apply -k` would, and
// applies the result to a real kube-apiserver (envtest).
package install_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/surge-operator/surge-operator/test/manifests"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."

	// The names a user sees after `kubectl apply -k config/default`.
	namespace      = "surge-operator-system"
	namePrefix     = "surge-operator-"
	deploymentName = namePrefix + "controller-manager"
	metricsService = namePrefix + "controller-manager-metrics-service"

	fieldOwner = client.FieldOwner("install-test")
)

var (
	k8s      client.Client
	warnings = &warningRecorder{}
	// installed is config/default as kustomize builds it.
	installed []*unstructured.Unstructured
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	installed, err = kustomize(filepath.Join(repoRoot, "config", "default"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (run through make test, which builds its binaries):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	cfg.WarningHandlerWithContext = warnings
	k8s, err = client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installClusterScaffolding(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// installClusterScaffolding really creates what the dry runs of the other
// objects need to exist: the CRDs and the Namespace.
func installClusterScaffolding(ctx context.Context) error {
	for _, obj := range installed {
		switch obj.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			if err := apply(ctx, obj); err != nil {
				return fmt.Errorf("installing %s: %w", manifests.Describe(obj), err)
			}
		}
	}
	for _, obj := range installed {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if err := manifests.WaitEstablished(ctx, k8s, obj.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// apply server-side applies obj for real.
func apply(ctx context.Context, obj *unstructured.Unstructured) error {
	return k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), fieldOwner, client.ForceOwnership)
}

// dryRunApply server-side applies obj as a dry run, and returns the warnings
// the API server sent back.
func dryRunApply(ctx context.Context, obj *unstructured.Unstructured) ([]string, error) {
	warnings.reset()
	err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), fieldOwner, client.ForceOwnership, client.DryRunAll)
	return warnings.reset(), err
}

// expectCleanDryRun dry-run applies every object and fails the test for
// each error or warning the API server answers: a user would see either.
func expectCleanDryRun(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, obj := range objs {
		warns, err := dryRunApply(ctx, obj)
		if err != nil {
			t.Errorf("applying %s: %v", manifests.Describe(obj), err)
			continue
		}
		if len(warns) > 0 {
			t.Errorf("applying %s, the API server warned:\n  %s", manifests.Describe(obj), strings.Join(warns, "\n  "))
		}
	}
}

// TestInstallManifestsApply applies every object of config/default, the way
// `kubectl apply --server-side -k config/default` would, and expects no
// error and no warning: the API server would show either to the user.
func TestInstallManifestsApply(t *testing.T) {
	ctx := context.Background()
	kinds := map[string]int{}
	for _, obj := range installed {
		kinds[obj.GetKind()]++
	}
	expectCleanDryRun(ctx, t, installed)
	for _, kind := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"} {
		if kinds[kind] == 0 {
			t.Errorf("config/default installs no %s; got %v", kind, kinds)
		}
	}
}

// TestInstalledObjectsAreNamespacedAndPrefixed checks that the namespaced
// objects land in the operator's namespace, and that every object we own
// carries the surge-operator- prefix, so that it cannot clash with another
// operator's controller-manager.
func TestInstalledObjectsAreNamespacedAndPrefixed(t *testing.T) {
	for _, obj := range installed {
		switch obj.GetKind() {
		case "CustomResourceDefinition":
			continue
		case "Namespace":
			if obj.GetName() != namespace {
				t.Errorf("the Namespace is %q, want %q", obj.GetName(), namespace)
			}
			continue
		}
		if !strings.HasPrefix(obj.GetName(), namePrefix) {
			t.Errorf("%s is not named with the %q prefix", manifests.Describe(obj), namePrefix)
		}
		mapping, err := k8s.RESTMapper().RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
		if err != nil {
			t.Errorf("%s: %v", manifests.Describe(obj), err)
			continue
		}
		namespaced := mapping.Scope.Name() == "namespace"
		if namespaced && obj.GetNamespace() != namespace {
			t.Errorf("%s is in namespace %q, want %q", manifests.Describe(obj), obj.GetNamespace(), namespace)
		}
		if !namespaced && obj.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s has namespace %q", manifests.Describe(obj), obj.GetNamespace())
		}
	}
}

// TestSamplesAreValid applies config/samples, which the README points users
// at, and expects the CRD's validation to accept them.
func TestSamplesAreValid(t *testing.T) {
	ctx := context.Background()
	samples, err := kustomize(filepath.Join(repoRoot, "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) == 0 {
		t.Fatal("config/samples builds no object")
	}
	for _, obj := range samples {
		if obj.GetAPIVersion() != "surge.app/v1alpha1" || obj.GetKind() != "SurgeEndUser" {
			t.Errorf("unexpected sample %s", manifests.Describe(obj))
		}
		obj.SetNamespace("default")
		warns, err := dryRunApply(ctx, obj)
		if err != nil {
			t.Errorf("applying sample %s: %v", manifests.Describe(obj), err)
		}
		if len(warns) > 0 {
			t.Errorf("applying sample %s, the API server warned:\n  %s", manifests.Describe(obj), strings.Join(warns, "\n  "))
		}
	}

	// The check above can fail: the same sample with an invalid account is
	// rejected.
	bad := samples[0].DeepCopy()
	bad.SetNamespace("default")
	if err := unstructured.SetNestedField(bad.Object, "not-an-account", "spec", "accountID"); err != nil {
		t.Fatal(err)
	}
	if _, err := dryRunApply(ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("a SurgeEndUser with accountID not-an-account: got %v, want it rejected as invalid", err)
	}
}

// kustomize builds dir with the kustomize embedded in kubectl, the way
// `kubectl apply -k` does.
func kustomize(dir string) ([]*unstructured.Unstructured, error) {
	kubectl, err := kubectlPath()
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w\n%s", dir, err, stderr.String())
	}
	return manifests.Decode(&stdout)
}

func kubectlPath() (string, error) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		// hack/envtest-binaries.sh links kubectl next to the envtest binaries.
		kubectl = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		if _, statErr := os.Stat(kubectl); statErr != nil {
			return "", fmt.Errorf("kubectl is needed to build the kustomizations: %w", err)
		}
	}
	return kubectl, nil
}

// find returns the installed objects of a kind.
func find(kind string) []*unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, obj := range installed {
		if obj.GetKind() == kind {
			found = append(found, obj)
		}
	}
	return found
}

// findOne returns the installed object of a kind and name, converted to a
// typed object.
func findOne(t *testing.T, kind, name string, into any) {
	t.Helper()
	for _, obj := range find(kind) {
		if obj.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
				t.Fatalf("decoding %s: %v", manifests.Describe(obj), err)
			}
			return
		}
	}
	t.Fatalf("config/default installs no %s %q", kind, name)
}

// warningRecorder keeps the warnings the API server returns.
type warningRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, message string) {
	if code != 299 || message == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, message)
}

// reset returns the warnings recorded so far and forgets them.
func (w *warningRecorder) reset() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	messages := w.messages
	w.messages = nil
	return messages
}
