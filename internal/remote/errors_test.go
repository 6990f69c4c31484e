package remote

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// TestEveryFailureOfACreateIsClassified drives the real client against the
// emulator's faults: what the reconciler does next rests on the kind, the
// wait and the fate alone.
func TestEveryFailureOfACreateIsClassified(t *testing.T) {
	const key, account = "sk_demo_classify", "acct_01j9a43avnfqzbjfch6pygv1td"
	cases := []struct {
		name  string
		fault emulator.Fault
		kind  Kind
		fate  intent.Fate
		wait  time.Duration
	}{
		{"a long Retry-After on a 429 is the wait", emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 90 * time.Second}, RateLimited, intent.NotDone, 90 * time.Second},
		{"a rejected key", emulator.Fault{Status: http.StatusUnauthorized}, KeyRejected, intent.NotDone, 0},
		{"an unknown account", emulator.Fault{Status: http.StatusNotFound, ErrorType: "account_not_found"}, AccountNotFound, intent.NotDone, 0},
		{"a refused request", emulator.Fault{Status: http.StatusUnprocessableEntity}, Refused, intent.NotDone, 0},
		{"Surge's own 503 is finished", emulator.Fault{Status: http.StatusServiceUnavailable}, Unavailable, intent.Finished, 0},
		{"a long Retry-After on a 503 is the wait", emulator.Fault{Status: http.StatusServiceUnavailable, RetryAfter: 90 * time.Second}, Unavailable, intent.Finished, 90 * time.Second},
		{"a gateway's page may hide a create in flight", emulator.Fault{Status: http.StatusBadGateway, ProxyPage: true}, Unavailable, intent.MaybeInFlight, 0},
		{"a lost answer may hide a create in flight", emulator.Fault{DropResponse: true}, Unavailable, intent.MaybeInFlight, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := emulator.New(emulator.Options{APIKey: key, Accounts: []string{account}})
			server := httptest.NewServer(emu)
			t.Cleanup(server.Close)
			client, err := surge.New(server.URL, key, surge.WithMaxRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			tc.fault.Count = 1
			emu.InjectFault(tc.fault)
			_, createErr := client.CreateUser(t.Context(), account, surge.UserFields{FirstName: "Ada"})

			failure, ok := errors.AsType[*Error](classify(createErr))
			if !ok {
				t.Fatalf("%v was not classified", createErr)
			}
			if failure.Kind != tc.kind || failure.Fate != tc.fate {
				t.Errorf("kind %d, fate %d; want kind %d, fate %d (%v)", failure.Kind, failure.Fate, tc.kind, tc.fate, createErr)
			}
			if failure.Wait < tc.wait || (tc.wait == 0 && failure.Wait > 0 && tc.kind != RateLimited) {
				t.Errorf("wait %s, want %s", failure.Wait, tc.wait)
			}
		})
	}
}
