package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

const testAPIKey = "sk_demo_suite"

var (
	cluster *operatortest.Cluster
	k8s     client.Client
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
	var err error
	cluster, err = operatortest.StartCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = cluster.Client
	code := m.Run()
	if code == 0 {
		code = checkNoSecretsLeaked()
	}
	_ = cluster.Stop()
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
		for _, secret := range []string{testAPIKey, "sk_live_team_key", "eyJhbGciOi"} {
			if strings.Contains(text, secret) {
				fmt.Fprintf(os.Stderr, "FAIL: a secret (%.6s…) appears in %s\n", secret, place)
				code = 1
			}
		}
	}
	return code
}

// fixture is one test's world (see operatortest.World) with the assertions
// these tests share.
type fixture struct {
	*operatortest.World
}

type fixtureOption = surgetest.Option

func withResync(d time.Duration) fixtureOption {
	return surgetest.WithResyncInterval(d)
}

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	return newFixtureWithPageSize(t, 5, opts...)
}

func newFixtureWithPageSize(t *testing.T, pageSize int, opts ...fixtureOption) *fixture {
	t.Helper()
	return newFixtureWithSettings(t, operatortest.Settings{PageSize: pageSize, Operator: opts})
}

func newFixtureWithSettings(t *testing.T, settings operatortest.Settings) *fixture {
	t.Helper()
	settings.NamespacePrefix = "test"
	settings.APIKey = testAPIKey
	return &fixture{World: operatortest.NewWorld(t, cluster, settings)}
}

// newTenantsFixture is a fixture whose operator also watches a namespace
// per tenant, found in f.Namespaces by these names.
func newTenantsFixture(t *testing.T, tenants []string, opts ...fixtureOption) *fixture {
	t.Helper()
	return &fixture{World: operatortest.NewWorld(t, cluster, operatortest.Settings{
		NamespacePrefix: "tenancy",
		APIKey:          testAPIKey,
		PageSize:        5,
		ExtraNamespaces: tenants,
		Operator:        opts,
	})}
}

func (f *fixture) endUser(name string, mutate ...func(*surgev1alpha1.SurgeEndUser)) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: f.Account,
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

// waitForCondition waits until the named resource has the condition with
// this status (and reason, when given) for its current generation.
func (f *fixture) waitForCondition(name, conditionType string, status metav1.ConditionStatus, reason string) *surgev1alpha1.SurgeEndUser {
	f.T.Helper()
	return f.waitForConditionIn(f.Namespace, name, conditionType, status, reason)
}

func (f *fixture) waitForConditionIn(namespace, name, conditionType string, status metav1.ConditionStatus, reason string) *surgev1alpha1.SurgeEndUser {
	f.T.Helper()
	var obj *surgev1alpha1.SurgeEndUser
	f.Eventually(fmt.Sprintf("%s/%s %s=%s %s", namespace, name, conditionType, status, reason), 20*time.Second, func() (bool, string) {
		obj = &surgev1alpha1.SurgeEndUser{}
		if err := k8s.Get(f.Ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
			return false, err.Error()
		}
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
	f.T.Helper()
	obj := f.waitForCondition(name, "Ready", metav1.ConditionTrue, "Synced")
	if obj.Status.ObservedGeneration != obj.Generation {
		f.T.Fatalf("Ready but observedGeneration %d != generation %d", obj.Status.ObservedGeneration, obj.Generation)
	}
	return obj
}

// waitForEvent waits for an event with this reason about the named resource
// and returns its note.
func (f *fixture) waitForEvent(name, reason string) string {
	f.T.Helper()
	var note string
	f.Eventually(fmt.Sprintf("event %s on %s", reason, name), 10*time.Second, func() (bool, string) {
		list := &eventsv1.EventList{}
		if err := k8s.List(f.Ctx, list, client.InNamespace(f.Namespace)); err != nil {
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
	f.T.Helper()
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		if ok, reason := check(); !ok {
			f.T.Fatalf("%s: %s", what, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
