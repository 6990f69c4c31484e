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
		"SurgeEndUsers by the status of their Ready condition (True, False, Unknown) and whether they are stalled.",
		[]string{"ready", "stalled"}, nil,
	)
	tokenExpiryDesc = prometheus.NewDesc(
		"surge_operator_token_expiry_timestamp_seconds",
		"Unix time at which the component token kept for a SurgeEndUser expires.",
		[]string{"namespace", "name"}, nil,
	)
)

// readyCollector reads SurgeEndUsers from the manager's cache when scraped,
// so the figures can never drift from what the API server holds, and a
// series per user costs no memory between scrapes.
var readyCollector = &endUserCollector{}

type endUserCollector struct {
	reader atomic.Pointer[client.Reader]
}

// WatchEndUsers makes the end-user counts read from reader (the manager's
// cache). A later call replaces the reader, for a rebuilt manager.
func WatchEndUsers(reader client.Reader) {
	readyCollector.reader.Store(&reader)
}

func (c *endUserCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endUsersDesc
	ch <- tokenExpiryDesc
}

func (c *endUserCollector) Collect(ch chan<- prometheus.Metric) {
	reader := c.reader.Load()
	if reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &surgev1alpha1.SurgeEndUserList{}
	// Read-only use: copying every cached resource at each scrape would
	// allocate as much as the cache holds.
	if err := (*reader).List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
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
