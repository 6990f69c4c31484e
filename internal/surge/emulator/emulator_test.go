package emulator_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	testKey     = "sk_demo_test_key_0123456789"
	testAccount = "acct_01j9a43avnfqzbjfch6pygv1td"
)

type harness struct {
	t   *testing.T
	emu *emulator.Server
	url string
}

func newHarness(t *testing.T, opts emulator.Options) *harness {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	if opts.Accounts == nil {
		opts.Accounts = []string{testAccount}
	}
	emu := emulator.New(opts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &harness{t: t, emu: emu, url: srv.URL}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) errorType() string {
	errBody, _ := a.body["error"].(map[string]any)
	errorType, _ := errBody["type"].(string)
	return errorType
}

// call sends a request with the test key; body is sent as is when a
// string, else as JSON.
func (h *harness) call(method, path string, body any) answer {
	return h.callWithAuth(method, path, body, "Bearer "+testKey)
}

func (h *harness) callWithAuth(method, path string, body any, authorization string) answer {
	h.t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		encoded, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequest(method, h.url+path, reader)
	if err != nil {
		h.t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		h.t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return a
}

func (h *harness) createUser(firstName string) string {
	h.t.Helper()
	a := h.call(http.MethodPost, "/accounts/"+testAccount+"/users", map[string]any{"first_name": firstName})
	if a.status != http.StatusCreated {
		h.t.Fatalf("create %s: status %d, body %v", firstName, a.status, a.body)
	}
	return a.body["id"].(string)
}

func TestCreatedUserHasSurgeShapedID(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	a := h.call(http.MethodPost, "/accounts/"+testAccount+"/users", map[string]any{
		"first_name": "Ada", "last_name": "Lovelace", "metadata": map[string]string{"team": "math"},
		"photo_url": "https://example.com/ada.png",
	})
	if a.status != http.StatusCreated {
		t.Fatalf("status %d, body %v", a.status, a.body)
	}
	id := a.body["id"].(string)
	if !regexp.MustCompile(`^usr_[0-9a-hjkmnp-tv-z]{26}$`).MatchString(id) {
		t.Errorf("id %q is not usr_ and 26 lowercase base32 characters", id)
	}
	stored, found := h.emu.User(id)
	if !found || stored.AccountID != testAccount || stored.LastName != "Lovelace" || stored.Metadata["team"] != "math" {
		t.Errorf("stored user %+v", stored)
	}
}

func TestValidationErrors(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	usersPath := "/accounts/" + testAccount + "/users"
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantType   string
	}{
		{"blank first name", http.MethodPost, usersPath, map[string]any{"first_name": "  "}, 422, "validation_error"},
		{"missing first name", http.MethodPost, usersPath, map[string]any{"last_name": "X"}, 422, "validation_error"},
		{"relative photo url", http.MethodPost, usersPath, map[string]any{"first_name": "A", "photo_url": "/a.png"}, 422, "validation_error"},
		{"malformed JSON", http.MethodPost, usersPath, `{"first_name":`, 400, "bad_request"},
		{"unknown account", http.MethodPost, "/accounts/acct_unknown/users", map[string]any{"first_name": "A"}, 404, "account_not_found"},
		{"unknown route", http.MethodGet, "/things", nil, 404, "not_found"},
		{"token without body", http.MethodPost, "/users/" + h.createUser("T") + "/tokens", nil, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := h.call(tt.method, tt.path, tt.body)
			if a.status != tt.wantStatus || a.errorType() != tt.wantType {
				t.Errorf("got %d %q, want %d %q (body %v)", a.status, a.errorType(), tt.wantStatus, tt.wantType, a.body)
			}
		})
	}

	a := h.call(http.MethodPost, usersPath, map[string]any{"first_name": ""})
	detail := a.body["error"].(map[string]any)["detail"].(map[string]any)
	if got := detail["first_name"].([]any)[0]; got != "can't be blank" {
		t.Errorf("first_name detail = %v, want can't be blank", got)
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	path := "/accounts/" + testAccount + "/users"

	if a := h.callWithAuth(http.MethodGet, path, nil, ""); a.status != 401 || a.errorType() != "missing_api_key" {
		t.Errorf("without key: %d %q", a.status, a.errorType())
	}
	if a := h.callWithAuth(http.MethodGet, path, nil, "Bearer sk_live_wrong"); a.status != 401 || a.errorType() != "invalid_api_key" {
		t.Errorf("wrong key: %d %q", a.status, a.errorType())
	}
	h.emu.SetAPIKey("sk_live_rotated")
	if a := h.call(http.MethodGet, path, nil); a.status != 401 || a.errorType() != "invalid_api_key" {
		t.Errorf("old key after rotation: %d %q", a.status, a.errorType())
	}
	if a := h.callWithAuth(http.MethodGet, path, nil, "Bearer sk_live_rotated"); a.status != 200 {
		t.Errorf("new key after rotation: %d", a.status)
	}
	if got := h.emu.CountRequests("", "/accounts/"); got != 4 {
		t.Errorf("recorded %d requests, want all 4 including the rejected ones", got)
	}
}

func TestAKeyReachesOnlyItsOwnProject(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	const otherKey, otherAccount = "sk_live_other_project", "acct_01j9a43avnfqzbjfch6pygv2zz"
	h.emu.AddProject("other", otherKey, otherAccount)
	ours := h.createUser("Ada")
	other := "Bearer " + otherKey

	if a := h.callWithAuth(http.MethodGet, "/users/"+ours, nil, other); a.status != 404 || a.errorType() != "not_found" {
		t.Errorf("another project's user read: %d %q", a.status, a.errorType())
	}
	if a := h.callWithAuth(http.MethodPatch, "/users/"+ours, map[string]any{"first_name": "Mallory"}, other); a.status != 404 {
		t.Errorf("another project's user patched: %d", a.status)
	}
	if a := h.callWithAuth(http.MethodPost, "/users/"+ours+"/tokens", map[string]any{}, other); a.status != 404 {
		t.Errorf("token minted for another project's user: %d", a.status)
	}
	if a := h.callWithAuth(http.MethodDelete, "/users/"+ours, nil, other); a.status != 404 {
		t.Errorf("another project's user deleted: %d", a.status)
	}
	if a := h.callWithAuth(http.MethodGet, "/accounts/"+testAccount+"/users", nil, other); a.status != 404 || a.errorType() != "account_not_found" {
		t.Errorf("another project's account listed: %d %q", a.status, a.errorType())
	}
	if a := h.callWithAuth(http.MethodPost, "/accounts/"+otherAccount+"/users", map[string]any{"first_name": "Grace"}, other); a.status != 201 {
		t.Errorf("create in its own account: %d", a.status)
	}
	if u, _ := h.emu.User(ours); u.FirstName != "Ada" {
		t.Errorf("user of the default project changed to %q", u.FirstName)
	}

	h.emu.RevokeAPIKey(otherKey)
	if a := h.callWithAuth(http.MethodGet, "/accounts/"+otherAccount+"/users", nil, other); a.status != 401 || a.errorType() != "invalid_api_key" {
		t.Errorf("revoked key: %d %q", a.status, a.errorType())
	}
}

func TestListWalksPagesInCreationOrder(t *testing.T) {
	h := newHarness(t, emulator.Options{PageSize: 2})
	var created []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		created = append(created, h.createUser(name))
	}
	// A user deleted while walking must not break the cursor.
	h.emu.RemoveUser(created[2])
	want := []string{created[0], created[1], created[3], created[4]}

	var listed []string
	path := "/accounts/" + testAccount + "/users"
	pages := 0
	for {
		a := h.call(http.MethodGet, path, nil)
		if a.status != http.StatusOK {
			t.Fatalf("list: %d %v", a.status, a.body)
		}
		pages++
		for _, u := range a.body["data"].([]any) {
			listed = append(listed, u.(map[string]any)["id"].(string))
		}
		next, _ := a.body["pagination"].(map[string]any)["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/accounts/" + testAccount + "/users?after=" + next
	}
	if strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want %v", listed, want)
	}
	if pages != 2 {
		t.Errorf("walked %d pages of 2, want 2 for 4 users", pages)
	}

	a := h.call(http.MethodGet, "/accounts/"+testAccount+"/users?after=bogus", nil)
	if a.status != 422 || a.errorType() != "invalid_pagination" {
		t.Errorf("invalid cursor: %d %q", a.status, a.errorType())
	}
}

func TestDeletedUserIsNotFound(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.createUser("Gone")
	a := h.call(http.MethodDelete, "/users/"+id, nil)
	if a.status != 200 || a.body["id"] != id {
		t.Fatalf("delete: %d %v", a.status, a.body)
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		if a := h.call(method, "/users/"+id, map[string]any{"first_name": "x"}); a.status != 404 || a.errorType() != "not_found" {
			t.Errorf("%s after delete: %d %q", method, a.status, a.errorType())
		}
	}
}

func TestPatchReplacesWholeState(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	a := h.call(http.MethodPost, "/accounts/"+testAccount+"/users", map[string]any{
		"first_name": "Ada", "last_name": "Lovelace", "metadata": map[string]string{"k": "v"},
	})
	id := a.body["id"].(string)
	a = h.call(http.MethodPatch, "/users/"+id, map[string]any{"first_name": "Grace"})
	if a.status != 200 || a.body["first_name"] != "Grace" || a.body["last_name"] != nil {
		t.Errorf("patch: %d %v", a.status, a.body)
	}
	if stored, _ := h.emu.User(id); stored.LastName != "" || len(stored.Metadata) != 0 {
		t.Errorf("fields left out of the PATCH survived: %+v", stored)
	}
}

func TestTokenIsSignedWithPublicKey(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newHarness(t, emulator.Options{Now: func() time.Time { return now }})
	id := h.createUser("Tok")

	a := h.call(http.MethodPost, "/users/"+id+"/tokens", map[string]any{"duration_seconds": 600})
	if a.status != http.StatusCreated {
		t.Fatalf("token: %d %v", a.status, a.body)
	}
	parts := strings.Split(a.body["token"].(string), ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	signature, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(h.emu.PublicKey(), []byte(parts[0]+"."+parts[1]), signature) {
		t.Error("signature does not verify with PublicKey")
	}
	var header struct{ Alg, Kid, Typ string }
	decodePart(t, parts[0], &header)
	if header.Alg != "EdDSA" || header.Typ != "JWT" || !strings.HasPrefix(header.Kid, "sgn_") {
		t.Errorf("header %+v", header)
	}
	var claims struct {
		Sub      string
		Exp, Iat int64
	}
	decodePart(t, parts[1], &claims)
	if claims.Sub != id || claims.Exp != now.Unix()+600 || claims.Iat != now.Unix() {
		t.Errorf("claims %+v", claims)
	}

	a = h.call(http.MethodPost, "/users/"+id+"/tokens", map[string]any{})
	decodePart(t, strings.Split(a.body["token"].(string), ".")[1], &claims)
	if claims.Exp != now.Unix()+900 {
		t.Errorf("default expiry is %ds after issue, want 900", claims.Exp-now.Unix())
	}
	for _, duration := range []any{14, 3601, 60.5} {
		if a := h.call(http.MethodPost, "/users/"+id+"/tokens", map[string]any{"duration_seconds": duration}); a.status != 422 {
			t.Errorf("duration %v: status %d, want 422", duration, a.status)
		}
	}
}

func decodePart(t *testing.T, part string, into any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatal(err)
	}
}

func TestDropResponseCommitsTheChange(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	h.emu.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/", DropResponse: true, Count: 1})

	body := strings.NewReader(`{"first_name":"Lost"}`)
	req, _ := http.NewRequest(http.MethodPost, h.url+"/accounts/"+testAccount+"/users", body)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer %d, want the connection dropped", resp.StatusCode)
	}
	users := h.emu.Users(testAccount)
	if len(users) != 1 || users[0].FirstName != "Lost" {
		t.Errorf("users after a dropped create: %+v, want the user created", users)
	}
	requests := h.emu.Requests()
	if len(requests) != 1 || !requests[0].Dropped || requests[0].Status != http.StatusCreated {
		t.Errorf("requests %+v, want one dropped 201", requests)
	}
}

func TestACreateWhoseClientGaveUpCommitsLate(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	h.emu.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/", Latency: 300 * time.Millisecond, Count: 1})

	req, _ := http.NewRequest(http.MethodPost, h.url+"/accounts/"+testAccount+"/users", strings.NewReader(`{"first_name":"Late"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer %d, want the client to give up", resp.StatusCode)
	}
	if users := h.emu.Users(testAccount); len(users) != 0 {
		t.Fatalf("users %+v before the delay passed, want none yet", users)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.emu.Users(testAccount)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if users := h.emu.Users(testAccount); len(users) != 1 || users[0].FirstName != "Late" {
		t.Errorf("users %+v after the delay, want the create carried out", users)
	}
}

func TestFaultAppliesCountTimes(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.createUser("F")
	h.emu.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/", Status: 503, RetryAfter: 1500 * time.Millisecond, Count: 2})

	for range 2 {
		a := h.call(http.MethodGet, "/users/"+id, nil)
		if a.status != 503 || a.errorType() != "internal_error" {
			t.Fatalf("faulted: %d %q", a.status, a.errorType())
		}
		if a.header.Get("retry-after") != "2" || a.header.Get("retry-after-ms") != "1500" {
			t.Errorf("retry headers %q %q, want 2 and 1500", a.header.Get("retry-after"), a.header.Get("retry-after-ms"))
		}
	}
	if a := h.call(http.MethodGet, "/users/"+id, nil); a.status != 200 {
		t.Errorf("third request: %d, want the fault used up", a.status)
	}
	if got := h.emu.CountRequests(http.MethodGet, "/users/"); got != 3 {
		t.Errorf("counted %d GETs, want 3", got)
	}
}

func TestRateLimitAnswers429(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	h.emu.SetRateLimit(1, 2)
	path := "/accounts/" + testAccount + "/users"
	for i := range 2 {
		if a := h.call(http.MethodGet, path, nil); a.status != 200 {
			t.Fatalf("request %d within burst: %d", i+1, a.status)
		}
	}
	a := h.call(http.MethodGet, path, nil)
	if a.status != 429 || a.errorType() != "rate_limited" || a.header.Get("retry-after-ms") == "" {
		t.Errorf("over the limit: %d %q retry-after-ms %q", a.status, a.errorType(), a.header.Get("retry-after-ms"))
	}
	h.emu.SetRateLimit(0, 0)
	if a := h.call(http.MethodGet, path, nil); a.status != 200 {
		t.Errorf("after removing the limit: %d", a.status)
	}
}

func TestProxyPageFaultAnswersHTML(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.createUser("P")
	h.emu.InjectFault(emulator.Fault{Method: http.MethodGet, PathPrefix: "/users/", Status: http.StatusNotFound, ProxyPage: true, Count: 1})

	req, _ := http.NewRequest(http.MethodGet, h.url+"/users/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<html>") {
		t.Errorf("got %d %q %q, want a 404 HTML page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if _, exists := h.emu.User(id); !exists {
		t.Errorf("the user behind the proxy page is gone")
	}
	if a := h.call(http.MethodGet, "/users/"+id, nil); a.status != http.StatusOK {
		t.Errorf("after the fault: %d, want 200", a.status)
	}
}
