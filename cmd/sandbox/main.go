// Command sandbox runs the operator on a laptop with nothing configured: a
// local control plane (kube-apiserver and etcd, as the tests use), the Surge
// API emulator with its inspection API, the operator itself, and the sample
// SurgeEndUsers applied. It prints how to point kubectl and curl at it and
// keeps running until interrupted. The control plane has no garbage
// collector, so the sandbox deletes the token Secrets of deleted resources
// itself, as a cluster's would.
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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// collectEvery is how often the sandbox looks for token Secrets whose
// SurgeEndUser is gone.
const collectEvery = time.Second

func main() {
	opts := options{out: os.Stdout}
	flag.StringVar(&opts.root, "root", ".", "Root of the surge-operator checkout (CRDs and samples are read from it).")
	flag.StringVar(&opts.stateDir, "state-dir", filepath.Join("bin", "sandbox"), "Where the kubeconfig is written.")
	flag.BoolVar(&opts.smoke, "smoke", false, "Exit once the samples are Ready, instead of running until interrupted.")
	flag.DurationVar(&opts.readyAfter, "timeout", 2*time.Minute, "How long the samples may take to become Ready.")
	logFormat := flag.String("log-format", "console", "How the operator logs: console, for people, or json.")
	zapOptions := zap.Options{}
	zapOptions.BindFlags(flag.CommandLine)
	flag.Parse()
	encoder := zap.ConsoleEncoder()
	switch *logFormat {
	case "console":
	case "json":
		encoder = zap.JSONEncoder()
	default:
		fmt.Fprintf(os.Stderr, "sandbox: --log-format %q: want console or json\n", *logFormat)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOptions), encoder))

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
	go collectOrphanedSecrets(mgrCtx, k8s)
	samples, err := applySamples(ctx, k8s, filepath.Join(opts.root, "config", "samples"))
	if err != nil {
		return err
	}
	readyCtx, cancelReady := context.WithTimeout(ctx, opts.readyAfter)
	defer cancelReady()
	if err := waitReady(readyCtx, k8s, samples, opts.out); err != nil {
		return err
	}

	fmt.Fprintf(opts.out, "\nThe sandbox is running: a local API server, the Surge emulator and the operator.\n")
	fmt.Fprintf(opts.out, "Point kubectl at it with:\n\n    export KUBECONFIG=%s\n    kubectl get surgeendusers -A\n\n", kubeconfig)
	fmt.Fprintf(opts.out, "The Surge emulator serves %s with API key %s and account %s.\n", surgeURL, sandboxAPIKey, sandboxAccount)
	fmt.Fprintf(opts.out, "Look inside it, or make it fail (docs/testing.md#the-admin-api):\n\n")
	fmt.Fprintf(opts.out, "    curl %s%susers\n", surgeURL, emulator.AdminPath)
	fmt.Fprintf(opts.out, "    curl %s%srequests\n", surgeURL, emulator.AdminPath)
	fmt.Fprintf(opts.out, "    curl -X POST %s%sfaults -d '{\"method\": \"POST\", \"status\": 503, \"count\": 1}'\n", surgeURL, emulator.AdminPath)
	fmt.Fprintf(opts.out, "    curl -X POST %s%sreset\n\n", surgeURL, emulator.AdminPath)
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
	emu := emulator.New(emulator.Options{APIKey: sandboxAPIKey, Accounts: []string{sandboxAccount}})
	server := &http.Server{
		Handler:           emulator.WithAdmin(emu, emu),
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

// collectOrphanedSecrets deletes, until ctx ends, the Secrets the operator
// labels as its own whose owning SurgeEndUser is gone, as a cluster's
// garbage collector deletes dependents.
func collectOrphanedSecrets(ctx context.Context, k8s client.Client) {
	log := ctrl.Log.WithName("sandbox-gc")
	for {
		if err := collectOnce(ctx, k8s); err != nil && ctx.Err() == nil {
			log.Error(err, "Cannot collect the token Secrets of deleted SurgeEndUsers")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(collectEvery):
		}
	}
}

func collectOnce(ctx context.Context, k8s client.Client) error {
	secrets := &corev1.SecretList{}
	if err := k8s.List(ctx, secrets, client.MatchingLabels{surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue}); err != nil {
		return err
	}
	for i := range secrets.Items {
		secret := &secrets.Items[i]
		gone, err := ownersGone(ctx, k8s, secret)
		if err != nil {
			return err
		}
		if !gone {
			continue
		}
		err = k8s.Delete(ctx, secret, client.Preconditions{UID: &secret.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

// ownersGone says whether secret has owners and all of them are
// SurgeEndUsers that no longer exist; an owner of another kind is taken to
// live.
func ownersGone(ctx context.Context, k8s client.Client, secret *corev1.Secret) (bool, error) {
	for _, owner := range secret.OwnerReferences {
		if owner.Kind != "SurgeEndUser" || !strings.HasPrefix(owner.APIVersion, surgev1alpha1.GroupVersion.Group+"/") {
			return false, nil
		}
		endUser := &surgev1alpha1.SurgeEndUser{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: secret.Namespace, Name: owner.Name}, endUser)
		switch {
		case err == nil && endUser.UID == owner.UID:
			return false, nil
		case err != nil && !apierrors.IsNotFound(err):
			return false, err
		}
	}
	return len(secret.OwnerReferences) > 0, nil
}
