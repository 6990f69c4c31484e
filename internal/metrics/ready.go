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

var endUsersDesc = prometheus.NewDesc(
	"surge_operator_end_users",
	"SurgeEndUsers by the status of their Ready condition (True, False, Unknown) and whether they are stalled.",
	[]string{"ready", "stalled"}, nil,
)

// readyCollector counts SurgeEndUsers from the manager's cache when scraped,
// so the figures can never drift from what the API server holds.
var readyCollector = &endUserCollector{}

type endUserCollector struct {
	reader atomic.Pointer[client.Reader]
}

// WatchEndUsers makes the end-user counts read from reader (the manager's
// cache). A later call replaces the reader, for a rebuilt manager.
func WatchEndUsers(reader client.Reader) {
	readyCollector.reader.Store(&reader)
}

func (c *endUserCollector) Describe(ch chan<- *prometheus.Desc) { ch <- endUsersDesc }

func (c *endUserCollector) Collect(ch chan<- prometheus.Metric) {
	reader := c.reader.Load()
	if reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := (*reader).List(ctx, list); err != nil {
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
		conditions := list.Items[i].Status.Conditions
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
