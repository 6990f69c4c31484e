package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// Limits of the identity index.
const (
	// identityWait is how long the first create in an account waits for the
	// account's listing before it goes ahead without it. A small account is
	// listed well within it; a large one must not hold creates back.
	identityWait = 3 * time.Second
	// maxIdentitiesPerAccount bounds the index's memory: past it, the rest
	// of the account is not indexed.
	maxIdentitiesPerAccount = 100_000
	// identityPageTimeout bounds one page of the listing.
	identityPageTimeout = 30 * time.Second
	// Backoff between failed pages; the listing resumes where it stopped.
	identityRetryMin = time.Second
	identityRetryMax = time.Minute
)

// identityIndex maps each resource identity (namespace and name, from the
// reserved metadata keys) to the remote user carrying it, per account and
// per key: what one project's key saw is never shown to another's. It lets a
// resource created anew, say after a cluster was rebuilt or after a deletion
// with deletionPolicy Orphan, find its user again instead of making a second
// one.
//
// Each account is listed once per process, in the background, page by page,
// resuming after a failure; meanwhile the index learns of the users this
// process creates and deletes. Such a user predates any resource that may
// claim it, so a listing taken at any time after the user was created, plus
// what the process did since, is enough to find it. The index is a
// convenience: a create waits for it at most identityWait.
type identityIndex struct {
	// ctx is the manager's lifetime, which bounds the listings.
	ctx context.Context

	mu       sync.Mutex
	accounts map[accountScope]*accountIdentities
}

// accountScope is an account as seen through one key (SurgeAPI.Scope).
type accountScope struct {
	scope     string
	accountID string
}

type accountIdentities struct {
	users map[types.NamespacedName]string
	// listed is closed once the whole account was listed, or the listing
	// ended for good.
	listed     chan struct{}
	listedOnce sync.Once
}

func (a *accountIdentities) finish() { a.listedOnce.Do(func() { close(a.listed) }) }

func newIdentityIndex() *identityIndex {
	return &identityIndex{accounts: map[accountScope]*accountIdentities{}}
}

// Start keeps the manager's context for the listings until it ends.
func (x *identityIndex) Start(ctx context.Context) error {
	x.mu.Lock()
	x.ctx = ctx
	x.mu.Unlock()
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: a standby may start listings as soon as it
// leads, and the context must be there by then.
func (x *identityIndex) NeedLeaderElection() bool { return false }

// lookup returns the id of the user that carries identity in the account,
// as far as the index knows within identityWait.
func (x *identityIndex) lookup(ctx context.Context, api SurgeAPI, accountID string, identity types.NamespacedName) (string, bool) {
	account := x.account(api, accountScope{scope: api.Scope(), accountID: accountID})
	timer := time.NewTimer(identityWait)
	defer timer.Stop()
	select {
	case <-account.listed:
	case <-timer.C:
	case <-ctx.Done():
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	userID, ok := account.users[identity]
	return userID, ok
}

// account returns the account's entry, starting its listing the first time.
func (x *identityIndex) account(api SurgeAPI, key accountScope) *accountIdentities {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[key]; ok {
		return account
	}
	account := &accountIdentities{users: map[types.NamespacedName]string{}, listed: make(chan struct{})}
	x.accounts[key] = account
	if x.ctx == nil {
		account.finish()
		delete(x.accounts, key)
		return account
	}
	go x.list(x.ctx, api, key, account)
	return account
}

// list walks the account page by page into the index, retrying a failed
// page with backoff. A refusal that retrying cannot fix (the key or the
// account) ends it, and the account is listed anew when next needed.
func (x *identityIndex) list(ctx context.Context, api SurgeAPI, key accountScope, account *accountIdentities) {
	defer account.finish()
	cursor, backoff := "", identityRetryMin
	seen := map[string]bool{}
	for {
		pageCtx, cancel := context.WithTimeout(ctx, identityPageTimeout)
		users, next, err := api.ListUsersPage(pageCtx, key.accountID, cursor)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && (surge.IsUnauthorized(err) || surge.IsAccountNotFound(err) || surge.IsInvalid(err)):
			x.mu.Lock()
			delete(x.accounts, key)
			x.mu.Unlock()
			return
		case err != nil:
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, identityRetryMax)
			continue
		}
		backoff = identityRetryMin
		if full := x.add(account, users); full || next == "" || seen[next] {
			return
		}
		seen[next] = true
		cursor = next
	}
}

// add indexes the tagged users of a page, and reports whether the account
// reached its bound.
func (x *identityIndex) add(account *accountIdentities, users []surge.User) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for identity, userID := range identitiesOf(users) {
		if len(account.users) >= maxIdentitiesPerAccount {
			return true
		}
		account.users[identity] = userID
	}
	return false
}

// remember records that the user now carries identity.
func (x *identityIndex) remember(scope, accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountScope{scope, accountID}]; ok && len(account.users) < maxIdentitiesPerAccount {
		account.users[identity] = userID
	}
}

// forget drops the user, deleted in Surge, from the index.
func (x *identityIndex) forget(scope, accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountScope{scope, accountID}]; ok && account.users[identity] == userID {
		delete(account.users, identity)
	}
}

// refresh takes in a whole listing made for another purpose.
func (x *identityIndex) refresh(scope, accountID string, users []surge.User) {
	x.mu.Lock()
	account, ok := x.accounts[accountScope{scope, accountID}]
	x.mu.Unlock()
	if ok {
		x.add(account, users)
		account.finish()
	}
}

// identitiesOf keeps the users that carry the operator's identity tags;
// nothing else of a user is held in memory.
func identitiesOf(users []surge.User) map[types.NamespacedName]string {
	identities := map[types.NamespacedName]string{}
	for _, user := range users {
		namespace, name := user.Metadata[MetadataNamespace], user.Metadata[MetadataName]
		if namespace != "" && name != "" {
			identities[types.NamespacedName{Namespace: namespace, Name: name}] = user.ID
		}
	}
	return identities
}
