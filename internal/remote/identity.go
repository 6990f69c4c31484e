package remote

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// Limits of the identity index.
const (
	// IdentityWait is how long a reconcile waits for a listing of the
	// account before it goes on without its answer. A small account is
	// listed well within it; a large one must not hold a worker.
	IdentityWait = 3 * time.Second
	// DefaultIdentityBudget bounds the index's memory, counted as the bytes
	// of the strings it holds plus a fixed cost per entry.
	DefaultIdentityBudget = 24 << 20
	// identityEntryCost is what an entry costs on top of its strings: the
	// map slot, the slice and the string headers.
	identityEntryCost = 96
	// maxUserIDLength is longer than any Surge id (usr_ and 26 characters);
	// an id beyond it is not one the operator could have been given.
	maxUserIDLength = 64
	// findPassInterval spaces the passes that can only find users, not
	// prove them absent: a burst of resources waiting for a later listing
	// (restored ones, say) shares one, and each looks again within
	// intent.Recheck.
	findPassInterval = IdentityWait
	// identityPageTimeout bounds one page of a listing.
	identityPageTimeout = 30 * time.Second
	// Backoff between failed pages; the listing resumes where it stopped.
	identityRetryMin = time.Second
	identityRetryMax = time.Minute
)

// identityIndex maps each resource identity (namespace and name, from the
// reserved metadata keys) to the remote users carrying it, per account and
// per key: what one project's key saw is never shown to another's. It is
// how a resource finds its user when nothing on the Kubernetes side names
// it: a create whose answer was lost, a resource restored without its
// status, a resource created anew after deletionPolicy Orphan or a rebuilt
// cluster.
//
// An account is listed in passes, in the background, one page in memory at
// a time, resuming after a failed page with backoff: a pass outlives the
// reconciles that asked for it, so an account of any size is listed to the
// end. Meanwhile the index learns of the users this process creates and
// deletes. A pass starts when a lookup needs one; its start time says what
// its answer covers: every user created before the pass started. That is
// what makes "no user" conclusive for a create whose answer was lost, even
// one that Surge commits late.
type identityIndex struct {
	clock clock.PassiveClock
	// budget bounds the bytes held. Past it, a pass keeps only the
	// identities that lookups are waiting for.
	budget int

	mu sync.Mutex
	// ctx is the manager's lifetime, which bounds the passes.
	ctx      context.Context
	used     int
	accounts map[accountScope]*accountIdentities
}

// accountScope is an account as seen through one key (credentials.Key.Scope).
type accountScope struct {
	scope     string
	accountID string
}

type accountIdentities struct {
	users map[types.NamespacedName][]string
	// wanted are the identities lookups wait for, since when: they are
	// indexed even past the budget.
	wanted map[types.NamespacedName]time.Time

	// running is set while a pass runs, since runningSince; another is
	// started after it when a lookup needs a pass that started later.
	running      bool
	runningSince time.Time
	another      bool
	cancel       context.CancelFunc
	// passes says which complete passes are conclusive, and since when.
	passes *intent.Passes
	// listedSince is the start of the last complete pass, conclusive or
	// not: it has found every user that existed throughout it.
	listedSince time.Time
	// overflowedSince is the start of the first pass that ran out of
	// budget: from then on only wanted identities are complete.
	overflowedSince time.Time
	// failure ended the last pass: a refusal that retrying cannot fix.
	failure error
	// passEnded is closed and replaced whenever a pass ends.
	passEnded chan struct{}
}

func newIdentityIndex(clk clock.PassiveClock, budget int) *identityIndex {
	return &identityIndex{clock: clk, budget: budget, accounts: map[accountScope]*accountIdentities{}}
}

// Start keeps the manager's context for the passes until it ends.
func (x *identityIndex) Start(ctx context.Context) error {
	x.mu.Lock()
	x.ctx = ctx
	x.mu.Unlock()
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: a standby may start passes as soon as it
// leads, and the context must be there by then.
func (x *identityIndex) NeedLeaderElection() bool { return false }

// Identity is what the index knows of the users that carry one identity.
type Identity struct {
	UserIDs []string
	// Complete says that every user carrying the identity that was created
	// before the time asked for is among UserIDs.
	Complete bool
}

// pageLister reads one page of an account's users.
type pageLister interface {
	ListUsersPage(ctx context.Context, accountID, cursor string) ([]surge.User, string, error)
}

// lookup returns the users that carry identity in the account. It waits at
// most wait for a pass that started at or after since to end, starting one
// if needed. The error is the refusal that ended the last pass, if any.
func (x *identityIndex) lookup(ctx context.Context, api pageLister, key accountScope, identity types.NamespacedName, since time.Time, wait time.Duration) (Identity, error) {
	if deadline, ok := ctx.Deadline(); ok {
		// The reconcile needs the rest of its time for what follows.
		wait = min(wait, time.Until(deadline)/2)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		answer, passEnded, err := x.request(api, key, identity, since)
		if answer.Complete || err != nil {
			return answer, err
		}
		if passEnded == nil {
			return answer, nil
		}
		select {
		case <-passEnded:
		case <-timer.C:
			return answer, nil
		case <-ctx.Done():
			return answer, nil
		}
	}
}

// request answers from what the index holds, and makes sure a pass that
// will answer for since runs. It returns the channel that says when the
// running pass ends.
func (x *identityIndex) request(api pageLister, key accountScope, identity types.NamespacedName, since time.Time) (Identity, <-chan struct{}, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	account := x.accounts[key]
	if account == nil {
		account = &accountIdentities{
			users:     map[types.NamespacedName][]string{},
			wanted:    map[types.NamespacedName]time.Time{},
			passes:    intent.NewPasses(),
			passEnded: make(chan struct{}),
		}
		x.accounts[key] = account
	}
	answer := Identity{UserIDs: slices.Clone(account.users[identity])}
	wantedSince, wanted := account.wanted[identity]
	if !wanted {
		wantedSince = x.clock.Now()
	}
	// Past the budget, a pass keeps only the identities wanted before it
	// started.
	keptByPass := func(passStart time.Time) bool {
		return account.overflowedSince.IsZero() || !wantedSince.After(passStart)
	}
	if completedSince := account.passes.ConclusiveSince(); !completedSince.IsZero() && !completedSince.Before(since) && keptByPass(completedSince) {
		answer.Complete = true
		delete(account.wanted, identity)
		return answer, nil, nil
	}
	if failure := account.failure; failure != nil {
		account.failure = nil
		return answer, nil, failure
	}
	account.wanted[identity] = wantedSince
	// A pass that starts before since cannot say "no user", but it may find
	// one: it runs once for each new lookup, then waits for since.
	now := x.clock.Now()
	switch {
	case x.ctx == nil:
		// Not started: nothing can be listed, and nothing waits.
		return answer, nil, nil
	case account.running:
		if (account.runningSince.Before(since) && !since.After(now)) || !keptByPass(account.runningSince) {
			account.another = true
		}
	case !since.After(now) || (account.listedSince.Before(wantedSince) && now.Sub(account.listedSince) >= findPassInterval):
		x.startPassLocked(api, key, account)
	default:
		return answer, nil, nil
	}
	return answer, account.passEnded, nil
}

func (x *identityIndex) startPassLocked(api pageLister, key accountScope, account *accountIdentities) {
	ctx, cancel := context.WithCancel(x.ctx)
	account.running, account.runningSince, account.another, account.cancel = true, x.clock.Now(), false, cancel
	go x.pass(ctx, api, key, account, account.runningSince)
}

// pass lists the account page by page into the index, retrying a failed
// page with backoff, and starts the next pass if a lookup asked for one.
func (x *identityIndex) pass(ctx context.Context, api pageLister, key accountScope, account *accountIdentities, started time.Time) {
	listed, err := x.listAll(ctx, api, key, account, started)
	stopped := ctx.Err() != nil
	x.mu.Lock()
	defer x.mu.Unlock()
	account.running = false
	account.cancel()
	switch {
	case stopped:
	case err != nil:
		account.failure = err
	default:
		// Identities wanted before the previous conclusive pass have had
		// two whole passes: those still needed are asked for again.
		previous := account.passes.ConclusiveSince()
		account.listedSince = started
		if account.passes.Complete(listed).After(previous) {
			maps.DeleteFunc(account.wanted, func(_ types.NamespacedName, since time.Time) bool { return since.Before(previous) })
		}
	}
	close(account.passEnded)
	account.passEnded = make(chan struct{})
	if account.another && !stopped && x.accounts[key] == account {
		x.startPassLocked(api, key, account)
	}
}

// listAll walks the account from its first page. It returns the users the
// pass listed once the last page is in, a refusal that retrying cannot fix
// (the key or the account), or neither when the context ends.
func (x *identityIndex) listAll(ctx context.Context, api pageLister, key accountScope, account *accountIdentities, started time.Time) (*intent.Pass, error) {
	cursor, backoff := "", identityRetryMin
	seen := map[string]bool{}
	listed := account.passes.Begin(started)
	for {
		pageCtx, cancel := context.WithTimeout(ctx, identityPageTimeout)
		users, next, err := api.ListUsersPage(pageCtx, key.accountID, cursor)
		cancel()
		err = classify(err)
		switch {
		case ctx.Err() != nil:
			return nil, nil
		case lastsUntilFixed(err):
			return nil, err
		case err != nil:
			wait := backoff
			if limited, ok := errors.AsType[*Error](err); ok && limited.Kind == RateLimited {
				wait = max(wait, limited.Wait)
			}
			select {
			case <-ctx.Done():
				return nil, nil
			case <-time.After(wait):
			}
			backoff = min(2*backoff, identityRetryMax)
			continue
		}
		backoff = identityRetryMin
		for _, user := range users {
			listed.Saw(user.ID)
		}
		x.add(account, users, started)
		if next == "" || seen[next] {
			return listed, nil
		}
		seen[next] = true
		cursor = next
	}
}

// add indexes the tagged users of a page: all of them within the budget,
// only the wanted ones past it.
func (x *identityIndex) add(account *accountIdentities, users []surge.User, passStarted time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, user := range users {
		identity, ok := identityOf(user)
		if !ok || slices.Contains(account.users[identity], user.ID) {
			continue
		}
		cost := entryCost(identity, user.ID)
		if x.used+cost > x.budget {
			if account.overflowedSince.IsZero() {
				account.overflowedSince = passStarted
			}
			if _, wanted := account.wanted[identity]; !wanted {
				continue
			}
		}
		x.addLocked(account, identity, user.ID)
	}
}

func (x *identityIndex) addLocked(account *accountIdentities, identity types.NamespacedName, userID string) {
	account.users[identity] = append(account.users[identity], userID)
	x.used += entryCost(identity, userID)
}

// listed says whether the last complete pass over the account listed the
// user.
func (x *identityIndex) listed(key accountScope, userID string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	account, ok := x.accounts[key]
	return ok && account.passes.Listed(userID)
}

// remember records that the user, just created, carries identity.
func (x *identityIndex) remember(key accountScope, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[key]; ok && !slices.Contains(account.users[identity], userID) {
		x.addLocked(account, identity, userID)
	}
}

// forget drops the user, deleted in Surge, from the index.
func (x *identityIndex) forget(key accountScope, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	account, ok := x.accounts[key]
	if !ok {
		return
	}
	userIDs := account.users[identity]
	i := slices.Index(userIDs, userID)
	if i < 0 {
		return
	}
	x.used -= entryCost(identity, userID)
	if len(userIDs) == 1 {
		delete(account.users, identity)
		return
	}
	account.users[identity] = slices.Delete(userIDs, i, i+1)
}

// ForgetScope drops every account seen through a key that is gone, and
// stops their passes.
func (x *identityIndex) ForgetScope(scope string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for key, account := range x.accounts {
		if key.scope != scope {
			continue
		}
		if account.running {
			account.cancel()
		}
		for identity, userIDs := range account.users {
			for _, userID := range userIDs {
				x.used -= entryCost(identity, userID)
			}
		}
		delete(x.accounts, key)
	}
}

// identityOf is the identity a user's tags name, if they name one a
// resource could have: longer names are no tags the operator wrote.
func identityOf(user surge.User) (types.NamespacedName, bool) {
	identity := types.NamespacedName{Namespace: user.Metadata[surgev1alpha1.MetadataNamespace], Name: user.Metadata[surgev1alpha1.MetadataName]}
	valid := identity.Namespace != "" && identity.Name != "" && user.ID != "" &&
		len(identity.Namespace) <= validation.DNS1123LabelMaxLength &&
		len(identity.Name) <= validation.DNS1123SubdomainMaxLength &&
		len(user.ID) <= maxUserIDLength
	return identity, valid
}

func entryCost(identity types.NamespacedName, userID string) int {
	return len(identity.Namespace) + len(identity.Name) + len(userID) + identityEntryCost
}
