package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	benchAccount = "acct_01benchbenchbenchbenchbench"
	// createWorkers is how many SurgeEndUsers the bench creates at once, as
	// a GitOps tool applying a large change would.
	createWorkers = 8
	// quiescence is how long nothing may happen before a burst of work
	// counts as over: the operator's last metadata patches and events trail
	// the moment the last resource turns Ready.
	quiescence      = 2 * time.Second
	quiescenceLimit = 30 * time.Second
)

// runSpec describes one run: a namespace of SurgeEndUsers, an emulator and
// a manager process of their own.
type runSpec struct {
	name           string
	users          int
	latency        time.Duration
	rateLimit      float64
	rateLimitBurst int
	settings       operatorSettings
	// watchAll runs the manager on every namespace, as it is deployed by
	// default; otherwise it watches only the run's namespace.
	watchAll bool
	// goMemLimit is the manager's GOMEMLIMIT; empty for Go's default.
	goMemLimit string
	// withoutSecrets: the run's SurgeEndUsers have no token Secret, and
	// converge without one.
	withoutSecrets bool
	timeout        time.Duration
}

// benchRun is a running spec.
type benchRun struct {
	env       *environment
	spec      runSpec
	namespace string
	surge     *servedEmulator
	tracker   *convergenceTracker
	manager   *managerProcess
	cancel    context.CancelFunc
}

func startRun(ctx context.Context, env *environment, spec runSpec) (*benchRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &benchRun{env: env, spec: spec, namespace: "bench-" + spec.name, cancel: cancel}
	if err := env.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.namespace}}); err != nil {
		r.close()
		return nil, fmt.Errorf("creating namespace %s: %w", r.namespace, err)
	}
	var err error
	if r.surge, err = serveEmulator(benchAPIKey, benchAccount); err != nil {
		r.close()
		return nil, err
	}
	r.surge.SetLatency(spec.latency)
	r.surge.SetRateLimit(spec.rateLimit, spec.rateLimitBurst)
	if r.tracker, err = trackConvergence(ctx, env.restConfig, r.namespace, spec.users, !spec.withoutSecrets); err != nil {
		r.close()
		return nil, err
	}
	watchNamespace := r.namespace
	if spec.watchAll {
		watchNamespace = ""
	}
	progress("%s: starting the manager (%s)", spec.name, spec.settings)
	if r.manager, err = startManager(ctx, env, spec.name, r.surge.url, spec.settings, watchNamespace, spec.goMemLimit); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *benchRun) close() {
	if r.manager != nil {
		r.manager.stop()
	}
	if r.surge != nil {
		r.surge.close()
	}
	r.cancel()
}

// mark is the state of the counters at one moment; two marks make a window.
type mark struct {
	at         time.Time
	apiServer  []sample
	reconciles float64
}

func (r *benchRun) mark(ctx context.Context) (mark, error) {
	at := time.Now()
	apiServer, err := r.env.apiServerMetrics(ctx)
	if err != nil {
		return mark{}, err
	}
	reconciles, err := r.manager.reconciles(ctx)
	if err != nil {
		return mark{}, err
	}
	return mark{at: at, apiServer: apiServer, reconciles: reconciles}, nil
}

// window is what happened between two marks.
type window struct {
	Seconds    float64    `json:"seconds"`
	Surge      surgeCalls `json:"surgeCalls"`
	Kubernetes kubeWrites `json:"kubernetesWrites"`
	Reconciles float64    `json:"reconciles"`
}

// benchWrites are the writes the bench itself made in a window, which are
// not the operator's.
type benchWrites struct {
	endUserCreates int
	secretCreates  int
}

func (r *benchRun) window(from, to mark, own benchWrites) window {
	return window{
		Seconds:    to.at.Sub(from.at).Seconds(),
		Surge:      countSurgeCalls(r.surge.Requests(), from.at, to.at),
		Kubernetes: countKubeWrites(from.apiServer, to.apiServer, own),
		Reconciles: to.reconciles - from.reconciles,
	}
}

// converge creates the run's SurgeEndUsers and waits until every one is
// Ready with its Secret, then until the operator's trailing writes are over.
func (r *benchRun) converge(ctx context.Context) (runResult, error) {
	result := runResult{
		Name:           r.spec.name,
		Users:          r.spec.users,
		LatencySeconds: r.spec.latency.Seconds(),
		Settings:       r.spec.settings,
		SurgeRateLimit: r.spec.rateLimit,
	}
	before, err := r.mark(ctx)
	if err != nil {
		return result, err
	}
	if err := r.manager.memory.resetPeaks(ctx); err != nil {
		return result, err
	}
	progress("%s: creating %d SurgeEndUsers", r.spec.name, r.spec.users)
	firstCreate, err := r.createUsers(ctx)
	if err != nil {
		return result, err
	}
	convergedAt, err := r.waitConverged(ctx)
	if err != nil {
		return result, err
	}
	result.Converged = !convergedAt.IsZero()
	result.ConvergedUsers = r.tracker.convergedCount()
	if !result.Converged {
		progress("%s: only %d of %d converged within %s; recording what happened", r.spec.name, result.ConvergedUsers, r.spec.users, r.spec.timeout)
		convergedAt = time.Now()
	} else {
		progress("%s: every SurgeEndUser Ready with its Secret after %.1fs", r.spec.name, convergedAt.Sub(firstCreate).Seconds())
	}
	result.ConvergenceSeconds = convergedAt.Sub(firstCreate).Seconds()
	if err := r.waitQuiescent(ctx); err != nil {
		return result, err
	}
	after, err := r.mark(ctx)
	if err != nil {
		return result, err
	}
	if result.Memory, err = r.manager.memory.peaks(ctx); err != nil {
		return result, err
	}
	result.Cost = r.window(before, after, benchWrites{endUserCreates: r.spec.users})
	result.complete(r.surge.Requests(), firstCreate, convergedAt)
	return result, nil
}

func (r *benchRun) createUsers(ctx context.Context) (time.Time, error) {
	return createConcurrently(ctx, r.spec.users, createWorkers, func(ctx context.Context, i int) error {
		return r.env.k8s.Create(ctx, benchEndUser(r.namespace, i))
	})
}

func benchEndUser(namespace string, i int) *surgev1alpha1.SurgeEndUser {
	name := fmt.Sprintf("user-%05d", i)
	return &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID: benchAccount,
			FirstName: "Bench",
			LastName:  fmt.Sprintf("User %d", i),
			Metadata:  map[string]string{"cohort": "bench"},
			TokenSecret: &surgev1alpha1.TokenSecretSpec{
				Name:            name + "-token",
				DurationSeconds: 900,
			},
		},
	}
}

// createUnrelatedSecrets fills another namespace with Secrets the operator
// has no business with, as a real cluster has.
func (r *benchRun) createUnrelatedSecrets(ctx context.Context, count int) error {
	namespace := r.namespace + "-unrelated"
	if err := r.env.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	// A kilobyte is about what a TLS key pair or a docker config weighs.
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	_, err := createConcurrently(ctx, count, 2*createWorkers, func(ctx context.Context, i int) error {
		return r.env.k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      fmt.Sprintf("unrelated-%05d", i),
				Namespace: namespace,
				Labels:    map[string]string{"app.kubernetes.io/name": "someone-else"},
			},
			Data: map[string][]byte{"payload": payload},
		})
	})
	return err
}

// createConcurrently runs create for 0..count-1 on workers goroutines and
// returns when the first create was sent.
func createConcurrently(ctx context.Context, count, workers int, create func(context.Context, int) error) (time.Time, error) {
	indexes := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Go(func() {
			for i := range indexes {
				if err := create(ctx, i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	first := time.Now()
feed:
	for i := range count {
		select {
		case indexes <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(indexes)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return first, fmt.Errorf("creating objects: %w", err)
	}
	return first, ctx.Err()
}

// waitConverged waits until every SurgeEndUser is Ready with its Secret and
// returns when that happened; the zero time when the run timed out.
func (r *benchRun) waitConverged(ctx context.Context) (time.Time, error) {
	deadline := time.After(r.spec.timeout)
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-r.tracker.converged:
			return r.tracker.convergedTime(), nil
		case <-r.manager.exited:
			return time.Time{}, fmt.Errorf("the manager exited (%v); see %s", r.manager.waitErr, r.manager.logPath)
		case <-deadline:
			return time.Time{}, nil
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-ticker.C:
			progress("%s: %d of %d Ready with their Secret", r.spec.name, r.tracker.convergedCount(), r.spec.users)
		}
	}
}

// waitQuiescent waits until neither the API server nor the emulator has
// seen a write or call for a while, so that a window ending now holds the
// whole of the work that came before.
func (r *benchRun) waitQuiescent(ctx context.Context) error {
	deadline := time.Now().Add(quiescenceLimit)
	lastActivity, lastChange := -1.0, time.Now()
	for time.Now().Before(deadline) {
		samples, err := r.env.apiServerMetrics(ctx)
		if err != nil {
			return err
		}
		activity := countKubeWrites(nil, samples, benchWrites{}).Total + r.convergingCalls()
		if activity != lastActivity {
			lastActivity, lastChange = activity, time.Now()
		} else if time.Since(lastChange) >= quiescence {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	progress("%s: still busy %s after convergence; measuring anyway", r.spec.name, quiescenceLimit)
	return nil
}

// convergingCalls counts the Surge calls other than reads of one user:
// those are resync checks, which come on their own schedule and would keep
// a run with a short resync interval from ever looking quiet.
func (r *benchRun) convergingCalls() float64 {
	calls := countSurgeCalls(r.surge.Requests(), time.Time{}, time.Now().Add(time.Hour))
	return calls.Total - calls.Get
}

// observe runs change, if any, then watches the run for d more, and
// returns what happened from the start, with the manager's memory peaks.
func (r *benchRun) observe(ctx context.Context, change func(context.Context) error, d time.Duration, own benchWrites) (window, memoryPeaks, error) {
	if err := r.manager.memory.resetPeaks(ctx); err != nil {
		return window{}, memoryPeaks{}, err
	}
	start, err := r.mark(ctx)
	if err != nil {
		return window{}, memoryPeaks{}, err
	}
	if change != nil {
		if err := change(ctx); err != nil {
			return window{}, memoryPeaks{}, err
		}
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return window{}, memoryPeaks{}, ctx.Err()
	}
	end, err := r.mark(ctx)
	if err != nil {
		return window{}, memoryPeaks{}, err
	}
	peaks, err := r.manager.memory.peaks(ctx)
	if err != nil {
		return window{}, memoryPeaks{}, err
	}
	return r.window(start, end, own), peaks, nil
}

// surgeCalls counts the requests the emulator received, by operation.
type surgeCalls struct {
	Create float64 `json:"create"`
	Token  float64 `json:"token"`
	List   float64 `json:"list"`
	Get    float64 `json:"get"`
	Update float64 `json:"update"`
	Delete float64 `json:"delete"`
	Other  float64 `json:"other"`
	Total  float64 `json:"total"`
	// RateLimited counts the requests above answered 429.
	RateLimited float64 `json:"rateLimited"`
	// Failed counts the requests above answered with another error, or
	// not at all.
	Failed float64 `json:"failed"`
}

func countSurgeCalls(requests []emulator.Request, from, to time.Time) surgeCalls {
	var calls surgeCalls
	for _, req := range requests {
		if req.At.Before(from) || !req.At.Before(to) {
			continue
		}
		*calls.counter(surgeOperationOf(req))++
		calls.Total++
		switch {
		case req.Status == http.StatusTooManyRequests:
			calls.RateLimited++
		case !succeeded(req):
			calls.Failed++
		}
	}
	return calls
}

// surgeOperation names a route of the Surge API.
type surgeOperation int

const (
	opOther surgeOperation = iota
	opCreate
	opToken
	opList
	opGet
	opUpdate
	opDelete
)

func surgeOperationOf(req emulator.Request) surgeOperation {
	segments := strings.Split(strings.Trim(req.Path, "/"), "/")
	switch {
	case len(segments) == 3 && segments[0] == "accounts" && segments[2] == "users":
		switch req.Method {
		case http.MethodPost:
			return opCreate
		case http.MethodGet:
			return opList
		}
	case len(segments) == 3 && segments[0] == "users" && segments[2] == "tokens" && req.Method == http.MethodPost:
		return opToken
	case len(segments) == 2 && segments[0] == "users":
		switch req.Method {
		case http.MethodGet:
			return opGet
		case http.MethodPatch:
			return opUpdate
		case http.MethodDelete:
			return opDelete
		}
	}
	return opOther
}

func succeeded(req emulator.Request) bool { return req.Status >= 200 && req.Status <= 299 }

func (c *surgeCalls) counter(op surgeOperation) *float64 {
	switch op {
	case opCreate:
		return &c.Create
	case opToken:
		return &c.Token
	case opList:
		return &c.List
	case opGet:
		return &c.Get
	case opUpdate:
		return &c.Update
	case opDelete:
		return &c.Delete
	}
	return &c.Other
}

func (c surgeCalls) perUser(users int) surgeCalls {
	n := float64(max(users, 1))
	return surgeCalls{
		Create: c.Create / n, Token: c.Token / n, List: c.List / n, Get: c.Get / n,
		Update: c.Update / n, Delete: c.Delete / n, Other: c.Other / n, Total: c.Total / n,
		RateLimited: c.RateLimited / n, Failed: c.Failed / n,
	}
}

// kubeWrites counts the writes the API server served, by what they wrote.
type kubeWrites struct {
	// MetadataPatches are writes to SurgeEndUsers themselves: the
	// finalizer and the create marker.
	MetadataPatches float64 `json:"metadataPatches"`
	StatusPatches   float64 `json:"statusPatches"`
	SecretCreates   float64 `json:"secretCreates"`
	SecretUpdates   float64 `json:"secretUpdates"`
	SecretDeletes   float64 `json:"secretDeletes"`
	Events          float64 `json:"events"`
	// Other are writes to SurgeEndUsers and Secrets not listed above.
	Other float64 `json:"other"`
	Total float64 `json:"total"`
	// Conflicts counts the writes above refused with 409 Conflict.
	Conflicts float64 `json:"conflicts"`
}

var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// countKubeWrites subtracts two scrapes of apiserver_request_total (nil
// before counts from zero) and the bench's own writes.
func countKubeWrites(before, after []sample, own benchWrites) kubeWrites {
	delta := map[string]float64{}
	key := func(s sample) string {
		return s.labels["verb"] + " " + s.labels["group"] + " " + s.labels["resource"] + " " + s.labels["subresource"] + " " + s.labels["code"]
	}
	for _, s := range after {
		delta[key(s)] += s.value
	}
	for _, s := range before {
		delta[key(s)] -= s.value
	}
	var writes kubeWrites
	seen := map[string]bool{}
	for _, s := range after {
		k := key(s)
		if seen[k] || !writeVerbs[s.labels["verb"]] {
			continue
		}
		seen[k] = true
		count := delta[k]
		var counter *float64
		resource, subresource, verb := s.labels["resource"], s.labels["subresource"], s.labels["verb"]
		switch {
		case resource == "surgeendusers" && subresource == "status":
			counter = &writes.StatusPatches
		case resource == "surgeendusers" && subresource == "" && (verb == "PATCH" || verb == "PUT" || verb == "APPLY"):
			counter = &writes.MetadataPatches
		case resource == "secrets" && verb == "POST":
			counter = &writes.SecretCreates
		case resource == "secrets" && (verb == "PUT" || verb == "PATCH" || verb == "APPLY"):
			counter = &writes.SecretUpdates
		case resource == "secrets" && verb == "DELETE":
			counter = &writes.SecretDeletes
		case resource == "events":
			counter = &writes.Events
		case resource == "surgeendusers" || resource == "secrets":
			counter = &writes.Other
		default:
			continue
		}
		*counter += count
		writes.Total += count
		if s.labels["code"] == "409" {
			writes.Conflicts += count
		}
	}
	// The bench's own creates are all POSTs: of SurgeEndUsers (counted as
	// Other) and of Secrets.
	writes.Other -= float64(own.endUserCreates)
	writes.SecretCreates -= float64(own.secretCreates)
	writes.Total -= float64(own.endUserCreates + own.secretCreates)
	return writes
}

func (w kubeWrites) perUser(users int) kubeWrites {
	n := float64(max(users, 1))
	return kubeWrites{
		MetadataPatches: w.MetadataPatches / n, StatusPatches: w.StatusPatches / n,
		SecretCreates: w.SecretCreates / n, SecretUpdates: w.SecretUpdates / n, SecretDeletes: w.SecretDeletes / n,
		Events: w.Events / n, Other: w.Other / n, Total: w.Total / n, Conflicts: w.Conflicts / n,
	}
}
