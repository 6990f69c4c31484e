package remote

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// TestClientSwitchesToARotatedKeyWhileAnotherCallUsesIt: the identity index
// lists an account in the background with the Client of the reconcile that
// first needed it, while that reconcile goes on with the same Client. When
// the key was rotated, the listing may switch to the new key just as the
// reconcile picks the key for its next call; run with -race.
func TestClientSwitchesToARotatedKeyWhileAnotherCallUsesIt(t *testing.T) {
	const account = "acct_01j9a43avnfqzbjfch6pygv001"
	emu := emulator.New(emulator.Options{APIKey: "sk_demo_rotated", Accounts: []string{account}})
	server := httptest.NewServer(emu)
	t.Cleanup(server.Close)
	stale, fresh := surgeClient(t, server.URL, "sk_demo_revoked"), surgeClient(t, server.URL, "sk_demo_rotated")

	// The reconcile's next call picks its key once the listing has found
	// the new one, and races the listing's switch to it.
	reloading := make(chan struct{})
	var once sync.Once
	c := newRotatingClient(credentials.Key{Scope: "SurgeProject team-a/surge", Client: stale, Reload: func(context.Context) (*surge.Client, error) {
		once.Do(func() { close(reloading) })
		return fresh, nil
	}})
	ctx := context.Background()
	var wg sync.WaitGroup
	var listErr, getErr error
	wg.Go(func() { _, _, listErr = c.ListUsersPage(ctx, account, "") })
	wg.Go(func() {
		<-reloading
		_, _, getErr = c.ListUsersPage(ctx, account, "")
	})
	wg.Wait()

	if listErr != nil || getErr != nil {
		t.Fatalf("calls after the rotation failed: listing %v, reconcile %v", listErr, getErr)
	}
	if c.current.Load() != fresh {
		t.Errorf("the client did not keep the rotated key")
	}
}

func surgeClient(t *testing.T, url, key string) *surge.Client {
	t.Helper()
	c, err := surge.New(url, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
