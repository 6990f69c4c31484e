package surgetest_test

import (
	"net/http"
	"testing"

	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

// TestEmulatorStopsAtCleanup: no emulator outlives its test.
func TestEmulatorStopsAtCleanup(t *testing.T) {
	var url string
	t.Run("test", func(t *testing.T) {
		url = surgetest.NewEmulator(t).URL()
		resp, err := http.Get(url + "/users/usr_01jrzhe8d9enptypyx360pcmxu")
		if err != nil {
			t.Fatalf("the emulator does not answer during its test: %v", err)
		}
		_ = resp.Body.Close()
	})
	if resp, err := http.Get(url + "/users/usr_01jrzhe8d9enptypyx360pcmxu"); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the emulator still answers after its test: %s", resp.Status)
	}
}

// TestEmulatorKeys: the operator's tenancy depends on keys reaching only
// their own project, and on a revoked or rotated key being refused.
func TestEmulatorKeys(t *testing.T) {
	emu := surgetest.NewEmulator(t)
	emu.AddAccount("acct_01j9a43avnfqzbjfch6pygv1td")
	emu.AddProject("team", "sk_live_team", "acct_01j9a43avnfqzbjfch6pygv2td")

	status := func(key, account string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, emu.URL()+"/accounts/"+account+"/users", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		key, account string
		want         int
	}{
		{surgetest.DefaultAPIKey, "acct_01j9a43avnfqzbjfch6pygv1td", http.StatusOK},
		{surgetest.DefaultAPIKey, "acct_01j9a43avnfqzbjfch6pygv2td", http.StatusNotFound},
		{"sk_live_team", "acct_01j9a43avnfqzbjfch6pygv2td", http.StatusOK},
	} {
		if got := status(c.key, c.account); got != c.want {
			t.Errorf("key %s on %s: %d, want %d", c.key, c.account, got, c.want)
		}
	}

	emu.RevokeAPIKey("sk_live_team")
	if got := status("sk_live_team", "acct_01j9a43avnfqzbjfch6pygv2td"); got != http.StatusUnauthorized {
		t.Errorf("revoked key: %d, want 401", got)
	}
	emu.SetAPIKey("sk_test_rotated")
	if emu.APIKey() != "sk_test_rotated" {
		t.Errorf("APIKey() is %q after SetAPIKey", emu.APIKey())
	}
	if got := status(surgetest.DefaultAPIKey, "acct_01j9a43avnfqzbjfch6pygv1td"); got != http.StatusUnauthorized {
		t.Errorf("the key replaced by SetAPIKey: %d, want 401", got)
	}
}
