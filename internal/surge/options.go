package surge

import (
	"net/http"
	"net/url"
	"time"
)

// DefaultAPIURL is Surge's production API.
const DefaultAPIURL = "https://api.surge.app"

const (
	defaultTimeout     = 30 * time.Second
	defaultMaxRetries  = 3
	defaultBackoffBase = 500 * time.Millisecond
	defaultBackoffMax  = 8 * time.Second
	defaultRateLimit   = 20
	defaultBurst       = 40
)

type options struct {
	httpClient  *http.Client
	timeout     time.Duration
	maxRetries  int
	backoffBase time.Duration
	backoffMax  time.Duration
	rps         float64
	burst       int
	observer    Observer
	// insecureHTTP allows a plain http:// base URL to another host.
	insecureHTTP bool
}

// Option configures a Client.
type Option func(*options)

// WithHTTPClient sends requests through a copy of hc, for a custom transport
// or proxy. Its own Timeout, if any, applies on top of the per-attempt
// timeout; its CheckRedirect does not, since the client follows no
// redirects.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) {
		if hc != nil {
			o.httpClient = hc
		}
	}
}

// WithTimeout bounds each attempt of a request; 30s by default.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithMaxRetries sets how many times a retry-safe request is retried after
// a retryable failure; 3 by default, 0 disables retries.
func WithMaxRetries(n int) Option {
	return func(o *options) { o.maxRetries = max(n, 0) }
}

// WithBackoff sets the wait before the first retry and the most any wait may
// grow to by doubling; 500ms and 8s by default. Each wait is shortened by up
// to 25% at random so that clients failing together do not retry together.
func WithBackoff(base, maxWait time.Duration) Option {
	return func(o *options) {
		if base > 0 {
			o.backoffBase = base
		}
		o.backoffMax = max(maxWait, o.backoffBase)
	}
}

// WithRateLimit sets the ceiling of the Client's adaptive rate, across
// every caller sharing it, with bursts up to burst. The Client starts at
// 10 rps (or the ceiling, if lower) and doubles its rate every half second
// from its first success until Surge answers 429 or it reaches the
// ceiling; after a 429 it slows down, and climbs back while Surge accepts.
// 20 rps with bursts of 40 by default. rps <= 0 removes the client's own
// pacing, leaving only Surge's 429s and Retry-After.
func WithRateLimit(rps float64, burst int) Option {
	return func(o *options) {
		o.rps = rps
		o.burst = max(burst, 1)
	}
}

// WithObserver reports every request and retry to o, for metrics.
func WithObserver(o Observer) Option {
	return func(opts *options) {
		if o != nil {
			opts.observer = o
		}
	}
}

// Observer is told about the requests a Client makes.
type Observer interface {
	// RequestDone reports one attempt of operation, one of "create_user",
	// "get_user", "update_user", "delete_user", "list_users" or
	// "create_token". statusCode is 0 when no response arrived.
	RequestDone(operation string, statusCode int, duration time.Duration)
	// Retried reports that a failed attempt of operation, answered with
	// statusCode (0 when no response arrived), will be retried.
	Retried(operation string, statusCode int)
	// RateChanged reports the client's adaptive rate in requests per
	// second, and the ceiling it may climb back to.
	RateChanged(current, ceiling float64)
}

type noObserver struct{}

func (noObserver) RequestDone(string, int, time.Duration) {}
func (noObserver) Retried(string, int)                    {}
func (noObserver) RateChanged(float64, float64)           {}

// WithInsecureHTTP allows a plain http:// base URL on a host other than the
// loopback interface, which sends the API key in clear over the network: for
// an emulator or a proxy inside a trusted network only.
func WithInsecureHTTP() Option {
	return func(o *options) { o.insecureHTTP = true }
}

// LoggableURL is the Surge API URL as logs may show it: scheme, host and
// path. A query or user info may carry a proxy's credentials.
func LoggableURL(raw string) string {
	parsed, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return (&url.URL{Scheme: parsed.Scheme, Host: parsed.Host, Path: parsed.Path}).String()
}
