package surgetest

import (
	"crypto/ed25519"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// DefaultAPIKey is the key an Emulator accepts until SetAPIKey replaces it.
const DefaultAPIKey = "sk_test_surgetest"

// DefaultProject is the project of the Emulator's own key and of the
// accounts AddAccount adds; AddProject adds others.
const DefaultProject = emulator.DefaultProject

// User is an end user as the emulator stores it: ID, AccountID, FirstName,
// LastName, PhotoURL and Metadata (the operator's reserved
// "surge-operator/" keys included).
type User = emulator.User

// Fault makes the requests it matches misbehave. Method and PathPrefix
// ("/accounts/", "/users/usr_…") select requests; Status answers that status
// with a Surge error body instead of processing the request, RetryAfter adds
// the retry-after headers, Latency delays the request (a client that gives up
// meanwhile does not stop it: it is carried out late), DropResponse processes
// the request and then closes the connection without answering. Count limits
// the fault to that many requests (0: until ClearFaults) and Probability
// applies it at random, from a fixed seed.
type Fault = emulator.Fault

// Request is one request the emulator received: Method, Path, the Status
// answered (or that would have been, when Dropped), and when it arrived.
type Request = emulator.Request

// Emulator is an emulated Surge API served over real HTTP on the loopback
// interface, with the same behaviour the operator's own tests rely on:
// projects and their keys, accounts, paging, component tokens, faults and a
// request log. All its methods are safe for concurrent use.
type Emulator struct {
	server *emulator.Server
	url    string

	mu     sync.Mutex
	apiKey string
}

// NewEmulator starts an Emulator that accepts DefaultAPIKey and knows no
// account yet; it stops when the test and its cleanups end.
func NewEmulator(t testing.TB) *Emulator {
	t.Helper()
	server := emulator.New(emulator.Options{APIKey: DefaultAPIKey})
	httpServer := httptest.NewServer(server)
	t.Cleanup(httpServer.Close)
	return &Emulator{server: server, url: httpServer.URL, apiKey: DefaultAPIKey}
}

// URL is the API's base URL, to give the operator or a Surge client.
func (e *Emulator) URL() string { return e.url }

// APIKey is the current key of DefaultProject.
func (e *Emulator) APIKey() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apiKey
}

// SetAPIKey makes key the only key of DefaultProject, as after a rotation
// that revoked the old one.
func (e *Emulator) SetAPIKey(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apiKey = key
	e.server.SetAPIKey(key)
}

// AddAccount makes an account of DefaultProject known. A SurgeEndUser of an
// unknown account stalls with AccountNotFound.
func (e *Emulator) AddAccount(id string) { e.server.AddAccount(id) }

// AddProject adds a project, or adds to one: apiKey becomes one of its keys
// and the accounts its own. A key reaches only its own project's accounts
// and users, as in Surge.
func (e *Emulator) AddProject(project, apiKey string, accounts ...string) {
	e.server.AddProject(project, apiKey, accounts...)
}

// RevokeAPIKey makes the emulator refuse key from now on with 401
// invalid_api_key.
func (e *Emulator) RevokeAPIKey(key string) { e.server.RevokeAPIKey(key) }

// SetClock replaces the emulator's clock, which stamps ids, the tokens'
// expiry and the request log: a clock other than the operator's plays a
// Surge whose clock is skewed.
func (e *Emulator) SetClock(now func() time.Time) { e.server.SetClock(now) }

// SetPageSize sets how many users a list page holds (20 by default), to
// make the operator walk through several pages.
func (e *Emulator) SetPageSize(n int) { e.server.SetPageSize(n) }

// SetOffsetCursors makes list cursors offsets into the list, as Surge's
// opaque cursors may be: a user deleted during a walk of the pages makes
// the walk skip another.
func (e *Emulator) SetOffsetCursors(on bool) { e.server.SetOffsetCursors(on) }

// Users returns the users of one account, oldest first.
func (e *Emulator) Users(accountID string) []User { return e.server.Users(accountID) }

// AllUsers returns the users of every account, oldest first.
func (e *Emulator) AllUsers() []User { return e.server.AllUsers() }

// User returns one user, and whether it exists.
func (e *Emulator) User(id string) (User, bool) { return e.server.User(id) }

// PutUser stores a user as if made outside the operator, in Surge's
// dashboard say, and returns it with its id; an empty u.ID gets a new one,
// an existing one is replaced.
func (e *Emulator) PutUser(accountID string, u User) User { return e.server.PutUser(accountID, u) }

// EditUser changes a user outside the operator (its ID and account stay),
// and reports whether it exists.
func (e *Emulator) EditUser(id string, edit func(*User)) bool { return e.server.EditUser(id, edit) }

// RemoveUser deletes a user outside the operator, and reports whether it
// existed.
func (e *Emulator) RemoveUser(id string) bool { return e.server.RemoveUser(id) }

// PublicKey verifies the component tokens (EdDSA JWTs) the emulator issues.
func (e *Emulator) PublicKey() ed25519.PublicKey { return e.server.PublicKey() }

// InjectFault adds a fault; when several match a request, the first one
// injected applies.
func (e *Emulator) InjectFault(f Fault) { e.server.InjectFault(f) }

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() { e.server.ClearFaults() }

// SetLatency delays every answer by d.
func (e *Emulator) SetLatency(d time.Duration) { e.server.SetLatency(d) }

// SetRateLimit answers 429 with retry-after beyond rps requests per second
// (a token bucket of burst); rps <= 0 removes the limit.
func (e *Emulator) SetRateLimit(rps float64, burst int) { e.server.SetRateLimit(rps, burst) }

// Requests returns every request received, in order of arrival, faulted
// and refused ones included.
func (e *Emulator) Requests() []Request { return e.server.Requests() }

// ResetRequests forgets the requests received so far.
func (e *Emulator) ResetRequests() { e.server.ResetRequests() }

// CountRequests counts the requests received with method ("" for any) and
// a path starting with pathPrefix.
func (e *Emulator) CountRequests(method, pathPrefix string) int {
	return e.server.CountRequests(method, pathPrefix)
}
