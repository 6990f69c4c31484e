package main

import (
	"context"
	"fmt"
	"time"

	"github.com/surge-operator/surge-operator/internal/ratesweep"
)

// sweepResult is one run of the rate sweep: Surge allows limit requests
// per second, and the operator, with its defaults, is not told.
type sweepResult struct {
	Limit float64   `json:"surgeRateLimit"`
	Run   runResult `json:"run"`
	// ShareOfLimit is the successful calls per second between the first
	// create and convergence, as a share of the limit.
	ShareOfLimit float64 `json:"shareOfLimit"`
	// FloorSeconds is the least time the limit allows for the calls the
	// users need, create and token: (2N − Surge's burst) / limit.
	FloorSeconds float64 `json:"floorSeconds"`
	RatioToFloor float64 `json:"ratioToFloor"`
}

// runRateSweep runs N users against each of the limits in turn, with the
// operator's settings as given (its defaults unless flags changed them).
func runRateSweep(ctx context.Context, env *environment, opts options) ([]sweepResult, error) {
	var results []sweepResult
	for _, limit := range opts.sweepLimits {
		users := ratesweep.Users(limit, opts.sweepFloor, opts.sweepMaxUsers)
		floor := ratesweep.Floor(users, opts.rateLimitBurst, limit).Seconds()
		run, err := startRun(ctx, env, runSpec{
			name:           fmt.Sprintf("%s-%g", scenarioRateSweep, limit),
			users:          users,
			latency:        opts.latency,
			rateLimit:      limit,
			rateLimitBurst: opts.rateLimitBurst,
			settings:       opts.operator,
			// A run three times slower than its floor has missed by far;
			// waiting longer would not change the verdict.
			timeout: max(time.Duration(3*floor*float64(time.Second)), time.Minute),
		})
		if err != nil {
			return nil, err
		}
		result, err := run.converge(ctx)
		run.close()
		if err != nil {
			return nil, err
		}
		results = append(results, sweepResult{
			Limit:        limit,
			Run:          result,
			ShareOfLimit: result.SurgeSucceededPerSecond / limit,
			FloorSeconds: floor,
			RatioToFloor: result.ConvergenceSeconds / floor,
		})
	}
	return results, nil
}

// restartResult is the restart scenario: settled users, a restarted
// manager that reconciles each of them once, and one new resource created
// as it starts.
type restartResult struct {
	Settled runResult `json:"settled"`
	// NewUserSeconds runs from the creation of the new resource until it
	// is Ready with its Secret.
	NewUserSeconds float64 `json:"newUserSeconds"`
	NewUserReady   bool    `json:"newUserReady"`
	// ChecksBefore counts the settled users read from Surge between the
	// restart and the new resource turning Ready.
	ChecksBefore float64 `json:"checksBeforeNewUser"`
	// AllReadySeconds runs from the restart until every resource, the new
	// one included, is Ready for its generation with its Secret.
	AllReadySeconds float64 `json:"allReadySeconds"`
	// AllReconciledSeconds runs from the restart until the new manager has
	// reconciled as many times as there are resources; 0 if it had not
	// within the window.
	AllReconciledSeconds float64 `json:"allReconciledSeconds"`
	// Window is how long after the restart Surge calls were counted, and
	// ChecksPerSettledUser the reads of single users among them, per
	// settled user. Token renewals that come due and the account listing
	// the new resource's create asks for are counted in WindowCalls only.
	WindowSeconds        float64    `json:"windowSeconds"`
	WindowCalls          surgeCalls `json:"windowCalls"`
	ChecksPerSettledUser float64    `json:"checksPerSettledUser"`
}

// runRestartScenario settles N users, restarts the manager, creates one
// new resource as soon as the new manager's workers run, and times it.
func runRestartScenario(ctx context.Context, env *environment, opts options) (*restartResult, error) {
	run, err := startRun(ctx, env, runSpec{
		name:     scenarioRestart,
		users:    opts.restartUsers,
		latency:  opts.latency,
		settings: opts.operator,
		timeout:  opts.runTimeout,
	})
	if err != nil {
		return nil, err
	}
	defer run.close()
	result := &restartResult{}
	if result.Settled, err = run.converge(ctx); err != nil {
		return nil, err
	}
	if !result.Settled.Converged {
		return result, nil
	}
	withNewUser, err := trackConvergence(ctx, env.restConfig, run.namespace, opts.restartUsers+1, true)
	if err != nil {
		return nil, err
	}
	progress("%s: restarting the manager", scenarioRestart)
	run.manager.stop()
	restartedAt := time.Now()
	if run.manager, err = startManager(ctx, env, scenarioRestart+"-restarted", run.surge.url, opts.operator, run.namespace, ""); err != nil {
		run.manager = nil
		return nil, err
	}
	created := time.Now()
	if err := env.k8s.Create(ctx, benchEndUser(run.namespace, opts.restartUsers)); err != nil {
		return nil, fmt.Errorf("creating the new SurgeEndUser: %w", err)
	}
	select {
	case <-withNewUser.converged:
		result.NewUserReady = true
		result.NewUserSeconds = withNewUser.convergedTime().Sub(created).Seconds()
	case <-time.After(opts.runTimeout):
		result.NewUserSeconds = time.Since(created).Seconds()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	checks := countSurgeCalls(run.surge.Requests(), restartedAt, created.Add(time.Duration(result.NewUserSeconds*float64(time.Second))))
	result.ChecksBefore = checks.Get
	result.AllReadySeconds = withNewUser.convergedTime().Sub(restartedAt).Seconds()
	progress("%s: the new SurgeEndUser was Ready after %.2fs, after %.0f checks of settled users; every resource Ready %.2fs after the restart",
		scenarioRestart, result.NewUserSeconds, result.ChecksBefore, result.AllReadySeconds)

	windowEnd := restartedAt.Add(opts.restartWindow)
	if result.AllReconciledSeconds, err = waitReconciled(ctx, run.manager, opts.restartUsers+1, restartedAt, windowEnd); err != nil {
		return nil, err
	}
	select {
	case <-time.After(time.Until(windowEnd)):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	result.WindowSeconds = opts.restartWindow.Seconds()
	result.WindowCalls = countSurgeCalls(run.surge.Requests(), restartedAt, windowEnd)
	result.ChecksPerSettledUser = result.WindowCalls.Get / float64(opts.restartUsers)
	progress("%s: every resource reconciled %.2fs after the restart; %.0f Surge calls in the %s after it, %.3f checks per settled user",
		scenarioRestart, result.AllReconciledSeconds, result.WindowCalls.Total, opts.restartWindow, result.ChecksPerSettledUser)
	return result, nil
}

// waitReconciled waits until m has reconciled n times, and returns how long
// after from that was; 0 if it had not by deadline.
func waitReconciled(ctx context.Context, m *managerProcess, n int, from, deadline time.Time) (float64, error) {
	for time.Now().Before(deadline) {
		done, err := m.reconciles(ctx)
		if err == nil && done >= float64(n) {
			return time.Since(from).Seconds(), nil
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, nil
}
