// Package gitops_test checks what GitOps tools conclude from the status the
// operator writes: kstatus (Flux, kpt, cli-utils) and the Argo CD health
// script in config/argocd. The objects they judge are live ones, written by
// the real manager running against envtest and the Surge emulator.
package gitops_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot   = "../.."
	testAPIKey = "sk_demo_gitops"
)

var (
	restConfig *rest.Config
	k8s        client.Client
	serial     atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(logLevel())))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (run through make test, which builds its binaries):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	restConfig = cfg
	k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// fixture is one test's world: a namespace of its own, a Surge emulator with
// one account, and the operator watching only that namespace.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	namespace string
	account   string
	surge     *emulator.Server
	surgeURL  string
	stop      func()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	n := serial.Add(1)
	f := &fixture{
		t:         t,
		ctx:       context.Background(),
		namespace: fmt.Sprintf("gitops-%d", n),
		account:   fmt.Sprintf("acct_01j9a43avnfqzbjfch6pygv%03d", n),
	}
	f.surge = emulator.New(emulator.Options{APIKey: testAPIKey, Accounts: []string{f.account}})
	server := httptest.NewServer(f.surge)
	t.Cleanup(server.Close)
	f.surgeURL = server.URL
	if err := k8s.Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.namespace}}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	f.startOperator()
	t.Cleanup(func() { f.stop() })
	return f
}

// startOperator runs the real manager, as main.go builds it, against the
// fixture's emulator.
func (f *fixture) startOperator() {
	f.t.Helper()
	mgr, err := operator.NewManager(restConfig, operator.Options{
		SurgeAPIURL:            f.surgeURL,
		SurgeAPIKey:            testAPIKey,
		ResyncInterval:         time.Minute,
		Namespaces:             []string{f.namespace},
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
		Rebuildable:            true,
		SurgeClientOptions: []surge.Option{
			surge.WithBackoff(10*time.Millisecond, 50*time.Millisecond),
			surge.WithMaxRetries(1),
		},
	})
	if err != nil {
		f.t.Fatalf("building the operator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			f.t.Errorf("operator stopped: %v", err)
		}
	}()
	f.stop = func() {
		cancel()
		<-done
	}
}

func (f *fixture) create(name string) {
	f.t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: f.account,
			FirstName: "Ada",
			LastName:  "Lovelace",
		},
	}
	if err := k8s.Create(f.ctx, obj); err != nil {
		f.t.Fatalf("creating %s: %v", name, err)
	}
}

// update changes the live object, retrying on conflicts with the operator's
// own writes.
func (f *fixture) update(name string, mutate func(*surgev1alpha1.SurgeEndUser)) {
	f.t.Helper()
	f.waitFor("update "+name, func() (bool, string) {
		obj := &surgev1alpha1.SurgeEndUser{}
		if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.namespace, Name: name}, obj); err != nil {
			return false, err.Error()
		}
		mutate(obj)
		if err := k8s.Update(f.ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// requestReconcile asks the operator to compare with Surge now, through the
// annotation the README documents.
func (f *fixture) requestReconcile(name string) {
	f.t.Helper()
	f.update(name, func(obj *surgev1alpha1.SurgeEndUser) {
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations["surge.app/reconcile-requested-at"] = time.Now().Format(time.RFC3339Nano)
	})
}

func (f *fixture) delete(name string) {
	f.t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace}}
	if err := k8s.Delete(f.ctx, obj); err != nil {
		f.t.Fatalf("deleting %s: %v", name, err)
	}
}

// live reads the object from the API server as a GitOps tool sees it: as
// unstructured content, not through the operator's types.
func (f *fixture) live(name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(surgev1alpha1.GroupVersion.WithKind("SurgeEndUser"))
	err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.namespace, Name: name}, u)
	return u, err
}

// waitForState polls the live object until state holds for it, and returns
// that very snapshot, so that what the test then judges is the state it
// waited for.
func (f *fixture) waitForState(name, what string, state func(*surgev1alpha1.SurgeEndUser) bool) *unstructured.Unstructured {
	f.t.Helper()
	var snapshot *unstructured.Unstructured
	f.waitFor(name+" "+what, func() (bool, string) {
		u, err := f.live(name)
		if err != nil {
			return false, err.Error()
		}
		typed := &surgev1alpha1.SurgeEndUser{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
			return false, err.Error()
		}
		if !state(typed) {
			return false, fmt.Sprintf("generation %d, status %+v", typed.Generation, typed.Status)
		}
		snapshot = u
		return true, ""
	})
	return snapshot
}

func (f *fixture) waitForGone(name string) {
	f.t.Helper()
	f.waitFor(name+" deleted", func() (bool, string) {
		_, err := f.live(name)
		if err == nil {
			return false, "still there"
		}
		return client.IgnoreNotFound(err) == nil, err.Error()
	})
}

// waitFor polls check until it holds; the last reason it gave is the
// failure message.
func (f *fixture) waitFor(what string, check func() (bool, string)) {
	f.t.Helper()
	const timeout = 30 * time.Second
	deadline := time.Now().Add(timeout)
	for {
		ok, reason := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s: %s", what, timeout, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLevel keeps the expected reconcile errors of these tests out of the
// output unless TEST_VERBOSE_LOGS is set.
func logLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.FatalLevel
}
