// Package metrics holds the operator's Prometheus metrics, served on the
// manager's metrics endpoint.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// TokenExpiry is the expiry time of each SurgeEndUser's component token.
	TokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_operator_token_expiry_timestamp_seconds",
		Help: "Unix time at which the component token kept for a SurgeEndUser expires.",
	}, []string{"namespace", "name"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(TokenExpiry)
}
