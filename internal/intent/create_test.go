package intent

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

func TestResolve(t *testing.T) {
	horizon := Horizon{At: at(60)}
	for _, tc := range []struct {
		name  string
		known Known
		want  Resolution
	}{
		{"no intent recorded: create", Known{Now: at(0)}, Resolution{Kind: Absent}},
		{"recorded here, every send certainly not done: send again at once",
			Known{Now: at(0), Recorded: true, Horizon: Horizon{Nothing: true}}, Resolution{Kind: Absent}},
		{"an uncertain send: search at once, before the horizon",
			Known{Now: at(1), Recorded: true, Horizon: horizon}, Resolution{Kind: Search, Since: at(60)}},
		{"found by the search: adopt at once, before the horizon",
			Known{Now: at(1), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, Own: "usr_1"}},
			Resolution{Kind: Found, UserID: "usr_1"}},
		{"absent from a listing before the horizon: look again soon, for a user committed meanwhile",
			Known{Now: at(1), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, ConclusiveSince: at(0)}},
			Resolution{Kind: Wait, Until: at(6)}},
		{"no listing is conclusive yet, past the horizon: look again soon",
			Known{Now: at(70), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true}},
			Resolution{Kind: Wait, Until: at(75)}},
		{"absent from a conclusive listing that started at the horizon: create again",
			Known{Now: at(70), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, ConclusiveSince: at(60)}},
			Resolution{Kind: Absent}},
		{"absent from a listing that started a moment before the horizon: wait",
			Known{Now: at(70), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, ConclusiveSince: at(59)}},
			Resolution{Kind: Wait, Until: at(75)}},
		{"a restored resource's user, of its name but an earlier uid, is taken once the listing is conclusive",
			Known{Now: at(70), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, SameName: "usr_0", ConclusiveSince: at(65)}},
			Resolution{Kind: Found, UserID: "usr_0"}},
		{"and not before: a user of its own uid may still be listed",
			Known{Now: at(1), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, SameName: "usr_0"}},
			Resolution{Kind: Wait, Until: at(6)}},
		{"the own user wins over a conclusive absence",
			Known{Now: at(70), Recorded: true, Horizon: horizon, Listing: Listing{Looked: true, Own: "usr_2", ConclusiveSince: at(65)}},
			Resolution{Kind: Found, UserID: "usr_2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(tc.known); got != tc.want {
				t.Errorf("Resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLedger(t *testing.T) {
	const settle = 60 * time.Second
	for _, tc := range []struct {
		name string
		run  func(l *Ledger) Horizon
		want Horizon
	}{
		{"an intent first seen here, recorded by another process or before a restart: its create may leave until the send window ends",
			func(l *Ledger) Horizon { return l.Horizon("a", at(10), 0) }, Horizon{At: at(10 + 3 + 60)}},
		{"an intent whose sender assumed a longer settle time: that one counts",
			func(l *Ledger) Horizon { return l.Horizon("a", at(10), 120*time.Second) }, Horizon{At: at(10 + 3 + 120)}},
		{"and never a shorter one",
			func(l *Ledger) Horizon { return l.Horizon("a", at(10), time.Second) }, Horizon{At: at(10 + 3 + 60)}},
		{"seen again later: the first sight counts",
			func(l *Ledger) Horizon { l.Horizon("a", at(10), 0); return l.Horizon("a", at(50), 0) }, Horizon{At: at(73)}},
		{"recorded here and not sent",
			func(l *Ledger) Horizon { l.Record("a", at(0)); return l.Horizon("a", at(1), 0) }, Horizon{Nothing: true}},
		{"a refused connection leaves nothing to wait for",
			func(l *Ledger) Horizon {
				l.Sent("a", l.Record("a", at(0)), at(1), NotDone)
				return l.Horizon("a", at(1), 0)
			}, Horizon{Nothing: true}},
		{"Surge's own answer: nothing commits after it",
			func(l *Ledger) Horizon {
				l.Sent("a", l.Record("a", at(0)), at(2), Finished)
				return l.Horizon("a", at(2), 0)
			}, Horizon{At: at(2)}},
		{"a lost answer: the settle time after the create's latest departure",
			func(l *Ledger) Horizon {
				l.Sent("a", l.Record("a", at(0)), at(30), MaybeInFlight)
				return l.Horizon("a", at(30), 0)
			}, Horizon{At: at(63)}},
		{"a later answered send does not shorten an earlier lost one",
			func(l *Ledger) Horizon {
				l.Sent("a", l.Record("a", at(0)), at(30), MaybeInFlight)
				l.Sent("a", at(70), at(71), Finished)
				return l.Horizon("a", at(71), 0)
			}, Horizon{At: at(71)}},
		{"settled: a new intent starts from nothing",
			func(l *Ledger) Horizon {
				l.Sent("a", l.Record("a", at(0)), at(30), MaybeInFlight)
				l.Forget("a")
				l.Record("a", at(40))
				return l.Horizon("a", at(40), 0)
			}, Horizon{Nothing: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(NewLedger(settle)); got != tc.want {
				t.Errorf("horizon = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPasses(t *testing.T) {
	pass := func(p *Passes, start int, ids ...string) time.Time {
		current := p.Begin(at(start))
		for _, id := range ids {
			current.Saw(id)
		}
		return p.Complete(current)
	}
	for _, tc := range []struct {
		name string
		run  func(p *Passes) time.Time
		want time.Time
	}{
		{"one pass proves nothing: a deletion may have shifted an offset cursor",
			func(p *Passes) time.Time { return pass(p, 0, "a", "b") }, time.Time{}},
		{"a second pass that lists every user of the first confirms the first",
			func(p *Passes) time.Time { pass(p, 0, "a", "b"); return pass(p, 10, "a", "b", "c") }, at(0)},
		{"a user of the first pass gone from the second: a deletion overlapped, nothing confirmed",
			func(p *Passes) time.Time { pass(p, 0, "a", "b", "c"); return pass(p, 10, "a", "c") }, time.Time{}},
		{"a third pass confirms the second",
			func(p *Passes) time.Time {
				pass(p, 0, "a", "b", "c")
				pass(p, 10, "a", "c")
				return pass(p, 20, "a", "c")
			}, at(10)},
		{"an unconfirmed pass keeps the earlier proof",
			func(p *Passes) time.Time { pass(p, 0, "a"); pass(p, 10, "a", "b"); return pass(p, 20, "a") }, at(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(NewPasses()); !got.Equal(tc.want) {
				t.Errorf("conclusive since %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRecordUnsettled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record Record
		want   bool
	}{
		{"a new resource", Record{}, false},
		{"a create sent and not answered", Record{SentAt: true, Marker: "m1", CreateMarker: "m1", Finalizer: true}, true},
		{"settled: status names the user and the marker", Record{Marker: "m1", CreateMarker: "m1", Finalizer: true, UserID: "usr_1"}, false},
		{"replaced: the annotation is gone, status still says sent", Record{SentAt: true, CreateMarker: "m1", Finalizer: true}, true},
		{"replaced after it settled", Record{CreateMarker: "m1", Finalizer: true, UserID: "usr_1"}, false},
		{"restored: a marker that status never accounted for", Record{Marker: "m1", Finalizer: true}, true},
		{"replaced, then restored: only the finalizer tells", Record{Finalizer: true}, true},
		{"its user deleted in Surge: status let go of it, and its intent had settled", Record{Marker: "m1", CreateMarker: "m1", Finalizer: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.record.Unsettled(); got != tc.want {
				t.Errorf("Unsettled() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsCopy(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		userUID, resourceUID, named string
		want                        bool
	}{
		{"made by the resource", "uid-1", "uid-1", "uid-1", true},
		{"made by the resource before a restore gave it a new uid", "uid-1", "uid-2", "uid-1", true},
		{"left by an earlier resource of the name, on purpose", "uid-0", "uid-2", "uid-1", false},
		{"untagged", "", "uid-1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsCopy(tc.userUID, tc.resourceUID, tc.named); got != tc.want {
				t.Errorf("IsCopy = %v, want %v", got, tc.want)
			}
		})
	}
}
