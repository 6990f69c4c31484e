package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Fault makes matching requests misbehave, to test how a client copes with
// an unreliable Surge.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// PathPrefix matches the start of the request path, such as "/accounts/"
	// or "/users/"; "" matches any.
	PathPrefix string
	// Status, when set, is answered instead of processing the request, with
	// a Surge error body: 429 is rate_limited, 5xx internal_error, other
	// statuses the type Surge documents for them. It takes precedence over
	// DropResponse.
	Status int
	// ErrorType overrides the error type that goes with Status.
	ErrorType string
	// ProxyPage answers Status with an HTML page instead of Surge's error
	// envelope, as a gateway or proxy in front of Surge does: a 404 of this
	// kind says nothing about whether the user exists.
	ProxyPage bool
	// RetryAfter sets the retry-after (whole seconds, rounded up) and
	// retry-after-ms headers of the answer.
	RetryAfter time.Duration
	// Latency delays the request on top of the server-wide latency. A
	// client that gives up meanwhile does not stop it: it is carried out
	// late, as a real server does, and its answer goes nowhere.
	Latency time.Duration
	// DropResponse processes the request, so its change is committed, then
	// closes the connection without answering: the client cannot know
	// whether the request happened.
	DropResponse bool
	// Count is how many matching requests the fault applies to; 0 applies it
	// until ClearFaults.
	Count int
	// Probability applies the fault to a matching request with this chance,
	// drawn from a fixed seed; 0 applies it always.
	Probability float64
}

type activeFault struct {
	Fault
	remaining int
}

// InjectFault adds a fault. When several faults match a request, the one
// injected first applies.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &activeFault{Fault: f, remaining: f.Count})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRateLimit limits the requests the server accepts with a token bucket;
// a request over the limit is answered 429 with retry-after-ms. rps <= 0
// removes the limit.
func (s *Server) SetRateLimit(rps float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rps <= 0 {
		s.limiter = nil
		return
	}
	s.limiter = rate.NewLimiter(rate.Limit(rps), max(burst, 1))
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	// Status is the answer given, or that would have been given when the
	// response was dropped; 0 when the client went away before an answer.
	Status  int
	Dropped bool
	// At is when the request arrived.
	At time.Time
}

// Requests returns every request received, in order of arrival, including
// rejected and faulted ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	requests := make([]Request, len(s.requests))
	for i, r := range s.requests {
		requests[i] = *r
	}
	return requests
}

// Reset forgets every user, fault and request, as a fresh emulator of the
// same projects and accounts would start; latency and the rate limit stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.users)
	s.faults = nil
	s.requests = nil
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// CountRequests counts the requests received with method ("" for any) and a
// path starting with pathPrefix.
func (s *Server) CountRequests(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || strings.EqualFold(r.Method, method)) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// admit logs an arriving request and decides the fault and the delay it
// gets.
func (s *Server) admit(r *http.Request) (*Request, *Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entry := &Request{Method: r.Method, Path: r.URL.Path, At: s.now()}
	s.requests = append(s.requests, entry)
	fault := s.takeFaultLocked(r.Method, r.URL.Path)
	delay := s.latency
	if fault != nil {
		delay += fault.Latency
	}
	return entry, fault, delay
}

func (s *Server) takeFaultLocked(method, path string) *Fault {
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if !strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		if f.Probability > 0 && s.chance.Float64() >= f.Probability {
			continue
		}
		if f.Count > 0 {
			f.remaining--
			if f.remaining == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		fault := f.Fault
		return &fault
	}
	return nil
}

func (s *Server) finish(entry *Request, status int, dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entry.Status = status
	entry.Dropped = dropped
}

// rateLimited answers 429 when the request is over the server's rate limit.
func (s *Server) rateLimited() (response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limiter == nil {
		return response{}, false
	}
	now := s.now()
	reservation := s.limiter.ReserveN(now, 1)
	wait := reservation.DelayFrom(now)
	if wait == 0 {
		return response{}, false
	}
	reservation.CancelAt(now)
	resp := apiError(http.StatusTooManyRequests, "rate_limited", "Too many requests, slow down", nil)
	setRetryAfter(resp.header, wait)
	return resp, true
}

func faultResponse(f *Fault) response {
	if f.ProxyPage {
		return proxyPage(f.Status)
	}
	errorType := f.ErrorType
	if errorType == "" {
		errorType = errorTypeForStatus(f.Status)
	}
	message := http.StatusText(f.Status)
	if message == "" {
		message = "Injected fault"
	}
	resp := apiError(f.Status, errorType, message, nil)
	if f.RetryAfter > 0 {
		setRetryAfter(resp.header, f.RetryAfter)
	}
	return resp
}

// htmlBody is a response body written as it is, not as JSON.
type htmlBody string

func proxyPage(status int) response {
	page := fmt.Sprintf("<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
		status, http.StatusText(status), status, http.StatusText(status))
	return response{status: status, body: htmlBody(page), header: http.Header{}}
}

func errorTypeForStatus(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "internal_error"
	}
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "invalid_api_key"
	case http.StatusForbidden:
		return "platform_locked"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusGone:
		return "account_archived"
	case http.StatusUnprocessableEntity:
		return "validation_error"
	case http.StatusRequestTimeout:
		return "request_timeout"
	case http.StatusConflict:
		return "conflict"
	}
	return "api_error"
}

func setRetryAfter(h http.Header, wait time.Duration) {
	h.Set("retry-after", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
	h.Set("retry-after-ms", strconv.FormatInt(int64(math.Ceil(float64(wait)/float64(time.Millisecond))), 10))
}
