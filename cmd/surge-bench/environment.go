package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// environment is what every run shares: the API server, the bench's own
// clients of it, and the manager binary with a kubeconfig to reach it.
type environment struct {
	outDir        string
	testEnv       *envtest.Environment
	restConfig    *rest.Config
	k8s           client.Client
	kube          kubernetes.Interface
	kubeconfig    string
	managerBinary string
	buildDir      string
}

func startEnvironment(ctx context.Context, root, outDir string) (*environment, error) {
	buildDir, err := os.MkdirTemp("", "surge-bench-")
	if err != nil {
		return nil, err
	}
	env := &environment{outDir: outDir, buildDir: buildDir, managerBinary: filepath.Join(buildDir, "manager")}
	progress("building the manager binary from %s", root)
	build := exec.CommandContext(ctx, "go", "build", "-o", env.managerBinary, ".")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		env.stop()
		return nil, fmt.Errorf("building the manager: %w", err)
	}

	progress("starting the API server (envtest)")
	env.testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if env.restConfig, err = env.testEnv.Start(); err != nil {
		env.stop()
		return nil, fmt.Errorf("starting envtest (run through make bench, which builds its binaries): %w", err)
	}
	if env.k8s, err = client.New(env.restConfig, client.Options{Scheme: operator.Scheme()}); err != nil {
		env.stop()
		return nil, err
	}
	if env.kube, err = kubernetes.NewForConfig(env.restConfig); err != nil {
		env.stop()
		return nil, err
	}
	if env.kubeconfig, err = env.writeKubeconfig(); err != nil {
		env.stop()
		return nil, err
	}
	return env, nil
}

// writeKubeconfig gives the manager process a user of its own, with the
// rights the deployed operator's RBAC would grant and more.
func (e *environment) writeKubeconfig() (string, error) {
	user, err := e.testEnv.ControlPlane.AddUser(envtest.User{Name: "bench-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(e.outDir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, kubeconfig, 0o600)
}

func (e *environment) stop() {
	if e.testEnv != nil {
		_ = e.testEnv.Stop()
	}
	_ = os.RemoveAll(e.buildDir)
}

// apiServerMetrics scrapes the API server's own metrics, which count every
// request it served by verb and resource.
func (e *environment) apiServerMetrics(ctx context.Context) ([]sample, error) {
	raw, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scraping the API server's metrics: %w", err)
	}
	return parseMetrics(raw, "apiserver_request_total")
}

// servedEmulator is a Surge emulator on a real local port, so that the
// manager process reaches it over the network as it would reach Surge.
type servedEmulator struct {
	*emulator.Server
	url    string
	server *http.Server
}

func serveEmulator(apiKey, account string) (*servedEmulator, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the Surge emulator: %w", err)
	}
	surge := emulator.New(emulator.Options{APIKey: apiKey, Accounts: []string{account}})
	served := &servedEmulator{
		Server: surge,
		url:    "http://" + listener.Addr().String(),
		server: &http.Server{Handler: surge, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() { _ = served.server.Serve(listener) }()
	return served, nil
}

func (s *servedEmulator) close() { _ = s.server.Close() }

// freeLocalAddress finds a port for the manager's metrics endpoint.
func freeLocalAddress() (string, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = listener.Close() }()
	return listener.Addr().String(), nil
}
