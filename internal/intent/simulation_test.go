package intent

import (
	"flag"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The simulation enumerates, within bounds, every interleaving of faults
// and environment changes around one SurgeEndUser, and drives this
// package's Resolve, Ledger and Passes through them, as the reconciler
// does. Surge is a paged account that holds other users too, with offset
// cursors; the clock is simulated; one or two operator processes run, each
// with its own clock and its own memory.

var (
	simFaults  = flag.Int("sim.faults", 2, "faults and environment changes per explored run")
	simSteps   = flag.Int("sim.steps", 4, "scheduler steps per explored run, before the fault-free continuation")
	simVariant = flag.String("sim.variant", "", "run the simulation against one broken variant of the protocol, by name")
	simReplay  = flag.String("sim.replay", "", "replay one run, given as the choices a failure printed, and log its states")
)

const (
	simSettle     = 10 * time.Second
	simPageSize   = 2
	simName       = "ada"
	simContinuity = 12
	// simResync is how old the listing a resync relies on may be.
	simResync = 10 * time.Second
	callTime  = 100 * time.Millisecond
)

// A fault or an environment change, chosen at a call site.
type fault string

const (
	ok               fault = "ok"
	crashBefore      fault = "crash before"
	crashAfter       fault = "crash after"
	lostAfterCommit  fault = "answer lost after commit"
	lateWithinSettle fault = "late commit before the settle time"
	lateBeyondSettle fault = "late commit after the settle time"
	answered5xx      fault = "answered 5xx"
	answered5xxDone  fault = "answered 5xx after commit"
	answered429      fault = "429"
	refused          fault = "connection refused"
	staleRead        fault = "stale read"
	conflict         fault = "conflict"
	otherDeleted     fault = "another user deleted behind the cursor"
)

// The call sites and the faults each can meet.
var siteFaults = map[string][]fault{
	"read resource":      {ok, staleRead},
	"GET user":           {ok, answered5xx, refused, crashAfter},
	"list page":          {ok, answered5xx, answered429, otherDeleted, crashAfter},
	"POST create":        {ok, crashBefore, crashAfter, lostAfterCommit, lateWithinSettle, lateBeyondSettle, answered5xx, answered5xxDone, answered429, refused},
	"DELETE user":        {ok, crashBefore, crashAfter, lostAfterCommit, answered5xx, answered429, refused},
	"patch metadata":     {ok, crashBefore, crashAfter, conflict},
	"patch status":       {ok, crashBefore, crashAfter},
	"remove finalizer":   {ok, crashBefore, crashAfter, conflict},
	"environment change": {"resource deleted", "resource replaced", "resource restored", "failover, clock +30s", "failover, clock -30s", "other user deleted", "its user deleted in Surge"},
}

// Scheduler steps, which cost no fault.
var schedulerSteps = []string{"reconcile", "2s pass", "the settle time passes"}

type simUser struct {
	id, uid, name string
}

type simStatus struct {
	userID, createMarker string
	sentAt, ready        bool
}

type simObject struct {
	uid       types.UID
	rv        int
	marker    string
	finalizer bool
	deleting  bool
	status    simStatus
}

type commit struct {
	at     time.Duration
	user   simUser
	beyond bool
}

type process struct {
	skew   time.Duration
	ledger *Ledger
	passes *Passes
	// known is the process's index: user ids by name tag.
	known map[string][]string
}

type world struct {
	e       *explorer
	variant string

	now     time.Duration
	users   []simUser
	nextID  int
	pending []commit
	// beyond are users committed past the settle time's bound.
	beyond map[string]bool

	obj     *simObject
	history []simObject
	nextUID int
	gone    bool

	procs  [2]*process
	leader int

	violation string
}

var epoch = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func newWorld(e *explorer, variant string) *world {
	w := &world{e: e, variant: variant, beyond: map[string]bool{}}
	for _, other := range []string{"o1", "o2", "o3"} {
		w.addUser(simUser{uid: "uid-" + other, name: other})
	}
	w.procs[0] = w.newProcess(0)
	w.procs[1] = w.newProcess(0)
	w.obj = &simObject{uid: w.newUID(), rv: 1}
	w.history = append(w.history, *w.obj)
	return w
}

func (w *world) newProcess(skew time.Duration) *process {
	settle := simSettle
	if w.variant == "no-settle-wait" {
		settle = 0
	}
	return &process{skew: skew, ledger: NewLedger(settle), passes: NewPasses(), known: map[string][]string{}}
}

func (w *world) newUID() types.UID {
	w.nextUID++
	return types.UID(fmt.Sprintf("uid-%d", w.nextUID))
}

func (w *world) addUser(u simUser) simUser {
	w.nextID++
	u.id = fmt.Sprintf("usr_%d", w.nextID)
	w.users = append(w.users, u)
	return u
}

func (w *world) userByID(id string) (simUser, bool) {
	for _, u := range w.users {
		if u.id == id {
			return u, true
		}
	}
	return simUser{}, false
}

func (w *world) removeUser(id string) bool {
	for i, u := range w.users {
		if u.id == id {
			w.users = slices.Delete(w.users, i, i+1)
			return true
		}
	}
	return false
}

func (w *world) clock(p *process) time.Time { return epoch.Add(w.now + p.skew) }

// advance moves the true clock on and lands the commits that are due.
func (w *world) advance(d time.Duration) {
	w.now += d
	var still []commit
	for _, c := range w.pending {
		if c.at > w.now {
			still = append(still, c)
			continue
		}
		u := w.addUser(c.user)
		if c.beyond {
			w.beyond[u.id] = true
		}
	}
	w.pending = still
}

// crashed ends the reconcile: the process restarts with an empty memory.
type crashed struct{}

// interrupted ends the reconcile with an error; it is tried again later.
type interrupted struct{}

func (w *world) restart() { w.procs[w.leader] = w.newProcess(w.procs[w.leader].skew) }

// choose takes the fault a call meets. Every call takes a moment of the
// true clock, so that what happens in one reconcile is ordered in time.
func (w *world) choose(site string) fault {
	w.advance(callTime)
	faults := siteFaults[site]
	return faults[w.e.choose(len(faults), 1, site)]
}

// The Kubernetes side.

func (w *world) read() (simObject, bool) {
	if w.obj == nil {
		return simObject{}, false
	}
	if w.choose("read resource") == staleRead {
		// A cache can lag by any number of versions: the oldest of this
		// object is the stalest.
		for _, old := range w.history {
			if old.uid == w.obj.uid {
				return old, true
			}
		}
	}
	return *w.obj, true
}

func (w *world) stored() {
	w.obj.rv++
	w.history = append(w.history, *w.obj)
}

// patchMetadata writes the marker and the finalizer under an optimistic
// lock, unless the variant drops the lock.
func (w *world) patchMetadata(site string, obj *simObject, mutate func(*simObject)) {
	f := w.choose(site)
	if f == crashBefore {
		panic(crashed{})
	}
	if w.obj == nil || w.obj.uid != obj.uid || f == conflict || (w.obj.rv != obj.rv && w.variant != "no-write-guard") {
		panic(interrupted{})
	}
	mutate(w.obj)
	w.stored()
	// The answer's status may lag behind what the reconcile has learnt.
	status := obj.status
	*obj = *w.obj
	obj.status = status
	if w.obj.deleting && !w.obj.finalizer {
		// The last finalizer gone, Kubernetes deletes the object.
		w.obj, w.gone = nil, true
		w.check()
	}
	if f == crashAfter {
		panic(crashed{})
	}
}

// patchStatus merges the status fields that changed from base into the
// stored object of the same name, as a merge patch without a lock does.
func (w *world) patchStatus(base simStatus, obj *simObject) {
	f := w.choose("patch status")
	if f == crashBefore {
		panic(crashed{})
	}
	if w.obj == nil {
		panic(interrupted{})
	}
	s, n := &w.obj.status, obj.status
	if n.userID != base.userID {
		s.userID = n.userID
	}
	if n.createMarker != base.createMarker {
		s.createMarker = n.createMarker
	}
	if n.sentAt != base.sentAt {
		s.sentAt = n.sentAt
	}
	if n.ready != base.ready {
		s.ready = n.ready
	}
	w.stored()
	obj.rv = w.obj.rv
	w.checkReady()
	if f == crashAfter {
		panic(crashed{})
	}
	w.check()
}

// checkReady holds the operator to what it writes: Ready=True names a user
// that exists and carries the resource's identity when it is written. A
// user deleted outside the operator afterwards is seen at the next check. A
// resource being deleted is Terminating, whatever its conditions say.
func (w *world) checkReady() {
	if w.violation != "" || w.obj.deleting || !w.obj.status.ready {
		return
	}
	if u, found := w.userByID(w.obj.status.userID); !found || u.name != simName {
		w.violation = fmt.Sprintf("Ready=True written with user %q, which does not exist or is not ours", w.obj.status.userID)
	}
}

// The Surge side.

func (w *world) getUser(id string) bool {
	switch w.choose("GET user") {
	case answered5xx, refused:
		panic(interrupted{})
	case crashAfter:
		panic(crashed{})
	}
	_, found := w.userByID(id)
	return found
}

func (w *world) deleteUser(id string) {
	f := w.choose("DELETE user")
	switch f {
	case crashBefore:
		panic(crashed{})
	case answered5xx, answered429, refused:
		panic(interrupted{})
	}
	w.removeUser(id)
	switch f {
	case crashAfter:
		panic(crashed{})
	case lostAfterCommit:
		panic(interrupted{})
	}
}

// create sends a create and returns the new user's id, or the fate of a
// create that failed.
func (w *world) create(p *process, obj simObject) (string, Fate) {
	f := w.choose("POST create")
	user := simUser{uid: string(obj.uid), name: simName}
	switch f {
	case crashBefore:
		panic(crashed{})
	case ok:
		return w.addUser(user).id, NotDone
	case crashAfter:
		w.addUser(user)
		panic(crashed{})
	case lostAfterCommit:
		w.addUser(user)
		return "", MaybeInFlight
	case lateWithinSettle:
		w.pending = append(w.pending, commit{at: w.now + simSettle - time.Second, user: user})
		return "", MaybeInFlight
	case lateBeyondSettle:
		w.pending = append(w.pending, commit{at: w.now + simSettle + SendWindow + 5*time.Second, user: user, beyond: true})
		return "", MaybeInFlight
	case answered5xxDone:
		w.addUser(user)
		return "", Finished
	case answered5xx:
		return "", Finished
	}
	return "", NotDone
}

// lookup lists the account, as the identity index does, and returns the
// live users tagged with the name: a listing that cannot be conclusive for
// since yet runs once, to find; another runs until one is, at most twice.
func (w *world) lookup(p *process, since time.Time) []string {
	for range 2 {
		if conclusive := p.passes.ConclusiveSince(); !conclusive.IsZero() && !conclusive.Before(since) {
			break
		}
		pass := p.passes.Begin(w.clock(p))
		listed := map[string][]string{}
		complete := true
		for offset := 0; ; offset += simPageSize {
			switch w.choose("list page") {
			case answered5xx, answered429:
				complete = false
			case crashAfter:
				panic(crashed{})
			case otherDeleted:
				w.deleteOtherBehind(offset)
			}
			if !complete {
				break
			}
			end := min(offset+simPageSize, len(w.users))
			for _, u := range w.users[min(offset, end):end] {
				pass.Saw(u.id)
				listed[u.name] = append(listed[u.name], u.id)
			}
			if end >= len(w.users) {
				break
			}
		}
		if !complete {
			break
		}
		for name, ids := range listed {
			for _, id := range ids {
				if !slices.Contains(p.known[name], id) {
					p.known[name] = append(p.known[name], id)
				}
			}
		}
		if w.variant == "trust-one-pass" {
			p.passes.conclusiveSince = later(p.passes.conclusiveSince, pass.start)
			p.passes.lastStart, p.passes.lastSeen = pass.start, pass.seen
		} else {
			p.passes.Complete(pass)
		}
		if since.After(w.clock(p)) {
			break
		}
	}
	var live []string
	for _, id := range p.known[simName] {
		if _, found := w.userByID(id); found {
			live = append(live, id)
		}
	}
	p.known[simName] = live
	return live
}

// deleteOtherBehind deletes, for someone else, another user on a page the
// listing has passed.
func (w *world) deleteOtherBehind(offset int) {
	for i := 0; i < offset && i < len(w.users); i++ {
		if w.users[i].name != simName {
			w.users = slices.Delete(w.users, i, i+1)
			return
		}
	}
}

// The operator's steps, as the reconciler takes them.

func (w *world) recorded(obj simObject) bool {
	switch w.variant {
	case "status-mirror-only":
		return obj.status.sentAt
	case "annotation-mirror-only":
		return obj.marker != "" && obj.marker != obj.status.createMarker
	}
	return Record{
		SentAt:       obj.status.sentAt,
		Marker:       obj.marker,
		CreateMarker: obj.status.createMarker,
		Finalizer:    obj.finalizer,
		UserID:       obj.status.userID,
	}.Unsettled()
}

// resolve is the reconciler's resolveIntent.
func (w *world) resolve(p *process, obj simObject) Resolution {
	now := w.clock(p)
	known := Known{Now: now, Recorded: w.recorded(obj)}
	if known.Recorded {
		known.Horizon = p.ledger.Horizon(obj.uid, now, 0)
		if w.variant == "inherit-nothing" && !known.Horizon.Nothing && known.Horizon.At.Sub(now) == SendWindow+simSettle {
			known.Horizon = Horizon{Nothing: true}
		}
	}
	resolution := Resolve(known)
	if resolution.Kind != Search {
		return resolution
	}
	ids := w.lookup(p, resolution.Since)
	known.Listing = Listing{Looked: true}
	if conclusive := p.passes.ConclusiveSince(); !conclusive.IsZero() && !conclusive.Before(resolution.Since) {
		known.Listing.ConclusiveSince = resolution.Since
	}
	for _, id := range ids {
		u, _ := w.userByID(id)
		if u.uid == string(obj.uid) {
			known.Listing.Own = id
			break
		}
	}
	if known.Listing.Own == "" && !known.Listing.ConclusiveSince.IsZero() && len(ids) > 0 {
		known.Listing.SameName = ids[0]
	}
	if w.variant == "absent-before-horizon" && known.Listing.Own == "" && len(ids) == 0 {
		return Resolution{Kind: Absent}
	}
	known.Now = w.clock(p)
	return Resolve(known)
}

func (w *world) settle(p *process, obj *simObject, userID string) {
	obj.status.sentAt = false
	obj.status.createMarker = obj.marker
	obj.status.userID = userID
	p.ledger.Forget(obj.uid)
}

func (w *world) reconcile() {
	p := w.procs[w.leader]
	obj, exists := w.read()
	if !exists {
		return
	}
	base := obj.status
	if obj.deleting {
		w.reconcileDelete(p, obj)
		return
	}
	if obj.status.userID != "" {
		if w.getUser(obj.status.userID) {
			w.removeCopies(p, obj)
			if !obj.status.ready {
				obj.status.ready = true
				w.patchStatus(base, &obj)
			}
			return
		}
		obj.status.userID = ""
		if w.variant != "ready-while-recreating" {
			obj.status.ready = false
		}
	}
	if w.recorded(obj) {
		resolution := w.resolve(p, obj)
		switch resolution.Kind {
		case Wait:
			if w.variant == "settle-on-wait" {
				w.settle(p, &obj, "")
				break
			}
			obj.status.ready = false
			w.patchStatus(base, &obj)
			return
		case Found:
			w.settle(p, &obj, resolution.UserID)
			obj.status.ready = true
			w.patchStatus(base, &obj)
			return
		default:
			w.settle(p, &obj, "")
		}
	} else if ids := w.lookup(p, time.Time{}); len(ids) > 0 {
		// A user of an earlier resource of the same name: the reconciler's
		// findUserOfSameName.
		obj.status.userID, obj.status.ready = ids[0], true
		w.patchStatus(base, &obj)
		return
	}
	w.createUser(p, base, obj)
}

func (w *world) createUser(p *process, base simStatus, obj simObject) {
	w.patchMetadata("patch metadata", &obj, func(o *simObject) {
		o.finalizer = w.variant != "finalizer-after-create"
		o.marker = fmt.Sprintf("m%d", w.now/callTime)
	})
	// Only a write under the lock shows that the read was current.
	leaveBy := p.ledger.Record(obj.uid, w.clock(p))
	obj.status.sentAt = true
	obj.status.createMarker = obj.marker
	w.patchStatus(base, &obj)
	base = obj.status
	id, fate := w.create(p, obj)
	if id == "" {
		switch w.variant {
		case "gateway-answer-is-final":
			if fate == MaybeInFlight {
				fate = Finished
			}
		case "lost-answer-is-not-done":
			fate = NotDone
		}
		if horizon := p.ledger.Sent(obj.uid, leaveBy, w.clock(p), fate); fate == NotDone && horizon.Nothing {
			obj.status.sentAt = false
			w.patchStatus(base, &obj)
		}
		return
	}
	if !obj.finalizer {
		w.patchMetadata("patch metadata", &obj, func(o *simObject) { o.finalizer = true })
	}
	obj.status.userID, obj.status.sentAt, obj.status.ready = id, false, true
	p.ledger.Forget(obj.uid)
	p.known[simName] = append(p.known[simName], id)
	w.patchStatus(base, &obj)
}

// removeCopies deletes the users that carry the uid of the resource, or of
// the user status names, other than that user: creates committed past every
// bound. Users of other uids, such as one a person left on purpose with
// deletionPolicy Orphan, are not copies.
func (w *world) removeCopies(p *process, obj simObject) {
	named, _ := w.userByID(obj.status.userID)
	for _, id := range w.lookup(p, w.clock(p).Add(-simResync)) {
		if id == obj.status.userID {
			continue
		}
		if u, found := w.userByID(id); found && IsCopy(u.uid, string(obj.uid), named.uid) {
			w.deleteUser(id)
		}
	}
}

func (w *world) reconcileDelete(p *process, obj simObject) {
	if !obj.finalizer {
		return
	}
	if obj.status.userID != "" {
		w.deleteUser(obj.status.userID)
	}
	// Every user the intent may have made goes: one found is deleted, and
	// the intent resolved again, until its users are known to be absent.
	for w.variant != "release-before-resolving" {
		resolution := w.resolve(p, obj)
		if resolution.Kind == Wait {
			return
		}
		if resolution.Kind == Absent {
			break
		}
		w.deleteUser(resolution.UserID)
	}
	p.ledger.Forget(obj.uid)
	w.patchMetadata("remove finalizer", &obj, func(o *simObject) { o.finalizer = false })
}

func (w *world) environment() {
	changes := siteFaults["environment change"]
	f := changes[w.e.choose(len(changes), len(changes), "environment change")]
	switch f {
	case "resource deleted":
		if w.obj != nil && w.obj.finalizer {
			w.obj.deleting = true
			w.stored()
		} else {
			w.obj, w.gone = nil, true
		}
	case "resource replaced":
		if w.obj != nil {
			w.obj.marker = ""
			w.stored()
		}
	case "resource restored":
		if w.obj != nil && !w.obj.deleting {
			restored := simObject{uid: w.newUID(), rv: w.obj.rv + 1, marker: w.obj.marker, finalizer: w.obj.finalizer}
			w.obj = &restored
			w.history = append(w.history, restored)
		}
	case "failover, clock +30s", "failover, clock -30s":
		skew := 30 * time.Second
		if f == "failover, clock -30s" {
			skew = -skew
		}
		w.leader = 1 - w.leader
		w.procs[w.leader] = w.newProcess(skew)
	case "other user deleted":
		w.deleteOtherBehind(len(w.users))
	case "its user deleted in Surge":
		if w.obj != nil {
			w.removeUser(w.obj.status.userID)
		}
	}
}

// step runs one scheduler step; an environment change spends a fault.
func (w *world) step() {
	switch w.e.choose(len(schedulerSteps)+1, len(schedulerSteps), "scheduler") {
	case 0:
		w.run(w.reconcile)
	case 1:
		w.advance(2 * time.Second)
	case 2:
		w.advance(simSettle + SendWindow + time.Second)
	default:
		w.environment()
	}
	w.check()
}

// run runs one reconcile, which a crash or an error may end early.
func (w *world) run(reconcile func()) {
	defer func() {
		switch recover().(type) {
		case nil, interrupted:
		case crashed:
			w.restart()
		default:
			panic("unexpected")
		}
	}()
	reconcile()
}

// Invariants.

func (w *world) ours() []simUser {
	var ours []simUser
	for _, u := range w.users {
		if u.name == simName {
			ours = append(ours, u)
		}
	}
	return ours
}

// lineage are the users that carry the resource's uid or the uid of the
// user status names. A commit past the settle time of a resource restored
// from a backup before it committed carries a uid nothing links to the
// restored resource: that copy is the one case uniqueness of the identity
// does not cover in the end (docs/architecture.md).
func (w *world) lineage() []simUser {
	named, _ := w.userByID(w.obj.status.userID)
	var users []simUser
	for _, u := range w.users {
		if u.name == simName && (u.uid == string(w.obj.uid) || u.uid == named.uid) {
			users = append(users, u)
		}
	}
	return users
}

func (w *world) beyondBoundInFlight() bool {
	for _, c := range w.pending {
		if c.beyond {
			return true
		}
	}
	return len(w.beyond) > 0
}

func (w *world) check() {
	if w.violation != "" {
		return
	}
	ours := w.ours()
	if len(ours) > 1 && !w.beyondBoundInFlight() {
		w.violation = fmt.Sprintf("two live users carry the identity: %v", ours)
		return
	}
	if w.gone {
		for _, u := range ours {
			if !w.beyond[u.id] {
				w.violation = fmt.Sprintf("the finalizer is gone, and user %s remains", u.id)
				return
			}
		}
		for _, c := range w.pending {
			if !c.beyond {
				w.violation = "the finalizer is gone, and a create of the resource is in flight"
				return
			}
		}
	}
}

// continueFaultFree reconciles without faults, letting time pass, and
// checks that the resource reaches Ready, or Gone, and that uniqueness
// holds in the end.
func (w *world) continueFaultFree() {
	w.e.frozen = true
	for range simContinuity {
		if w.violation != "" {
			return
		}
		w.advance(Recheck + time.Second)
		w.run(w.reconcile)
		w.check()
	}
	w.advance(simSettle + SendWindow + 10*time.Second)
	for range 3 {
		w.run(w.reconcile)
	}
	ours := w.ours()
	switch {
	case w.violation != "":
	case w.obj == nil:
		for _, u := range ours {
			if !w.beyond[u.id] {
				w.violation = fmt.Sprintf("gone, and user %s remains", u.id)
			}
		}
	case w.obj.deleting:
		w.violation = fmt.Sprintf("still not deleted after %d fault-free reconciles", simContinuity+3)
	case !w.obj.status.ready:
		w.violation = fmt.Sprintf("not Ready after %d fault-free reconciles", simContinuity+3)
	case len(w.lineage()) != 1:
		w.violation = fmt.Sprintf("%d users of the resource in the end: %v", len(w.lineage()), w.lineage())
	case len(ours) != 1 && !w.beyondBoundInFlight():
		w.violation = fmt.Sprintf("%d users carry the identity in the end: %v", len(ours), ours)
	}
}

func (w *world) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v|", w.users)
	if w.obj != nil {
		fmt.Fprintf(&b, "%s %v %q %v %v|", w.obj.uid, w.obj.finalizer, w.obj.marker, w.obj.deleting, w.obj.status)
	}
	fmt.Fprintf(&b, "%d %d %v|", w.now/callTime, len(w.pending), w.gone)
	for _, p := range w.procs {
		fmt.Fprintf(&b, "%v %d %v|", p.skew, len(p.ledger.horizons), p.passes.conclusiveSince.IsZero())
	}
	return b.String()
}

// The explorer enumerates choices depth first, replaying each run from the
// start with the choices of the last one up to the deepest that has an
// alternative left. Fault choices beyond the budget take the first option.

type choice struct {
	taken, width int
	label        string
}

type explorer struct {
	prefix  []choice
	taken   []choice
	faults  int
	budget  int
	frozen  bool
	covered map[string]bool
}

// choose takes one of width options. The first free ones cost nothing; the
// others spend a fault, and are not offered once the budget is spent.
func (e *explorer) choose(width, free int, label string) int {
	if e.frozen {
		return 0
	}
	if e.faults >= e.budget {
		width = free
	}
	c := 0
	if pos := len(e.taken); pos < len(e.prefix) {
		c = e.prefix[pos].taken
	}
	if c >= free {
		e.faults++
	}
	e.taken = append(e.taken, choice{taken: c, width: width, label: label})
	if faults, isSite := siteFaults[label]; isSite {
		e.covered[label+" × "+string(faults[c])] = true
	}
	return c
}

// next sets the prefix of the next run, and reports false when none is left.
func (e *explorer) next() bool {
	for i := len(e.taken) - 1; i >= 0; i-- {
		if e.taken[i].taken+1 < e.taken[i].width {
			e.prefix = append(e.taken[:i:i], choice{taken: e.taken[i].taken + 1})
			e.taken, e.faults, e.frozen = nil, 0, false
			return true
		}
	}
	return false
}

type figures struct {
	runs, states, checks int
	covered              map[string]bool
	counterexample       []string
	choices              string
	violation            string
}

// explore runs every interleaving within the bounds against variant.
func explore(variant string, faults, steps int) figures {
	e := &explorer{budget: faults, covered: map[string]bool{}}
	states := map[uint64]struct{}{}
	seed := maphash.MakeSeed()
	fig := figures{covered: e.covered}
	for {
		w := newWorld(e, variant)
		for range steps {
			w.step()
			fig.checks++
			states[maphash.String(seed, w.fingerprint())] = struct{}{}
			if w.violation != "" {
				break
			}
		}
		if w.violation == "" {
			w.continueFaultFree()
			fig.checks++
		}
		fig.runs++
		if w.violation != "" {
			fig.violation = w.violation
			fig.counterexample = e.trace()
			fig.choices = e.choices()
			break
		}
		if !e.next() {
			break
		}
	}
	fig.states = len(states)
	return fig
}

// trace is the run's choices as steps a person can read and replay: the
// scheduler's steps and the faults, leaving out the calls that went well.
func (e *explorer) trace() []string {
	var steps []string
	for _, c := range e.taken {
		switch {
		case c.label == "scheduler" && c.taken < len(schedulerSteps):
			steps = append(steps, schedulerSteps[c.taken])
		case c.label == "scheduler":
		case c.label == "environment change":
			steps = append(steps, string(siteFaults[c.label][c.taken]))
		case c.taken > 0:
			steps = append(steps, fmt.Sprintf("%s: %s", c.label, siteFaults[c.label][c.taken]))
		}
	}
	return steps
}

// choices is the run as the choices taken, which -sim.replay takes.
func (e *explorer) choices() string {
	taken := make([]string, len(e.taken))
	for i, c := range e.taken {
		taken[i] = fmt.Sprint(c.taken)
	}
	return strings.Join(taken, ",")
}

// replay runs the choices once, logging the world after every step.
func replay(t *testing.T, variant, choices string, steps int) {
	e := &explorer{budget: len(choices), covered: map[string]bool{}}
	for _, c := range strings.Split(choices, ",") {
		var taken int
		fmt.Sscan(c, &taken)
		e.prefix = append(e.prefix, choice{taken: taken})
	}
	w := newWorld(e, variant)
	for range steps {
		before := len(e.taken)
		w.step()
		t.Logf("%v → %s", e.takenSince(before), w.fingerprint())
	}
	w.continueFaultFree()
	t.Logf("after the fault-free continuation: %s; violation: %q", w.fingerprint(), w.violation)
}

func (e *explorer) takenSince(i int) []string {
	var labels []string
	for _, c := range e.taken[i:] {
		if faults, isSite := siteFaults[c.label]; isSite {
			labels = append(labels, c.label+": "+string(faults[c.taken]))
		} else {
			labels = append(labels, fmt.Sprintf("%s %d", c.label, c.taken))
		}
	}
	return labels
}

func coverage(covered map[string]bool) (int, int, []string) {
	total, hit := 0, 0
	var missing []string
	for site, faults := range siteFaults {
		for _, f := range faults {
			total++
			if covered[site+" × "+string(f)] {
				hit++
			} else {
				missing = append(missing, site+" × "+string(f))
			}
		}
	}
	slices.Sort(missing)
	return hit, total, missing
}

func TestSimulationOfTheCreateProtocol(t *testing.T) {
	if *simReplay != "" {
		replay(t, *simVariant, *simReplay, *simSteps)
		return
	}
	start := time.Now()
	fig := explore(*simVariant, *simFaults, *simSteps)
	if fig.violation != "" {
		t.Fatalf("%s, after these steps (replay with -sim.variant=%q -sim.steps=%d -sim.replay=%s):\n  %s",
			fig.violation, *simVariant, *simSteps, fig.choices, strings.Join(fig.counterexample, "\n  "))
	}
	hit, total, missing := coverage(fig.covered)
	t.Logf("bounds: %d faults, %d steps; %d runs, %d distinct states, %d invariant checks, call site × fault coverage %d/%d, in %s",
		*simFaults, *simSteps, fig.runs, fig.states, fig.checks, hit, total, time.Since(start).Round(time.Millisecond))
	if hit != total {
		t.Errorf("call sites × faults never explored: %v", missing)
	}
}

// brokenVariants are mistakes the protocol could make; the simulation must
// catch each with a short counterexample.
var brokenVariants = []string{
	"no-settle-wait",
	"trust-one-pass",
	"finalizer-after-create",
	"release-before-resolving",
	"no-write-guard",
	"gateway-answer-is-final",
	"lost-answer-is-not-done",
	"inherit-nothing",
	"settle-on-wait",
	"absent-before-horizon",
	"status-mirror-only",
	"annotation-mirror-only",
	"ready-while-recreating",
}

func TestEveryBrokenVariantIsCaught(t *testing.T) {
	if *simVariant != "" {
		t.Skip("one variant runs in TestSimulationOfTheCreateProtocol")
	}
	for _, variant := range brokenVariants {
		t.Run(variant, func(t *testing.T) {
			// The bounds deepen until the variant is caught: the first
			// counterexample found is among the shortest.
			var fig figures
			for _, bound := range []struct{ faults, steps int }{{2, 4}, {3, 5}} {
				if fig = explore(variant, bound.faults, bound.steps); fig.violation != "" {
					break
				}
			}
			if fig.violation == "" {
				t.Fatalf("not caught in %d runs", fig.runs)
			}
			if len(fig.counterexample) > 15 {
				t.Errorf("counterexample of %d steps, want at most 15", len(fig.counterexample))
			}
			t.Logf("caught after %d runs: %s, after:\n  %s", fig.runs, fig.violation, strings.Join(fig.counterexample, "\n  "))
		})
	}
}
