package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type benchResult struct {
	StartedAt   time.Time          `json:"startedAt"`
	Seconds     float64            `json:"seconds"`
	Machine     machine            `json:"machine"`
	Settings    benchSettings      `json:"settings"`
	Convergence *convergenceResult `json:"convergence,omitempty"`
	RateLimit   []rateLimitResult  `json:"rateLimit,omitempty"`
	Resync      *resyncResult      `json:"resync,omitempty"`
	RateSweep   []sweepResult      `json:"rateSweep,omitempty"`
	Restart     *restartResult     `json:"restart,omitempty"`
	Import      *importResult      `json:"import,omitempty"`
	Targets     []target           `json:"targets"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	OS        string `json:"os"`
	GoVersion string `json:"goVersion"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if cpuinfo, err := os.Open("/proc/cpuinfo"); err == nil {
		defer func() { _ = cpuinfo.Close() }()
		scanner := bufio.NewScanner(cpuinfo)
		for scanner.Scan() {
			if name, value, ok := strings.Cut(scanner.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(value)
				break
			}
		}
	}
	return m
}

type benchSettings struct {
	Users            int              `json:"users"`
	LatencySeconds   float64          `json:"surgeLatencySeconds"`
	Operator         operatorSettings `json:"operator"`
	QuietSeconds     float64          `json:"quietSeconds"`
	UnrelatedSecrets int              `json:"unrelatedSecrets"`
	GoMemLimit       string           `json:"managerGoMemLimit,omitempty"`
	RateLimit        float64          `json:"surgeRateLimit"`
	RateLimitBurst   int              `json:"surgeRateLimitBurst"`
	RateLimitUsers   int              `json:"rateLimitUsers"`
	ResyncUsers      int              `json:"resyncUsers"`
	ResyncInterval   string           `json:"resyncTestInterval"`
	ResyncWindow     string           `json:"resyncWindow"`
}

func settingsOf(opts options) benchSettings {
	return benchSettings{
		Users:            opts.users,
		LatencySeconds:   opts.latency.Seconds(),
		Operator:         opts.operator,
		QuietSeconds:     opts.quiet.Seconds(),
		UnrelatedSecrets: opts.unrelatedSecrets,
		GoMemLimit:       opts.goMemLimit,
		RateLimit:        opts.rateLimit,
		RateLimitBurst:   opts.rateLimitBurst,
		RateLimitUsers:   opts.rateLimitUsers,
		ResyncUsers:      opts.resyncUsers,
		ResyncInterval:   opts.resyncInterval.String(),
		ResyncWindow:     opts.resyncWindow.String(),
	}
}

// Target outcomes.
const (
	targetMet         = "met"
	targetMissed      = "MISSED"
	targetNotMeasured = "not measured"
)

type target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Result   string `json:"result"`
}

// Limits of the targets docs/benchmarks.md sets.
const (
	maxRatioToIdeal         = 1.5
	maxWritesPerUser        = 4
	maxPeakRSSBytes         = 100e6
	maxLiveHeapPerUserBytes = 4000
	targetUsersAtScale      = 10000
	maxSecondsAtScale       = 120.0
	maxUnrelatedGrowthBytes = 5e6
	minShareOfRateLimit     = 0.8
	maxRateLimitedShare     = 0.05
	maxResyncOverIdeal      = 1.1
	// The rate sweep's targets, at every limit.
	minSweepShareOfLimit = 0.85
	maxSweepRateLimited  = 0.05
	maxSweepRatioToFloor = 1.3
	maxNewUserSeconds    = 5
)

func evaluateTargets(result *benchResult, opts options) []target {
	var targets []target
	add := func(name, goal, measured string, met bool) {
		outcome := targetMissed
		if met {
			outcome = targetMet
		}
		targets = append(targets, target{Name: name, Goal: goal, Measured: measured, Result: outcome})
	}
	if c := result.Convergence; c != nil {
		run := c.Run
		add("convergence time", fmt.Sprintf("≤ %.1f× ideal (N×2×L/concurrency = %.1fs)", maxRatioToIdeal, run.IdealSeconds),
			fmt.Sprintf("%.1fs = %.2f× ideal", run.ConvergenceSeconds, run.RatioToIdeal),
			run.Converged && run.RatioToIdeal <= maxRatioToIdeal)

		writes := run.CostPerUser.Kubernetes
		add("Kubernetes writes per created user", fmt.Sprintf("≤ %d: the finalizer, the status, the Secret and the event", maxWritesPerUser),
			fmt.Sprintf("%.2f (metadata %.2f, status %.2f, secret %.2f, events %.2f)",
				writes.Total, writes.MetadataPatches, writes.StatusPatches, writes.SecretCreates+writes.SecretUpdates, writes.Events),
			writes.Total <= maxWritesPerUser)

		calls := run.Cost.Surge
		n := float64(run.Users)
		// A new operator lists the account once, to find users made for
		// earlier resources of the same name; beyond that, a created user
		// needs one create and one token.
		extraCalls := calls.Get + calls.Update + calls.Delete + calls.Other + max(calls.List-1, 0) + max(calls.Create-n, 0) + max(calls.Token-n, 0)
		quiet := c.Quiet.Window
		add("Surge calls from the operator's own writes", "0 beyond create + token per user (and one account listing); 0 in the quiet period",
			fmt.Sprintf("%.0f extra while converging; %.0f in %.0fs quiet", extraCalls, quiet.Surge.Total, quiet.Seconds),
			extraCalls == 0 && quiet.Surge.Total == 0)
		add("Kubernetes writes in the quiet period", "0",
			fmt.Sprintf("%.0f in %.0fs (%.0f reconciles)", quiet.Kubernetes.Total, quiet.Seconds, quiet.Reconciles),
			quiet.Kubernetes.Total == 0)

		peak := max(run.Memory.PeakRSS, c.Quiet.Memory.PeakRSS)
		if u := c.Unrelated; u != nil {
			peak = max(peak, u.Memory.PeakRSS)
			add("unrelated Secrets cost no memory", fmt.Sprintf("live heap grows < %s", megabytes(maxUnrelatedGrowthBytes)),
				fmt.Sprintf("%+.1f MB live heap, %+.1f MB peak RSS with %d Secrets", u.PeakHeapLiveGrowthBytes/1e6, u.PeakRSSGrowthBytes/1e6, u.Secrets),
				u.PeakHeapLiveGrowthBytes < maxUnrelatedGrowthBytes)
		}
		liveHeap := max(run.Memory.PeakHeapLive, c.Quiet.Memory.PeakHeapLive)
		scale := []target{
			{Name: "convergence at scale", Goal: fmt.Sprintf("%d users with tokens Ready in ≤ %.0fs", targetUsersAtScale, maxSecondsAtScale),
				Measured: convergedText(run)},
			{Name: "memory", Goal: fmt.Sprintf("peak RSS ≤ %s at N=%d", megabytes(maxPeakRSSBytes), targetUsersAtScale),
				Measured: fmt.Sprintf("%s at N=%d", megabytes(peak), run.Users)},
			{Name: "live heap", Goal: fmt.Sprintf("peak live heap ≤ %.0f KB per user at N=%d", maxLiveHeapPerUserBytes/1e3, targetUsersAtScale),
				Measured: fmt.Sprintf("%s = %.1f KB per user", megabytes(liveHeap), liveHeap/float64(run.Users)/1e3)},
		}
		met := []bool{
			run.Converged && run.ConvergenceSeconds <= maxSecondsAtScale,
			peak <= maxPeakRSSBytes,
			liveHeap <= maxLiveHeapPerUserBytes*float64(run.Users),
		}
		for i, t := range scale {
			switch {
			case run.Users != targetUsersAtScale:
				t.Result = targetNotMeasured
			case met[i]:
				t.Result = targetMet
			default:
				t.Result = targetMissed
			}
			targets = append(targets, t)
		}
	}
	for _, rl := range result.RateLimit {
		measured := fmt.Sprintf("%.1f rps = %.0f%%, %.1f%% 429", rl.Run.SurgeSucceededPerSecond, rl.AchievedShare*100, rl.Run.RateLimitedShare*100)
		if !rl.Run.Converged {
			measured = convergedText(rl.Run) + "; " + measured
		}
		add("Surge rate limit ("+rl.Run.Name+")",
			fmt.Sprintf("≥ %.0f%% of %.0f rps achieved, < %.0f%% answered 429", minShareOfRateLimit*100, opts.rateLimit, maxRateLimitedShare*100),
			measured,
			rl.Run.Converged && rl.AchievedShare >= minShareOfRateLimit && rl.Run.RateLimitedShare < maxRateLimitedShare)
	}
	if r := result.Resync; r != nil {
		add("resync cost", fmt.Sprintf("≈ N×%.0f/h at %s (≤ %.0f%% over, the jitter's share)", r.IdealCallsPerHour/float64(r.ExtrapolatedUsers), r.ExtrapolatedInterval, (maxResyncOverIdeal-1)*100),
			fmt.Sprintf("%.0f/h for N=%d (ideal %.0f)", r.ExtrapolatedCallsPerHour, r.ExtrapolatedUsers, r.IdealCallsPerHour),
			r.ExtrapolatedCallsPerHour <= r.IdealCallsPerHour*maxResyncOverIdeal)
	}
	for _, sw := range result.RateSweep {
		run := sw.Run
		measured := fmt.Sprintf("%.0f%% of the limit, %.1f%% 429, %.2f× floor", sw.ShareOfLimit*100, run.RateLimitedShare*100, sw.RatioToFloor)
		if !run.Converged {
			measured = convergedText(run) + "; " + measured
		}
		add(fmt.Sprintf("rate sweep at %g rps", sw.Limit),
			fmt.Sprintf("≥ %.0f%% of the limit used, ≤ %.0f%% 429, ≤ %.1f× floor", minSweepShareOfLimit*100, maxSweepRateLimited*100, maxSweepRatioToFloor),
			measured,
			run.Converged && sw.ShareOfLimit >= minSweepShareOfLimit && run.RateLimitedShare <= maxSweepRateLimited && sw.RatioToFloor <= maxSweepRatioToFloor)
	}
	if r := result.Restart; r != nil {
		measured := fmt.Sprintf("%.2fs, after %.0f checks of settled users", r.NewUserSeconds, r.ChecksBefore)
		if !r.NewUserReady {
			measured = fmt.Sprintf("not Ready after %.0fs", r.NewUserSeconds)
		}
		add("new resource after a restart", fmt.Sprintf("Ready in < %ds with %d settled users", maxNewUserSeconds, r.Settled.Users),
			measured, r.NewUserReady && r.NewUserSeconds < maxNewUserSeconds)
		add("checks of settled users after a restart", fmt.Sprintf("0 in the %.0fs after it", r.WindowSeconds),
			fmt.Sprintf("%.3f per settled user", r.ChecksPerSettledUser), r.ChecksPerSettledUser == 0)
	}
	if r := result.Import; r != nil {
		add("import, Surge writes", "0", fmt.Sprintf("%.0f", r.Writes), r.Converged && r.Writes == 0)
	}
	return targets
}

func reconciledText(r *restartResult) string {
	if r.AllReconciledSeconds == 0 {
		return fmt.Sprintf("not within %.0fs", r.WindowSeconds)
	}
	return fmt.Sprintf("%.2fs", r.AllReconciledSeconds)
}

func megabytes(bytes float64) string { return fmt.Sprintf("%.1f MB", bytes/1e6) }

func printTable(out io.Writer, result *benchResult) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer func() { _ = w.Flush() }()
	m := result.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s, %s; whole bench %.0fs\n", m.CPUs, m.CPUModel, m.OS, m.GoVersion, result.Seconds)

	if c := result.Convergence; c != nil {
		run := c.Run
		memoryLimit := ""
		if result.Settings.GoMemLimit != "" {
			memoryLimit = ", GOMEMLIMIT=" + result.Settings.GoMemLimit
		}
		fmt.Fprintf(w, "\n== Convergence: %d SurgeEndUsers with a token Secret, Surge latency %s, %s%s; manager watches every namespace\n",
			run.Users, time.Duration(run.LatencySeconds*float64(time.Second)), run.Settings, memoryLimit)
		printConvergence(w, run)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "\tper created user\tquiet %.0fs (total)\t\n", c.Quiet.Window.Seconds)
		printCostRows(w, run.CostPerUser.Surge, run.CostPerUser.Kubernetes, run.CostPerUser.Reconciles, "%.2f",
			c.Quiet.Window.Surge, c.Quiet.Window.Kubernetes, c.Quiet.Window.Reconciles)

		fmt.Fprintln(w)
		fmt.Fprintln(w, "Manager memory and CPU\tpeak RSS\tpeak heap in use\tpeak heap alloc\tpeak live heap\tRSS at end\tCPU\tAPI server CPU\t")
		printMemory(w, fmt.Sprintf("converging %d users", run.Users), run.Memory)
		fmt.Fprintf(w, "  CPU per converged user\t\t\t\t\t\t%.1f ms\t%.1f ms\t\n",
			1000*run.Memory.CPUSeconds/float64(max(run.Users, 1)), 1000*run.Memory.APIServerCPUSeconds/float64(max(run.Users, 1)))
		printMemory(w, "quiet period", c.Quiet.Memory)
		if u := c.Unrelated; u != nil {
			printMemory(w, fmt.Sprintf("+%d unrelated Secrets", u.Secrets), u.Memory)
			fmt.Fprintf(w, "  growth over quiet\t%+.1f MB\t\t\t%+.1f MB\t\t\t\n", u.PeakRSSGrowthBytes/1e6, u.PeakHeapLiveGrowthBytes/1e6)
			fmt.Fprintf(w, "  manager's writes / Surge calls meanwhile\t%.0f\t%.0f\t\t\t\t\t\n", u.Window.Kubernetes.Total, u.Window.Surge.Total)
		}
	}

	if len(result.RateLimit) > 0 {
		first := result.RateLimit[0].Run
		fmt.Fprintf(w, "\n== Rate limit: the emulator answers 429 above %g rps (burst %d); %d users, Surge latency %s\n",
			first.SurgeRateLimit, result.Settings.RateLimitBurst, first.Users, time.Duration(first.LatencySeconds*float64(time.Second)))
		fmt.Fprintln(w, "run\toperator\tconverged\tsucceeded/s\tof limit\tcreates+tokens/s\t429 share\tSurge calls/user\tlist calls\tk8s writes/user\treconciles/user\t")
		for _, rl := range result.RateLimit {
			run := rl.Run
			fmt.Fprintf(w, "%s\t%s\t%s\t%.1f\t%.0f%%\t%.1f\t%.1f%%\t%.2f\t%.0f\t%.2f\t%.2f\t\n",
				run.Name, run.Settings, convergedText(run), run.SurgeSucceededPerSecond, rl.AchievedShare*100, run.SurgeUsefulPerSecond,
				run.RateLimitedShare*100, run.CostPerUser.Surge.Total, run.Cost.Surge.List, run.CostPerUser.Kubernetes.Total, run.CostPerUser.Reconciles)
		}
	}

	if r := result.Resync; r != nil {
		fmt.Fprintf(w, "\n== Resync: %d users at --resync-interval=%gs, Surge calls counted for %.0fs after convergence\n",
			r.Run.Users, r.IntervalSeconds, r.Window.Seconds)
		calls := r.Window.Surge
		fmt.Fprintf(w, "Surge calls in the window\t%.0f (get %.0f, update %.0f, token %.0f, list %.0f, create %.0f)\t\n",
			calls.Total, calls.Get, calls.Update, calls.Token, calls.List, calls.Create)
		fmt.Fprintf(w, "mean time between two checks of a user\t%.1fs (%.2f calls, %.2f reconciles per check)\t\n", r.PeriodSeconds, r.CallsPerCheck, r.ReconcilesPerCheck)
		fmt.Fprintf(w, "extrapolated to %s, %d users\t%.0f calls/hour (%.2f/s); ideal %.0f\t\n",
			r.ExtrapolatedInterval, r.ExtrapolatedUsers, r.ExtrapolatedCallsPerHour, r.ExtrapolatedRequestsPerSecond, r.IdealCallsPerHour)
		fmt.Fprintf(w, "Kubernetes writes in the window\t%.0f\t\n", r.Window.Kubernetes.Total)
	}

	if len(result.RateSweep) > 0 {
		first := result.RateSweep[0].Run
		fmt.Fprintf(w, "\n== Rate sweep: Surge's limit unknown to the operator (%s); Surge burst %d, latency %s\n",
			first.Settings, result.Settings.RateLimitBurst, time.Duration(first.LatencySeconds*float64(time.Second)))
		fmt.Fprintln(w, "limit\tusers\tconverged\tfloor\t× floor\tsucceeded/s\tof limit\t429 share\tSurge calls/user\tlist calls\treconciles/user\t")
		for _, sw := range result.RateSweep {
			run := sw.Run
			fmt.Fprintf(w, "%g rps\t%d\t%s\t%.1fs\t%.2f\t%.1f\t%.0f%%\t%.1f%%\t%.2f\t%.0f\t%.2f\t\n",
				sw.Limit, run.Users, convergedText(run), sw.FloorSeconds, sw.RatioToFloor, run.SurgeSucceededPerSecond, sw.ShareOfLimit*100,
				run.RateLimitedShare*100, run.CostPerUser.Surge.Total, run.Cost.Surge.List, run.CostPerUser.Reconciles)
		}
	}

	if r := result.Restart; r != nil {
		fmt.Fprintf(w, "\n== Restart: %d settled users (%s), manager restarted, one new SurgeEndUser created as its workers start\n",
			r.Settled.Users, r.Settled.Settings)
		fmt.Fprintf(w, "new SurgeEndUser Ready with its Secret after\t%.2fs\t\n", r.NewUserSeconds)
		fmt.Fprintf(w, "settled users checked in Surge before it\t%.0f\t\n", r.ChecksBefore)
		fmt.Fprintf(w, "every resource Ready with its Secret, after the restart\t%.2fs\t\n", r.AllReadySeconds)
		fmt.Fprintf(w, "every resource reconciled once, after the restart\t%s\t\n", reconciledText(r))
		c := r.WindowCalls
		fmt.Fprintf(w, "Surge calls in the %.0fs after the restart: checks (GET), list pages, token renewals, creates\t%.0f, %.0f, %.0f, %.0f\t\n", r.WindowSeconds, c.Get, c.List, c.Token, c.Create)
		fmt.Fprintf(w, "checks per settled user in that window\t%.3f\t\n", r.ChecksPerSettledUser)
	}

	if r := result.Import; r != nil {
		fmt.Fprintf(w, "\n== Import: kubectl surge import of an account of %d users, Surge's limit %g rps (unknown to both)\n", r.Users, r.SurgeRateLimit)
		fmt.Fprintf(w, "import (list %d pages, write YAML)\t%.1fs\t\n", r.Pages, r.ImportSeconds)
		fmt.Fprintf(w, "creating the resources\t%.1fs\t\n", r.ApplySeconds)
		total := fmt.Sprintf("%.1fs", r.TotalSeconds)
		if !r.Converged {
			total = "not converged after " + total
		}
		fmt.Fprintf(w, "from the import's start until every resource is Ready\t%s\t×%.2f\t\n", total, r.RatioToFloor)
		fmt.Fprintf(w, "floor: pages / R + creating the resources\t%.1fs\t\t\n", r.FloorSeconds)
		fmt.Fprintf(w, "Surge calls (list %.0f, get %.0f), per user\t%.0f\t%.2f\t\n", r.Calls.List, r.Calls.Get, r.Calls.Total, r.CallsPerUser)
		fmt.Fprintf(w, "Surge writes (create, update, delete, token)\t%.0f\t\t\n", r.Writes)
		fmt.Fprintf(w, "answered 429\t%.1f%%\t\t\n", r.RateLimitedShare*100)
	}

	fmt.Fprintln(w, "\n== Targets")
	fmt.Fprintln(w, "target\tgoal\tmeasured\tresult\t")
	for _, t := range result.Targets {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t\n", t.Name, t.Goal, t.Measured, t.Result)
	}
}

func printConvergence(w io.Writer, run runResult) {
	fmt.Fprintf(w, "converged (all Ready + Secret)\t%s\t\t\n", convergedText(run))
	fmt.Fprintf(w, "ideal, 2 calls/user\t%.1fs\t×%.2f\t\n", run.IdealSeconds, run.RatioToIdeal)
	fmt.Fprintf(w, "ideal, %.2f measured calls/user\t%.1fs\t×%.2f\t\n", run.MeasuredCallsPerUser, run.IdealWithMeasuredCallsSeconds,
		run.ConvergenceSeconds/run.IdealWithMeasuredCallsSeconds)
	if run.ClientLimitSeconds > 0 {
		fmt.Fprintf(w, "floor of the client limit (%g rps, burst %d)\t%.1fs\t×%.2f\t\n", run.Settings.RequestsPerSecond, run.Settings.Burst,
			run.ClientLimitSeconds, run.ConvergenceSeconds/run.ClientLimitSeconds)
	}
	fmt.Fprintf(w, "Surge throughput\t%.1f calls/s\t%.1f%% 429\t\n", run.SurgeSucceededPerSecond, run.RateLimitedShare*100)
}

func convergedText(run runResult) string {
	if !run.Converged {
		return fmt.Sprintf("NOT CONVERGED (%d of %d after %.0fs)", run.ConvergedUsers, run.Users, run.ConvergenceSeconds)
	}
	return fmt.Sprintf("%.1fs", run.ConvergenceSeconds)
}

func printCostRows(w io.Writer, calls surgeCalls, writes kubeWrites, reconciles float64, format string, quietCalls surgeCalls, quietWrites kubeWrites, quietReconciles float64) {
	row := func(name string, value, quiet float64) {
		fmt.Fprintf(w, "%s\t"+format+"\t%.0f\t\n", name, value, quiet)
	}
	row("Surge create (POST /accounts/*/users)", calls.Create, quietCalls.Create)
	row("Surge token (POST /users/*/tokens)", calls.Token, quietCalls.Token)
	row("Surge list (GET /accounts/*/users)", calls.List, quietCalls.List)
	row("Surge get (GET /users/*)", calls.Get, quietCalls.Get)
	row("Surge update (PATCH /users/*)", calls.Update, quietCalls.Update)
	row("Surge calls, total", calls.Total, quietCalls.Total)
	row("  of which 429 / other errors", calls.RateLimited+calls.Failed, quietCalls.RateLimited+quietCalls.Failed)
	row("k8s metadata patches (finalizer, create marker)", writes.MetadataPatches, quietWrites.MetadataPatches)
	row("k8s status patches", writes.StatusPatches, quietWrites.StatusPatches)
	row("k8s Secret creates", writes.SecretCreates, quietWrites.SecretCreates)
	row("k8s Secret updates", writes.SecretUpdates, quietWrites.SecretUpdates)
	row("k8s events", writes.Events, quietWrites.Events)
	row("k8s other writes", writes.Other, quietWrites.Other)
	row("k8s writes, total", writes.Total, quietWrites.Total)
	row("  of which 409 Conflict", writes.Conflicts, quietWrites.Conflicts)
	row("reconciles", reconciles, quietReconciles)
}

func printMemory(w io.Writer, name string, m memoryPeaks) {
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f s = %.2f cores\t%.1f s = %.2f cores\t\n", name, megabytes(m.PeakRSS), megabytes(m.PeakHeapInuse), megabytes(m.PeakHeapAlloc), megabytes(m.PeakHeapLive), megabytes(m.End.RSS),
		m.CPUSeconds, m.CPUSeconds/max(m.Seconds, 1e-9), m.APIServerCPUSeconds, m.APIServerCPUSeconds/max(m.Seconds, 1e-9))
}

func writeJSON(out io.Writer, path string, result *benchResult) error {
	encoded, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return err
	}
	encoded = append(encoded, '\n')
	fmt.Fprintln(out)
	if _, err := out.Write(encoded); err != nil {
		return err
	}
	if err := os.WriteFile(path, encoded, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nwritten to %s\n", path)
	return nil
}
