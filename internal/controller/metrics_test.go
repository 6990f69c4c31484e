package controller_test

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

// metricValue reads a metric from the registry the manager serves, summing
// the series whose labels include want.
func metricValue(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	var total float64
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, metric := range family.GetMetric() {
			if hasLabels(metric, want) {
				total += metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
			}
		}
	}
	return total
}

func hasLabels(metric *dto.Metric, want map[string]string) bool {
	matched := 0
	for _, pair := range metric.GetLabel() {
		if value, ok := want[pair.GetName()]; ok && value == pair.GetValue() {
			matched++
		}
	}
	return matched == len(want)
}

func TestMetricsDescribeSurgeCallsTokensAndReadiness(t *testing.T) {
	f := newFixture(t)
	createsBefore := metricValue(t, "surge_operator_surge_requests_total", map[string]string{"operation": "create_user", "code": "201"})
	f.Create(f.endUser("measured", withToken("measured-token", 900, 0)))
	obj := f.waitForReady("measured")
	_, claims := f.waitForToken("measured-token", obj.Status.UserID, "")

	if got := metricValue(t, "surge_operator_surge_requests_total", map[string]string{"operation": "create_user", "code": "201"}); got != createsBefore+1 {
		t.Errorf("create_user 201 counted %v times, want %v", got, createsBefore+1)
	}
	f.Eventually("token expiry exported", 5*time.Second, func() (bool, string) {
		got := metricValue(t, "surge_operator_token_expiry_timestamp_seconds", map[string]string{"namespace": f.Namespace, "name": "measured"})
		return got == float64(claims.ExpiresAt.Unix()), "token expiry gauge does not match the token"
	})
	if got := metricValue(t, "surge_operator_end_users", map[string]string{"ready": "True", "stalled": "false"}); got < 1 {
		t.Errorf("surge_operator_end_users{ready=True} = %v, want at least this resource", got)
	}
}

// seriesCount counts the series of a metric whose labels include want.
func seriesCount(t *testing.T, name string, want map[string]string) int {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	n := 0
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, metric := range family.GetMetric() {
			if hasLabels(metric, want) {
				n++
			}
		}
	}
	return n
}

// TestADeletedProjectLeavesNoSeries: the rate, ceiling and last 429 of a
// project's client are served while the project exists and go with it,
// so that neither a dashboard nor an alert watches a key that is gone.
func TestADeletedProjectLeavesNoSeries(t *testing.T) {
	f := newTenantsFixture(t, nil)
	f.Surge.AddProject("team", "sk_live_team_key_0123456789", teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", "sk_live_team_key_0123456789")
	// Only the project's client talks to Surge here: no end user of this
	// namespace goes without projectRef.
	f.Surge.InjectFault(surgetest.Fault{Status: http.StatusTooManyRequests, Count: 1})
	project := f.surgeProject(f.Namespace, "surge", "surge-key")
	f.Create(f.endUser("grace", in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	f.waitForReady("grace")

	scope := map[string]string{"scope": "SurgeProject " + f.Namespace + "/surge"}
	series := []string{
		"surge_operator_surge_rate_requests_per_second",
		"surge_operator_surge_rate_ceiling_requests_per_second",
		"surge_operator_surge_last_rate_limited_timestamp_seconds",
	}
	for _, name := range series {
		if n := seriesCount(t, name, scope); n != 1 {
			t.Errorf("%d series of %s for %s while the project is in use, want 1", n, name, scope["scope"])
		}
	}

	f.Delete("grace")
	f.WaitForGone("grace")
	f.deleteObject(project)
	f.waitForGoneObject(project)
	for _, name := range series {
		if n := seriesCount(t, name, scope); n != 0 {
			t.Errorf("%d series of %s for %s after the project is gone, want none", n, name, scope["scope"])
		}
	}
}
