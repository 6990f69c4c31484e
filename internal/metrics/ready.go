package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

var (
	endUsersDesc = prometheus.NewDesc(
		"surge_operator_end_users",
		"SurgeEndUsers by the status of their Ready condition (True, False, Unknown) and whether they are stalled; served by the leader only.",
		[]string{"ready", "stalled"}, nil,
	)
	tokenExpiryDesc = prometheus.NewDesc(
		"surge_operator_token_expiry_timestamp_seconds",
		"Unix time at which the component token kept for a SurgeEndUser expires; served by the leader only.",
		[]string{"namespace", "name"}, nil,
	)
)

// manager is what the gauges read: the manager's cache, and whether this
// replica leads.
type manager struct {
	reader client.Reader
	// elected is closed once this replica leads, or at start when there is
	// no election.
	elected <-chan struct{}
	// lease names the leader election Lease, one per shard.
	lease string
}

var current atomic.Pointer[manager]

// WatchManager makes the gauges of the operator's state read from reader
// (the manager's cache) and be served once elected is closed. Every replica
// lists the same resources and builds the same clients, so gauges from a
// standby would count each end user twice; a standby also never fills its
// cache then. A later call replaces the manager, for a rebuilt one.
func WatchManager(reader client.Reader, elected <-chan struct{}, lease string) {
	current.Store(&manager{reader: reader, elected: elected, lease: lease})
}

// leading returns the manager while this replica leads it.
func leading() (*manager, bool) {
	m := current.Load()
	if m == nil {
		return nil, false
	}
	select {
	case <-m.elected:
		return m, true
	default:
		return nil, false
	}
}

// fromLeader serves its collectors' series only while this replica leads.
type fromLeader []prometheus.Collector

func (c fromLeader) Describe(ch chan<- *prometheus.Desc) {
	for _, collector := range c {
		collector.Describe(ch)
	}
}

func (c fromLeader) Collect(ch chan<- prometheus.Metric) {
	if _, ok := leading(); !ok {
		return
	}
	for _, collector := range c {
		collector.Collect(ch)
	}
}

// endUserCollector reads SurgeEndUsers from the manager's cache when
// scraped, so the figures can never drift from what the API server holds,
// and a series per user costs no memory between scrapes.
type endUserCollector struct{}

func (endUserCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endUsersDesc
	ch <- tokenExpiryDesc
}

func (endUserCollector) Collect(ch chan<- prometheus.Metric) {
	m, ok := leading()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &surgev1alpha1.SurgeEndUserList{}
	// Read-only use: copying every cached resource at each scrape would
	// allocate as much as the cache holds.
	if err := m.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	type key struct{ ready, stalled string }
	counts := map[key]int{}
	for _, status := range []string{"True", "False", "Unknown"} {
		for _, stalled := range []string{"true", "false"} {
			counts[key{status, stalled}] = 0
		}
	}
	for i := range list.Items {
		obj := &list.Items[i]
		if token := obj.Status.Token; token != nil {
			ch <- prometheus.MustNewConstMetric(tokenExpiryDesc, prometheus.GaugeValue, float64(token.ExpiresAt.Unix()), obj.Namespace, obj.Name)
		}
		conditions := obj.Status.Conditions
		ready := string(metav1.ConditionUnknown)
		if c := apimeta.FindStatusCondition(conditions, "Ready"); c != nil {
			ready = string(c.Status)
		}
		stalled := "false"
		if apimeta.IsStatusConditionTrue(conditions, "Stalled") {
			stalled = "true"
		}
		counts[key{ready, stalled}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(endUsersDesc, prometheus.GaugeValue, float64(n), k.ready, k.stalled)
	}
}
