// Command sandbox runs the operator on a laptop with nothing configured: a
// local control plane (kube-apiserver and etcd, as the tests use), the Surge
// API emulator, the operator itself, and the sample SurgeEndUsers applied. It
// prints how to point kubectl at it and keeps running until interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	sandboxAPIKey  = "sk_demo_sandbox"
	sandboxAccount = "acct_01j9a43avnfqzbjfch6pygv1td"
)

type options struct {
	root       string
	stateDir   string
	smoke      bool
	readyAfter time.Duration
	out        io.Writer
}

func main() {
	opts := options{out: os.Stdout}
	flag.StringVar(&opts.root, "root", ".", "Root of the surge-operator checkout (CRDs and samples are read from it).")
	flag.StringVar(&opts.stateDir, "state-dir", filepath.Join("bin", "sandbox"), "Where the kubeconfig is written.")
	flag.BoolVar(&opts.smoke, "smoke", false, "Exit once the samples are Ready, instead of running until interrupted.")
	flag.DurationVar(&opts.readyAfter, "timeout", 2*time.Minute, "How long the samples may take to become Ready.")
	zapOptions := zap.Options{}
	zapOptions.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOptions)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the local control plane (run through make run, which builds its binaries): %w", err)
	}
	defer func() { _ = env.Stop() }()

	surgeURL, stopSurge, err := serveEmulator()
	if err != nil {
		return err
	}
	defer stopSurge()

	kubeconfig, err := writeKubeconfig(env, opts.stateDir)
	if err != nil {
		return err
	}

	mgr, err := operator.NewManager(cfg, operator.Options{
		SurgeAPIURL:            surgeURL,
		SurgeAPIKey:            sandboxAPIKey,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	mgrCtx, stopManager := context.WithCancel(ctx)
	defer stopManager()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()

	k8s, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		return err
	}
	samples, err := applySamples(ctx, k8s, filepath.Join(opts.root, "config", "samples"))
	if err != nil {
		return err
	}
	readyCtx, cancelReady := context.WithTimeout(ctx, opts.readyAfter)
	defer cancelReady()
	if err := waitReady(readyCtx, k8s, samples, opts.out); err != nil {
		return err
	}

	fmt.Fprintf(opts.out, "\nThe sandbox is running: a local API server, the Surge emulator at %s and the operator.\n", surgeURL)
	fmt.Fprintf(opts.out, "Point kubectl at it with:\n\n    export KUBECONFIG=%s\n    kubectl get surgeendusers -A\n\n", kubeconfig)
	if opts.smoke {
		return nil
	}
	fmt.Fprintln(opts.out, "Press Ctrl-C to stop it.")
	select {
	case <-ctx.Done():
		return nil
	case err := <-mgrDone:
		return fmt.Errorf("the operator stopped: %w", err)
	}
}

func serveEmulator() (string, func(), error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening for the Surge emulator: %w", err)
	}
	server := &http.Server{
		Handler:           emulator.New(emulator.Options{APIKey: sandboxAPIKey, Accounts: []string{sandboxAccount}}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = server.Serve(listener) }()
	return "http://" + listener.Addr().String(), func() { _ = server.Close() }, nil
}

func writeKubeconfig(env *envtest.Environment, stateDir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "sandbox-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the sandbox user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(stateDir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, kubeconfig, 0o600)
}

// applySamples creates every SurgeEndUser in the samples directory in the
// default namespace.
func applySamples(ctx context.Context, k8s client.Client, dir string) ([]client.ObjectKey, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var keys []client.ObjectKey
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		content, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		decoder := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(content)), 4096)
		for {
			obj := &surgev1alpha1.SurgeEndUser{}
			if err := decoder.Decode(obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("reading %s: %w", file, err)
			}
			if obj.Namespace == "" {
				obj.Namespace = metav1.NamespaceDefault
			}
			if err := k8s.Create(ctx, obj); err != nil {
				return nil, fmt.Errorf("applying %s: %w", file, err)
			}
			keys = append(keys, client.ObjectKeyFromObject(obj))
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no SurgeEndUser samples in %s", dir)
	}
	return keys, nil
}

func waitReady(ctx context.Context, k8s client.Client, keys []client.ObjectKey, out io.Writer) error {
	for _, key := range keys {
		for {
			obj := &surgev1alpha1.SurgeEndUser{}
			if err := k8s.Get(ctx, key, obj); err != nil {
				return err
			}
			ready := apimeta.FindStatusCondition(obj.Status.Conditions, "Ready")
			if ready != nil && ready.Status == metav1.ConditionTrue && obj.Status.ObservedGeneration == obj.Generation {
				fmt.Fprintf(out, "SurgeEndUser %s is Ready: end user %s in Surge\n", key, obj.Status.UserID)
				break
			}
			select {
			case <-ctx.Done():
				state := "no status yet"
				if ready != nil {
					state = fmt.Sprintf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
				}
				return fmt.Errorf("SurgeEndUser %s did not become Ready (%s)", key, state)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
