package surgetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// Option changes how StartOperator runs the operator. Options are made by
// the With functions of this package.
type Option func(*operator.Options)

// WithResyncInterval sets how often a settled SurgeEndUser is compared with
// Surge (10 seconds by default in tests; 10 minutes in a real deployment).
func WithResyncInterval(d time.Duration) Option {
	return func(o *operator.Options) { o.ResyncInterval = d }
}

// WithNamespaces limits the operator to these namespaces; by default it
// watches them all. Tests that run several operators against one API server
// at once give each its own namespaces.
func WithNamespaces(namespaces ...string) Option {
	return func(o *operator.Options) { o.Namespaces = namespaces }
}

// WithAPIKey sets the operator's own API key, which serves SurgeEndUsers
// without spec.projectRef; by default it is the Emulator's APIKey at start.
// An empty key leaves the operator without one: such resources stall with
// the reason NoProject, as in a cluster where only SurgeProjects hold keys.
func WithAPIKey(key string) Option {
	return func(o *operator.Options) { o.SurgeAPIKey = key }
}

// WithWatchLabelSelector makes the operator reconcile only the
// SurgeEndUsers whose labels match selector, as --watch-label-selector
// does: one shard of several operators.
func WithWatchLabelSelector(selector labels.Selector) Option {
	return func(o *operator.Options) { o.WatchLabelSelector = selector }
}

// Operator is an operator started by StartOperator.
type Operator struct {
	once sync.Once
	stop func()
}

// StartOperator runs the operator in this process against the API server of
// cfg and the Emulator emu, until Stop or the end of the test. The
// SurgeEndUser CRDs must be installed (envtest.Environment.CRDs =
// CRDs()).
//
// It is the manager the operator's release runs, with settings for tests:
// it watches every namespace, retries Surge within milliseconds rather than
// seconds, gives up on a request to Surge after 3 seconds (so a create
// whose answer was lost is settled about 6 seconds after it was sent),
// compares settled resources with Surge every 10 seconds, and
// serves neither metrics nor health probes, so that several operators can
// run in one test binary.
func StartOperator(t testing.TB, cfg *rest.Config, emu *Emulator, opts ...Option) *Operator {
	t.Helper()
	options := operator.Options{
		SurgeAPIURL:            emu.URL(),
		SurgeAPIKey:            emu.APIKey(),
		ResyncInterval:         10 * time.Second,
		ProjectRecheckInterval: time.Second,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
		Rebuildable:            true,
		// Short, so that a create whose answer was lost is settled within
		// seconds.
		SurgeAttemptTimeout: 3 * time.Second,
		SurgeClientOptions: []surge.Option{
			surge.WithBackoff(10*time.Millisecond, 50*time.Millisecond),
			surge.WithMaxRetries(1),
		},
	}
	for _, apply := range opts {
		apply(&options)
	}
	mgr, err := operator.NewManager(cfg, options)
	if err != nil {
		t.Fatalf("surgetest: building the operator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("surgetest: the operator stopped: %v", err)
		}
	}()
	op := &Operator{stop: func() {
		cancel()
		<-done
	}}
	t.Cleanup(op.Stop)
	return op
}

// Stop stops the operator and waits until it has, as SIGTERM stops it: it
// takes no new work, and lets the Surge calls in flight finish (within the
// request timeout, 3 seconds here) and records their answers. Later calls
// do nothing.
func (o *Operator) Stop() { o.once.Do(o.stop) }
