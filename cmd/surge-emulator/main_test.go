package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve starts the handler the flags describe, over real HTTP.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	s, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	server := httptest.NewServer(newHandler(s))
	t.Cleanup(server.Close)
	return server.URL
}

func call(t *testing.T, method, url, apiKey, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestFlagsSetKeysAccountsAndFaults(t *testing.T) {
	url := serve(t, "--api-key", "sk_test_a", "--api-key", "sk_test_b",
		"--account", "acct_01j9a43avnfqzbjfch6pygv1aa",
		"--fault", `{"method": "POST", "status": 503, "retry_after_ms": 1500, "count": 1}`)
	users := url + "/accounts/acct_01j9a43avnfqzbjfch6pygv1aa/users"

	if status, body := call(t, http.MethodPost, users, "sk_test_a", `{"first_name": "Ada"}`); status != http.StatusServiceUnavailable {
		t.Errorf("the first create under --fault: %d %s, want 503", status, body)
	}
	if status, body := call(t, http.MethodPost, users, "sk_test_b", `{"first_name": "Ada"}`); status != http.StatusCreated {
		t.Errorf("a create with the second --api-key: %d %s, want 201", status, body)
	}
	if status, _ := call(t, http.MethodGet, users, "sk_demo_emulator", ""); status != http.StatusUnauthorized {
		t.Errorf("the default key, replaced by --api-key: %d, want 401", status)
	}
	if status, _ := call(t, http.MethodGet, url+"/accounts/acct_01j9a43avnfqzbjfch6pygv1td/users", "sk_test_a", ""); status != http.StatusNotFound {
		t.Errorf("the default account, replaced by --account: %d, want 404", status)
	}
}

func TestFlagsRefuseABadFault(t *testing.T) {
	for _, fault := range []string{`{"status": 5030}`, `{"stauts": 503}`, `{"probability": 2}`, `not json`} {
		if _, err := parseFlags([]string{"--fault", fault}, io.Discard); err == nil {
			t.Errorf("--fault %s was accepted", fault)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	url := serve(t)
	admin := url + "/_emulator"
	users := url + "/accounts/acct_01j9a43avnfqzbjfch6pygv1td/users"

	if status, body := call(t, http.MethodPost, admin+"/faults", "", `{"path_prefix": "/accounts/", "status": 429, "count": 1}`); status != http.StatusCreated {
		t.Fatalf("POST faults: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodPost, users, "sk_demo_emulator", `{"first_name": "Ada"}`); status != http.StatusTooManyRequests {
		t.Errorf("a create under the injected fault: %d, want 429", status)
	}
	if status, body := call(t, http.MethodPost, users, "sk_demo_emulator", `{"first_name": "Ada", "metadata": {"plan": "pro"}}`); status != http.StatusCreated {
		t.Fatalf("a create after the fault's count: %d %s", status, body)
	}

	var listed struct {
		Data []struct {
			ID        string            `json:"id"`
			AccountID string            `json:"account_id"`
			FirstName string            `json:"first_name"`
			Metadata  map[string]string `json:"metadata"`
		} `json:"data"`
	}
	_, body := call(t, http.MethodGet, admin+"/users?account_id=acct_01j9a43avnfqzbjfch6pygv1td", "", "")
	if err := json.Unmarshal([]byte(body), &listed); err != nil {
		t.Fatalf("GET users: %v: %s", err, body)
	}
	if len(listed.Data) != 1 || listed.Data[0].FirstName != "Ada" || listed.Data[0].AccountID != "acct_01j9a43avnfqzbjfch6pygv1td" || listed.Data[0].Metadata["plan"] != "pro" {
		t.Errorf("GET users: %s", body)
	}

	var requests struct {
		Data []struct {
			Method string `json:"method"`
			Path   string `json:"path"`
			Status int    `json:"status"`
		} `json:"data"`
	}
	_, body = call(t, http.MethodGet, admin+"/requests", "", "")
	if err := json.Unmarshal([]byte(body), &requests); err != nil {
		t.Fatalf("GET requests: %v: %s", err, body)
	}
	if len(requests.Data) != 2 || requests.Data[0].Status != http.StatusTooManyRequests || requests.Data[1].Status != http.StatusCreated {
		t.Errorf("GET requests, which logs the API's requests and not the admin's: %s", body)
	}

	call(t, http.MethodPost, admin+"/faults", "", `{"status": 500}`)
	call(t, http.MethodDelete, admin+"/faults", "", "")
	if status, _ := call(t, http.MethodGet, users, "sk_demo_emulator", ""); status != http.StatusOK {
		t.Errorf("a list after DELETE faults: %d, want 200", status)
	}
	call(t, http.MethodDelete, admin+"/requests", "", "")
	if _, body := call(t, http.MethodGet, admin+"/requests", "", ""); strings.TrimSpace(body) != `{"data":[]}` {
		t.Errorf("GET requests after DELETE requests: %s", body)
	}

	if status, body := call(t, http.MethodPost, admin+"/accounts", "", `{"id": "acct_01j9a43avnfqzbjfch6pygv2bb"}`); status != http.StatusCreated {
		t.Fatalf("POST accounts: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodGet, url+"/accounts/acct_01j9a43avnfqzbjfch6pygv2bb/users", "sk_demo_emulator", ""); status != http.StatusOK {
		t.Errorf("the account added through the admin API: %d, want 200", status)
	}
	call(t, http.MethodPost, admin+"/faults", "", `{"status": 500}`)
	if status, _ := call(t, http.MethodPost, users, "sk_demo_emulator", `{"first_name": "Grace"}`); status != http.StatusInternalServerError {
		t.Errorf("a create under a fault injected before the reset: %d, want 500", status)
	}
	if status, body := call(t, http.MethodPost, admin+"/reset", "", ""); status != http.StatusNoContent {
		t.Fatalf("POST reset: %d %s", status, body)
	}
	_, usersAfter := call(t, http.MethodGet, admin+"/users", "", "")
	_, requestsAfter := call(t, http.MethodGet, admin+"/requests", "", "")
	if strings.TrimSpace(usersAfter) != `{"data":[]}` || strings.TrimSpace(requestsAfter) != `{"data":[]}` {
		t.Errorf("after POST reset, users %s and requests %s, want none", usersAfter, requestsAfter)
	}
	if status, _ := call(t, http.MethodPost, url+"/accounts/acct_01j9a43avnfqzbjfch6pygv2bb/users", "sk_demo_emulator", `{"first_name": "Grace"}`); status != http.StatusCreated {
		t.Errorf("a create after POST reset, in an account added before it: %d, want 201 (faults gone, accounts kept)", status)
	}

	if status, _ := call(t, http.MethodGet, admin+"/nothing", "", ""); status != http.StatusNotFound {
		t.Errorf("an unknown admin route: %d, want 404", status)
	}
}
