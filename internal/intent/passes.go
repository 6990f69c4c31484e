package intent

import (
	"hash/maphash"
	"time"
)

// Passes follows the complete passes over one account's pages and says
// since when a listing proves that a user is absent.
//
// Surge's cursors are opaque and may encode an offset: a user deleted behind
// the cursor shifts the rest of the list back, and the pass skips the user
// that moved onto the page it already read. One complete pass therefore
// proves nothing when a deletion overlapped it. Every deletion that can
// make a pass skip a user is of a user the pass had already listed, so a
// pass is conclusive once the next complete pass lists every user it
// listed: no such deletion can have happened during it.
type Passes struct {
	seed maphash.Seed

	lastStart time.Time
	lastSeen  map[uint64]struct{}
	// conclusiveSince is the start of the latest conclusive pass.
	conclusiveSince time.Time
}

// NewPasses returns the passes of an account that has not been listed yet.
func NewPasses() *Passes { return &Passes{seed: maphash.MakeSeed()} }

// Pass is the set of users one pass listed, kept as hashes of their ids.
type Pass struct {
	start time.Time
	seen  map[uint64]struct{}
	seed  maphash.Seed
}

// Begin starts a pass at start.
func (p *Passes) Begin(start time.Time) *Pass {
	return &Pass{start: start, seen: map[uint64]struct{}{}, seed: p.seed}
}

// Saw records a user the pass listed.
func (pass *Pass) Saw(userID string) { pass.seen[maphash.String(pass.seed, userID)] = struct{}{} }

// Complete records that pass listed the last page, and returns since when
// a listing is conclusive: zero while none is.
func (p *Passes) Complete(pass *Pass) time.Time {
	if p.lastSeen != nil && pass.start.After(p.lastStart) && containsAll(pass.seen, p.lastSeen) {
		p.conclusiveSince = later(p.conclusiveSince, p.lastStart)
	}
	p.lastStart, p.lastSeen = pass.start, pass.seen
	return p.conclusiveSince
}

// Listed says whether the last complete pass listed the user. When that
// pass confirmed the conclusive one, every user that existed throughout the
// conclusive pass is in it.
func (p *Passes) Listed(userID string) bool {
	_, listed := p.lastSeen[maphash.String(p.seed, userID)]
	return listed
}

// ConclusiveSince is the start of the latest conclusive pass, zero when
// none is.
func (p *Passes) ConclusiveSince() time.Time { return p.conclusiveSince }

func containsAll(set, subset map[uint64]struct{}) bool {
	for hash := range subset {
		if _, ok := set[hash]; !ok {
			return false
		}
	}
	return true
}
