// Package intent settles a create in Surge, which has no idempotency key: a
// create whose answer was lost may or may not have happened, and may even be
// committed late, after its client gave up. Whether a user of the resource
// exists beyond the one status names is decided here, in one pure function,
// from what is known: whether an intent to create is recorded on the
// resource, what this process saw of its sends, and what a listing of the
// account found. The reconciler acts on the answer; it decides nothing of
// this itself.
//
// The one assumption no answer can remove: Surge commits a request at most
// the settle time after it left (twice the attempt timeout by default). A
// user that turns up later anyway is found by the identity index and the
// copy status does not name is removed (see docs/architecture.md).
package intent

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// SendWindow bounds how long a create may take to leave once its intent is
// recorded: the status write, then its turn under the rate limit. A create
// whose turn comes later is held back unsent (remote.EndUser.Create).
const SendWindow = 3 * time.Second

// Recheck is how often a resource that waits for a conclusive listing looks
// again.
const Recheck = 5 * time.Second

// Record is what a resource records of its intents to create. The intent
// is recorded twice, each copy surviving a loss the other does not (see
// docs/architecture.md).
type Record struct {
	// SentAt says status.createSentAt is set; it survives kubectl replace,
	// which drops annotations.
	SentAt bool
	// Marker is the create-pending annotation, CreateMarker the value of it
	// that status accounted for; the annotation survives a restore from a
	// backup, which drops status.
	Marker, CreateMarker string
	// Finalizer says the resource carries the end user finalizer, which is
	// added with the first intent; UserID is the user status names.
	Finalizer bool
	UserID    string
}

// Unsettled says whether a user of the resource may exist that status does
// not name. When both copies are lost, a replace then a restore, the
// finalizer still tells: a resource that carries it, with a status that
// names neither a user nor a marker, had an intent that status lost.
func (r Record) Unsettled() bool {
	return r.SentAt || (r.Marker != "" && r.Marker != r.CreateMarker) ||
		(r.Finalizer && r.UserID == "" && r.CreateMarker == "")
}

// IsCopy says whether a user tagged with userUID, other than the one status
// names, is a copy of the resource's user: it carries the uid of the
// resource, or of the user status names (one made before a restore gave the
// resource a new uid). A copy is what Surge committed past the settle time.
func IsCopy(userUID, resourceUID, namedUID string) bool {
	return userUID != "" && (userUID == resourceUID || userUID == namedUID)
}

// Kind is what is known of the users of an intent beyond the one status
// names.
type Kind int

const (
	// Absent: no such user exists, nor will one be committed. A create may
	// be sent; a deletion may let the resource go.
	Absent Kind = iota
	// Found: a user tagged with the resource's uid exists: adopt it, or
	// delete it with the resource.
	Found
	// Search: look the resource's identity up in the account now. A
	// listing that started at or after Since can prove absence.
	Search
	// Wait: nothing can be proven before Until.
	Wait
)

// Resolution is the answer of Resolve.
type Resolution struct {
	Kind   Kind
	UserID string
	Since  time.Time
	Until  time.Time
}

// Listing is what a lookup of the resource's identity found.
type Listing struct {
	// Looked is true once a lookup was made for this resolution.
	Looked bool
	// Own is a user tagged with the resource's uid, if one was listed.
	Own string
	// SameName is a user tagged with the resource's namespace and name but
	// another uid that no other resource manages: the user of the resource
	// before it was restored from a backup, which gives it a new uid.
	SameName string
	// ConclusiveSince is the start of the latest listing known to have
	// seen every user: complete, and overlapped by no deletion. Zero when
	// there is none.
	ConclusiveSince time.Time
}

// Known is all Resolve needs. Every time in it is read from this process's
// clock: no timestamp written by another process is compared with it, so
// clock skew between replicas cannot shorten a wait.
type Known struct {
	Now time.Time
	// Recorded says the resource records an intent to create that is not
	// settled: the create-pending marker not yet accounted for in status,
	// or a send time in status.
	Recorded bool
	// Horizon is the ledger's answer for the intent.
	Horizon Horizon
	Listing Listing
}

// Resolve says what is known of the users that a recorded intent may have
// made, and what to do to know more.
func Resolve(k Known) Resolution {
	switch {
	case !k.Recorded || k.Horizon.Nothing:
		return Resolution{Kind: Absent}
	case k.Listing.Own != "":
		return Resolution{Kind: Found, UserID: k.Listing.Own}
	case !k.Listing.Looked:
		// Searching before the horizon can only find, not prove absence:
		// a user already committed is adopted at once.
		return Resolution{Kind: Search, Since: k.Horizon.At}
	case !k.Listing.ConclusiveSince.IsZero() && !k.Listing.ConclusiveSince.Before(k.Horizon.At):
		// Only now: a user with the resource's own uid comes first.
		if k.Listing.SameName != "" {
			return Resolution{Kind: Found, UserID: k.Listing.SameName}
		}
		return Resolution{Kind: Absent}
	}
	// Looked at again soon, before the horizon too: a user committed
	// meanwhile is found by the next listing, and taken at once.
	return Resolution{Kind: Wait, Until: k.Now.Add(Recheck)}
}

// Horizon is when, on this process's clock, no create of an intent can be
// committed any more.
type Horizon struct {
	At time.Time
	// Nothing says that no create of the intent can have happened: this
	// process recorded it and every send was certainly not carried out.
	Nothing bool
}

// Ledger is what this process saw of the intents of resources: the
// horizon of each. It is memory only: a process that starts, or takes over
// as leader, knows nothing, and waits as if every recorded create had just
// left.
type Ledger struct {
	settle time.Duration

	mu       sync.Mutex
	horizons map[types.UID]*Horizon
}

// NewLedger returns an empty ledger for creates that Surge commits at most
// settle after they leave.
func NewLedger(settle time.Duration) *Ledger {
	return &Ledger{settle: settle, horizons: map[types.UID]*Horizon{}}
}

// Horizon returns the horizon of the resource's recorded intent. An intent
// this process did not record itself, it first sees now: its create left
// at most SendWindow after it was recorded, so before now plus SendWindow,
// as measured here, and may commit for the settle time its sender recorded,
// or this process's own if that is longer.
func (l *Ledger) Horizon(uid types.UID, now time.Time, recordedSettle time.Duration) Horizon {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.horizons[uid]
	if !ok {
		h = &Horizon{At: now.Add(SendWindow + max(l.settle, recordedSettle))}
		l.horizons[uid] = h
	}
	return *h
}

// Settle is the settle time of this process's creates, which it records
// with each.
func (l *Ledger) Settle() time.Duration { return l.settle }

// Record notes that this process records a new intent of the resource, no
// earlier one being unsettled. It returns the time by which its create
// must leave.
func (l *Ledger) Record(uid types.UID, now time.Time) (leaveBy time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.horizons[uid]; !ok {
		l.horizons[uid] = &Horizon{Nothing: true}
	}
	return now.Add(SendWindow)
}

// Fate is what the failure of a create tells of whether Surge carried it
// out: the three cases a create without an idempotency key must tell apart.
// The remote package reads it from each failure.
type Fate int

const (
	// MaybeInFlight: no answer came from Surge itself (a lost or timed-out
	// answer, a gateway's page): the create may still be committed, up to
	// the settle time after it left.
	MaybeInFlight Fate = iota
	// NotDone: certainly not carried out: held back by the client, never
	// connected, or refused by Surge with its own 4xx body.
	NotDone
	// Finished: Surge's own handler answered, so what it committed is
	// visible now and nothing of it commits later.
	Finished
)

// Sent notes what became of one create of the resource's intent: it had to
// leave by leaveBy, and its answer came at answeredAt. It returns the
// intent's horizon now.
func (l *Ledger) Sent(uid types.UID, leaveBy, answeredAt time.Time, fate Fate) Horizon {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.horizons[uid]
	if !ok {
		h = &Horizon{At: answeredAt.Add(SendWindow + l.settle)}
		l.horizons[uid] = h
	}
	switch fate {
	case NotDone:
		return *h
	case Finished:
		h.At = later(h.At, answeredAt)
	default:
		h.At = later(h.At, leaveBy.Add(l.settle))
	}
	h.Nothing = false
	return *h
}

// Forget forgets the resource's intent: status accounts for it now.
func (l *Ledger) Forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.horizons, uid)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
