package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

const testAPIKey = "sk_demo_suite"

var (
	restConfig *rest.Config
	k8s        client.Client
	serial     atomic.Int64
)

// operatorLogs holds everything the operator logged during the suite, at
// every level, to be searched for secrets at the end.
var operatorLogs lockedBuffer

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMain(m *testing.M) {
	var logOutput io.Writer = &operatorLogs
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		logOutput = io.MultiWriter(&operatorLogs, os.Stderr)
	}
	logf.SetLogger(zap.New(zap.WriteTo(logOutput), zap.Level(zapcore.DebugLevel)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		panic("starting envtest (run through make test, which builds its binaries): " + err.Error())
	}
	restConfig = cfg
	k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	if code == 0 {
		code = checkNoSecretsLeaked()
	}
	_ = env.Stop()
	os.Exit(code)
}

// checkNoSecretsLeaked fails the suite if the API key or any component token
// (a JWT: its header starts with {"alg":, base64url "eyJhbGciOi") shows up
// in what the operator logged or in any event it recorded.
func checkNoSecretsLeaked() int {
	events := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), events); err != nil {
		fmt.Fprintln(os.Stderr, "listing events:", err)
		return 1
	}
	places := map[string]string{"the operator's logs": operatorLogs.String()}
	var notes strings.Builder
	for _, e := range events.Items {
		notes.WriteString(e.Note + "\n")
	}
	places["events"] = notes.String()
	code := 0
	for place, text := range places {
		for _, secret := range []string{testAPIKey, "eyJhbGciOi"} {
			if strings.Contains(text, secret) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret (%.6s…) appears in %s\n", secret, place)
				code = 1
			}
		}
	}
	return code
}

// fixture is one test's world: a namespace of its own, a Surge emulator with
// one account, and an operator watching only that namespace.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	namespace string
	account   string
	surge     *emulator.Server
	surgeURL  string
	opts      []fixtureOption
	stop      func()
}

type fixtureOption func(*operator.Options)

func withResync(d time.Duration) fixtureOption {
	return func(o *operator.Options) { o.ResyncInterval = d }
}

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	return newFixtureWithPageSize(t, 5, opts...)
}

func newFixtureWithPageSize(t *testing.T, pageSize int, opts ...fixtureOption) *fixture {
	t.Helper()
	n := serial.Add(1)
	f := &fixture{
		t:         t,
		ctx:       context.Background(),
		namespace: fmt.Sprintf("test-%d", n),
		account:   fmt.Sprintf("acct_01j9a43avnfqzbjfch6pygv%03d", n),
		opts:      opts,
	}
	f.surge = emulator.New(emulator.Options{APIKey: testAPIKey, Accounts: []string{f.account}, PageSize: pageSize})
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
	options := operator.Options{
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
	}
	for _, opt := range f.opts {
		opt(&options)
	}
	mgr, err := operator.NewManager(restConfig, options)
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

// restartOperator stops the operator, cancelling whatever it has in flight,
// and starts a new one with empty memory, as after a crash or a change of
// leader.
func (f *fixture) restartOperator() {
	f.t.Helper()
	f.stop()
	f.startOperator()
}

func (f *fixture) endUser(name string, mutate ...func(*surgev1alpha1.SurgeEndUser)) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: f.account,
			FirstName: "Ada",
			LastName:  "Lovelace",
			Metadata:  map[string]string{"team": "analytics"},
		},
	}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

func (f *fixture) create(obj *surgev1alpha1.SurgeEndUser) {
	f.t.Helper()
	if err := k8s.Create(f.ctx, obj); err != nil {
		f.t.Fatalf("creating %s: %v", obj.Name, err)
	}
}

func (f *fixture) get(name string) *surgev1alpha1.SurgeEndUser {
	f.t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{}
	if err := k8s.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, obj); err != nil {
		f.t.Fatalf("reading %s: %v", name, err)
	}
	return obj
}

// update applies a change to the live object, retrying on conflicts with
// the operator's own writes, as kubectl edit would have the person do.
func (f *fixture) update(name string, mutate func(*surgev1alpha1.SurgeEndUser)) {
	f.t.Helper()
	f.eventually("update "+name, 10*time.Second, func() (bool, string) {
		obj := f.get(name)
		mutate(obj)
		if err := k8s.Update(f.ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func (f *fixture) delete(name string) {
	f.t.Helper()
	if err := k8s.Delete(f.ctx, &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace}}); err != nil {
		f.t.Fatalf("deleting %s: %v", name, err)
	}
}

// eventually polls check until it holds or the timeout passes; the last
// reason it gave is the failure message.
func (f *fixture) eventually(what string, timeout time.Duration, check func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var reason string
	for {
		var ok bool
		if ok, reason = check(); ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s: %s", what, timeout, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForCondition waits until the named resource has the condition with
// this status (and reason, when given) for its current generation.
func (f *fixture) waitForCondition(name, conditionType string, status metav1.ConditionStatus, reason string) *surgev1alpha1.SurgeEndUser {
	f.t.Helper()
	var obj *surgev1alpha1.SurgeEndUser
	f.eventually(fmt.Sprintf("%s %s=%s %s", name, conditionType, status, reason), 20*time.Second, func() (bool, string) {
		obj = f.get(name)
		c := apimeta.FindStatusCondition(obj.Status.Conditions, conditionType)
		if c == nil {
			return false, fmt.Sprintf("no %s condition in %+v", conditionType, obj.Status)
		}
		if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != obj.Generation {
			return false, fmt.Sprintf("%s is %s/%s (gen %d of %d): %s", conditionType, c.Status, c.Reason, c.ObservedGeneration, obj.Generation, c.Message)
		}
		return true, ""
	})
	return obj
}

func (f *fixture) waitForReady(name string) *surgev1alpha1.SurgeEndUser {
	f.t.Helper()
	obj := f.waitForCondition(name, "Ready", metav1.ConditionTrue, "Synced")
	if obj.Status.ObservedGeneration != obj.Generation {
		f.t.Fatalf("Ready but observedGeneration %d != generation %d", obj.Status.ObservedGeneration, obj.Generation)
	}
	return obj
}

func (f *fixture) waitForGone(name string) {
	f.t.Helper()
	f.eventually(name+" deleted", 20*time.Second, func() (bool, string) {
		err := k8s.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, &surgev1alpha1.SurgeEndUser{})
		if err == nil {
			return false, "still there"
		}
		return client.IgnoreNotFound(err) == nil, fmt.Sprint(err)
	})
}

// waitForEvent waits for an event with this reason about the named resource
// and returns its note.
func (f *fixture) waitForEvent(name, reason string) string {
	f.t.Helper()
	var note string
	f.eventually(fmt.Sprintf("event %s on %s", reason, name), 10*time.Second, func() (bool, string) {
		list := &eventsv1.EventList{}
		if err := k8s.List(f.ctx, list, client.InNamespace(f.namespace)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				note = e.Note
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, "events seen: " + strings.Join(seen, ", ")
	})
	return note
}

// consistently checks that check holds for the whole duration.
func (f *fixture) consistently(what string, duration time.Duration, check func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		if ok, reason := check(); !ok {
			f.t.Fatalf("%s: %s", what, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
