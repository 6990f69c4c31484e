package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/surge-operator/surge-operator/internal/cli"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// emulatorPageSize is the users per page of the emulator's listing, as of
// Surge's.
const emulatorPageSize = 20

// importResult is the import scenario: an account of N users that no
// operator made, onboarded with kubectl surge import while Surge's limit is
// unknown to both the plugin and the operator.
type importResult struct {
	Users          int     `json:"users"`
	SurgeRateLimit float64 `json:"surgeRateLimit"`
	Pages          int     `json:"pages"`
	// ImportSeconds is kubectl surge import listing the account and writing
	// the resources; ApplySeconds the creation of those resources.
	ImportSeconds float64 `json:"importSeconds"`
	ApplySeconds  float64 `json:"applySeconds"`
	// TotalSeconds runs from the import's start until every resource is
	// Ready for its generation.
	TotalSeconds float64 `json:"totalSeconds"`
	Converged    bool    `json:"converged"`
	// FloorSeconds is the listing at Surge's limit, pages / R, plus the
	// creation of the resources as measured.
	FloorSeconds float64 `json:"floorSeconds"`
	RatioToFloor float64 `json:"ratioToFloor"`
	// Calls are every Surge call from the import's start to convergence,
	// the plugin's and the operator's; Writes those that change Surge.
	Calls            surgeCalls `json:"surgeCalls"`
	CallsPerUser     float64    `json:"surgeCallsPerUser"`
	Writes           float64    `json:"surgeWrites"`
	RateLimitedShare float64    `json:"rateLimitedShare"`
}

// runImportScenario fills an account with users, imports it with the
// plugin's code, creates the resources it wrote, and waits until the
// operator has taken every user over.
func runImportScenario(ctx context.Context, env *environment, opts options) (*importResult, error) {
	run, err := startRun(ctx, env, runSpec{
		name:           scenarioImport,
		users:          opts.importUsers,
		latency:        opts.latency,
		rateLimit:      opts.importRateLimit,
		rateLimitBurst: opts.rateLimitBurst,
		settings:       opts.operator,
		timeout:        opts.runTimeout,
		withoutSecrets: true,
	})
	if err != nil {
		return nil, err
	}
	defer run.close()
	for i := range opts.importUsers {
		run.surge.PutUser(benchAccount, emulator.User{
			FirstName: fmt.Sprintf("Member %d", i),
			LastName:  "Imported",
			Metadata:  map[string]string{"customer": fmt.Sprintf("c-%05d", i)},
		})
	}
	result := &importResult{
		Users:          opts.importUsers,
		SurgeRateLimit: opts.importRateLimit,
		Pages:          int(math.Ceil(float64(opts.importUsers) / emulatorPageSize)),
	}

	progress("%s: kubectl surge import of %d users at Surge's limit of %g rps", scenarioImport, opts.importUsers, opts.importRateLimit)
	started := time.Now()
	var out, errOut bytes.Buffer
	getenv := func(name string) string {
		if name == "SURGE_API_KEY" {
			return benchAPIKey
		}
		return ""
	}
	args := []string{"import", "--kubeconfig=" + env.kubeconfig, "--namespace=" + run.namespace,
		"--account=" + benchAccount, "--surge-api-url=" + run.surge.url}
	if code := cli.Run(ctx, args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, getenv); code != 0 {
		return nil, fmt.Errorf("kubectl surge import exited with %d: %s", code, errOut.String())
	}
	imported := time.Now()
	result.ImportSeconds = imported.Sub(started).Seconds()
	endUsers, err := cli.ReadEndUsers(&out, run.namespace)
	if err != nil {
		return nil, fmt.Errorf("reading what kubectl surge import wrote: %w", err)
	}
	if len(endUsers) != opts.importUsers {
		return nil, fmt.Errorf("kubectl surge import wrote %d SurgeEndUsers for %d users: %s", len(endUsers), opts.importUsers, errOut.String())
	}

	progress("%s: imported in %.1fs; creating the %d SurgeEndUsers", scenarioImport, result.ImportSeconds, len(endUsers))
	if _, err := createConcurrently(ctx, len(endUsers), createWorkers, func(ctx context.Context, i int) error {
		return env.k8s.Create(ctx, endUsers[i])
	}); err != nil {
		return nil, err
	}
	result.ApplySeconds = time.Since(imported).Seconds()
	convergedAt, err := run.waitConverged(ctx)
	if err != nil {
		return nil, err
	}
	result.Converged = !convergedAt.IsZero()
	if !result.Converged {
		convergedAt = time.Now()
	}
	result.TotalSeconds = convergedAt.Sub(started).Seconds()
	result.FloorSeconds = float64(result.Pages)/opts.importRateLimit + result.ApplySeconds
	result.RatioToFloor = result.TotalSeconds / result.FloorSeconds
	result.Calls = countSurgeCalls(run.surge.Requests(), started, convergedAt)
	result.CallsPerUser = result.Calls.Total / float64(opts.importUsers)
	result.Writes = result.Calls.Create + result.Calls.Update + result.Calls.Delete + result.Calls.Token
	if result.Calls.Total > 0 {
		result.RateLimitedShare = result.Calls.RateLimited / result.Calls.Total
	}
	progress("%s: every SurgeEndUser Ready %.1fs after the import started (floor %.1fs); %.0f Surge calls, %.0f writes",
		scenarioImport, result.TotalSeconds, result.FloorSeconds, result.Calls.Total, result.Writes)
	return result, nil
}
