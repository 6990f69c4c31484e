// Package helm_test checks the Helm chart at charts/surge-operator with a
// real helm binary (make helm builds it into bin/): lint and template under
// several value sets, and install, upgrade and uninstall against a real
// kube-apiserver (envtest).
package helm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/surge-operator/surge-operator/test/manifests"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."
)

var (
	chartDir = filepath.Join(repoRoot, "charts", "surge-operator")

	helmBinary string
	// helmEnv points helm at the test's API server and keeps it away from
	// the user's own helm configuration and repositories.
	helmEnv []string
	k8s     client.Client
	// adminConfig is the test's API server as its administrator, which may
	// impersonate the ServiceAccounts releases create.
	adminConfig *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	helmBinary, err = findHelm()
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
	adminConfig = cfg
	k8s, err = client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	home, err := os.MkdirTemp("", "helm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(home) }()
	admin, err := env.AddUser(envtest.User{Name: "helm-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfigPath := filepath.Join(home, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helmEnv = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"KUBECONFIG=" + kubeconfigPath,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	return m.Run()
}

// monitoringSecrets are the Secrets the ServiceMonitor needs, for mutual
// TLS with the metrics endpoint.
var monitoringSecrets = []string{"--set", "metrics.tls.existingSecret=surge-metrics-tls", "--set", "serviceMonitor.clientCertSecret=prometheus-tls"}

// findHelm returns the helm that make helm built from tools/go.mod: HELM
// when make test sets it, else bin/helm.
func findHelm() (string, error) {
	if path := os.Getenv("HELM"); path != "" {
		return path, nil
	}
	path, err := filepath.Abs(filepath.Join(repoRoot, "bin", "helm"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no helm in bin/ (%w); run make helm, or set HELM", err)
	}
	return path, nil
}

// helm runs the helm binary and returns its standard output; a failure
// carries its standard error.
func helm(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helmBinary, args...)
	cmd.Env = helmEnv
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render runs helm template on the chart with the given flags and decodes
// the objects.
func render(t *testing.T, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "surge-operator", chartDir, "--namespace", "surge-operator"}, flags...)
	objects, err := manifests.Decode(strings.NewReader(mustHelm(t, args...)))
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	return objects
}

func ofKind(objects []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() == kind {
			found = append(found, obj)
		}
	}
	return found
}
