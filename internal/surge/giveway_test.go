package surge_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// servedInProcess hands each request to the emulator in the test's own
// goroutine, so that testing/synctest's clock is the emulator's too.
type servedInProcess struct{ emu *emulator.Server }

func (s servedInProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	s.emu.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// createWaitBehindResyncs returns how long a create waited to be sent, from
// when it was first asked for, while resyncs readers kept asking to read
// users from a Surge that allows one request a second; each caller comes
// back when a refusal says, as a requeue does. resyncRead marks how the
// readers' context is made.
func createWaitsBehindResyncs(t *testing.T, resyncs, creates int, resyncRead func(context.Context) context.Context) []time.Duration {
	t.Helper()
	var waits []time.Duration
	synctest.Test(t, func(t *testing.T) {
		emu := emulator.New(emulator.Options{APIKey: testKey, Accounts: []string{testAccount}})
		emu.SetRateLimit(1, 1)
		client, err := surge.New("http://127.0.0.1", testKey,
			surge.WithHTTPClient(&http.Client{Transport: servedInProcess{emu}}), surge.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(t.Context())
		var readers sync.WaitGroup
		for i := range resyncs {
			readers.Go(func() {
				for ctx.Err() == nil {
					_, err := client.GetUser(resyncRead(ctx), fmt.Sprintf("usr_%02d", i))
					wait, limited := surge.RateLimitedFor(err)
					if !limited {
						wait = time.Second
					}
					// Requeues are not all on the dot.
					sleepOrStop(ctx, wait+time.Duration(i)*37*time.Millisecond)
				}
			})
		}
		// A minute of resyncs alone brings the client's rate down to
		// Surge's limit. Then creates are asked for one after another.
		time.Sleep(time.Minute)
		for range creates {
			asked := time.Now()
			for time.Since(asked) < 10*time.Minute {
				_, err := client.CreateUser(ctx, testAccount, surge.UserFields{FirstName: "Newcomer"})
				wait, limited := surge.RateLimitedFor(err)
				if !limited || !surge.WasNotSent(err) {
					break
				}
				time.Sleep(wait)
			}
			waits = append(waits, time.Since(asked))
		}
		stop()
		readers.Wait()
	})
	return waits
}

func sleepOrStop(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// TestACreateGoesBeforeResyncReads: however low Surge's limit, a create
// waits for its turn only behind other writes, never behind the resync
// reads of settled resources, which would otherwise take every turn the
// moment it comes free.
func TestACreateGoesBeforeResyncReads(t *testing.T) {
	const resyncs, creates = 60, 10
	// The turn a create is first refused for is at most a few seconds off
	// at 1 rps, and no other write waits.
	const bound = 10 * time.Second
	waits := createWaitsBehindResyncs(t, resyncs, creates, surge.Resync)
	t.Logf("%d creates, one after another, among %d resync readers waited %v", creates, resyncs, waits)
	if longest := slices.Max(waits); longest > bound {
		t.Errorf("a create waited %s behind %d resync readers; want at most %s", longest, resyncs, bound)
	}
}

// TestResyncReadsThatDoNotGiveWayDelayACreate is the control: unmarked,
// the readers are served as the creates are, and creates wait their turn
// among them. It shows that the scenario above is one where giving way
// matters.
func TestResyncReadsThatDoNotGiveWayDelayACreate(t *testing.T) {
	const resyncs, creates = 60, 30
	unmarked := func(ctx context.Context) context.Context { return ctx }
	waits := createWaitsBehindResyncs(t, resyncs, creates, unmarked)
	t.Logf("%d creates, one after another, among %d readers that do not give way waited %v", creates, resyncs, waits)
	if longest := slices.Max(waits); longest <= 10*time.Second {
		t.Errorf("no create waited more than %s among %d readers that do not give way: the scenario no longer shows starvation", longest, resyncs)
	}
}
