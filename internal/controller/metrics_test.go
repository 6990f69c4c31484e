package controller_test

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
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
