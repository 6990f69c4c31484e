package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-operator/surge-operator/internal/version"
)

var (
	buildInfo = func() prometheus.Collector {
		info := version.Get()
		gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "surge_operator_build_info",
			Help: "Always 1, labelled with the version and commit the manager was built from and its Go version; served by every pod, so that its absence means no pod is scraped.",
		}, []string{"version", "commit", "go_version"})
		gauge.WithLabelValues(info.Version, info.Commit, info.GoVersion).Set(1)
		return gauge
	}()
	leaderDesc = prometheus.NewDesc(
		"surge_operator_leader",
		"1 on the pod that leads its leader election Lease (on every pod when there is no election), 0 on a standby; served by every pod.",
		[]string{"lease"}, nil,
	)
)

// leaderCollector serves surge_operator_leader, from which an alert tells
// that no pod of an installation, or of one of its shards, leads.
type leaderCollector struct{}

func (leaderCollector) Describe(ch chan<- *prometheus.Desc) { ch <- leaderDesc }

func (leaderCollector) Collect(ch chan<- prometheus.Metric) {
	m := current.Load()
	if m == nil {
		return
	}
	value := 0.0
	if _, ok := leading(); ok {
		value = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, value, m.lease)
}
