package surge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	testKey     = "sk_live_secret_0123456789abcdef"
	testAccount = "acct_01j9a43avnfqzbjfch6pygv1td"
)

type fixture struct {
	emu    *emulator.Server
	url    string
	client *surge.Client
	seen   *observer
}

// newFixture serves an emulator and returns a client of it with fast
// backoff. opts are applied after the defaults of the fixture.
func newFixture(t *testing.T, emuOpts emulator.Options, opts ...surge.Option) *fixture {
	t.Helper()
	emuOpts.APIKey = testKey
	if emuOpts.Accounts == nil {
		emuOpts.Accounts = []string{testAccount}
	}
	emu := emulator.New(emuOpts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	f := &fixture{emu: emu, url: srv.URL, seen: &observer{}}
	f.client = newClient(t, srv.URL, append([]surge.Option{surge.WithObserver(f.seen)}, opts...)...)
	return f
}

func newClient(t *testing.T, url string, opts ...surge.Option) *surge.Client {
	t.Helper()
	defaults := []surge.Option{
		surge.WithBackoff(time.Millisecond, 4*time.Millisecond),
		surge.WithRateLimit(0, 0),
	}
	client, err := surge.New(url, testKey, append(defaults, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

type observer struct {
	mu      sync.Mutex
	done    []string
	retried []string
	// onRetry, when set, is called on every retry; set it before the first
	// request.
	onRetry func(status int)
	rate    float64
}

func (o *observer) RateChanged(current, _ float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rate = current
}

func (o *observer) currentRate() float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rate
}

func (o *observer) RequestDone(operation string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = append(o.done, fmt.Sprintf("%s %d", operation, status))
}

func (o *observer) Retried(operation string, status int) {
	o.mu.Lock()
	o.retried = append(o.retried, fmt.Sprintf("%s %d", operation, status))
	o.mu.Unlock()
	if o.onRetry != nil {
		o.onRetry(status)
	}
}

func (o *observer) retries() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.retried...)
}

func (o *observer) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.done...)
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for _, tt := range []struct{ baseURL, key string }{
		{"https://api.surge.app", ""},
		{"://nope", testKey},
		{"api.surge.app", testKey},
		{"http://api.surge.app", testKey},
		{"http://10.0.0.7:8088", testKey},
	} {
		if _, err := surge.New(tt.baseURL, tt.key); err == nil {
			t.Errorf("New(%q, %q) accepted", tt.baseURL, tt.key)
		}
	}
}

func TestPlainHTTPOnlyForLoopbackOrWhenAllowed(t *testing.T) {
	for _, baseURL := range []string{"http://127.0.0.1:8088", "http://localhost:8088", "http://[::1]:8088", "https://api.surge.app"} {
		if _, err := surge.New(baseURL, testKey); err != nil {
			t.Errorf("New(%q) refused: %v", baseURL, err)
		}
	}
	if _, err := surge.New("http://surge-emulator.test.svc:8088", testKey, surge.WithInsecureHTTP()); err != nil {
		t.Errorf("plain HTTP refused although allowed: %v", err)
	}
	_, err := surge.New("http://surge-emulator.test.svc:8088", testKey)
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("plain HTTP to another host: %v, want a refusal that asks for https", err)
	}
}

func TestUserLifecycle(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	ctx := t.Context()

	created, err := f.client.CreateUser(ctx, testAccount, surge.UserFields{
		FirstName: "Ada", LastName: "Lovelace", PhotoURL: "https://example.com/ada.png",
		Metadata: map[string]string{"team": "math"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.ID, "usr_") || created.FirstName != "Ada" || created.LastName != "Lovelace" ||
		created.PhotoURL != "https://example.com/ada.png" || created.Metadata["team"] != "math" {
		t.Errorf("created %+v", created)
	}

	got, err := f.client.GetUser(ctx, created.ID)
	if err != nil || got.ID != created.ID || got.LastName != "Lovelace" {
		t.Errorf("get: %+v, %v", got, err)
	}

	// Fields emptied in the desired state must be cleared, not kept.
	updated, err := f.client.UpdateUser(ctx, created.ID, surge.UserFields{FirstName: "Augusta"})
	if err != nil {
		t.Fatal(err)
	}
	if updated.FirstName != "Augusta" || updated.LastName != "" || updated.PhotoURL != "" || len(updated.Metadata) != 0 {
		t.Errorf("updated %+v", updated)
	}
	if stored, _ := f.emu.User(created.ID); stored.LastName != "" || stored.PhotoURL != "" || len(stored.Metadata) != 0 {
		t.Errorf("server kept cleared fields: %+v", stored)
	}

	if err := f.client.DeleteUser(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.GetUser(ctx, created.ID); !surge.IsNotFound(err) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if err := f.client.DeleteUser(ctx, created.ID); !surge.IsNotFound(err) {
		t.Errorf("second delete: %v, want not found", err)
	}
}

func TestRequestsCarryKeyAndJSONHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"usr_1","first_name":"A"}`))
	}))
	t.Cleanup(srv.Close)
	client := newClient(t, srv.URL)
	if _, err := client.CreateUser(t.Context(), testAccount, surge.UserFields{FirstName: "A"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Authorization": "Bearer " + testKey,
		"Content-Type":  "application/json",
		"Accept":        "application/json",
		"User-Agent":    "surge-operator",
	}
	for name, value := range want {
		if got.Get(name) != value {
			t.Errorf("%s = %q, want %q", name, got.Get(name), value)
		}
	}
}

func TestListUsersFollowsEveryPage(t *testing.T) {
	f := newFixture(t, emulator.Options{PageSize: 2})
	var want []string
	for i := range 5 {
		u := f.emu.PutUser(testAccount, emulator.User{FirstName: fmt.Sprint("user", i)})
		want = append(want, u.ID)
	}
	f.emu.PutUser("acct_other", emulator.User{FirstName: "elsewhere"})

	users, err := f.client.ListUsers(t.Context(), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want %v", got, want)
	}
	if n := f.emu.CountRequests(http.MethodGet, "/accounts/"); n != 3 {
		t.Errorf("read %d pages, want 3 for 5 users by 2", n)
	}

	empty, err := f.client.ListUsers(t.Context(), "acct_other_empty_never_seen")
	if !surge.IsAccountNotFound(err) || empty != nil {
		t.Errorf("list of unknown account: %v, %v", empty, err)
	}
}

func TestErrorClasses(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithMaxRetries(0))
	ctx := t.Context()
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Existing"})

	_, blank := f.client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: " "})
	_, missingUser := f.client.GetUser(ctx, "usr_00000000000000000000000000")
	_, missingAccount := f.client.CreateUser(ctx, "acct_missing", surge.UserFields{FirstName: "A"})
	_, badPhoto := f.client.UpdateUser(ctx, user.ID, surge.UserFields{FirstName: "A", PhotoURL: "not a url"})

	f.emu.InjectFault(emulator.Fault{PathPrefix: "/users/", Status: http.StatusGone, Count: 1})
	_, archived := f.client.GetUser(ctx, user.ID)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/users/", Status: http.StatusForbidden, ErrorType: "demo_api_key", Count: 1})
	_, demoKey := f.client.GetUser(ctx, user.ID)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/users/", Status: http.StatusServiceUnavailable, Count: 1})
	_, unavailable := f.client.GetUser(ctx, user.ID)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/users/", Status: http.StatusConflict, Count: 1})
	_, conflict := f.client.GetUser(ctx, user.ID)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/accounts/", Status: http.StatusRequestTimeout, Count: 1})
	_, timedOutCreate := f.client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: "A"})
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/accounts/", Status: http.StatusConflict, Count: 1})
	_, conflictingCreate := f.client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: "A"})

	f.emu.InjectFault(emulator.Fault{PathPrefix: "/users/", Status: http.StatusNotFound, ProxyPage: true, Count: 1})
	_, proxyUser := f.client.GetUser(ctx, user.ID)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/accounts/", Status: http.StatusNotFound, ProxyPage: true, Count: 1})
	_, proxyAccount := f.client.ListUsers(ctx, testAccount)
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/accounts/", Status: http.StatusNotFound, ProxyPage: true, Count: 1})
	_, proxyCreate := f.client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: "A"})
	f.emu.InjectFault(emulator.Fault{PathPrefix: "/accounts/", Status: http.StatusTooManyRequests, ProxyPage: true, Count: 1})
	_, proxyLimitedCreate := f.client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: "A"})

	f.emu.SetAPIKey("sk_live_rotated")
	_, rejected := f.client.GetUser(ctx, user.ID)

	tests := []struct {
		name                                                    string
		err                                                     error
		notFound, accountNotFound, unauthorized, invalid, retry bool
		refused                                                 bool
	}{
		{name: "blank first name", err: blank, invalid: true, refused: true},
		{name: "missing user", err: missingUser, notFound: true, refused: true},
		{name: "missing account", err: missingAccount, notFound: true, accountNotFound: true, refused: true},
		{name: "bad photo url", err: badPhoto, invalid: true, refused: true},
		{name: "archived account", err: archived, invalid: true, refused: true},
		{name: "demo key", err: demoKey, unauthorized: true, refused: true},
		{name: "unavailable", err: unavailable, retry: true},
		// Surge may have carried out a request it answers 408 or 409.
		{name: "conflict", err: conflict, retry: true},
		{name: "create timed out", err: timedOutCreate, retry: true},
		{name: "create in conflict", err: conflictingCreate, retry: true},
		{name: "rejected key", err: rejected, unauthorized: true, refused: true},
		// A 4xx page from a gateway or proxy in front of Surge says nothing
		// about the user or the account, nor whether Surge saw the request.
		{name: "proxy 404 of a user", err: proxyUser},
		{name: "proxy 404 of an account", err: proxyAccount},
		{name: "proxy 404 of a create", err: proxyCreate},
		{name: "proxy 429 of a create", err: proxyLimitedCreate, retry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apiErr *surge.Error
			if !errors.As(tt.err, &apiErr) {
				t.Fatalf("error %v is not a *surge.Error", tt.err)
			}
			got := [6]bool{surge.IsNotFound(tt.err), surge.IsAccountNotFound(tt.err), surge.IsUnauthorized(tt.err),
				surge.IsInvalid(tt.err), surge.IsRetryable(tt.err), surge.IsRefused(tt.err)}
			want := [6]bool{tt.notFound, tt.accountNotFound, tt.unauthorized, tt.invalid, tt.retry, tt.refused}
			if got != want {
				t.Errorf("%v: [notFound accountNotFound unauthorized invalid retryable refused] = %v, want %v", tt.err, got, want)
			}
		})
	}

	const wantMessage = "surge create_user: 422 validation_error: first_name can't be blank (first_name: can't be blank)"
	if blank.Error() != wantMessage {
		t.Errorf("message %q, want %q", blank.Error(), wantMessage)
	}
}

func TestNonSurgeErrorBodyIsShortened(t *testing.T) {
	page := "<html>" + strings.Repeat("bad gateway ", 2000) + "</html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	client := newClient(t, srv.URL, surge.WithMaxRetries(0))

	_, err := client.GetUser(t.Context(), "usr_x")
	var apiErr *surge.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway || !surge.IsRetryable(err) {
		t.Fatalf("got %v, want a retryable 502 *surge.Error", err)
	}
	if len(apiErr.Message) > 300 || !strings.Contains(apiErr.Message, "Bad Gateway") {
		t.Errorf("message of %d bytes: %q", len(apiErr.Message), apiErr.Message)
	}
}

func TestRetriesServerErrorsThenSucceeds(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Flaky"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/", Status: 503, Count: 2})

	got, err := f.client.GetUser(t.Context(), user.ID)
	if err != nil || got.ID != user.ID {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if n := f.emu.CountRequests(http.MethodGet, "/users/"); n != 3 {
		t.Errorf("sent %d requests, want 3", n)
	}
	if retries := f.seen.retries(); strings.Join(retries, ",") != "get_user 503,get_user 503" {
		t.Errorf("observer saw retries %v", retries)
	}
	if requests := f.seen.requests(); strings.Join(requests, ",") != "get_user 503,get_user 503,get_user 200" {
		t.Errorf("observer saw requests %v", requests)
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithMaxRetries(2))
	f.emu.InjectFault(emulator.Fault{Status: 500})

	_, err := f.client.ListUsers(t.Context(), testAccount)
	if !surge.IsRetryable(err) {
		t.Fatalf("got %v, want the last 500", err)
	}
	if n := f.emu.CountRequests("", ""); n != 3 {
		t.Errorf("sent %d requests, want 1 + 2 retries", n)
	}
}

func TestCreateIsNeverRetried(t *testing.T) {
	t.Run("server error", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		f.emu.InjectFault(emulator.Fault{Method: http.MethodPost, Status: 503})
		_, err := f.client.CreateUser(t.Context(), testAccount, surge.UserFields{FirstName: "Once"})
		if !surge.IsRetryable(err) {
			t.Fatalf("got %v, want a retryable 503 for the caller", err)
		}
		if n := f.emu.CountRequests(http.MethodPost, ""); n != 1 {
			t.Errorf("sent %d creates, want exactly 1", n)
		}
	})
	t.Run("lost response", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		f.emu.InjectFault(emulator.Fault{Method: http.MethodPost, DropResponse: true})
		_, err := f.client.CreateUser(t.Context(), testAccount, surge.UserFields{FirstName: "Maybe"})
		if err == nil || !surge.IsRetryable(err) {
			t.Fatalf("got %v, want a retryable error without response", err)
		}
		if n := len(f.emu.Users(testAccount)); n != 1 {
			t.Errorf("%d users exist, want exactly the 1 the lost create made", n)
		}
	})
}

func TestDeleteRetriedAfterLostResponseReportsNotFound(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Doomed"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodDelete, DropResponse: true, Count: 1})

	err := f.client.DeleteUser(t.Context(), user.ID)
	if !surge.IsNotFound(err) {
		t.Errorf("got %v, want not found from the retry", err)
	}
	if _, exists := f.emu.User(user.ID); exists {
		t.Error("user still exists")
	}
}

func TestShouldRetryFalseStopsRetries(t *testing.T) {
	emu := emulator.New(emulator.Options{APIKey: testKey, Accounts: []string{testAccount}})
	emu.InjectFault(emulator.Fault{Status: 503})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-should-retry", "false")
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client := newClient(t, srv.URL)

	_, err := client.GetUser(t.Context(), "usr_x")
	if surge.IsRetryable(err) {
		t.Errorf("%v is retryable despite x-should-retry: false", err)
	}
	if n := emu.CountRequests("", ""); n != 1 {
		t.Errorf("sent %d requests, want 1", n)
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithTimeout(50*time.Millisecond))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Slow"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Latency: time.Second, Count: 1})

	if _, err := f.client.GetUser(t.Context(), user.ID); err != nil {
		t.Fatalf("get: %v", err)
	}
	if retries := f.seen.retries(); len(retries) != 1 || retries[0] != "get_user 0" {
		t.Errorf("observer saw retries %v, want one without status", retries)
	}
}

func TestCancelStopsRetryWait(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithBackoff(time.Hour, time.Hour))
	f.emu.InjectFault(emulator.Fault{Status: 503})
	ctx, cancel := context.WithCancel(t.Context())
	f.seen.onRetry = func(int) { cancel() }

	_, err := f.client.GetUser(ctx, "usr_x")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the wait cancelled", err)
	}
	if n := f.emu.CountRequests("", ""); n != 1 {
		t.Errorf("sent %d requests, want 1", n)
	}
}

func TestRateLimitHoldsBackEveryCaller(t *testing.T) {
	const retryAfter = 300 * time.Millisecond
	f := newFixture(t, emulator.Options{})
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Busy"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 429, RetryAfter: retryAfter, Count: 1})

	limited := make(chan struct{})
	var once sync.Once
	f.seen.onRetry = func(status int) {
		if status == http.StatusTooManyRequests {
			once.Do(func() { close(limited) })
		}
	}
	firstDone := make(chan error, 1)
	go func() {
		_, err := f.client.GetUser(t.Context(), user.ID)
		firstDone <- err
	}()
	<-limited
	// A second caller, which never saw the 429, must wait too.
	if _, err := f.client.ListUsers(t.Context(), testAccount); err != nil {
		t.Fatal(err)
	}
	if err := <-firstDone; err != nil {
		t.Fatalf("rate limited get: %v", err)
	}

	requests := f.emu.Requests()
	var limitedAt, listAt time.Time
	for _, r := range requests {
		switch {
		case r.Status == http.StatusTooManyRequests:
			limitedAt = r.At
		case strings.HasPrefix(r.Path, "/accounts/"):
			listAt = r.At
		}
	}
	if limitedAt.IsZero() || listAt.IsZero() {
		t.Fatalf("requests %+v", requests)
	}
	if waited := listAt.Sub(limitedAt); waited < retryAfter-50*time.Millisecond {
		t.Errorf("second caller sent %v after the 429, want it held back about %v", waited, retryAfter)
	}
}

func TestRedaction(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithMaxRetries(0))
	f.emu.SetAPIKey("sk_live_other")
	_, err := f.client.GetUser(t.Context(), "usr_x")
	if !surge.IsUnauthorized(err) {
		t.Fatalf("got %v, want unauthorized", err)
	}
	var apiErr *surge.Error
	errors.As(err, &apiErr)

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for name, value := range map[string]any{"client": f.client, "error": err, "*Error": apiErr, "*Error value": *apiErr} {
			if out := fmt.Sprintf(verb, value); strings.Contains(out, testKey) || strings.Contains(out, testKey[6:]) {
				t.Errorf("%s of %s leaks the key: %s", verb, name, out)
			}
		}
	}
	if got, want := f.client.String(), "apiKey: sk_l…(redacted)"; !strings.Contains(got, want) {
		t.Errorf("String() = %q, want it to contain %q", got, want)
	}
}

func TestLongPauseIsHandedBackToTheCaller(t *testing.T) {
	const retryAfter = 30 * time.Second
	f := newFixture(t, emulator.Options{}, surge.WithRateLimit(100, 10))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Busy"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 429, RetryAfter: retryAfter, Count: 1})

	_, err := f.client.GetUser(t.Context(), user.ID)
	// The caller that drew the 429 comes back one turn after the pause,
	// a fraction of a second at this rate.
	wait, limited := surge.RateLimitedFor(err)
	if !limited || wait < retryAfter-time.Second || wait > retryAfter+time.Second {
		t.Fatalf("answered 429 with Retry-After %v: got %v (wait %v), want a rate limit of about that", retryAfter, err, wait)
	}
	if surge.WasNotSent(err) || !surge.IsRefused(err) {
		t.Errorf("a request answered 429 was sent and refused: %v", err)
	}
	// Another caller, which never saw the 429, is held back too, without
	// its request leaving.
	_, err = f.client.ListUsers(t.Context(), testAccount)
	if wait, limited := surge.RateLimitedFor(err); !limited || !surge.WasNotSent(err) || wait <= 0 || wait > retryAfter {
		t.Errorf("during the pause: %v (wait %v), want it held back for the rest of the pause", err, wait)
	}
	if got := len(f.emu.Requests()); got != 1 {
		t.Errorf("Surge saw %d requests, want only the one answered 429", got)
	}
}

func TestRateFallsOn429AndRetriesWithinTheCall(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithRateLimit(100, 10))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Busy"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 429, RetryAfter: 20 * time.Millisecond, Count: 1})

	if _, err := f.client.GetUser(t.Context(), user.ID); err != nil {
		t.Fatalf("a short pause is waited out and the read retried: %v", err)
	}
	if rate := f.seen.currentRate(); rate >= 100 || rate <= 0 {
		t.Errorf("rate after a 429 is %v, want below the ceiling of 100", rate)
	}
	if requests := f.seen.requests(); strings.Join(requests, ",") != "get_user 429,get_user 200" {
		t.Errorf("requests %v", requests)
	}
}

func TestRetriesStopWhenTheBudgetIsSpent(t *testing.T) {
	const calls, maxRetries = 40, 3
	f := newFixture(t, emulator.Options{}, surge.WithMaxRetries(maxRetries))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Down"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 503})

	for range calls {
		if _, err := f.client.GetUser(t.Context(), user.ID); err == nil {
			t.Fatal("a read of an unavailable Surge succeeded")
		}
	}
	// The budget holds 500 and a retry after a 503 costs 5: 100 retries,
	// then none, rather than maxRetries for every one of the calls.
	if got, want := len(f.seen.retries()), 100; got != want {
		t.Errorf("%d retries for %d calls, want the budget's %d (without it, %d)", got, calls, want, calls*maxRetries)
	}
}

func TestTurnsGivenBeforeA429WaitOutItsPause(t *testing.T) {
	const retryAfter = time.Second
	// Two requests a second: the second caller's turn comes half a second
	// after the first's, while the pause after the first one's 429 lasts.
	f := newFixture(t, emulator.Options{}, surge.WithRateLimit(2, 1), surge.WithMaxRetries(0))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Busy"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 429, RetryAfter: retryAfter, Latency: 100 * time.Millisecond, Count: 1})

	firstDone := make(chan error, 1)
	go func() {
		_, err := f.client.GetUser(t.Context(), user.ID)
		firstDone <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := f.client.GetUser(t.Context(), user.ID); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if _, limited := surge.RateLimitedFor(<-firstDone); !limited {
		t.Fatal("the first caller was not told of the 429")
	}

	requests := f.emu.Requests()
	if len(requests) != 2 || requests[0].Status != http.StatusTooManyRequests || requests[1].Status != http.StatusOK {
		t.Fatalf("requests %+v, want a 429 and then a success", requests)
	}
	// The 429 came 100 ms in, so the pause ends at 1.1 s: the second
	// turn, given for 500 ms before the 429, is taken again after it.
	if waited := requests[1].At.Sub(requests[0].At); waited < retryAfter {
		t.Errorf("second request sent %v after the first, inside the pause of %v after the 429", waited, retryAfter)
	}
}

func TestTheCallerThatDrewA429ComesBackAfterTheOnesHeldBack(t *testing.T) {
	const retryAfter = 5 * time.Second
	f := newFixture(t, emulator.Options{}, surge.WithRateLimit(2, 1))
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Busy"})
	f.emu.InjectFault(emulator.Fault{Method: http.MethodGet, Status: 429, RetryAfter: retryAfter, Count: 1})

	_, err := f.client.GetUser(t.Context(), user.ID)
	drew, limited := surge.RateLimitedFor(err)
	if !limited || surge.WasNotSent(err) {
		t.Fatalf("first caller: %v, want the 429 handed back", err)
	}
	_, err = f.client.GetUser(t.Context(), user.ID)
	heldBack, limited := surge.RateLimitedFor(err)
	if !limited || !surge.WasNotSent(err) {
		t.Fatalf("second caller: %v, want it held back for the pause", err)
	}
	// At about 2 rps after the 429, one turn is about half a second.
	if drew-heldBack < 250*time.Millisecond {
		t.Errorf("the caller that drew the 429 may come back in %v, the one held back in %v: want the one held back a turn ahead", drew, heldBack)
	}
}

// TestARequestWhoseTurnComesAfterSendByIsHeldBack: a caller that recorded
// a send time before a create bounds when it may leave; a turn that comes
// later holds the create back, unsent, so the recorded time stays true.
func TestARequestWhoseTurnComesAfterSendByIsHeldBack(t *testing.T) {
	f := newFixture(t, emulator.Options{}, surge.WithRateLimit(1, 1))
	fields := surge.UserFields{FirstName: "Ada"}
	if _, err := f.client.CreateUser(surge.SendBy(t.Context(), time.Now().Add(time.Minute)), testAccount, fields); err != nil {
		t.Fatalf("a create within its bound: %v", err)
	}

	_, err := f.client.CreateUser(surge.SendBy(t.Context(), time.Now().Add(100*time.Millisecond)), testAccount, fields)
	if wait, limited := surge.RateLimitedFor(err); !limited || !surge.WasNotSent(err) || wait <= 0 {
		t.Errorf("a create whose turn comes after its bound: %v (wait %v), want it held back unsent", err, wait)
	}
	if got := f.emu.CountRequests(http.MethodPost, "/accounts/"); got != 1 {
		t.Errorf("Surge saw %d creates, want the one within its bound", got)
	}
}
