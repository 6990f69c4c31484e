package failover_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/types"

	"github.com/surge-operator/surge-operator/internal/operator"
)

// leaderGauges are the gauges of the operator's state: every replica
// could compute them alike from its cache and its clients, so only the
// leader may serve them, or every sum over the replicas counts twice.
var leaderGauges = []string{
	"surge_operator_end_users",
	"surge_operator_token_expiry_timestamp_seconds",
	"surge_operator_surge_rate_requests_per_second",
	"surge_operator_surge_rate_ceiling_requests_per_second",
}

// TestGaugesAreServedOnce runs two replicas that both serve metrics, as
// the installation's two-replica variant does, and scrapes both, as
// Prometheus scrapes every pod behind the metrics Service: each series of
// the gauges comes from one replica, the leader. After a rolling update
// hands over, the new leader serves them all.
func TestGaugesAreServedOnce(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run through make test, which builds envtest's binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := startEnvironment(t)

	firstURL, firstArgs := servingMetrics(t)
	first := env.startManager(t, "first", firstArgs...)
	first.waitForLeadership(t, 30*time.Second)
	secondURL, secondArgs := servingMetrics(t)
	second := env.startManager(t, "second", secondArgs...)
	env.waitForManagerStarted(t, second)

	created := env.createEndUsers(ctx, t, "gauged", 5)
	env.waitForConvergence(ctx, t, created)
	want := expectedSeries(created)
	// The leader's cache may lag the API server by a moment.
	var leader map[string]int
	poll(ctx, t, 10*time.Second, "the leader serving every gauge", func() (bool, string) {
		leader = scrapeGauges(t, firstURL)
		missing := missingSeries(leader, want)
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})
	standby := scrapeGauges(t, secondURL)
	for _, series := range slices.Sorted(maps.Keys(standby)) {
		t.Errorf("the standby serves %s as well", series)
	}
	for _, series := range slices.Sorted(maps.Keys(leader)) {
		if !want[series] {
			t.Errorf("the leader serves %s, which no end user or client accounts for", series)
		}
	}

	if code := first.terminate(t); code != 0 {
		t.Errorf("the leader exited with status %d after SIGTERM; log: %s", code, first.logPath)
	}
	second.waitForLeadership(t, operator.DefaultLeaseDuration)
	poll(ctx, t, 30*time.Second, "the new leader serving every gauge once", func() (bool, string) {
		served := scrapeGauges(t, secondURL)
		missing := missingSeries(served, want)
		var twice []string
		for series, n := range served {
			if n != 1 {
				twice = append(twice, series)
			}
		}
		return len(missing) == 0 && len(twice) == 0, fmt.Sprintf("missing %v, served more than once %v", missing, twice)
	})
}

// servingMetrics returns the URL of a replica's metrics and the flags that
// serve them there, over plain HTTP: the test does not check scrapers.
func servingMetrics(t *testing.T) (string, []string) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	_ = listener.Close()
	return "http://" + address + "/metrics", []string{
		"--metrics-bind-address=" + address,
		"--metrics-secure=false",
		// With pacing, the Surge client serves its rate and ceiling.
		fmt.Sprintf("--surge-requests-per-second=%d", operator.DefaultSurgeRequestsPerSecond),
	}
}

// expectedSeries are the gauge series that one replica should serve for
// the created end users: a token expiry each, the rate and ceiling of the
// operator's own key, and the end users by every value of ready and
// stalled.
func expectedSeries(created []types.NamespacedName) map[string]bool {
	want := map[string]bool{
		`surge_operator_surge_rate_requests_per_second{scope="operator"}`:         true,
		`surge_operator_surge_rate_ceiling_requests_per_second{scope="operator"}`: true,
	}
	for _, key := range created {
		want[fmt.Sprintf(`surge_operator_token_expiry_timestamp_seconds{name=%q, namespace=%q}`, key.Name, key.Namespace)] = true
	}
	for _, ready := range []string{"False", "True", "Unknown"} {
		for _, stalled := range []string{"false", "true"} {
			want[fmt.Sprintf(`surge_operator_end_users{ready=%q, stalled=%q}`, ready, stalled)] = true
		}
	}
	return want
}

func missingSeries(served map[string]int, want map[string]bool) []string {
	var missing []string
	for series := range want {
		if served[series] == 0 {
			missing = append(missing, series)
		}
	}
	slices.Sort(missing)
	return missing
}

// scrapeGauges reads a replica's metrics and counts how often it serves
// each series of leaderGauges, by name and labels.
func scrapeGauges(t *testing.T, url string) map[string]int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics of %s: %v", url, err)
	}
	served := map[string]int{}
	for _, name := range leaderGauges {
		family, ok := families[name]
		if !ok {
			continue
		}
		for _, metric := range family.GetMetric() {
			labels := model.LabelSet{}
			for _, pair := range metric.GetLabel() {
				labels[model.LabelName(pair.GetName())] = model.LabelValue(pair.GetValue())
			}
			served[name+labels.String()]++
		}
	}
	return served
}
