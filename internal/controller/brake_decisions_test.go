package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestTheDeletionBrakeDecides(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	request := func(i, users int) deletionRequest {
		return deletionRequest{scope: "SurgeProject team/surge", uid: types.UID(fmt.Sprint("uid-", i)), requestedAt: start, users: users}
	}
	admitted := func(b *DeletionBrake, from, to, users int, now time.Time) int {
		n := 0
		for i := from; i < to; i++ {
			if ok, _ := b.admit(request(i, users), now); ok {
				n++
			}
		}
		return n
	}
	t.Run("the limit per window, then a hold that does not trickle", func(t *testing.T) {
		b := &DeletionBrake{Limit: 10, Window: 5 * time.Minute}
		if n := admitted(b, 0, 30, -1, start); n != 10 {
			t.Errorf("%d of 30 admitted, want 10", n)
		}
		if ok, _ := b.admit(request(3, -1), start.Add(time.Minute)); !ok {
			t.Error("an admitted deletion, retried, was held")
		}
		if n := admitted(b, 30, 40, -1, start.Add(time.Hour)); n != 0 {
			t.Errorf("%d admitted an hour later, while the brake holds, want 0", n)
		}
		if held := len(b.scope("SurgeProject team/surge").held); held != 30 {
			t.Errorf("%d held, want 30", held)
		}
	})
	t.Run("a release lets through what was asked before it", func(t *testing.T) {
		b := &DeletionBrake{Limit: 10, Window: 5 * time.Minute}
		admitted(b, 0, 20, -1, start)
		release := start.Add(time.Minute)
		n := 0
		for i := range 20 {
			r := request(i, -1)
			r.releasedAt = release
			if ok, _ := b.admit(r, release); ok {
				n++
			}
		}
		if held := len(b.scope("SurgeProject team/surge").held); n != 20 || held != 0 {
			t.Errorf("%d of 20 admitted after the release, %d still held", n, held)
		}
		later := request(99, -1)
		later.requestedAt, later.releasedAt = release.Add(time.Second), release
		if ok, _ := b.admit(later, release.Add(time.Second)); !ok {
			t.Error("a deletion after the release was held though the window has room")
		}
	})
	t.Run("a share of the users before the deletions, never below 5", func(t *testing.T) {
		for _, tc := range []struct{ users, want int }{{100, 10}, {50, 10}, {40, 8}, {10, 5}, {3, 5}} {
			b := &DeletionBrake{Limit: 10, Window: 5 * time.Minute, Percent: 20}
			n := 0
			for i := range 30 {
				// The users shrink as their deletions are done.
				if ok, _ := b.admit(request(i, max(tc.users-n, 0)), start); ok {
					n++
				}
			}
			if n != tc.want {
				t.Errorf("%d users: %d admitted, want %d", tc.users, n, tc.want)
			}
		}
	})
	t.Run("a hold shown in status outlives the process", func(t *testing.T) {
		b := &DeletionBrake{Limit: 10, Window: 5 * time.Minute}
		r := request(1, -1)
		r.heldBefore = true
		if ok, _ := b.admit(r, start); ok {
			t.Error("a deletion held before a restart went ahead unreleased")
		}
		r.released = true
		if ok, _ := b.admit(r, start); !ok {
			t.Error("a deletion released on the resource was held")
		}
	})
	t.Run("the brake lets go once nothing it holds is left", func(t *testing.T) {
		b := &DeletionBrake{Limit: 1, Window: 5 * time.Minute}
		admitted(b, 0, 3, -1, start)
		// Both held resources were orphaned on purpose.
		b.forget("SurgeProject team/surge", "uid-1")
		if held := b.forget("SurgeProject team/surge", "uid-2"); held != 0 {
			t.Errorf("%d held after both went", held)
		}
		if ok, _ := b.admit(request(9, -1), start.Add(6*time.Minute)); !ok {
			t.Error("a deletion in a new window was held after the brake had nothing left to hold")
		}
	})
	t.Run("off", func(t *testing.T) {
		b := &DeletionBrake{Limit: -1}
		if n := admitted(b, 0, 100, -1, start); n != 100 {
			t.Errorf("%d of 100 admitted with the brake off", n)
		}
	})
}
