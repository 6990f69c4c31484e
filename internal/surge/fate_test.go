package surge_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// A create without an idempotency key is settled differently for each
// fate: sent again at once, searched for at once, or waited for.
func TestACreateErrorTellsWhetherSurgeCanStillCommitIt(t *testing.T) {
	answer := func(status int, contentType, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	stalled := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	t.Cleanup(stalled.Close)
	refusing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + refusing.Addr().String()
	_ = refusing.Close()

	for _, tc := range []struct {
		name string
		url  string
		want surge.Fate
	}{
		{"a refused connection", closedURL, surge.NotDone},
		{"Surge's own validation error", answer(422, "application/json", `{"error":{"type":"validation_error","message":"first_name can't be blank"}}`), surge.NotDone},
		{"Surge's own 429", answer(429, "application/json", `{"error":{"type":"rate_limited","message":"slow down"}}`), surge.NotDone},
		{"Surge's own 503", answer(503, "application/json", `{"error":{"type":"service_unavailable","message":"try later"}}`), surge.Finished},
		{"Surge's own 500", answer(500, "application/json", `{"error":{"type":"internal_error","message":"oops"}}`), surge.Finished},
		{"a gateway's 502 page", answer(502, "text/html", "<html>Bad Gateway</html>"), surge.MaybeInFlight},
		{"a gateway's empty 504", answer(504, "text/plain", ""), surge.MaybeInFlight},
		{"a gateway's 404 page", answer(404, "text/html", "<html>no route</html>"), surge.MaybeInFlight},
		{"an answer that never came", stalled.URL, surge.MaybeInFlight},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := newClient(t, tc.url, surge.WithTimeout(200*time.Millisecond), surge.WithMaxRetries(0))
			_, err := client.CreateUser(context.Background(), testAccount, surge.UserFields{FirstName: "Ada"})
			if err == nil {
				t.Fatal("the create succeeded")
			}
			if got := surge.FateOf(err); got != tc.want {
				t.Errorf("FateOf(%v) = %d, want %d", err, got, tc.want)
			}
		})
	}
}

// Round-4 finding (h): the Surge API URL is logged without what may carry
// credentials.
func TestTheLoggedURLCarriesNoCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"https://api.surge.app":                                   "https://api.surge.app",
		"https://proxy.example.com/surge?token=s3cret":            "https://proxy.example.com/surge",
		"https://user:s3cret@proxy.example.com/surge#frag":        "https://proxy.example.com/surge",
		"http://127.0.0.1:8088/?api_key=sk_live_0123456789abcdef": "http://127.0.0.1:8088/",
	} {
		if got := surge.LoggableURL(raw); got != want {
			t.Errorf("LoggableURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
