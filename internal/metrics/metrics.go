// Package metrics holds the operator's Prometheus metrics, served on the
// manager's metrics endpoint. docs/metrics.md lists them with the alerts.
// Gauges of the operator's state are served by the leader only (see
// WatchManager); counters and histograms by every replica, where a
// standby, which sends no request, has no series of them.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// DriftCorrections counts remote users patched back after a change made
	// outside the operator.
	DriftCorrections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "surge_operator_drift_corrections_total",
		Help: "End users changed in Surge outside the operator and restored to their spec.",
	})

	// DuplicatesRemoved counts remote users removed because they carried
	// the identity of a resource whose status names another user: creates
	// that Surge committed later than the settle time.
	DuplicatesRemoved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "surge_operator_duplicates_removed_total",
		Help: "Copies of end users, committed by Surge later than the settle time, removed in favour of the user status names.",
	})

	// UsersLeftInSurge counts SurgeEndUsers that went while their user
	// could not be deleted: their namespace was being deleted and a stall
	// (a revoked key, say) outlasted the grace time. Their namespace's
	// events go with it, so the count and the log are what remains.
	UsersLeftInSurge = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "surge_operator_users_left_in_surge_total",
		Help: "SurgeEndUsers of a namespace being deleted that went without deleting their user, whose deletion stayed stalled past the grace time.",
	})

	// DeletionsHeld counts, per project, the SurgeEndUsers whose deletion
	// in Surge the mass-deletion brake holds.
	DeletionsHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_operator_deletions_held",
		Help: "SurgeEndUsers whose deletion in Surge the mass-deletion brake holds, by project (operator: the operator's own key), until a person releases them.",
	}, []string{"project"})

	surgeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_operator_surge_requests_total",
		Help: "Requests to the Surge API by operation, HTTP status code (0: no answer) and the project whose key sent them (operator: the operator's own; other: beyond the first 100 projects).",
	}, []string{"operation", "code", "project"})

	surgeRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "surge_operator_surge_request_duration_seconds",
		Help:    "Latency of Surge API requests by operation.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})

	surgeRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_operator_surge_retries_total",
		Help: "Surge API requests retried by the client, by operation and the status code that caused the retry.",
	}, []string{"operation", "code"})

	surgeRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "surge_operator_surge_rate_limited_total",
		Help: "Surge API requests answered 429 Too Many Requests, by operation.",
	}, []string{"operation"})

	surgeRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_operator_surge_rate_requests_per_second",
		Help: "Current adaptive rate of the Surge client of each API key, in requests per second; served by the leader only.",
	}, []string{"scope"})

	surgeRateCeiling = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_operator_surge_rate_ceiling_requests_per_second",
		Help: "Ceiling of the adaptive rate of the Surge client of each API key (--surge-requests-per-second); served by the leader only.",
	}, []string{"scope"})

	surgeLastRateLimited = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_operator_surge_last_rate_limited_timestamp_seconds",
		Help: "Unix time of the last 429 Too Many Requests answered to the Surge client of each API key; served by the leader only.",
	}, []string{"scope"})
)

func init() {
	// A standby's client of the operator's key is built but never used: its
	// rate would sit at the starting rate, far below the ceiling, for ever.
	ctrlmetrics.Registry.MustRegister(DriftCorrections, DuplicatesRemoved, UsersLeftInSurge, surgeRequests, surgeRequestDuration, surgeRetries, surgeRateLimited,
		fromLeader{DeletionsHeld, surgeRate, surgeRateCeiling, surgeLastRateLimited}, endUserCollector{}, buildInfo, leaderCollector{})
}

// ScopeOperatorKey is the scope of the client of the operator's own key.
const ScopeOperatorKey = "operator"

// SurgeObserver records the Surge client's requests; it implements
// surge.Observer.
type SurgeObserver struct {
	// Scope names the API key of the client: ScopeOperatorKey, or the
	// project whose key it is, such as "SurgeProject team-a/billing".
	Scope string
}

// RequestDone records one answered (or failed) request.
func (o SurgeObserver) RequestDone(operation string, statusCode int, duration time.Duration) {
	surgeRequests.WithLabelValues(operation, strconv.Itoa(statusCode), projectLabels.of(o.Scope)).Inc()
	surgeRequestDuration.WithLabelValues(operation).Observe(duration.Seconds())
	if statusCode == 429 {
		surgeRateLimited.WithLabelValues(operation).Inc()
		// A time, not a counter per key: a counter's first 429 would be
		// its first sample, which increase() cannot see.
		surgeLastRateLimited.WithLabelValues(o.Scope).SetToCurrentTime()
	}
}

// Retried records a request the client is about to send again.
func (SurgeObserver) Retried(operation string, statusCode int) {
	surgeRetries.WithLabelValues(operation, strconv.Itoa(statusCode)).Inc()
}

// RateChanged records the client's adaptive rate and its ceiling.
func (o SurgeObserver) RateChanged(current, ceiling float64) {
	surgeRate.WithLabelValues(o.Scope).Set(current)
	surgeRateCeiling.WithLabelValues(o.Scope).Set(ceiling)
}

// ForgetScope removes the series of the client of a key that is gone, such
// as a deleted project's: its last rate would otherwise be served for ever.
func ForgetScope(scope string) {
	surgeRate.DeleteLabelValues(scope)
	surgeRateCeiling.DeleteLabelValues(scope)
	surgeLastRateLimited.DeleteLabelValues(scope)
	DeletionsHeld.DeleteLabelValues(scope)
	if projectLabels.forget(scope) {
		surgeRequests.DeletePartialMatch(prometheus.Labels{"project": scope})
	}
}
