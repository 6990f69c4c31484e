package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// The simulation enumerates, within bounds, every interleaving of faults
// and environment changes around one SurgeEndUser. The operator processes
// in it run the real code of both halves of the create protocol: the
// decisions of package intent (Resolve, Ledger, Record, IsCopy), and this
// package's EndUser verbs, identity index (its background passes, offset
// paging and conclusive passes) and classification of failures, over a
// real Surge client whose HTTP transport is the simulated account. The
// reconciler's steps around them (read, record, send, settle, delete,
// remove copies) are written out here in the order the reconciler takes
// them; Kubernetes is modelled. Time is testing/synctest's: a wait of the
// client or the index takes no time on the machine, and only one goroutine
// runs at a time, so that every run replays exactly.

var (
	simFaults  = flag.Int("sim.faults", 2, "faults and environment changes per explored run")
	simSteps   = flag.Int("sim.steps", 4, "scheduler steps per explored run, before the fault-free continuation")
	simVariant = flag.String("sim.variant", "", "run the simulation against one broken variant of the protocol, by name")
	simReplay  = flag.String("sim.replay", "", "replay one run, given as the choices a failure printed, and log its states")
)

const (
	simSettle = 10 * time.Second
	// simAttemptTimeout is the client's attempt timeout; the settle time
	// is twice it, as the operator's defaults are.
	simAttemptTimeout = simSettle / 2
	simPageSize       = 2
	simNamespace      = "team-a"
	simName           = "ada"
	simAccount        = "acct_sim"
	simContinuity     = 12
	// simResync is how old the listing a resync relies on may be.
	simResync = 10 * time.Second
	// simLookupWait lets every lookup wait for its listing to end. The
	// reconciler waits at most IdentityWait and looks again later; a
	// listing that outlives its reconcile would run beside the next steps,
	// and the simulation runs one goroutine at a time.
	simLookupWait = time.Hour
	callTime      = 100 * time.Millisecond
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
	gatewayPage      fault = "gateway 502, committed late"
	answered5xx      fault = "answered 5xx"
	answered5xxDone  fault = "answered 5xx after commit"
	answered429      fault = "429"
	refused          fault = "connection refused"
	staleRead        fault = "stale read"
	conflict         fault = "conflict"
	otherDeleted     fault = "another user deleted behind the cursor"
)

// The call sites and the faults each can meet. The Surge calls are the
// requests the real client sends.
var siteFaults = map[string][]fault{
	"read resource":      {ok, staleRead},
	"GET user":           {ok, answered5xx, refused, crashAfter},
	"list page":          {ok, answered5xx, answered429, otherDeleted, crashAfter},
	"POST create":        {ok, crashBefore, crashAfter, lostAfterCommit, lateWithinSettle, lateBeyondSettle, gatewayPage, answered5xx, answered5xxDone, answered429, refused},
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

// process is one operator process: its clock, its memory, and the Surge
// side of the resource as the reconciler gets it from a Connector.
type process struct {
	skew   time.Duration
	ledger *intent.Ledger
	index  *identityIndex
	user   *EndUser
	ctx    context.Context
	stop   context.CancelFunc
	dead   atomic.Bool
}

// skewedClock is a process's clock: the bubble's, off by its skew.
type skewedClock struct{ skew time.Duration }

func (c skewedClock) Now() time.Time                  { return time.Now().Add(c.skew) }
func (c skewedClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

type world struct {
	e       *explorer
	variant string

	start   time.Time
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

func newWorld(e *explorer, variant string) *world {
	w := &world{e: e, variant: variant, start: time.Now(), beyond: map[string]bool{}}
	for _, other := range []string{"o1", "o2"} {
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
	ctx, stop := context.WithCancel(context.Background())
	p := &process{skew: skew, ledger: intent.NewLedger(settle), ctx: ctx, stop: stop}
	p.index = newIdentityIndex(skewedClock{skew}, DefaultIdentityBudget)
	p.index.ctx = ctx
	client, err := surge.New("https://surge.invalid", "sk_simulated",
		surge.WithHTTPClient(&http.Client{Transport: simTransport{w: w, p: p}}),
		surge.WithTimeout(simAttemptTimeout),
		// The client's own retries are its tests' concern; with them, its
		// jittered backoff would make runs differ.
		surge.WithMaxRetries(0))
	if err != nil {
		panic(err)
	}
	rotating := &rotatingClient{}
	rotating.current.Store(client)
	p.user = &EndUser{
		client:   rotating,
		index:    p.index,
		account:  accountScope{scope: "project", accountID: simAccount},
		identity: types.NamespacedName{Namespace: simNamespace, Name: simName},
	}
	return p
}

// end stops a process for good: what it still runs touches nothing.
func (p *process) end() {
	p.dead.Store(true)
	p.stop()
}

// alive ends the reconcile if its process crashed during the last call.
func (p *process) alive() {
	if p.dead.Load() {
		panic(crashed{})
	}
}

func (p *process) clock() time.Time { return time.Now().Add(p.skew) }

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

func (w *world) elapsed() time.Duration { return time.Since(w.start) }

// advance lets time pass and lands the commits that are due.
func (w *world) advance(d time.Duration) {
	time.Sleep(d)
	w.land()
}

func (w *world) land() {
	var still []commit
	for _, c := range w.pending {
		if c.at > w.elapsed() {
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

func (w *world) restart() {
	w.procs[w.leader].end()
	w.procs[w.leader] = w.newProcess(w.procs[w.leader].skew)
}

// choose takes the fault a call meets. Every call takes a moment, so that
// what happens in one reconcile is ordered in time.
func (w *world) choose(site string) fault {
	w.advance(callTime)
	faults := siteFaults[site]
	return faults[w.e.choose(len(faults), 1, site)]
}

// The Surge side: the account, answering the real client's requests.

// simTransport is the HTTP transport of one process's client: every
// request reaches the simulated account, and meets the fault the explorer
// chooses for its call site.
type simTransport struct {
	w *world
	p *process
}

var errProcessEnded = fmt.Errorf("the process ended")

func (t simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer func() { _ = req.Body.Close() }()
	}
	if t.p.dead.Load() {
		return nil, errProcessEnded
	}
	w := t.w
	path := strings.TrimPrefix(req.URL.Path, "/")
	switch {
	case req.Method == http.MethodPost && path == "accounts/"+simAccount+"/users":
		return w.serveCreate(t.p, req)
	case req.Method == http.MethodGet && path == "accounts/"+simAccount+"/users":
		return w.servePage(t.p, req)
	case req.Method == http.MethodGet && strings.HasPrefix(path, "users/"):
		return w.serveGet(t.p, req, strings.TrimPrefix(path, "users/"))
	case req.Method == http.MethodDelete && strings.HasPrefix(path, "users/"):
		return w.serveDelete(t.p, req, strings.TrimPrefix(path, "users/"))
	}
	panic("the simulation does not serve " + req.Method + " " + req.URL.Path)
}

// connectionRefused is what dialling a port nobody listens on returns.
var connectionRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// answer is a response of Surge itself, or of a gateway when body is text.
func answer(req *http.Request, status int, body any, header http.Header) *http.Response {
	var raw []byte
	if text, isText := body.(string); isText {
		raw = []byte(text)
	} else if body != nil {
		raw, _ = json.Marshal(body)
	}
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, Body: io.NopCloser(bytes.NewReader(raw)), ContentLength: int64(len(raw)), Request: req,
	}
}

type wireError struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

type wirePage struct {
	Data       []surge.User `json:"data"`
	Pagination struct {
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

func surgeError(req *http.Request, status int, errorType string) *http.Response {
	var body wireError
	body.Error.Type, body.Error.Message = errorType, "simulated "+errorType
	header := http.Header{}
	if status == http.StatusTooManyRequests {
		header.Set("Retry-After", "1")
	}
	return answer(req, status, body, header)
}

func wireUser(u simUser) surge.User {
	metadata := map[string]string{surgev1alpha1.MetadataNamespace: simNamespace, surgev1alpha1.MetadataName: u.name}
	if u.uid != "" {
		metadata[surgev1alpha1.MetadataUID] = u.uid
	}
	return surge.User{ID: u.id, FirstName: u.name, Metadata: metadata}
}

// crash ends the process whose request this is.
func (w *world) crash(p *process) (*http.Response, error) {
	p.end()
	return nil, errProcessEnded
}

func (w *world) serveCreate(p *process, req *http.Request) (*http.Response, error) {
	var body struct {
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		panic(err)
	}
	user := simUser{uid: body.Metadata[surgev1alpha1.MetadataUID], name: body.Metadata[surgev1alpha1.MetadataName]}
	switch w.choose("POST create") {
	case ok:
		return answer(req, http.StatusCreated, wireUser(w.addUser(user)), nil), nil
	case crashBefore:
		return w.crash(p)
	case crashAfter:
		w.addUser(user)
		return w.crash(p)
	case lostAfterCommit:
		w.addUser(user)
		return nil, io.ErrUnexpectedEOF
	case lateWithinSettle:
		w.pending = append(w.pending, commit{at: w.elapsed() + simSettle - time.Second, user: user})
		// No answer comes: the attempt times out.
		<-req.Context().Done()
		return nil, req.Context().Err()
	case lateBeyondSettle:
		w.pending = append(w.pending, commit{at: w.elapsed() + simSettle + intent.SendWindow + 5*time.Second, user: user, beyond: true})
		<-req.Context().Done()
		return nil, req.Context().Err()
	case gatewayPage:
		w.pending = append(w.pending, commit{at: w.elapsed() + simSettle - 2*time.Second, user: user})
		return answer(req, http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>", nil), nil
	case answered5xxDone:
		w.addUser(user)
		return surgeError(req, http.StatusInternalServerError, "internal_error"), nil
	case answered5xx:
		return surgeError(req, http.StatusInternalServerError, "internal_error"), nil
	case answered429:
		return surgeError(req, http.StatusTooManyRequests, "rate_limited"), nil
	}
	return nil, connectionRefused
}

// servePage answers a page of the account, two users a page, with the
// offset of the next page as its cursor.
func (w *world) servePage(p *process, req *http.Request) (*http.Response, error) {
	offset := 0
	if after := req.URL.Query().Get("after"); after != "" {
		offset, _ = strconv.Atoi(after)
	}
	switch w.choose("list page") {
	case answered5xx:
		return surgeError(req, http.StatusInternalServerError, "internal_error"), nil
	case answered429:
		return surgeError(req, http.StatusTooManyRequests, "rate_limited"), nil
	case crashAfter:
		return w.crash(p)
	case otherDeleted:
		w.deleteOtherBehind(offset)
	}
	end := min(offset+simPageSize, len(w.users))
	page := wirePage{Data: []surge.User{}}
	for _, u := range w.users[min(offset, end):end] {
		page.Data = append(page.Data, wireUser(u))
	}
	if end < len(w.users) {
		cursor := strconv.Itoa(end)
		page.Pagination.NextCursor = &cursor
	}
	return answer(req, http.StatusOK, page, nil), nil
}

func (w *world) serveGet(p *process, req *http.Request, id string) (*http.Response, error) {
	switch w.choose("GET user") {
	case answered5xx:
		return surgeError(req, http.StatusInternalServerError, "internal_error"), nil
	case refused:
		return nil, connectionRefused
	case crashAfter:
		return w.crash(p)
	}
	u, found := w.userByID(id)
	if !found {
		return surgeError(req, http.StatusNotFound, "not_found"), nil
	}
	return answer(req, http.StatusOK, wireUser(u), nil), nil
}

func (w *world) serveDelete(p *process, req *http.Request, id string) (*http.Response, error) {
	f := w.choose("DELETE user")
	switch f {
	case crashBefore:
		return w.crash(p)
	case answered5xx:
		return surgeError(req, http.StatusInternalServerError, "internal_error"), nil
	case answered429:
		return surgeError(req, http.StatusTooManyRequests, "rate_limited"), nil
	case refused:
		return nil, connectionRefused
	}
	u, found := w.userByID(id)
	w.removeUser(id)
	switch {
	case f == crashAfter:
		return w.crash(p)
	case f == lostAfterCommit:
		return nil, io.ErrUnexpectedEOF
	case !found:
		return surgeError(req, http.StatusNotFound, "not_found"), nil
	}
	return answer(req, http.StatusOK, wireUser(u), nil), nil
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
	w.land()
	if w.violation != "" || w.obj.deleting || !w.obj.status.ready {
		return
	}
	if u, found := w.userByID(w.obj.status.userID); !found || u.name != simName {
		w.violation = fmt.Sprintf("Ready=True written with user %q, which does not exist or is not ours", w.obj.status.userID)
	}
}

// The operator's calls to Surge, through the real EndUser.

func (w *world) getUser(p *process, id string) (User, bool) {
	user, err := p.user.Get(p.ctx, id)
	p.alive()
	if IsNotFound(err) {
		return User{}, false
	}
	if err != nil {
		panic(interrupted{})
	}
	return user, true
}

func (w *world) deleteUser(p *process, id string) {
	err := p.user.Delete(p.ctx, id)
	p.alive()
	if err != nil {
		panic(interrupted{})
	}
}

// create sends a create and returns the new user's id, or the fate of a
// create that failed.
func (w *world) create(p *process, obj simObject, leaveBy time.Time) (string, intent.Fate) {
	metadata := map[string]string{
		surgev1alpha1.MetadataNamespace: simNamespace,
		surgev1alpha1.MetadataName:      simName,
		surgev1alpha1.MetadataUID:       string(obj.uid),
	}
	if w.variant == "tag-by-name" {
		delete(metadata, surgev1alpha1.MetadataUID)
	}
	// The client measures the bound on the machine's clock, which is the
	// process's clock in a process of its own.
	user, err := p.user.Create(p.ctx, Fields{FirstName: simName, Metadata: metadata}, leaveBy.Add(-p.skew))
	p.alive()
	if err != nil {
		return "", FateOf(err)
	}
	return user.ID, intent.NotDone
}

// lookup is the reconciler's lookup of the resource's identity, and its
// reading of each user found but the one it names already
// (usersOfIdentity): the users of the identity that exist, and whether the
// listing covers since.
func (w *world) lookup(p *process, since time.Time, named string) ([]User, bool) {
	answer, err := w.lookupIdentity(p, since)
	p.alive()
	if err != nil {
		panic(interrupted{})
	}
	var users []User
	for _, id := range answer.UserIDs {
		if id == named {
			continue
		}
		if user, found := w.getUser(p, id); found {
			if identity, tagged := IdentityOf(user); tagged && identity == p.user.identity {
				users = append(users, user)
			}
		}
	}
	return users, answer.Complete
}

func (w *world) lookupIdentity(p *process, since time.Time) (Identity, error) {
	if w.variant != "trust-one-pass" {
		return p.user.Lookup(p.ctx, since, simLookupWait)
	}
	// The mistake: the last complete pass, conclusive or not, is taken as
	// proof of absence. The loop is Lookup's, with that rule.
	for {
		if answer, trusted := p.index.lastPassSince(p.user.account, p.user.identity, since); trusted {
			return answer, nil
		}
		answer, passEnded, err := p.index.request(p.user.client, p.user.account, p.user.identity, since)
		if answer.Complete || err != nil || passEnded == nil {
			return answer, err
		}
		select {
		case <-passEnded:
		case <-p.ctx.Done():
			return answer, nil
		}
	}
}

// lastPassSince answers for the variant trust-one-pass: what the last
// complete pass found, if it started at or after since.
func (x *identityIndex) lastPassSince(key accountScope, identity types.NamespacedName, since time.Time) (Identity, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	account := x.accounts[key]
	if account == nil || account.listedSince.IsZero() || account.listedSince.Before(since) {
		return Identity{}, false
	}
	return Identity{UserIDs: slices.Clone(account.users[identity]), Complete: true}, true
}

// The operator's steps, as the reconciler takes them.

func (w *world) recorded(obj simObject) bool {
	switch w.variant {
	case "status-mirror-only":
		return obj.status.sentAt
	case "annotation-mirror-only":
		return obj.marker != "" && obj.marker != obj.status.createMarker
	}
	return intent.Record{
		SentAt:       obj.status.sentAt,
		Marker:       obj.marker,
		CreateMarker: obj.status.createMarker,
		Finalizer:    obj.finalizer,
		UserID:       obj.status.userID,
	}.Unsettled()
}

// resolve is the reconciler's resolveIntent.
func (w *world) resolve(p *process, obj simObject) intent.Resolution {
	now := p.clock()
	known := intent.Known{Now: now, Recorded: w.recorded(obj)}
	if known.Recorded {
		known.Horizon = p.ledger.Horizon(obj.uid, now, 0)
		if w.variant == "inherit-nothing" && !known.Horizon.Nothing && known.Horizon.At.Sub(now) == intent.SendWindow+simSettle {
			known.Horizon = intent.Horizon{Nothing: true}
		}
	}
	resolution := intent.Resolve(known)
	if resolution.Kind != intent.Search {
		return resolution
	}
	users, complete := w.lookup(p, resolution.Since, "")
	known.Listing = intent.Listing{Looked: true}
	if complete {
		known.Listing.ConclusiveSince = resolution.Since
	}
	for _, user := range users {
		if user.Metadata[surgev1alpha1.MetadataUID] == string(obj.uid) {
			known.Listing.Own = user.ID
			break
		}
	}
	if known.Listing.Own == "" && complete && len(users) > 0 {
		known.Listing.SameName = users[0].ID
	}
	if w.variant == "absent-before-horizon" && known.Listing.Own == "" && len(users) == 0 {
		return intent.Resolution{Kind: intent.Absent}
	}
	known.Now = p.clock()
	return intent.Resolve(known)
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
		if named, found := w.getUser(p, obj.status.userID); found {
			w.removeCopies(p, obj, named)
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
		case intent.Wait:
			if w.variant == "settle-on-wait" {
				w.settle(p, &obj, "")
				break
			}
			obj.status.ready = false
			w.patchStatus(base, &obj)
			return
		case intent.Found:
			w.settle(p, &obj, resolution.UserID)
			obj.status.ready = true
			w.patchStatus(base, &obj)
			return
		default:
			w.settle(p, &obj, "")
		}
	} else if users, _ := w.lookup(p, time.Time{}, ""); len(users) > 0 {
		// A user of an earlier resource of the same name: the reconciler's
		// findUserOfSameName.
		obj.status.userID, obj.status.ready = users[0].ID, true
		w.patchStatus(base, &obj)
		return
	}
	w.createUser(p, base, obj)
}

func (w *world) createUser(p *process, base simStatus, obj simObject) {
	w.patchMetadata("patch metadata", &obj, func(o *simObject) {
		o.finalizer = w.variant != "finalizer-after-create"
		o.marker = fmt.Sprintf("m%d", w.elapsed()/callTime)
	})
	// Only a write under the lock shows that the read was current.
	leaveBy := p.ledger.Record(obj.uid, p.clock())
	obj.status.sentAt = true
	obj.status.createMarker = obj.marker
	w.patchStatus(base, &obj)
	base = obj.status
	id, fate := w.create(p, obj, leaveBy)
	if id == "" {
		switch w.variant {
		case "gateway-answer-is-final":
			if fate == intent.MaybeInFlight {
				fate = intent.Finished
			}
		case "lost-answer-is-not-done":
			fate = intent.NotDone
		}
		if horizon := p.ledger.Sent(obj.uid, leaveBy, p.clock(), fate); fate == intent.NotDone && horizon.Nothing {
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
	w.patchStatus(base, &obj)
}

// removeCopies deletes the users that carry the uid of the resource, or of
// the user status names, other than that user: creates committed past every
// bound. Users of other uids, such as one a person left on purpose with
// deletionPolicy Orphan, are not copies.
func (w *world) removeCopies(p *process, obj simObject, named User) {
	users, _ := w.lookup(p, p.clock().Add(-simResync), named.ID)
	for _, user := range users {
		if intent.IsCopy(user.Metadata[surgev1alpha1.MetadataUID], string(obj.uid), named.Metadata[surgev1alpha1.MetadataUID]) {
			w.deleteUser(p, user.ID)
		}
	}
}

func (w *world) reconcileDelete(p *process, obj simObject) {
	if !obj.finalizer {
		return
	}
	if obj.status.userID != "" {
		w.deleteUser(p, obj.status.userID)
	}
	// Every user the intent may have made goes: one found is deleted, and
	// the intent resolved again, until its users are known to be absent.
	for w.variant != "release-before-resolving" {
		resolution := w.resolve(p, obj)
		if resolution.Kind == intent.Wait {
			return
		}
		if resolution.Kind == intent.Absent {
			break
		}
		w.deleteUser(p, resolution.UserID)
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
		w.procs[w.leader].end()
		w.leader = 1 - w.leader
		w.procs[w.leader].end()
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
		w.advance(simSettle + intent.SendWindow + time.Second)
	default:
		w.environment()
	}
	w.check()
}

// run runs one reconcile, which a crash or an error may end early.
func (w *world) run(reconcile func()) {
	defer func() {
		switch r := recover(); r.(type) {
		case nil, interrupted:
		case crashed:
			w.restart()
		default:
			panic(r)
		}
	}()
	reconcile()
}

// finish ends the run's processes, and waits until what they ran is gone.
func (w *world) finish() {
	for _, p := range w.procs {
		p.end()
	}
	synctest.Wait()
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
	w.land()
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
		if w.violation != "" || w.settled() {
			return
		}
		w.advance(intent.Recheck + time.Second)
		w.run(w.reconcile)
		w.check()
	}
	w.advance(simSettle + intent.SendWindow + 10*time.Second)
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

// state is what the index holds of an account, as a fingerprint shows it.
func (x *identityIndex) state(key accountScope) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	account := x.accounts[key]
	if account == nil {
		return "never listed"
	}
	return fmt.Sprintf("%v %v %v", account.users, account.passes.ConclusiveSince().IsZero(), account.listedSince.IsZero())
}

// settled says that the run has reached its end: Ready with the one user of
// the identity, or gone with none, and nothing in flight. A fault-free
// reconcile changes nothing from there.
func (w *world) settled() bool {
	if len(w.pending) > 0 || len(w.beyond) > 0 {
		return false
	}
	ours := w.ours()
	if w.obj == nil {
		return len(ours) == 0
	}
	return !w.obj.deleting && w.obj.status.ready && len(ours) == 1 && ours[0].id == w.obj.status.userID
}

func (w *world) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v|", w.users)
	if w.obj != nil {
		fmt.Fprintf(&b, "%s %v %q %v %v|", w.obj.uid, w.obj.finalizer, w.obj.marker, w.obj.deleting, w.obj.status)
	}
	fmt.Fprintf(&b, "%d %d %v|", w.elapsed()/callTime, len(w.pending), w.gone)
	for _, p := range w.procs {
		fmt.Fprintf(&b, "%v %s|", p.skew, p.index.state(p.user.account))
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
		w.finish()
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
	w.finish()
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

// onOneProcessor runs the test on one processor: the simulation runs one
// goroutine at a time, and handing one over to another thread costs more
// than what it runs.
func onOneProcessor(t *testing.T) {
	previous := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(previous) })
}

func TestSimulationOfTheCreateProtocol(t *testing.T) {
	onOneProcessor(t)
	if *simReplay != "" {
		synctest.Test(t, func(t *testing.T) { replay(t, *simVariant, *simReplay, *simSteps) })
		return
	}
	start := time.Now()
	var fig figures
	synctest.Test(t, func(*testing.T) { fig = explore(*simVariant, *simFaults, *simSteps) })
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
	"tag-by-name",
}

func TestEveryBrokenVariantIsCaught(t *testing.T) {
	if *simVariant != "" {
		t.Skip("one variant runs in TestSimulationOfTheCreateProtocol")
	}
	onOneProcessor(t)
	for _, variant := range brokenVariants {
		t.Run(variant, func(t *testing.T) {
			// The bounds deepen until the variant is caught: the first
			// counterexample found is among the shortest.
			var fig figures
			for _, bound := range []struct{ faults, steps int }{{2, 4}, {3, 5}} {
				synctest.Test(t, func(*testing.T) { fig = explore(variant, bound.faults, bound.steps) })
				if fig.violation != "" {
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
