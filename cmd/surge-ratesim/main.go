// Command ratesim measures the Surge client's adaptive rate in process,
// without Kubernetes: workers shaped like the operator's reconciles drive
// one surge.Client against the emulator, whose rate limit the client is not
// told, and the run reports the figures of the bench's rate sweep.
//
// Each simulated resource needs a create and a token. A reconcile does what
// is left of both, after a pause that stands in for the Kubernetes writes
// around it; a rate-limited call ends the reconcile, and the resource comes
// back after the wait the client named (at least a second), as the
// controller requeues it. A reconcile that ended early reads the user back
// before its token, as the controller's next user check does.
//
//	go run ./cmd/surge-ratesim -limits 5,10,50,200
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/surge-operator/surge-operator/internal/ratesweep"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	apiKey  = "sk_demo_ratesim"
	account = "acct_ratesim"
	// minRequeue is the controller's least wait for a rate-limited
	// resource.
	minRequeue = time.Second
)

type options struct {
	limits      []float64
	burst       int
	latency     time.Duration
	workers     int
	ceiling     float64
	clientBurst int
	floor       time.Duration
	maxUsers    int
	k8s         time.Duration
	trace       bool
	repeat      int
	storm       time.Duration
	instances   int
}

func main() {
	var opts options
	var limits string
	flag.StringVar(&limits, "limits", "5,10,50,200", "Comma-separated rates Surge allows, one run each.")
	flag.IntVar(&opts.burst, "burst", 5, "Surge's burst above its limit.")
	flag.DurationVar(&opts.latency, "latency", 50*time.Millisecond, "Latency the emulator adds to every call.")
	flag.IntVar(&opts.workers, "workers", 8, "Concurrent reconciles.")
	flag.Float64Var(&opts.ceiling, "ceiling", 200, "Ceiling of the client's adaptive rate.")
	flag.IntVar(&opts.clientBurst, "client-burst", 40, "The client's configured burst.")
	flag.DurationVar(&opts.floor, "floor", 40*time.Second, "Each run gets the users its limit serves in about this long.")
	flag.IntVar(&opts.maxUsers, "max-users", 1000, "Most users in one run.")
	flag.DurationVar(&opts.k8s, "k8s", 20*time.Millisecond, "Time each reconcile spends on Kubernetes, half before the calls and half after.")
	flag.BoolVar(&opts.trace, "trace", false, "Print the client's rate and Surge's answers second by second.")
	flag.IntVar(&opts.repeat, "repeat", 1, "Runs per limit.")
	flag.IntVar(&opts.instances, "instances", 1, "Operator instances sharing the one API key, as shards do: each has a Surge client (and an adaptive rate) of its own, serves every instances-th user, and runs -workers workers.")
	flag.DurationVar(&opts.storm, "storm", 0, "Start each run with a storm this long, in which Surge allows 0.2 rps, and report how long after it the client is served 85% of the limit again.")
	flag.Parse()
	parsed, err := ratesweep.ParseLimits(limits)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ratesim: -limits: %v\n", err)
		os.Exit(2)
	}
	opts.limits = parsed
	fmt.Printf("%-8s %6s %9s %8s %7s %8s %9s %8s %10s\n", "limit", "users", "converged", "floor", "×floor", "used", "429", "rec/user", "recovered")
	for _, limit := range opts.limits {
		for range opts.repeat {
			r := run(opts, limit)
			recovered := "-"
			if opts.storm > 0 {
				recovered = "never"
				if r.recovered > 0 {
					recovered = fmt.Sprintf("%.1fs", r.recovered.Seconds())
				}
			}
			fmt.Printf("%-8s %6d %8.1fs %7.1fs %7.2f %7.0f%% %8.1f%% %8.2f %10s\n",
				fmt.Sprintf("%g rps", limit), r.users, r.converged.Seconds(), r.floor.Seconds(),
				r.converged.Seconds()/r.floor.Seconds(), 100*r.used, 100*r.limitedShare, r.reconcilesPerUser, recovered)
		}
	}
}

type result struct {
	users             int
	converged, floor  time.Duration
	used              float64
	limitedShare      float64
	reconcilesPerUser float64
	// recovered is how long after the storm Surge first served 85% of its
	// limit in one second; 0 when it never did.
	recovered time.Duration
}

// rateTrace keeps the client's latest rate, for the trace.
type rateTrace struct {
	mu   sync.Mutex
	rate float64
}

func (t *rateTrace) RequestDone(string, int, time.Duration) {}
func (t *rateTrace) Retried(string, int)                    {}
func (t *rateTrace) RateChanged(current, _ float64) {
	t.mu.Lock()
	t.rate = current
	t.mu.Unlock()
}

func (t *rateTrace) current() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rate
}

// resource is one simulated SurgeEndUser.
type resource struct {
	userID string
	token  bool
	// checked is false after a reconcile that ended early: the next one
	// reads the user back first.
	checked bool
}

func run(opts options, limit float64) result {
	users := ratesweep.Users(limit, opts.floor, opts.maxUsers)
	emu := emulator.New(emulator.Options{APIKey: apiKey, Accounts: []string{account}})
	emu.SetLatency(opts.latency)
	emu.SetRateLimit(limit, opts.burst)
	var stormEnds time.Time
	if opts.storm > 0 {
		emu.SetRateLimit(stormLimit, 1)
		stormEnds = time.Now().Add(opts.storm)
		time.AfterFunc(opts.storm, func() { emu.SetRateLimit(limit, opts.burst) })
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	trace := &rateTrace{}
	clients := make([]*surge.Client, max(opts.instances, 1))
	for n := range clients {
		client, err := surge.New(srv.URL, apiKey,
			surge.WithRateLimit(opts.ceiling, opts.clientBurst),
			surge.WithObserver(trace),
			surge.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}))
		if err != nil {
			panic(err)
		}
		clients[n] = client
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	queue := newDelayQueue(users)
	resources := make([]resource, users)
	var reconciles, done int
	var mu sync.Mutex
	start := time.Now()

	if opts.trace {
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			last := 0
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tick.C:
					requests := emu.Requests()
					ok, limited := 0, 0
					for _, r := range requests[last:] {
						if r.Status == http.StatusTooManyRequests {
							limited++
						} else if r.Status != 0 {
							ok++
						}
					}
					last = len(requests)
					mu.Lock()
					d := done
					mu.Unlock()
					fmt.Printf("  %5.1fs rate %6.2f  ok %4d  429 %3d  done %d\n", now.Sub(start).Seconds(), trace.current(), ok, limited, d)
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for range opts.workers * len(clients) {
		wg.Go(func() {
			for {
				i, ok := queue.next(ctx)
				if !ok {
					return
				}
				mu.Lock()
				reconciles++
				r := resources[i]
				mu.Unlock()
				wait, finished := reconcile(ctx, clients[i%len(clients)], &r, opts.k8s)
				mu.Lock()
				resources[i] = r
				if finished {
					done++
					if done == users {
						queue.close()
					}
				}
				mu.Unlock()
				if !finished {
					queue.add(i, max(wait, minRequeue))
				}
			}
		})
	}
	wg.Wait()
	converged := time.Since(start)
	cancel()

	var succeeded, limited, all int
	for _, r := range emu.Requests() {
		all++
		switch {
		case r.Status == http.StatusTooManyRequests:
			limited++
		case r.Status >= 200 && r.Status < 300:
			succeeded++
		}
	}
	return result{
		recovered:         recoveredAfter(emu.Requests(), stormEnds, limit),
		users:             users,
		converged:         converged,
		floor:             ratesweep.Floor(users, opts.burst, limit),
		used:              float64(succeeded) / converged.Seconds() / limit,
		limitedShare:      float64(limited) / float64(max(all, 1)),
		reconcilesPerUser: float64(reconciles) / float64(users),
	}
}

// stormLimit is the rate Surge allows during a storm.
const stormLimit = 0.2

// recoveredAfter is how long after stormEnds Surge first served 85% of
// limit within one second; 0 when it never did, or without a storm.
func recoveredAfter(requests []emulator.Request, stormEnds time.Time, limit float64) time.Duration {
	if stormEnds.IsZero() {
		return 0
	}
	var served []time.Time
	for _, r := range requests {
		if r.Status >= 200 && r.Status < 300 && !r.At.Before(stormEnds) {
			served = append(served, r.At)
		}
	}
	slices.SortFunc(served, func(a, b time.Time) int { return a.Compare(b) })
	need := int(math.Ceil(0.85 * limit))
	for i := need - 1; i < len(served); i++ {
		if served[i].Sub(served[i-need+1]) <= time.Second {
			return served[i].Sub(stormEnds)
		}
	}
	return 0
}

// reconcile does what is left of one resource. It reports whether the
// resource is done, and otherwise how long to wait before the next try.
func reconcile(ctx context.Context, client *surge.Client, r *resource, k8s time.Duration) (time.Duration, bool) {
	time.Sleep(k8s / 2)
	defer time.Sleep(k8s / 2)
	ended := func(err error) (time.Duration, bool) {
		r.checked = false
		if wait, limited := surge.RateLimitedFor(err); limited {
			return wait, false
		}
		return minRequeue, false
	}
	if r.userID == "" {
		user, err := client.CreateUser(ctx, account, surge.UserFields{FirstName: "Sim"})
		if err != nil {
			return ended(err)
		}
		r.userID = user.ID
	} else if !r.checked {
		if _, err := client.GetUser(ctx, r.userID); err != nil {
			return ended(err)
		}
	}
	r.checked = true
	if !r.token {
		if _, err := client.CreateToken(ctx, r.userID, 900); err != nil {
			return ended(err)
		}
		r.token = true
	}
	return 0, true
}

// delayQueue hands out resource indexes, each when it is due.
type delayQueue struct {
	mu     sync.Mutex
	ready  []int
	wake   chan struct{}
	closed bool
}

func newDelayQueue(n int) *delayQueue {
	q := &delayQueue{wake: make(chan struct{}, 1)}
	for i := range n {
		q.ready = append(q.ready, i)
	}
	return q
}

func (q *delayQueue) add(i int, after time.Duration) {
	time.AfterFunc(after, func() {
		q.mu.Lock()
		q.ready = append(q.ready, i)
		q.mu.Unlock()
		q.signal()
	})
}

func (q *delayQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *delayQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *delayQueue) next(ctx context.Context) (int, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			q.signal()
			return 0, false
		}
		if len(q.ready) > 0 {
			i := q.ready[0]
			q.ready = slices.Delete(q.ready, 0, 1)
			more := len(q.ready) > 0
			q.mu.Unlock()
			if more {
				q.signal()
			}
			return i, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return 0, false
		}
	}
}
