// Command bench measures the operator under load: the real manager binary,
// run as its own process against a local API server (envtest) and the Surge
// emulator served over HTTP. It reports how fast N SurgeEndUsers converge,
// what each costs in Surge calls and Kubernetes writes, how quiet a settled
// operator is, its memory, how it fares against Surge's rate limit, and what
// resyncs cost. docs/benchmarks.md explains the figures and records a run.
//
// Run it through make bench, which provides the envtest binaries:
//
//	make bench BENCH_FLAGS="-n 1000 -latency 50ms"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/ratesweep"
)

// Scenario names accepted by -scenarios.
const (
	scenarioConvergence = "convergence"
	scenarioRateLimit   = "rate-limit"
	scenarioResync      = "resync"
	scenarioRateSweep   = "rate-sweep"
	scenarioRestart     = "restart"
	scenarioImport      = "import"
)

var allScenarios = []string{scenarioConvergence, scenarioRateLimit, scenarioResync, scenarioRateSweep, scenarioRestart, scenarioImport}

// defaultScenarios are those make bench runs without -scenarios.
var defaultScenarios = []string{scenarioConvergence, scenarioRateLimit, scenarioResync}

type options struct {
	root      string
	outDir    string
	scenarios []string

	users            int
	latency          time.Duration
	operator         operatorSettings
	quiet            time.Duration
	unrelatedSecrets int
	goMemLimit       string

	rateLimit      float64
	rateLimitBurst int
	rateLimitUsers int
	// rateLimitTimeout bounds the rate-limit runs, which can fail to
	// converge: that is a result to report, not a reason to wait long.
	rateLimitTimeout time.Duration

	resyncUsers    int
	resyncInterval time.Duration
	resyncWindow   time.Duration

	// sweepLimits are the rates Surge allows in the rate sweep, one run
	// each; sweepFloor sizes each run's users so that its floor is about
	// that long, up to sweepMaxUsers.
	sweepLimits   []float64
	sweepFloor    time.Duration
	sweepMaxUsers int

	restartUsers  int
	restartWindow time.Duration

	importUsers     int
	importRateLimit float64

	runTimeout time.Duration
}

func main() {
	opts := options{}
	var scenarios, sweepLimits string
	flag.StringVar(&opts.root, "root", ".", "Root of the surge-operator checkout: main.go is built from it and the CRDs read from it.")
	flag.StringVar(&opts.outDir, "out", filepath.Join("bin", "bench"), "Directory for result.json, the kubeconfig and the manager's logs.")
	flag.StringVar(&scenarios, "scenarios", strings.Join(defaultScenarios, ","), "Comma-separated scenarios to run, from: "+strings.Join(allScenarios, ", ")+".")
	flag.IntVar(&opts.users, "n", 1000, "SurgeEndUsers created in the convergence scenario.")
	flag.DurationVar(&opts.latency, "latency", 50*time.Millisecond, "Latency the Surge emulator adds to every call.")
	flag.IntVar(&opts.operator.Concurrency, "concurrency", operator.DefaultMaxConcurrentReconciles, "--max-concurrent-reconciles of the manager.")
	flag.Float64Var(&opts.operator.RequestsPerSecond, "rps", operator.DefaultSurgeRequestsPerSecond, "--surge-requests-per-second of the manager; negative turns the client-side limit off.")
	flag.IntVar(&opts.operator.Burst, "burst", operator.DefaultSurgeBurst, "--surge-burst of the manager.")
	flag.DurationVar(&opts.operator.ResyncInterval, "resync", operator.DefaultResyncInterval, "--resync-interval of the manager in the convergence and rate-limit scenarios.")
	flag.DurationVar(&opts.quiet, "quiet", 30*time.Second, "Quiet period watched after convergence, with no changes made.")
	flag.IntVar(&opts.unrelatedSecrets, "unrelated-secrets", 10000, "Secrets without the managed-by label created in another namespace after the quiet period, to show they cost the manager no memory; 0 skips the step.")
	flag.StringVar(&opts.goMemLimit, "gomemlimit", "", "GOMEMLIMIT of the manager in the convergence scenario, as a Deployment would derive it from its memory limit; empty leaves Go's default (none).")
	flag.Float64Var(&opts.rateLimit, "rate-limit", 50, "Requests per second the emulator accepts in the rate-limit scenario (429 above it).")
	flag.IntVar(&opts.rateLimitBurst, "rate-limit-burst", 5, "Burst the emulator accepts above -rate-limit.")
	flag.IntVar(&opts.rateLimitUsers, "rate-limit-users", 500, "SurgeEndUsers created in each run of the rate-limit scenario.")
	flag.DurationVar(&opts.rateLimitTimeout, "rate-limit-timeout", 3*time.Minute, "Longest wait for a rate-limit run to converge; a run still short by then is reported as not converged.")
	flag.IntVar(&opts.resyncUsers, "resync-users", 200, "SurgeEndUsers created in the resync scenario.")
	flag.DurationVar(&opts.resyncInterval, "resync-test-interval", 20*time.Second, "Short --resync-interval of the resync scenario, extrapolated to -resync.")
	flag.DurationVar(&opts.resyncWindow, "resync-window", time.Minute, "How long Surge calls are counted in the resync scenario.")
	flag.StringVar(&sweepLimits, "sweep-limits", "5,10,50,200", "Comma-separated requests per second Surge allows in the runs of the rate sweep.")
	flag.DurationVar(&opts.sweepFloor, "sweep-floor", 40*time.Second, "Each rate-sweep run gets the users its limit serves in about this long.")
	flag.IntVar(&opts.sweepMaxUsers, "sweep-max-users", 1000, "Most SurgeEndUsers in one rate-sweep run.")
	flag.IntVar(&opts.restartUsers, "restart-users", 1000, "Settled SurgeEndUsers in the restart scenario.")
	flag.DurationVar(&opts.restartWindow, "restart-window", time.Minute, "How long after the restart Surge calls are counted in the restart scenario.")
	flag.IntVar(&opts.importUsers, "import-users", 10000, "Users of the account imported in the import scenario.")
	flag.Float64Var(&opts.importRateLimit, "import-rate-limit", 10, "Requests per second Surge allows in the import scenario, unknown to the plugin and the operator.")
	flag.DurationVar(&memorySampleInterval, "sample-interval", time.Second, "How often the manager's metrics are scraped for its heap; RSS peaks come from the kernel whatever this is.")
	flag.DurationVar(&opts.runTimeout, "run-timeout", 20*time.Minute, "Longest wait for one run's SurgeEndUsers to converge.")
	flag.Parse()

	opts.scenarios = strings.Split(scenarios, ",")
	for _, s := range opts.scenarios {
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q; choose from %s\n", s, strings.Join(allScenarios, ", "))
			os.Exit(2)
		}
	}
	limits, err := ratesweep.ParseLimits(sweepLimits)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -sweep-limits: %v\n", err)
		os.Exit(2)
	}
	opts.sweepLimits = limits
	// The API server and the informers of the bench itself would otherwise
	// fill the output; the manager's own log goes to a file per run.
	logf.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	if err := os.MkdirAll(opts.outDir, 0o755); err != nil {
		return err
	}
	env, err := startEnvironment(ctx, opts.root, opts.outDir)
	if err != nil {
		return err
	}
	defer env.stop()

	result := &benchResult{
		StartedAt: time.Now().UTC(),
		Machine:   describeMachine(),
		Settings:  settingsOf(opts),
	}
	if slices.Contains(opts.scenarios, scenarioConvergence) {
		if result.Convergence, err = runConvergenceScenario(ctx, env, opts); err != nil {
			return err
		}
	}
	if slices.Contains(opts.scenarios, scenarioRateLimit) {
		if result.RateLimit, err = runRateLimitScenario(ctx, env, opts); err != nil {
			return err
		}
	}
	if slices.Contains(opts.scenarios, scenarioResync) {
		if result.Resync, err = runResyncScenario(ctx, env, opts); err != nil {
			return err
		}
	}
	if slices.Contains(opts.scenarios, scenarioRateSweep) {
		if result.RateSweep, err = runRateSweep(ctx, env, opts); err != nil {
			return err
		}
	}
	if slices.Contains(opts.scenarios, scenarioRestart) {
		if result.Restart, err = runRestartScenario(ctx, env, opts); err != nil {
			return err
		}
	}
	if slices.Contains(opts.scenarios, scenarioImport) {
		if result.Import, err = runImportScenario(ctx, env, opts); err != nil {
			return err
		}
	}
	result.Targets = evaluateTargets(result, opts)
	result.Seconds = time.Since(result.StartedAt).Seconds()

	printTable(os.Stdout, result)
	return writeJSON(os.Stdout, filepath.Join(opts.outDir, "result.json"), result)
}

// progress tells the person waiting what the bench is doing.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
