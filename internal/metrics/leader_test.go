package metrics_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/metrics"
)

// leaderGauges are the gauges of the operator's state, which every replica
// could compute alike.
var leaderGauges = []string{
	"surge_operator_end_users",
	"surge_operator_token_expiry_timestamp_seconds",
	"surge_operator_surge_rate_requests_per_second",
	"surge_operator_surge_rate_ceiling_requests_per_second",
}

// served returns the number of series of each family the registry serves.
func served(t *testing.T) map[string]int {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	series := map[string]int{}
	for _, family := range families {
		series[family.GetName()] = len(family.GetMetric())
	}
	return series
}

// TestGaugesWaitForLeadership: a standby, whose cache and clients mirror the
// leader's, serves none of the gauges; once elected it serves them all.
func TestGaugesWaitForLeadership(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := surgev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	expiresAt := metav1.NewTime(time.Unix(1_900_000_000, 0))
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ada"},
		Status:     surgev1alpha1.SurgeEndUserStatus{Token: &surgev1alpha1.TokenStatus{ExpiresAt: expiresAt}},
	}).Build()
	elected := make(chan struct{})
	metrics.WatchManager(reader, elected, "surge-operator.surge.app")
	metrics.SurgeObserver{Scope: metrics.ScopeOperatorKey}.RateChanged(10, 200)

	standby := served(t)
	if standby["surge_operator_build_info"] != 1 || leaderValue(t) != 0 {
		t.Errorf("a standby serves %d build_info series and leader %v, want 1 and 0", standby["surge_operator_build_info"], leaderValue(t))
	}
	for _, name := range leaderGauges {
		if n := standby[name]; n != 0 {
			t.Errorf("a standby serves %d series of %s", n, name)
		}
	}

	close(elected)
	if value := leaderValue(t); value != 1 {
		t.Errorf("the leader serves surge_operator_leader %v, want 1", value)
	}
	leader := served(t)
	want := map[string]int{
		// Every combination of ready and stalled, zeros included.
		"surge_operator_end_users":                              6,
		"surge_operator_token_expiry_timestamp_seconds":         1,
		"surge_operator_surge_rate_requests_per_second":         1,
		"surge_operator_surge_rate_ceiling_requests_per_second": 1,
	}
	for _, name := range leaderGauges {
		if leader[name] != want[name] {
			t.Errorf("the leader serves %d series of %s, want %d", leader[name], name, want[name])
		}
	}
}

// leaderValue is the value of surge_operator_leader for the Lease
// surge-operator.surge.app.
func leaderValue(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, family := range families {
		if family.GetName() != "surge_operator_leader" {
			continue
		}
		for _, metric := range family.GetMetric() {
			for _, label := range metric.GetLabel() {
				if label.GetName() == "lease" && label.GetValue() == "surge-operator.surge.app" {
					return metric.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatal("no surge_operator_leader series for the Lease surge-operator.surge.app")
	return 0
}
