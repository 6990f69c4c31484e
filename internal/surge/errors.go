package surge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxMessageBytes keeps an error readable in a status condition when a proxy
// answers with a whole HTML page.
const maxMessageBytes = 200

// Error is an error response of the Surge API.
type Error struct {
	StatusCode int
	// Type is Surge's error type, such as "invalid_api_key"; empty when the
	// body was not a Surge error.
	Type    string
	Message string
	// Detail lists problems per field, when Surge sent them.
	Detail    map[string][]string
	Operation string
	// RetryAfter is the wait the server asked for, when it did.
	RetryAfter time.Duration

	accountScoped bool
	// shouldRetry is the server's x-should-retry verdict, nil when absent.
	shouldRetry *bool
}

// Error reads like
// "surge create_user: 422 validation_error: first_name can't be blank (first_name: can't be blank)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "surge %s: %d", e.Operation, e.StatusCode)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Detail) > 0 {
		var problems []string
		for _, field := range slices.Sorted(maps.Keys(e.Detail)) {
			problems = append(problems, field+": "+strings.Join(e.Detail[field], ", "))
		}
		b.WriteString(" (" + strings.Join(problems, "; ") + ")")
	}
	return b.String()
}

type wireError struct {
	Error *struct {
		Type    string              `json:"type"`
		Message string              `json:"message"`
		Detail  map[string][]string `json:"detail"`
	} `json:"error"`
}

func newError(req call, resp *http.Response, body []byte, apiKey string) *Error {
	e := &Error{
		StatusCode:    resp.StatusCode,
		Operation:     req.operation,
		RetryAfter:    parseRetryAfter(resp.Header),
		accountScoped: req.accountScoped,
	}
	if verdict, err := strconv.ParseBool(resp.Header.Get("x-should-retry")); err == nil {
		e.shouldRetry = &verdict
	}
	var parsed wireError
	if json.Unmarshal(body, &parsed) == nil && parsed.Error != nil && parsed.Error.Type != "" {
		e.Type = parsed.Error.Type
		e.Message = parsed.Error.Message
		e.Detail = parsed.Error.Detail
	} else {
		e.Message = genericMessage(resp.StatusCode, body)
	}
	// A server must not echo the key, but an error ends up in logs and
	// status conditions, so make sure.
	e.Message = truncate(strings.ReplaceAll(e.Message, apiKey, "(redacted)"))
	return e
}

// redirectNotFollowed is the error of a request answered with a redirect to
// location, which the client does not follow (see withoutRedirects). It says
// first what would have made following it unsafe for the API key, and
// leaves out the Location's query, which may carry a proxy's session.
func redirectNotFollowed(req call, from *url.URL, status int, location, apiKey string) *Error {
	refusal, shown := "refused a redirect", "unreadable"
	if to, err := from.Parse(location); err == nil {
		switch {
		case to.Scheme != from.Scheme:
			refusal = fmt.Sprintf("refused a redirect from %s to %s", from.Scheme, to.Scheme)
		case to.Host != from.Host:
			refusal = "refused a redirect to another host"
		default:
			refusal = "refused a redirect on the same host"
		}
		shown = (&url.URL{Scheme: to.Scheme, Host: to.Host, Path: to.Path}).String()
	}
	message := fmt.Sprintf("%s: the client follows no redirects; the request and the API key went only to %s (Location: %s)", refusal, from.Host, shown)
	return &Error{
		StatusCode:    status,
		Operation:     req.operation,
		Message:       truncate(strings.ReplaceAll(message, apiKey, "(redacted)")),
		accountScoped: req.accountScoped,
	}
}

func genericMessage(status int, body []byte) string {
	message := http.StatusText(status)
	if message == "" {
		message = "unexpected status"
	}
	if snippet := strings.Join(strings.Fields(string(body)), " "); snippet != "" {
		message += ", body: " + snippet
	}
	return message
}

func truncate(s string) string {
	if len(s) <= maxMessageBytes {
		return s
	}
	cut := maxMessageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads retry-after-ms, then retry-after in seconds or as an
// HTTP date, as the official SDKs do.
func parseRetryAfter(h http.Header) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	value := h.Get("retry-after")
	if seconds, err := strconv.ParseFloat(value, 64); err == nil && seconds > 0 {
		return time.Duration(seconds * float64(time.Second))
	}
	if date, err := http.ParseTime(value); err == nil {
		return max(time.Until(date), 0)
	}
	return 0
}

func asError(err error) (*Error, bool) { return errors.AsType[*Error](err) }

// IsNotFound reports that Surge itself says the user, or the account, does
// not exist. Only its own error body counts: a 404 page of a gateway or proxy
// in front of Surge says nothing about the user, and taking it for "gone"
// would re-create a user that exists or release one that was never deleted.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && (e.Type == "not_found" || e.Type == "account_not_found")
}

// IsAccountNotFound reports that Surge says the account does not exist or is
// not reachable with the API key.
func IsAccountNotFound(err error) bool {
	e, ok := asError(err)
	return ok && (e.Type == "account_not_found" || (e.Type == "not_found" && e.accountScoped))
}

// IsUnauthorized reports a rejected API key: missing, invalid, a demo key
// where a live one is needed, or a locked project.
func IsUnauthorized(err error) bool {
	e, ok := asError(err)
	return ok && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// IsInvalid reports a request Surge refuses as it stands, which retrying
// cannot fix: a person must change it.
func IsInvalid(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusGone:
		return true
	}
	return false
}

// IsRefused reports that Surge itself answered that it did not carry the
// request out: a 4xx with its own error body, such as a validation error or
// a 429. This rules out that a create happened. Nothing else does: not a
// lost answer or a 5xx, nor a 408 or 409, which Surge may send for a request
// it went on to carry out, nor a 4xx page of a gateway or proxy in front of
// Surge, which says nothing of whether the request reached Surge.
func IsRefused(err error) bool {
	e, ok := asError(err)
	if !ok || e.Type == "" {
		return false
	}
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusConflict:
		return false
	}
	return e.StatusCode >= 400 && e.StatusCode < 500
}

// IsRetryable reports a failure that may pass if the request is repeated:
// no response, a timeout, 408, 409, 429 or 5xx, unless the server said
// otherwise with x-should-retry. A cancelled context is not retryable.
func IsRetryable(err error) bool {
	if e, ok := asError(err); ok {
		if e.shouldRetry != nil {
			return *e.shouldRetry
		}
		switch e.StatusCode {
		case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
			return true
		}
		return e.StatusCode >= 500
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	_, noResponse := errors.AsType[*transportError](err)
	return noResponse
}

// DeferredRetry is the wait the server asked for before a retry, when it is
// longer than the client spends inside one call and so was not waited out:
// the caller should come back after it. It is 0 for any other error.
func DeferredRetry(err error) time.Duration {
	e, ok := asError(err)
	if !ok || e.RetryAfter <= maxHonouredRetryAfter {
		return 0
	}
	return e.RetryAfter
}

// Fate is what the error of a request tells of whether Surge carried it
// out: the three cases a create without an idempotency key must tell apart.
type Fate int

const (
	// MaybeInFlight: no answer came from Surge itself (a lost or timed-out
	// answer, a gateway's 502 or 504, a 5xx page that is not Surge's JSON):
	// the request may still be committed, up to the settle time after it
	// left.
	MaybeInFlight Fate = iota
	// NotDone: certainly not carried out. The client held it back, the
	// connection was never made, or Surge refused it with its own 4xx body.
	NotDone
	// Finished: Surge's own handler answered (its JSON error body), so what
	// it committed is visible now and nothing of it commits later.
	Finished
)

// FateOf classifies the error of a request.
func FateOf(err error) Fate {
	switch {
	case WasNotSent(err) || IsRefused(err) || neverConnected(err):
		return NotDone
	}
	if e, ok := asError(err); ok && e.Type != "" {
		return Finished
	}
	return MaybeInFlight
}

// neverConnected reports a request that failed while its connection was
// being made: nothing of it reached the server.
func neverConnected(err error) bool {
	if _, transport := errors.AsType[*transportError](err); !transport {
		return false
	}
	opErr, ok := errors.AsType[*net.OpError](err)
	return ok && opErr.Op == "dial"
}
