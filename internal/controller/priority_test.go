package controller_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// TestARestartChecksSettledUsersWhenTheirResyncIsDue: a restart does not
// read every settled user from Surge at once. None is read before the settle
// time, a resource created meanwhile is created at once, and every settled
// user is checked within one resync interval after that.
func TestARestartChecksSettledUsersWhenTheirResyncIsDue(t *testing.T) {
	const (
		settled    = 20
		settleTime = 6 * time.Second // twice the test operator's attempt timeout
		resync     = 10 * time.Second
	)
	f := newFixture(t, withResync(resync))
	for i := range settled {
		f.Create(f.endUser(fmt.Sprintf("settled-%02d", i)))
	}
	settledIDs := map[string]bool{}
	for i := range settled {
		settledIDs["/users/"+f.waitForReady(fmt.Sprintf("settled-%02d", i)).Status.UserID] = true
	}
	f.StopOperator()
	restartedAt := time.Now()
	f.StartOperator()
	f.Create(f.endUser("newcomer"))
	f.waitForReady("newcomer")
	if early := settledChecksSince(f, settledIDs, restartedAt); len(early) > 0 {
		t.Errorf("%d settled users were read from Surge before the newcomer was Ready, %s after the restart", len(early), time.Since(restartedAt).Round(time.Millisecond))
	}
	f.Eventually("every settled user is checked once after the restart", settleTime+resync+10*time.Second, func() (bool, string) {
		checked := settledChecksSince(f, settledIDs, restartedAt)
		return len(checked) == settled, fmt.Sprintf("%d of %d checked", len(checked), settled)
	})
	for user, at := range settledChecksSince(f, settledIDs, restartedAt) {
		if after := at.Sub(restartedAt); after < settleTime-time.Second {
			t.Errorf("%s was checked %s after the restart, before the settle time of %s", user, after.Round(time.Millisecond), settleTime)
		}
	}
}

// settledChecksSince is when each of users was first read from Surge since
// since, by path.
func settledChecksSince(f *fixture, users map[string]bool, since time.Time) map[string]time.Time {
	first := map[string]time.Time{}
	for _, r := range f.Surge.Requests() {
		if _, seen := first[r.Path]; !seen && !r.At.Before(since) && r.Method == http.MethodGet && users[r.Path] {
			first[r.Path] = r.At
		}
	}
	return first
}

func checksSince(f *fixture, since time.Time) int {
	n := 0
	for _, r := range f.Surge.Requests() {
		if !r.At.Before(since) && r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/users/") {
			n++
		}
	}
	return n
}

// TestRateLimitIsAWaitNotAFailure: while Surge answers 429 with a pause,
// a new resource says it waits for the rate limit and a Ready one stays
// Ready; once Surge takes requests again, the new one becomes Ready.
func TestRateLimitIsAWaitNotAFailure(t *testing.T) {
	f := newFixture(t)
	f.Create(f.endUser("settled"))
	f.waitForReady("settled")

	f.Surge.InjectFault(emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	f.Create(f.endUser("newcomer"))
	f.waitForCondition("newcomer", surgev1alpha1.ConditionReconciling, metav1.ConditionTrue, surgev1alpha1.ReasonRateLimited)
	f.waitForCondition("newcomer", surgev1alpha1.ConditionReady, metav1.ConditionFalse, surgev1alpha1.ReasonRateLimited)
	f.Update("settled", func(o *surgev1alpha1.SurgeEndUser) {
		o.Annotations = map[string]string{surgev1alpha1.AnnotationReconcileRequestedAt: "now"}
	})
	f.Eventually("the settled resource's check is held back", 10*time.Second, func() (bool, string) {
		return f.Surge.CountRequests(http.MethodGet, "/users/") > 0, "not checked yet"
	})
	f.consistently("the settled resource stays Ready", time.Second, func() (bool, string) {
		ready := apimeta.FindStatusCondition(f.Get("settled").Status.Conditions, surgev1alpha1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionTrue && ready.Reason == surgev1alpha1.ReasonSynced, fmt.Sprintf("Ready is %+v", ready)
	})

	f.Surge.ClearFaults()
	f.waitForReady("newcomer")
	f.waitForReady("settled")
}

// TestNewWorkIsNotStarvedByResyncs: when Surge's limit is too low for the
// resyncs of the settled resources, which then keep every turn taken, a
// resource applied meanwhile is still created within a few turns: the
// resyncs' reads give way to it.
func TestNewWorkIsNotStarvedByResyncs(t *testing.T) {
	const settled = 12
	f := newFixture(t, func(o *operator.Options) {
		o.ResyncInterval = time.Second
		o.MaxConcurrentReconciles = 4
	})
	for i := range settled {
		f.Create(f.endUser(fmt.Sprintf("settled-%02d", i)))
	}
	for i := range settled {
		f.waitForReady(fmt.Sprintf("settled-%02d", i))
	}
	// Twelve reads a second are asked for; Surge allows one.
	f.Surge.SetRateLimit(1, 1)
	f.Eventually("the resyncs are held back by the rate limit", 30*time.Second, func() (bool, string) {
		return slices.ContainsFunc(f.Surge.Requests(), func(r emulator.Request) bool { return r.Status == http.StatusTooManyRequests }), "no 429 yet"
	})
	time.Sleep(5 * time.Second)
	asked := time.Now()
	f.Create(f.endUser("newcomer"))
	f.Eventually("the newcomer's create is sent", 20*time.Second, func() (bool, string) {
		for _, r := range f.Surge.Requests() {
			if !r.At.Before(asked) && r.Method == http.MethodPost && strings.HasPrefix(r.Path, "/accounts/") && r.Status < 300 {
				t.Logf("the newcomer's create was sent %s after it was applied", r.At.Sub(asked).Round(time.Millisecond))
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d resync reads since, and no create", checksSince(f, asked))
	})
}
