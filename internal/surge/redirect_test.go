package surge_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// seenRequest is what a test server kept of one request.
type seenRequest struct {
	method, path, authorization string
}

// recorder is a test server's log of the requests it received.
type recorder struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (r *recorder) record(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, seenRequest{req.Method, req.URL.Path, req.Header.Get("Authorization")})
}

func (r *recorder) requests() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.seen...)
}

// answersLikeSurge answers every request as Surge answers a successful one,
// so that a client that followed a redirect to it would take the answer for
// a real one.
func answersLikeSurge(log *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte(`{"id":"usr_elsewhere","first_name":"Elsewhere"}`))
	})
}

// redirectsTo answers every request with status and a Location under the
// URL target returns.
func redirectsTo(log *recorder, status int, target func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		w.Header().Set("Location", target()+"/moved"+r.URL.Path)
		w.WriteHeader(status)
	})
}

// TestRedirectsAreNotFollowed: a redirect, wherever it points, is an error
// that says where it pointed; the request is neither repeated there nor
// retried, and the API key goes nowhere but to the base URL.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var elsewhereLog recorder
	elsewhere := httptest.NewServer(answersLikeSurge(&elsewhereLog))
	t.Cleanup(elsewhere.Close)

	type target struct {
		name string
		// start serves an API that answers every request with status and
		// a Location, and returns a client of it.
		start func(t *testing.T, log *recorder, status int) *surge.Client
		// says is what the error must tell of the redirect.
		says string
	}
	targets := []target{
		{
			name: "https to http",
			start: func(t *testing.T, log *recorder, status int) *surge.Client {
				api := httptest.NewTLSServer(redirectsTo(log, status, func() string { return elsewhere.URL }))
				t.Cleanup(api.Close)
				// The test server's own client, which trusts its
				// certificate, also shows that a caller's client gets
				// the policy.
				return newClient(t, api.URL, surge.WithHTTPClient(api.Client()))
			},
			says: "from https to http",
		},
		{
			name: "another host",
			start: func(t *testing.T, log *recorder, status int) *surge.Client {
				api := httptest.NewServer(redirectsTo(log, status, func() string { return elsewhere.URL }))
				t.Cleanup(api.Close)
				return newClient(t, api.URL)
			},
			says: "to another host",
		},
		{
			name: "the same host and scheme",
			start: func(t *testing.T, log *recorder, status int) *surge.Client {
				var api *httptest.Server
				api = httptest.NewServer(redirectsTo(log, status, func() string { return api.URL }))
				t.Cleanup(api.Close)
				return newClient(t, api.URL)
			},
			says: "on the same host",
		},
	}
	for _, to := range targets {
		for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(to.name+" "+http.StatusText(status), func(t *testing.T) {
				var apiLog recorder
				client := to.start(t, &apiLog, status)
				_, createErr := client.CreateUser(t.Context(), testAccount, surge.UserFields{FirstName: "Ada"})
				_, getErr := client.GetUser(t.Context(), "usr_x")

				for name, err := range map[string]error{"create": createErr, "get": getErr} {
					var apiErr *surge.Error
					if !errors.As(err, &apiErr) || apiErr.StatusCode != status {
						t.Fatalf("%s: got %v, want a *surge.Error of status %d", name, err, status)
					}
					if msg := err.Error(); !strings.Contains(msg, "refused a redirect "+to.says) {
						t.Errorf("%s: error %q does not say it refused a redirect %s", name, msg, to.says)
					}
					// A redirect says nothing about whether a create
					// happened, and repeating it meets the same redirect.
					if surge.IsRefused(err) || surge.IsRetryable(err) {
						t.Errorf("%s: %v counted as refused (%t) or retryable (%t)", name, err, surge.IsRefused(err), surge.IsRetryable(err))
					}
				}
				if got := len(apiLog.requests()); got != 2 {
					t.Errorf("the API got %d requests, want the create and the get, once each: %+v", got, apiLog.requests())
				}
			})
		}
	}
	if seen := elsewhereLog.requests(); len(seen) != 0 {
		t.Errorf("the redirect targets received %+v, want nothing", seen)
	}
}

// TestWithHTTPClientIsCopiedNotChanged: the redirect policy applies to a
// caller's client without changing it, as the caller may use it elsewhere.
func TestWithHTTPClientIsCopiedNotChanged(t *testing.T) {
	var elsewhereLog, apiLog recorder
	elsewhere := httptest.NewServer(answersLikeSurge(&elsewhereLog))
	t.Cleanup(elsewhere.Close)
	api := httptest.NewServer(redirectsTo(&apiLog, http.StatusTemporaryRedirect, func() string { return elsewhere.URL }))
	t.Cleanup(api.Close)
	own := &http.Client{}

	client := newClient(t, api.URL, surge.WithHTTPClient(own))
	if _, err := client.GetUser(t.Context(), "usr_x"); err == nil {
		t.Fatal("a redirected get succeeded")
	}
	if own.CheckRedirect != nil {
		t.Error("New changed the redirect policy of the caller's client")
	}
	if len(elsewhereLog.requests()) != 0 {
		t.Errorf("the client of a caller's http.Client followed a redirect: %+v", elsewhereLog.requests())
	}
}
