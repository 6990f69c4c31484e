// Package surge is a small typed client of the Surge end-user API. Surge
// has no official Go SDK; this client follows the behaviour of the official
// ones (retries, backoff, retry headers) except where the operator needs to
// be stricter, such as never retrying a create.
package surge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	userAgent = "surge-operator"
	// A server asking for a longer pause than this is better answered by
	// failing the call, so the caller can requeue, than by holding a worker.
	maxHonouredRetryAfter = 60 * time.Second
	maxResponseBody       = 8 << 20
	maxErrorBody          = 64 << 10
)

// Client calls the Surge API. It is safe for concurrent use; its adaptive
// rate, its pause after a 429 and its retry budget apply to all callers
// together.
type Client struct {
	baseURL    *url.URL
	endpoint   string
	credential *credential
	httpClient *http.Client
	timeout    time.Duration
	maxRetries int
	backoffMin time.Duration
	backoffMax time.Duration
	pace       *pacer
	observer   Observer
}

// credential is held by pointer so that even printing a copied Client
// struct shows an address, not the key.
type credential struct{ apiKey string }

// New returns a Client of the API at baseURL, such as
// "https://api.surge.app", authenticating with apiKey.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("surge: invalid base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("surge: base URL %q must be an absolute http or https URL", u.Redacted())
	}
	if apiKey == "" {
		return nil, errors.New("surge: API key is empty")
	}
	o := options{
		httpClient:  &http.Client{},
		timeout:     defaultTimeout,
		maxRetries:  defaultMaxRetries,
		backoffBase: defaultBackoffBase,
		backoffMax:  defaultBackoffMax,
		rps:         defaultRateLimit,
		burst:       defaultBurst,
		observer:    noObserver{},
	}
	for _, opt := range opts {
		opt(&o)
	}
	if u.Scheme == "http" && !o.insecureHTTP && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("surge: base URL %q is plain http to a host other than this machine, which would send the API key in clear: use https", u.Redacted())
	}
	c := &Client{
		baseURL:    u,
		endpoint:   strings.TrimRight(u.String(), "/"),
		credential: &credential{apiKey: apiKey},
		httpClient: withoutRedirects(o.httpClient),
		timeout:    o.timeout,
		maxRetries: o.maxRetries,
		backoffMin: o.backoffBase,
		backoffMax: o.backoffMax,
		observer:   o.observer,
	}
	c.pace = newPacer(o.rps, o.burst, o.observer)
	return c, nil
}

// withoutRedirects returns a copy of hc that hands a redirect back to the
// client instead of following it, whatever the target. Surge answers where
// it is asked, so a redirect comes from something else: a proxy, a moved or
// mistyped base URL. Following one would send the API key wherever Location
// points (Go keeps Authorization for another port of the same host, and
// from https to plain http), and net/http re-sends a POST, PATCH or DELETE
// answered 301, 302 or 303 as a GET, so a create or delete that never
// happened would read as done; after 307 or 308 it sends the create again,
// body and all. Nothing Surge does needs a redirect, so none is followed,
// not even to the same host. hc is copied because the caller may use it
// elsewhere with its own policy.
func withoutRedirects(hc *http.Client) *http.Client {
	copied := *hc
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &copied
}

// isLoopback says whether host names this machine, where plain http never
// leaves it.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the client without its API key.
func (c *Client) String() string {
	return fmt.Sprintf("surge.Client{baseURL: %s, apiKey: %s}", c.baseURL.Redacted(), redactKey(c.credential.apiKey))
}

// GoString keeps %#v from printing the key.
func (c *Client) GoString() string { return c.String() }

// Format keeps every verb, %+v and %#v included, from printing the key.
func (c *Client) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// redactKey keeps the key's type prefix ("sk_l", "sk_d") of a long enough
// key, which tells live from demo keys apart without revealing the secret.
func redactKey(key string) string {
	const shown, minLength = 4, 16
	if len(key) < minLength {
		return "(redacted)"
	}
	return key[:shown] + "…(redacted)"
}

// call is one API operation.
type call struct {
	operation string
	method    string
	path      string
	query     url.Values
	body      any
	// retrySafe is false for requests that must not be repeated, since
	// repeating them could act twice.
	retrySafe bool
	// accountScoped marks paths under /accounts/, where Surge's not_found means the
	// account is unknown.
	accountScoped bool
	out           any
}

// do makes the call: a resync read only when no other request is expected
// back for a turn, and any other request ahead of resync reads when it
// comes back after being held back.
func (c *Client) do(ctx context.Context, req call) error {
	if givesWay(ctx, req.method) {
		if err := c.pace.giveWay(req.operation); err != nil {
			return err
		}
		return c.attempt(ctx, req)
	}
	c.pace.arrived()
	err := c.attempt(ctx, req)
	if retryAfter, limited := RateLimitedFor(err); limited {
		c.pace.sentAway(retryAfter)
	}
	return err
}

// attempt makes the call, retrying where that is safe and the budget
// allows.
func (c *Client) attempt(ctx context.Context, req call) error {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return fmt.Errorf("surge %s: encoding request: %w", req.operation, err)
		}
	}
	target := c.endpoint + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	retriesCost := 0
	for attempt := 0; ; attempt++ {
		sentAt, err := c.pace.turn(ctx, req.operation)
		if _, limited := RateLimitedFor(err); limited {
			return err
		}
		if err != nil {
			return fmt.Errorf("surge %s: waiting to send: %w", req.operation, err)
		}
		if tooLateToSend(ctx, sentAt) {
			// The turn came, after retakes or a pause, later than the
			// caller allows.
			return &RateLimitedError{Operation: req.operation, RetryAfter: time.Second}
		}
		err = c.pace.answered(req.operation, sentAt, c.send(ctx, req, target, payload))
		if err == nil {
			c.pace.succeeded(retriesCost)
			return nil
		}
		delay, delayHonoured := c.retryDelay(attempt, err)
		if !req.retrySafe || attempt >= c.maxRetries || ctx.Err() != nil || !IsRetryable(err) || !delayHonoured {
			return err
		}
		pause, limited := RateLimitedFor(err)
		if limited && pause > maxTurnWait {
			return err
		}
		cost := retryCostOf(err)
		if !c.pace.mayRetry(cost) {
			return err
		}
		retriesCost += cost
		c.observer.Retried(req.operation, statusCode(err))
		if limited {
			// The pause after a 429 holds every request of the client:
			// the next turn waits it out.
			continue
		}
		if !sleep(ctx, delay) {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, ctx.Err())
		}
	}
}

// retryDelay is the wait before retrying after err: what the server asked
// for, else exponential backoff with jitter. It reports false when the
// server asked for a wait too long to spend inside one call.
func (c *Client) retryDelay(attempt int, err error) (time.Duration, bool) {
	if apiErr, isAPIErr := errors.AsType[*Error](err); isAPIErr && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter, apiErr.RetryAfter <= maxHonouredRetryAfter
	}
	delay := c.backoffMin
	for range attempt {
		if delay >= c.backoffMax {
			break
		}
		delay *= 2
	}
	delay = min(delay, c.backoffMax)
	return delay - rand.N(delay/4+1), true
}

func (c *Client) send(ctx context.Context, req call, target string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	httpReq, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return fmt.Errorf("surge %s: building request: %w", req.operation, err)
	}
	httpReq.Header.Set("Authorization", "Bearer "+c.credential.apiKey)
	httpReq.Header.Set("Accept", "application/json")
	httpReq.Header.Set("User-Agent", userAgent)
	if payload != nil {
		httpReq.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.httpClient.Do(httpReq)
	if err != nil {
		c.observer.RequestDone(req.operation, 0, time.Since(start))
		return &transportError{operation: req.operation, err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	success := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(maxErrorBody)
	if success {
		limit = maxResponseBody
	}
	if location := resp.Header.Get("Location"); location != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		c.observer.RequestDone(req.operation, resp.StatusCode, time.Since(start))
		return redirectNotFollowed(req, httpReq.URL, resp.StatusCode, location, c.credential.apiKey)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	c.observer.RequestDone(req.operation, resp.StatusCode, time.Since(start))
	if err != nil {
		return &transportError{operation: req.operation, err: fmt.Errorf("reading %d response: %w", resp.StatusCode, err)}
	}
	if !success {
		return newError(req, resp, raw, c.credential.apiKey)
	}
	if int64(len(raw)) > limit {
		return fmt.Errorf("surge %s: response larger than %d bytes", req.operation, limit)
	}
	if req.out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, req.out); err != nil {
		return fmt.Errorf("surge %s: decoding %d response: %w", req.operation, resp.StatusCode, err)
	}
	return nil
}

// transportError is a request that got no complete response: the
// connection failed, was dropped, or the attempt timed out.
type transportError struct {
	operation string
	err       error
}

func (e *transportError) Error() string { return "surge " + e.operation + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func statusCode(err error) int {
	if apiErr, isAPIErr := errors.AsType[*Error](err); isAPIErr {
		return apiErr.StatusCode
	}
	return 0
}

// sleep waits for d, and reports false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
