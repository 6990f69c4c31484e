package operator

import (
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ScrapeFilter is the metrics endpoint's filter with a review timeout, a
// bound on concurrent reviews and a clock of the test's choosing.
func ScrapeFilter(cfg *rest.Config, httpClient *http.Client, timeout time.Duration, maxConcurrent int, now func() time.Time) (metricsserver.Filter, error) {
	return scrapeFilter(cfg, httpClient, scrapeLimits{timeout: timeout, maxConcurrent: maxConcurrent, now: now})
}
