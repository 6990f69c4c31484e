package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// unrelatedSettle is how long the manager is watched after the unrelated
// Secrets exist: long enough for any informer that lists them to do so.
const unrelatedSettle = 15 * time.Second

// runResult is one run's convergence and what it cost.
type runResult struct {
	Name           string           `json:"name"`
	Users          int              `json:"users"`
	LatencySeconds float64          `json:"surgeLatencySeconds"`
	Settings       operatorSettings `json:"operator"`
	// SurgeRateLimit is the emulator's limit in requests per second; 0 for
	// none.
	SurgeRateLimit float64 `json:"surgeRateLimit"`

	Converged      bool `json:"converged"`
	ConvergedUsers int  `json:"convergedUsers"`
	// ConvergenceSeconds runs from the first create until every
	// SurgeEndUser is Ready for its generation and its Secret exists.
	ConvergenceSeconds float64 `json:"convergenceSeconds"`
	// IdealSeconds is N × 2 calls × latency / concurrency: every worker
	// busy with nothing but the two calls a user needs.
	IdealSeconds float64 `json:"idealSeconds"`
	// MeasuredCallsPerUser counts every Surge call of the run, 429s
	// included, per user.
	MeasuredCallsPerUser          float64 `json:"measuredCallsPerUser"`
	IdealWithMeasuredCallsSeconds float64 `json:"idealWithMeasuredCallsSeconds"`
	// ClientLimitSeconds is the floor the client-side rate limit sets:
	// the calls beyond the burst at --surge-requests-per-second.
	ClientLimitSeconds float64 `json:"clientRateLimitBoundSeconds"`
	// SurgeLimitSeconds is the floor the emulator's rate limit sets for
	// two successful calls per user.
	SurgeLimitSeconds float64 `json:"surgeRateLimitBoundSeconds"`
	RatioToIdeal      float64 `json:"ratioToIdeal"`
	// RatioToBound compares with the highest of the floors above.
	RatioToBound float64 `json:"ratioToBound"`

	// Cost runs from just before the first create until the operator's
	// trailing writes are over.
	Cost        window  `json:"cost"`
	CostPerUser perUser `json:"costPerUser"`

	// Surge throughput between the first create and convergence.
	SurgeAttemptedPerSecond float64 `json:"surgeAttemptedPerSecond"`
	SurgeSucceededPerSecond float64 `json:"surgeSucceededPerSecond"`
	// SurgeUsefulPerSecond counts only the successful creates and tokens,
	// the calls a user cannot do without.
	SurgeUsefulPerSecond float64 `json:"surgeUsefulPerSecond"`
	RateLimitedShare     float64 `json:"rateLimitedShare"`

	Memory memoryPeaks `json:"memory"`
}

type perUser struct {
	Surge      surgeCalls `json:"surgeCalls"`
	Kubernetes kubeWrites `json:"kubernetesWrites"`
	Reconciles float64    `json:"reconciles"`
}

// complete derives the bounds, ratios and throughput from the counts.
func (r *runResult) complete(requests []emulator.Request, firstCreate, convergedAt time.Time) {
	n := float64(r.Users)
	r.CostPerUser = perUser{
		Surge:      r.Cost.Surge.perUser(r.Users),
		Kubernetes: r.Cost.Kubernetes.perUser(r.Users),
		Reconciles: r.Cost.Reconciles / n,
	}
	r.MeasuredCallsPerUser = r.CostPerUser.Surge.Total
	concurrency := float64(r.Settings.Concurrency)
	r.IdealSeconds = n * 2 * r.LatencySeconds / concurrency
	r.IdealWithMeasuredCallsSeconds = n * r.MeasuredCallsPerUser * r.LatencySeconds / concurrency
	if r.Settings.RequestsPerSecond > 0 {
		r.ClientLimitSeconds = max(0, r.Cost.Surge.Total-float64(r.Settings.Burst)) / r.Settings.RequestsPerSecond
	}
	if r.SurgeRateLimit > 0 {
		r.SurgeLimitSeconds = n * 2 / r.SurgeRateLimit
	}
	r.RatioToIdeal = r.ConvergenceSeconds / r.IdealSeconds
	r.RatioToBound = r.ConvergenceSeconds / max(r.IdealWithMeasuredCallsSeconds, r.ClientLimitSeconds, r.SurgeLimitSeconds)

	calls := countSurgeCalls(requests, firstCreate, convergedAt)
	if seconds := convergedAt.Sub(firstCreate).Seconds(); seconds > 0 {
		r.SurgeAttemptedPerSecond = calls.Total / seconds
		r.SurgeSucceededPerSecond = (calls.Total - calls.RateLimited - calls.Failed) / seconds
		r.SurgeUsefulPerSecond = float64(successfulCreatesAndTokens(requests, firstCreate, convergedAt)) / seconds
	}
	if calls.Total > 0 {
		r.RateLimitedShare = calls.RateLimited / calls.Total
	}
}

func successfulCreatesAndTokens(requests []emulator.Request, from, to time.Time) int {
	useful := 0
	for _, req := range requests {
		if req.At.Before(from) || !req.At.Before(to) || !succeeded(req) {
			continue
		}
		if op := surgeOperationOf(req); op == opCreate || op == opToken {
			useful++
		}
	}
	return useful
}

// phase is a stretch of time after convergence in which the bench changes
// nothing the operator manages.
type phase struct {
	Window window      `json:"window"`
	Memory memoryPeaks `json:"memory"`
}

type convergenceResult struct {
	Run   runResult `json:"run"`
	Quiet phase     `json:"quiet"`
	// Unrelated is the phase in which Secrets without the managed-by label
	// were created in another namespace; nil when skipped.
	Unrelated *unrelatedPhase `json:"unrelatedSecrets,omitempty"`
}

type unrelatedPhase struct {
	Secrets int `json:"secrets"`
	phase
	// Growth compares with the quiet phase before it. The live heap is
	// the telling figure: the peaks of RSS and of the heap in use move with
	// the timing of garbage collections.
	PeakRSSGrowthBytes      float64 `json:"peakRssGrowthBytes"`
	PeakHeapLiveGrowthBytes float64 `json:"peakHeapLiveGrowthBytes"`
}

// runConvergenceScenario creates N SurgeEndUsers under a manager watching
// every namespace, then watches it settle, then adds unrelated Secrets.
func runConvergenceScenario(ctx context.Context, env *environment, opts options) (*convergenceResult, error) {
	run, err := startRun(ctx, env, runSpec{
		name:       scenarioConvergence,
		users:      opts.users,
		latency:    opts.latency,
		settings:   opts.operator,
		watchAll:   true,
		goMemLimit: opts.goMemLimit,
		timeout:    opts.runTimeout,
	})
	if err != nil {
		return nil, err
	}
	defer run.close()
	result := &convergenceResult{}
	if result.Run, err = run.converge(ctx); err != nil {
		return nil, err
	}

	progress("%s: quiet period of %s", scenarioConvergence, opts.quiet)
	if result.Quiet.Window, result.Quiet.Memory, err = run.observe(ctx, nil, opts.quiet, benchWrites{}); err != nil {
		return nil, err
	}

	if opts.unrelatedSecrets > 0 {
		progress("%s: creating %d unrelated Secrets in another namespace", scenarioConvergence, opts.unrelatedSecrets)
		unrelated := &unrelatedPhase{Secrets: opts.unrelatedSecrets}
		createSecrets := func(ctx context.Context) error { return run.createUnrelatedSecrets(ctx, opts.unrelatedSecrets) }
		if unrelated.Window, unrelated.Memory, err = run.observe(ctx, createSecrets, unrelatedSettle, benchWrites{secretCreates: opts.unrelatedSecrets}); err != nil {
			return nil, err
		}
		unrelated.PeakRSSGrowthBytes = unrelated.Memory.PeakRSS - result.Quiet.Memory.PeakRSS
		unrelated.PeakHeapLiveGrowthBytes = unrelated.Memory.PeakHeapLive - result.Quiet.Memory.PeakHeapLive
		result.Unrelated = unrelated
	}
	profilePath := filepath.Join(env.outDir, scenarioConvergence+"-heap.pprof")
	if err := run.manager.saveHeapProfile(ctx, profilePath); err != nil {
		return nil, err
	}
	progress("%s: heap profile of the manager written to %s (go tool pprof -sample_index=inuse_space %s)", scenarioConvergence, profilePath, profilePath)
	return result, nil
}

type rateLimitResult struct {
	Run runResult `json:"run"`
	// AchievedShare is the successful Surge calls per second over the
	// convergence window, as a share of the emulator's limit.
	AchievedShare float64 `json:"achievedShareOfLimit"`
}

// runRateLimitScenario runs against an emulator that answers 429 above R:
// once with the operator's client-side limit as configured, and once with
// it off, so that only Surge's 429s and Retry-After hold the operator back.
func runRateLimitScenario(ctx context.Context, env *environment, opts options) ([]rateLimitResult, error) {
	type variant struct {
		name     string
		settings operatorSettings
	}
	variants := []variant{{scenarioRateLimit + "-configured", opts.operator}}
	if opts.operator.RequestsPerSecond > 0 {
		withoutClientLimit := opts.operator
		withoutClientLimit.RequestsPerSecond = -1
		variants = append(variants, variant{scenarioRateLimit + "-client-limit-off", withoutClientLimit})
	}
	var results []rateLimitResult
	for _, v := range variants {
		run, err := startRun(ctx, env, runSpec{
			name:           v.name,
			users:          opts.rateLimitUsers,
			latency:        opts.latency,
			rateLimit:      opts.rateLimit,
			rateLimitBurst: opts.rateLimitBurst,
			settings:       v.settings,
			timeout:        opts.rateLimitTimeout,
		})
		if err != nil {
			return nil, err
		}
		result, err := run.converge(ctx)
		run.close()
		if err != nil {
			return nil, err
		}
		results = append(results, rateLimitResult{Run: result, AchievedShare: result.SurgeSucceededPerSecond / opts.rateLimit})
	}
	return results, nil
}

type resyncResult struct {
	Run             runResult `json:"run"`
	IntervalSeconds float64   `json:"intervalSeconds"`
	Window          window    `json:"window"`
	// PeriodSeconds is the mean time between two checks of the same user:
	// the interval less its jitter. Counting calls in a window of a few
	// intervals would round it to whole checks.
	PeriodSeconds float64 `json:"periodSeconds"`
	// CallsPerCheck is the Surge calls of one resync.
	CallsPerCheck float64 `json:"callsPerCheck"`
	// ReconcilesPerCheck is the reconciles the manager ran per resync.
	ReconcilesPerCheck float64 `json:"reconcilesPerCheck"`
	// Extrapolated to -resync (the default 10m) and -n users: the period
	// scales with the interval, jitter included.
	ExtrapolatedInterval          string  `json:"extrapolatedInterval"`
	ExtrapolatedUsers             int     `json:"extrapolatedUsers"`
	ExtrapolatedCallsPerHour      float64 `json:"extrapolatedCallsPerHour"`
	IdealCallsPerHour             float64 `json:"idealCallsPerHour"`
	ExtrapolatedRequestsPerSecond float64 `json:"extrapolatedRequestsPerSecond"`
}

// runResyncScenario converges a few SurgeEndUsers under a short resync
// interval and measures the Surge calls of the resyncs that follow.
func runResyncScenario(ctx context.Context, env *environment, opts options) (*resyncResult, error) {
	settings := opts.operator
	settings.ResyncInterval = opts.resyncInterval
	run, err := startRun(ctx, env, runSpec{
		name:     scenarioResync,
		users:    opts.resyncUsers,
		latency:  opts.latency,
		settings: settings,
		timeout:  opts.runTimeout,
	})
	if err != nil {
		return nil, err
	}
	defer run.close()
	result := &resyncResult{IntervalSeconds: opts.resyncInterval.Seconds()}
	if result.Run, err = run.converge(ctx); err != nil {
		return nil, err
	}
	progress("%s: counting Surge calls for %s at --resync-interval=%s", scenarioResync, opts.resyncWindow, opts.resyncInterval)
	windowStart := time.Now()
	if result.Window, _, err = run.observe(ctx, nil, opts.resyncWindow, benchWrites{}); err != nil {
		return nil, err
	}
	checks, period := checkPeriod(run.surge.Requests(), windowStart)
	if checks == 0 || period == 0 {
		return nil, fmt.Errorf("no user was checked twice in %s: make -resync-window longer than twice -resync-test-interval", opts.resyncWindow)
	}
	result.PeriodSeconds = period
	result.CallsPerCheck = result.Window.Surge.Total / float64(checks)
	result.ReconcilesPerCheck = result.Window.Reconciles / float64(checks)
	scale := opts.operator.ResyncInterval.Seconds() / opts.resyncInterval.Seconds()
	callsPerUserPerHour := result.CallsPerCheck * time.Hour.Seconds() / (period * scale)
	result.ExtrapolatedInterval = opts.operator.ResyncInterval.String()
	result.ExtrapolatedUsers = opts.users
	result.ExtrapolatedCallsPerHour = callsPerUserPerHour * float64(opts.users)
	result.IdealCallsPerHour = time.Hour.Seconds() / opts.operator.ResyncInterval.Seconds() * float64(opts.users)
	result.ExtrapolatedRequestsPerSecond = result.ExtrapolatedCallsPerHour / time.Hour.Seconds()
	return result, nil
}

// checkPeriod finds the resync checks (GET /users/ID) since from and
// returns how many there were and the mean time between two consecutive
// checks of the same user.
func checkPeriod(requests []emulator.Request, from time.Time) (int, float64) {
	first, last := map[string]time.Time{}, map[string]time.Time{}
	count := map[string]int{}
	checks := 0
	for _, req := range requests {
		if req.At.Before(from) || surgeOperationOf(req) != opGet {
			continue
		}
		user := strings.TrimPrefix(req.Path, "/users/")
		if _, seen := first[user]; !seen {
			first[user] = req.At
		}
		last[user] = req.At
		count[user]++
		checks++
	}
	var spans time.Duration
	gaps := 0
	for user, n := range count {
		if n > 1 {
			spans += last[user].Sub(first[user])
			gaps += n - 1
		}
	}
	if gaps == 0 {
		return checks, 0
	}
	return checks, spans.Seconds() / float64(gaps)
}
