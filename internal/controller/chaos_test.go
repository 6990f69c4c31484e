package controller_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const chaosResources = 240

// chaosMode says how the operator is treated while Surge misbehaves.
type chaosMode struct {
	// restarts stops the operator mid-flight again and again, so that every
	// decision must be taken from what Kubernetes and Surge hold.
	restarts bool
	// rounds of updates and deletions, each followed by a pause with the
	// faults still on: in one long-lived process, what it keeps in memory
	// between attempts ages through longer sequences of faults.
	rounds int
}

// TestChaos creates, updates and deletes a few hundred SurgeEndUsers while
// Surge fails in every way it can (committing requests after their client
// gave up included), then checks that Surge ends up holding
// exactly the desired users: none missing, none duplicated, none left
// behind. It runs once with the operator restarted mid-flight again and
// again, and once with one operator that lives through it all.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	t.Run("restarts", func(t *testing.T) { runChaos(t, chaosMode{restarts: true, rounds: 1}) })
	t.Run("long-lived", func(t *testing.T) { runChaos(t, chaosMode{rounds: 3}) })
}

func runChaos(t *testing.T, mode chaosMode) {
	f := newFixtureWithPageSize(t, 25, func(o *operator.Options) {
		o.MaxConcurrentReconciles = 8
		o.SurgeRequestsPerSecond = 400
		o.SurgeBurst = 100
		// The rounds delete dozens at once, on purpose.
		o.DeletionBrakeLimit = -1
	})
	f.Surge.SetLatency(2 * time.Millisecond)
	for _, fault := range []emulator.Fault{
		{Status: http.StatusInternalServerError, Probability: 0.05},
		{Status: http.StatusServiceUnavailable, Probability: 0.03},
		{Status: http.StatusTooManyRequests, RetryAfter: 100 * time.Millisecond, Probability: 0.03},
		{Method: http.MethodPost, DropResponse: true, Probability: 0.08},
		{Method: http.MethodPatch, DropResponse: true, Probability: 0.08},
		{Method: http.MethodDelete, DropResponse: true, Probability: 0.08},
		{Latency: 300 * time.Millisecond, Probability: 0.02},
		// Longer than the test kit's attempt timeout: the client gives up
		// and Surge commits the request a second later.
		{Method: http.MethodPost, Latency: 4 * time.Second, Probability: 0.02},
	} {
		f.Surge.InjectFault(fault)
	}

	name := func(i int) string { return fmt.Sprintf("chaos-%03d", i) }
	restarts := 0
	restartSoon := func(after time.Duration) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(after)
			if mode.restarts {
				f.RestartOperator()
			}
		}()
		if mode.restarts {
			restarts++
		}
		return &wg
	}

	// Phase 1: create everything, with restarts while creates are in flight.
	restart := restartSoon(400 * time.Millisecond)
	forEach(chaosResources, func(i int) {
		f.Create(f.endUser(name(i), func(o *surgev1alpha1.SurgeEndUser) { o.Spec.Metadata = map[string]string{"n": fmt.Sprint(i)} }))
	})
	restart.Wait()
	restartSoon(time.Second).Wait()

	// Phase 2: in each round, update a share of what is left and delete
	// another, some of them before their create has settled, with more
	// restarts mid-flight.
	deleted := map[string]bool{}
	updated := map[string]bool{}
	for round := range mode.rounds {
		var updating, deleting []int
		for i := range chaosResources {
			if deleted[name(i)] {
				continue
			}
			switch (i + round) % (3 + round) {
			case 1:
				updating = append(updating, i)
			case 2:
				deleting = append(deleting, i)
			}
		}
		for _, i := range updating {
			updated[name(i)] = true
		}
		for _, i := range deleting {
			deleted[name(i)] = true
		}
		restart = restartSoon(300 * time.Millisecond)
		forEach(len(updating)+len(deleting), func(j int) {
			if j < len(updating) {
				f.Update(name(updating[j]), func(o *surgev1alpha1.SurgeEndUser) {
					o.Spec.FirstName = fmt.Sprintf("Updated%d", round)
					o.Spec.LastName = fmt.Sprint(rand.IntN(1000))
				})
				return
			}
			f.Delete(name(deleting[j-len(updating)]))
		})
		restart.Wait()
		restartSoon(800 * time.Millisecond).Wait()
		restartSoon(1500 * time.Millisecond).Wait()
	}

	// Phase 3: Surge recovers; everything must converge.
	f.Surge.ClearFaults()
	start := time.Now()
	var live []surgev1alpha1.SurgeEndUser
	f.Eventually("every resource converged", 3*time.Minute, func() (bool, string) {
		list := &surgev1alpha1.SurgeEndUserList{}
		if err := k8s.List(f.Ctx, list, client.InNamespace(f.Namespace)); err != nil {
			return false, err.Error()
		}
		if want := chaosResources - len(deleted); len(list.Items) != want {
			return false, fmt.Sprintf("%d resources left, want %d", len(list.Items), want)
		}
		for _, obj := range list.Items {
			ready := apimeta.FindStatusCondition(obj.Status.Conditions, "Ready")
			if ready == nil || ready.Status != "True" || obj.Status.ObservedGeneration != obj.Generation {
				return false, fmt.Sprintf("%s not Ready for its generation: %+v", obj.Name, obj.Status)
			}
		}
		live = list.Items
		return true, ""
	})

	// An update whose client gave up may still land after a newer one; the
	// operator checks again within its settle time and repairs it.
	var mismatches []string
	f.Eventually("Surge holds exactly the desired users", 30*time.Second, func() (bool, string) {
		mismatches = compareWithSurge(f, live, deleted)
		return len(mismatches) == 0, strings.Join(mismatches, "; ")
	})
	requests := f.Surge.Requests()
	dropped, failed := 0, 0
	for _, r := range requests {
		if r.Dropped {
			dropped++
		} else if r.Status >= 400 {
			failed++
		}
	}
	t.Logf("chaos: %d resources created, %d updated, %d deleted in %d rounds, %d operator restarts; %d Surge requests (%d answers dropped, %d errors); converged %s after Surge recovered; checked %d remote users against %d resources",
		chaosResources, len(updated), len(deleted), mode.rounds, restarts, len(requests), dropped, failed, time.Since(start).Round(time.Millisecond), len(f.Surge.Users(f.Account)), len(live))
}

// forEach runs fn for 0..n-1 on a few goroutines, as several people or a
// GitOps tool applying manifests would.
func forEach(n int, fn func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// compareWithSurge lists what differs between the live resources and the
// users Surge holds: missing, mismatched, duplicated or orphaned users.
func compareWithSurge(f *fixture, live []surgev1alpha1.SurgeEndUser, deleted map[string]bool) []string {
	var mismatches []string
	remote := map[string]emulator.User{}
	for _, user := range f.Surge.Users(f.Account) {
		remote[user.ID] = user
	}
	for _, obj := range live {
		user, ok := remote[obj.Status.UserID]
		if !ok {
			mismatches = append(mismatches, fmt.Sprintf("%s: status.userID %s is not in Surge", obj.Name, obj.Status.UserID))
			continue
		}
		delete(remote, obj.Status.UserID)
		want := maps.Clone(obj.Spec.Metadata)
		want[surgev1alpha1.MetadataUID] = string(obj.UID)
		want[surgev1alpha1.MetadataNamespace] = obj.Namespace
		want[surgev1alpha1.MetadataName] = obj.Name
		if user.FirstName != obj.Spec.FirstName || user.LastName != obj.Spec.LastName || !maps.Equal(user.Metadata, want) {
			mismatches = append(mismatches, fmt.Sprintf("%s: remote user %+v does not match the spec %+v", obj.Name, user, obj.Spec))
		}
	}
	for id, user := range remote {
		name := user.Metadata[surgev1alpha1.MetadataName]
		if deleted[name] {
			mismatches = append(mismatches, fmt.Sprintf("remote user %s outlived its deleted resource %s", id, name))
		} else {
			mismatches = append(mismatches, fmt.Sprintf("remote user %s duplicates the user of %s", id, name))
		}
	}
	return mismatches
}
