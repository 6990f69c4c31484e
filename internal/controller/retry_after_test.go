package controller

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func TestLongRetryAfterIsCarriedIntoTheRequeue(t *testing.T) {
	const key, account = "sk_demo_retry_after", "acct_01j9a43avnfqzbjfch6pygv1td"
	emu := emulator.New(emulator.Options{APIKey: key, Accounts: []string{account}})
	server := httptest.NewServer(emu)
	t.Cleanup(server.Close)
	client, err := surge.New(server.URL, key, surge.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	emu.InjectFault(emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 90 * time.Second, Count: 1})
	_, createErr := client.CreateUser(t.Context(), account, surge.UserFields{FirstName: "Ada"})

	outcome := summarize(classifySurgeError("create the end user", createErr, &surgev1alpha1.SurgeEndUserSpec{}), "ok", 10*time.Minute, false)
	result, retryErr := outcome.result()
	if retryErr != nil || result.RequeueAfter < 90*time.Second {
		t.Errorf("result %+v, %v: want the 90s Surge asked for, not a backoff from a second", result, retryErr)
	}
	status := &surgev1alpha1.SurgeEndUserStatus{}
	outcome.apply(status, 1)
	if reconciling := findCondition(status, surgev1alpha1.ConditionReconciling); reconciling == nil || reconciling.Reason != surgev1alpha1.ReasonRateLimited {
		t.Errorf("Reconciling %+v, want True with RateLimited while waiting", reconciling)
	}
}
