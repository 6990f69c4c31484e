// Package emulator is an in-process HTTP emulator of the Surge end-user API,
// for tests and local runs: the real API cannot be reached from CI.
//
// It speaks the wire protocol on its own, with its own types, and never
// imports the operator's client: a test of the client against it checks the
// client against the protocol, not against itself.
package emulator

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"maps"
	mathrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	defaultAPIKey   = "sk_demo_emulator"
	defaultPageSize = 20
	// DefaultProject is the project of Options.APIKey and Options.Accounts.
	DefaultProject = "default"
)

// Options configures a Server.
type Options struct {
	// APIKey is the key of DefaultProject; "sk_demo_emulator" when empty.
	// AddProject adds the keys of other projects.
	APIKey string
	// Accounts are the accounts of DefaultProject. An account of another
	// project, or no project, answers 404 account_not_found, and its users
	// 404 not_found, as Surge answers a key that cannot reach them.
	Accounts []string
	// PageSize is the number of users per list page; 20 when zero.
	PageSize int
	// Now is the clock of ids, tokens and the request log; time.Now when nil.
	Now func() time.Time
}

// User is an end user as the emulator stores it. AccountID is not part of
// the wire object: Surge only exposes it through the URL users are listed
// under.
type User struct {
	ID        string
	AccountID string
	FirstName string
	LastName  string
	PhotoURL  string
	Metadata  map[string]string
}

func (u User) clone() User {
	u.Metadata = maps.Clone(u.Metadata)
	return u
}

type storedUser struct {
	user User
	// seq orders users by creation and is what list cursors point at, so a
	// deleted user never breaks a walk through the pages.
	seq uint64
}

// Server is the emulated Surge API. All its methods are safe for concurrent
// use, including while it serves requests.
type Server struct {
	signingKey ed25519.PrivateKey
	keyID      string
	clock      atomic.Pointer[func() time.Time]

	mu       sync.Mutex
	pageSize int
	// offsetCursors makes list cursors positions in the list, as a real
	// cursor may be: a user deleted behind one shifts the rest back.
	offsetCursors bool
	// projects maps each accepted API key to its project, and accounts
	// each account to its project: a key reaches only its project's
	// accounts and their users.
	projects map[string]string
	accounts map[string]string
	users    map[string]*storedUser
	lastSeq  uint64
	faults   []*activeFault
	chance   *mathrand.Rand
	latency  time.Duration
	limiter  *rate.Limiter
	requests []*Request
}

// New returns a Server with a fresh ed25519 signing key.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = defaultAPIKey
	}
	if opts.PageSize <= 0 {
		opts.PageSize = defaultPageSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	_, signingKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("emulator: generating the token signing key: " + err.Error())
	}
	s := &Server{
		pageSize:   opts.PageSize,
		signingKey: signingKey,
		keyID:      newID("sgn_", opts.Now()),
		projects:   map[string]string{opts.APIKey: DefaultProject},
		accounts:   map[string]string{},
		users:      map[string]*storedUser{},
		// A fixed seed makes a chaos run with probabilistic faults
		// reproducible.
		chance: mathrand.New(mathrand.NewPCG(1, 2)),
	}
	s.clock.Store(&opts.Now)
	for _, id := range opts.Accounts {
		s.accounts[id] = DefaultProject
	}
	return s
}

// SetClock replaces the clock of ids, tokens and the request log: a clock
// other than the operator's plays a Surge whose clock is skewed.
func (s *Server) SetClock(now func() time.Time) { s.clock.Store(&now) }

func (s *Server) now() time.Time { return (*s.clock.Load())() }

// SetAPIKey makes key the only key of DefaultProject, as when its key is
// rotated and the old one revoked.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.projects, func(_, project string) bool { return project == DefaultProject })
	s.projects[key] = DefaultProject
}

// SetPageSize sets the number of users per list page; n <= 0 restores the
// default of 20.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n = defaultPageSize
	}
	s.pageSize = n
}

// SetOffsetCursors makes list cursors offsets into the account's list of
// users, which Surge's opaque cursors may be, instead of positions that a
// deletion cannot move. With offsets, a user deleted on a page a walk has
// passed makes the walk skip the user that moves into its place.
func (s *Server) SetOffsetCursors(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offsetCursors = on
}

// AddProject adds a project, or adds to one: apiKey becomes one of its
// accepted keys, and the accounts become its own.
func (s *Server) AddProject(project, apiKey string, accounts ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.projects[apiKey] = project
	for _, id := range accounts {
		s.accounts[id] = project
	}
}

// RevokeAPIKey makes Surge refuse key from now on, with 401 invalid_api_key.
func (s *Server) RevokeAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.projects, key)
}

// AddAccount makes an account of DefaultProject known.
func (s *Server) AddAccount(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[id] = DefaultProject
}

// PublicKey is the key that verifies the tokens the emulator issues.
func (s *Server) PublicKey() ed25519.PublicKey {
	return slices.Clone(s.signingKey.Public().(ed25519.PublicKey))
}

// Users returns the users of one account, oldest first.
func (s *Server) Users(accountID string) []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var users []User
	for _, stored := range s.sortedUsersLocked() {
		if stored.user.AccountID == accountID {
			users = append(users, stored.user.clone())
		}
	}
	return users
}

// AllUsers returns the users of every account, oldest first.
func (s *Server) AllUsers() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var users []User
	for _, stored := range s.sortedUsersLocked() {
		users = append(users, stored.user.clone())
	}
	return users
}

// User returns one user.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return stored.user.clone(), true
}

// PutUser stores a user as if created outside the operator, assigning an id
// when u.ID is empty and replacing the user when the id exists. The account
// becomes known, in DefaultProject when it was unknown, since a user only
// exists inside an account.
func (s *Server) PutUser(accountID string, u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u = u.clone()
	u.AccountID = accountID
	if u.ID == "" {
		u.ID = newID("usr_", s.now())
	}
	if _, known := s.accounts[accountID]; !known {
		s.accounts[accountID] = DefaultProject
	}
	if existing, ok := s.users[u.ID]; ok {
		existing.user = u
		return u.clone()
	}
	s.storeLocked(u)
	return u.clone()
}

// EditUser changes a user out of band, as someone using Surge's dashboard
// would. The id and account cannot change. It reports whether the user
// exists.
func (s *Server) EditUser(id string, edit func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.users[id]
	if !ok {
		return false
	}
	edited := stored.user.clone()
	edit(&edited)
	edited.ID, edited.AccountID = stored.user.ID, stored.user.AccountID
	stored.user = edited
	return true
}

// RemoveUser deletes a user out of band. It reports whether the user
// existed.
func (s *Server) RemoveUser(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.users[id]
	delete(s.users, id)
	return ok
}

func (s *Server) storeLocked(u User) {
	s.lastSeq++
	s.users[u.ID] = &storedUser{user: u, seq: s.lastSeq}
}

func (s *Server) sortedUsersLocked() []*storedUser {
	users := slices.Collect(maps.Values(s.users))
	slices.SortFunc(users, func(a, b *storedUser) int {
		return cmp.Compare(a.seq, b.seq)
	})
	return users
}

// crockford is the lowercase Crockford base32 alphabet of Surge's
// ULID-like ids.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns prefix and 26 characters: 10 of millisecond time, so ids
// sort roughly by creation as Surge's do, then 16 random ones.
func newID(prefix string, now time.Time) string {
	var id [26]byte
	millis := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		id[i] = crockford[millis&31]
		millis >>= 5
	}
	var random [16]byte
	_, _ = rand.Read(random[:]) // crypto/rand.Read never fails
	for i, b := range random {
		id[10+i] = crockford[b&31]
	}
	return prefix + string(id[:])
}
