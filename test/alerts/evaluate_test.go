package alerts_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// evaluationInterval is how often Prometheus evaluates a rule group by
// default, and so how often the scenarios evaluate each alert.
const evaluationInterval = time.Minute

// targets are the labels a ServiceMonitor gives the series of the
// operator's pods, written into the scenarios' series as $leader (the pod
// that leads), $next (the pod that leads after a handover) and $other (the
// leader of another installation in the same Prometheus).
var targets = strings.NewReplacer(
	"$leader", `namespace="surge-operator", job="surge-operator-metrics", pod="surge-operator-a", instance="10.0.0.11:8443"`,
	"$next", `namespace="surge-operator", job="surge-operator-metrics", pod="surge-operator-b", instance="10.0.0.12:8443"`,
	"$other", `namespace="payments", job="payments-surge-operator-metrics", pod="payments-surge-operator-a", instance="10.0.0.21:8443"`,
)

// The labels that tell the two installations apart in an alert.
var (
	installation = []string{"namespace", "surge-operator", "job", "surge-operator-metrics"}
	payments     = []string{"namespace", "payments", "job", "payments-surge-operator-metrics"}
)

// alertOf names an alert in a check: by the labels of its installation and
// its own, without alertname and severity.
func alertOf(installation []string, own ...string) string {
	return labels.FromStrings(append(slices.Clone(installation), own...)...).String()
}

// scenario is a situation written as sample series, one sample a minute
// from time 0, in the notation of Prometheus' rule test files: `1x5` is
// six samples of 1, `0+60x10` eleven that count up by 60, `_x3` three
// missing samples, and `stale` the marker Prometheus writes when a series
// is no longer served. Each line is one series.
type scenario struct {
	name   string
	series string
	checks []check
}

// check is what fires after the evaluation at a time: the firing alerts
// by name (alertOf) and value, none when empty; and, for those named in
// summaries, their summary.
type check struct {
	at        time.Duration
	firing    map[string]float64
	summaries map[string]string
}

var scenarios = map[string][]scenario{
	"SurgeDeletionsHeld": {{
		name: "the brake holds 40 deletions of one project until they are released",
		series: `
			surge_operator_deletions_held{$leader, project="SurgeProject team-a/surge"} 0x2 40x5 0x5`,
		checks: []check{
			{at: 3 * time.Minute},
			{at: 4 * time.Minute, firing: map[string]float64{alertOf(installation, "project", "SurgeProject team-a/surge"): 40},
				summaries: map[string]string{alertOf(installation, "project", "SurgeProject team-a/surge"): "40 deletions of end users of SurgeProject team-a/surge held by the mass-deletion brake"}},
			{at: 9 * time.Minute},
		},
	}},

	"SurgeOperatorDown": {{
		name: "the only pod stops being scraped",
		series: `
			surge_operator_build_info{$leader, version="v0.1.0"} 1x10 stale`,
		checks: []check{
			{at: 15 * time.Minute},
			{at: 16 * time.Minute, firing: map[string]float64{alertOf(installation): 1},
				summaries: map[string]string{alertOf(installation): "No pod of the surge-operator surge-operator/surge-operator-metrics serves metrics"}},
		},
	}, {
		name: "a rolling update, the new pod up before the old one goes, stays quiet",
		series: `
			surge_operator_build_info{$leader, version="v0.1.0"} 1x10 stale
			surge_operator_build_info{$next, version="v0.2.0"} _x8 1x30`,
		checks: []check{{at: 40 * time.Minute}},
	}, {
		name: "one of two installations goes down",
		series: `
			surge_operator_build_info{$leader, version="v0.1.0"} 1x5 stale
			surge_operator_build_info{$other, version="v0.1.0"} 1x30`,
		checks: []check{
			{at: 10 * time.Minute},
			{at: 11 * time.Minute, firing: map[string]float64{alertOf(installation): 1}},
			{at: 30 * time.Minute, firing: map[string]float64{alertOf(installation): 1}},
		},
	}, {
		name: "no pod is scraped at all",
		series: `
			up{job="kubelet"} 1x10`,
		checks: []check{
			{at: 4 * time.Minute},
			{at: 5 * time.Minute, firing: map[string]float64{alertOf(nil): 1},
				summaries: map[string]string{alertOf(nil): "No pod of the surge-operator serves metrics"}},
		},
	}},

	"SurgeOperatorNoLeader": {{
		name: "the leader stops leading and the standby does not take over",
		series: `
			surge_operator_leader{$leader, lease="surge-operator.surge.app"} 1x5 0x15
			surge_operator_leader{$next, lease="surge-operator.surge.app"} 0x20`,
		checks: []check{
			{at: 10 * time.Minute},
			{at: 11 * time.Minute, firing: map[string]float64{alertOf(installation, "lease", "surge-operator.surge.app"): 0},
				summaries: map[string]string{alertOf(installation, "lease", "surge-operator.surge.app"): "No pod of surge-operator/surge-operator-metrics leads the Lease surge-operator.surge.app"}},
		},
	}, {
		name: "a handover within a minute stays quiet",
		series: `
			surge_operator_leader{$leader, lease="surge-operator.surge.app"} 1x5 stale
			surge_operator_leader{$next, lease="surge-operator.surge.app"} 0x6 1x20`,
		checks: []check{{at: 25 * time.Minute}},
	}, {
		name: "a shard without a leader while the main instance leads",
		series: `
			surge_operator_leader{$leader, lease="surge-operator.surge.app"} 1x20
			surge_operator_leader{$next, lease="surge-operator-shard-eu.surge.app"} 0x20`,
		checks: []check{
			{at: 5 * time.Minute, firing: map[string]float64{alertOf(installation, "lease", "surge-operator-shard-eu.surge.app"): 0}},
		},
	}},

	"SurgeEndUsersStalled": {{
		name: "two end users stall: the leader's count, after 15 minutes",
		series: `
			surge_operator_end_users{$leader, ready="False", stalled="true"} 0x4 2x40
			surge_operator_end_users{$leader, ready="True", stalled="false"} 8x4 6x40`,
		checks: []check{
			{at: 19 * time.Minute},
			{at: 20 * time.Minute, firing: map[string]float64{alertOf(installation): 2},
				summaries: map[string]string{alertOf(installation): "2 SurgeEndUsers of surge-operator/surge-operator-metrics need a person"}},
		},
	}, {
		name: "a change of leader neither doubles the count nor restarts the wait",
		series: `
			surge_operator_end_users{$leader, ready="False", stalled="true"} 2x10 stale
			surge_operator_end_users{$next, ready="False", stalled="true"} _x11 2x20`,
		checks: []check{
			{at: 14 * time.Minute},
			{at: 15 * time.Minute, firing: map[string]float64{alertOf(installation): 2}},
			{at: 30 * time.Minute, firing: map[string]float64{alertOf(installation): 2}},
		},
	}, {
		name: "two installations alert apart",
		series: `
			surge_operator_end_users{$leader, ready="False", stalled="true"} 1x30
			surge_operator_end_users{$other, ready="False", stalled="true"} 3x30`,
		checks: []check{
			{at: 15 * time.Minute, firing: map[string]float64{alertOf(installation): 1, alertOf(payments): 3}},
		},
	}, {
		name: "nothing stalled",
		series: `
			surge_operator_end_users{$leader, ready="False", stalled="true"} 0x60
			surge_operator_end_users{$leader, ready="False", stalled="false"} 4x60`,
		checks: []check{{at: 60 * time.Minute}},
	}},

	"SurgeTokenAboutToExpire": {{
		name: "renewals of one token fail, another's succeed",
		series: `
			surge_operator_token_expiry_timestamp_seconds{$leader, exported_namespace="team-a", name="ada"} 600x15
			surge_operator_token_expiry_timestamp_seconds{$leader, exported_namespace="team-a", name="grace"} 900+60x15`,
		checks: []check{
			{at: 9 * time.Minute},
			{at: 10 * time.Minute, firing: map[string]float64{alertOf(installation, "exported_namespace", "team-a", "name", "ada"): 0},
				summaries: map[string]string{alertOf(installation, "exported_namespace", "team-a", "name", "ada"): "Component token of team-a/ada expires in under 2 minutes"}},
		},
	}, {
		name: "a change of leader while it is pending does not restart the wait",
		series: `
			surge_operator_token_expiry_timestamp_seconds{$leader, exported_namespace="team-a", name="ada"} 600x9 stale
			surge_operator_token_expiry_timestamp_seconds{$next, exported_namespace="team-a", name="ada"} _x10 600x10`,
		checks: []check{
			{at: 10 * time.Minute, firing: map[string]float64{alertOf(installation, "exported_namespace", "team-a", "name", "ada"): 0}},
		},
	}, {
		name: "scraped without a ServiceMonitor, namespace is the end user's",
		series: `
			surge_operator_token_expiry_timestamp_seconds{job="surge-operator", instance="10.0.0.11:8443", namespace="team-a", name="ada"} 600x15`,
		checks: []check{
			{at: 10 * time.Minute, firing: map[string]float64{alertOf([]string{"job", "surge-operator", "namespace", "team-a"}, "name", "ada"): 0},
				summaries: map[string]string{alertOf([]string{"job", "surge-operator", "namespace", "team-a"}, "name", "ada"): "Component token of team-a/ada expires in under 2 minutes"}},
		},
	}},

	"SurgeRateFarBelowCeiling": {{
		name: "the unused client of the operator's key sits at the starting rate",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="operator"} 10x120
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="operator"} 200x120`,
		checks: []check{{at: 60 * time.Minute}, {at: 120 * time.Minute}},
	}, {
		name: "an idle project key, never throttled",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 10x120
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 200x120`,
		checks: []check{{at: 60 * time.Minute}, {at: 120 * time.Minute}},
	}, {
		name: "Surge holds a key at 20 of 200 requests per second for an hour",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 20x120
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 200x120
			surge_operator_surge_last_rate_limited_timestamp_seconds{$leader, scope="SurgeProject team-a/billing"} 0+60x120`,
		checks: []check{
			{at: 59 * time.Minute},
			{at: 60 * time.Minute, firing: map[string]float64{alertOf(installation, "scope", "SurgeProject team-a/billing"): 20}},
			{at: 120 * time.Minute, firing: map[string]float64{alertOf(installation, "scope", "SurgeProject team-a/billing"): 20}},
		},
	}, {
		name: "a deleted project's series are removed, and its alert with them",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 20x90 stale
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="SurgeProject team-a/billing"} 200x90 stale
			surge_operator_surge_last_rate_limited_timestamp_seconds{$leader, scope="SurgeProject team-a/billing"} 0+60x90 stale`,
		checks: []check{
			{at: 90 * time.Minute, firing: map[string]float64{alertOf(installation, "scope", "SurgeProject team-a/billing"): 20}},
			{at: 91 * time.Minute},
			{at: 120 * time.Minute},
		},
	}, {
		name: "a key throttled once, then idle at the lowered rate",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="operator"} 10x4 7x115
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="operator"} 200x120
			surge_operator_surge_last_rate_limited_timestamp_seconds{$leader, scope="operator"} _x5 300x115`,
		checks: []check{{at: 60 * time.Minute}, {at: 120 * time.Minute}},
	}, {
		name: "a key throttled close to its ceiling",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="operator"} 150x120
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="operator"} 200x120
			surge_operator_surge_last_rate_limited_timestamp_seconds{$leader, scope="operator"} 0+60x120`,
		checks: []check{{at: 60 * time.Minute}, {at: 120 * time.Minute}},
	}, {
		name: "a change of leader does not restart the hour",
		series: `
			surge_operator_surge_rate_requests_per_second{$leader, scope="operator"} 20x40 stale
			surge_operator_surge_rate_ceiling_requests_per_second{$leader, scope="operator"} 200x40 stale
			surge_operator_surge_last_rate_limited_timestamp_seconds{$leader, scope="operator"} 0+60x40 stale
			surge_operator_surge_rate_requests_per_second{$next, scope="operator"} _x41 20x79
			surge_operator_surge_rate_ceiling_requests_per_second{$next, scope="operator"} _x41 200x79
			surge_operator_surge_last_rate_limited_timestamp_seconds{$next, scope="operator"} _x41 2460+60x79`,
		checks: []check{
			{at: 60 * time.Minute, firing: map[string]float64{alertOf(installation, "scope", "operator"): 20}},
		},
	}},

	"SurgeErrorsRising": {{
		name: "one request in seven fails; the other installation is healthy",
		series: `
			surge_operator_surge_requests_total{$leader, operation="get_user", code="200"} 0+60x30
			surge_operator_surge_requests_total{$leader, operation="get_user", code="503"} 0+10x30
			surge_operator_surge_requests_total{$other, operation="get_user", code="200"} 0+100x30
			surge_operator_surge_requests_total{$other, operation="get_user", code="0"} 0+1x30`,
		checks: []check{
			{at: 10 * time.Minute},
			{at: 11 * time.Minute, firing: map[string]float64{alertOf(installation): 1.0 / 7}},
		},
	}, {
		name: "a change of leader, whose counters start again from zero, does not end it",
		series: `
			surge_operator_surge_requests_total{$leader, operation="get_user", code="200"} 0+60x15 stale
			surge_operator_surge_requests_total{$leader, operation="get_user", code="0"} 0+10x15 stale
			surge_operator_surge_requests_total{$next, operation="get_user", code="200"} _x16 0+60x20
			surge_operator_surge_requests_total{$next, operation="get_user", code="0"} _x16 0+10x20`,
		checks: []check{
			{at: 11 * time.Minute, firing: map[string]float64{alertOf(installation): 1.0 / 7}},
			{at: 16 * time.Minute, firing: map[string]float64{alertOf(installation): 1.0 / 7}},
			{at: 30 * time.Minute, firing: map[string]float64{alertOf(installation): 1.0 / 7}},
		},
	}},

	"SurgeRateLimited": {{
		name: "one request in eleven is answered 429; the other installation probes as it should",
		series: `
			surge_operator_surge_requests_total{$leader, operation="create_user", code="201"} 0+60x30
			surge_operator_surge_requests_total{$leader, operation="create_user", code="429"} 0+6x30
			surge_operator_surge_rate_limited_total{$leader, operation="create_user"} 0+6x30
			surge_operator_surge_requests_total{$other, operation="create_user", code="201"} 0+100x30
			surge_operator_surge_requests_total{$other, operation="create_user", code="429"} 0+2x30
			surge_operator_surge_rate_limited_total{$other, operation="create_user"} 0+2x30`,
		checks: []check{
			{at: 15 * time.Minute},
			{at: 16 * time.Minute, firing: map[string]float64{alertOf(installation): 6.0 / 66}},
		},
	}},
}

// TestAlertsOnSampleSeries evaluates each alert of config/alerts on its
// scenarios, and checks that each alert has one in which it fires.
func TestAlertsOnSampleSeries(t *testing.T) {
	alerts := alertingRules(t)
	for name := range scenarios {
		if _, ok := alerts[name]; !ok {
			t.Errorf("scenarios for %s, which %s does not hold", name, alertsFile)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(alerts)) {
		fires := slices.ContainsFunc(scenarios[name], func(s scenario) bool {
			return slices.ContainsFunc(s.checks, func(c check) bool { return len(c.firing) > 0 })
		})
		if !fires {
			t.Errorf("%s: no scenario shows it firing", name)
		}
		for _, s := range scenarios[name] {
			t.Run(name+"/"+s.name, func(t *testing.T) {
				series, err := loadSeries(targets.Replace(s.series), evaluationInterval)
				if err != nil {
					t.Fatal(err)
				}
				evaluator := newAlertEvaluator(t, alerts[name], series)
				checks := slices.SortedFunc(slices.Values(s.checks), func(a, b check) int { return int(a.at - b.at) })
				for _, c := range checks {
					if c.at%evaluationInterval != 0 {
						t.Fatalf("check at %s is not at an evaluation, one every %s", c.at, evaluationInterval)
					}
					compare(t, c, evaluator.evaluateUntil(c.at))
				}
			})
		}
	}
}

func compare(t *testing.T, c check, firing map[string]firingAlert) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(c.firing)) {
		alert, ok := firing[name]
		if !ok {
			t.Errorf("at %s: %s does not fire, want it firing with value %v; firing: %s", c.at, name, c.firing[name], describe(firing))
			continue
		}
		if want := c.firing[name]; math.Abs(alert.value-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("at %s: %s fires with value %v, want %v", c.at, name, alert.value, want)
		}
		if want, ok := c.summaries[name]; ok && alert.annotations["summary"] != want {
			t.Errorf("at %s: %s has summary %q, want %q", c.at, name, alert.annotations["summary"], want)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(firing)) {
		if _, ok := c.firing[name]; !ok {
			t.Errorf("at %s: %s fires, want it quiet; firing: %s", c.at, name, describe(firing))
		}
	}
}

func describe(firing map[string]firingAlert) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(firing)) {
		parts = append(parts, fmt.Sprintf("%s = %v", name, firing[name].value))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
