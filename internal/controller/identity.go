package controller

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// identityIndex maps each resource identity (namespace and name, from the
// reserved metadata keys) to the remote user carrying it, per account and
// per key: what one project's key saw is never shown to another's. It
// lets a resource created anew, say after a cluster was rebuilt or after a
// deletion with deletionPolicy Orphan, find its user again instead of making a
// second one.
//
// Each account is listed once per process; afterwards the index learns of
// the users this process creates and deletes. Such a user predates any
// resource that may claim it, so a listing taken at any time after the user
// was created, plus what the process did since, is enough to find it.
type identityIndex struct {
	mu       sync.Mutex
	accounts map[accountScope]*accountIdentities
}

// accountScope is an account as seen through one key (SurgeAPI.Scope).
type accountScope struct {
	scope     string
	accountID string
}

type accountIdentities struct {
	loaded chan struct{}
	err    error
	users  map[types.NamespacedName]string
}

func newIdentityIndex() *identityIndex {
	return &identityIndex{accounts: map[accountScope]*accountIdentities{}}
}

// lookup returns the id of the user that carries identity in the account.
func (x *identityIndex) lookup(ctx context.Context, api SurgeAPI, accountID string, identity types.NamespacedName) (string, bool, error) {
	account, err := x.load(ctx, api, accountScope{scope: api.Scope(), accountID: accountID})
	if err != nil {
		return "", false, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	userID, ok := account.users[identity]
	return userID, ok, nil
}

// load lists the account the first time it is needed; concurrent callers
// wait for that one listing. A failed listing is forgotten, to be tried again.
func (x *identityIndex) load(ctx context.Context, api SurgeAPI, key accountScope) (*accountIdentities, error) {
	x.mu.Lock()
	account, ok := x.accounts[key]
	if !ok {
		account = &accountIdentities{loaded: make(chan struct{})}
		x.accounts[key] = account
		x.mu.Unlock()
		users, err := api.ListUsers(ctx, key.accountID)
		x.mu.Lock()
		if err != nil {
			account.err = err
			delete(x.accounts, key)
		} else {
			account.users = identitiesOf(users)
		}
		close(account.loaded)
		x.mu.Unlock()
		return account, err
	}
	x.mu.Unlock()
	select {
	case <-account.loaded:
		if account.err != nil {
			return nil, account.err
		}
		return account, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// remember records that the user now carries identity, when the account is
// indexed; an account not yet listed will see it in its listing.
func (x *identityIndex) remember(scope, accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountScope{scope, accountID}]; ok && account.users != nil {
		account.users[identity] = userID
	}
}

// forget drops the user, deleted in Surge, from the index.
func (x *identityIndex) forget(scope, accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountScope{scope, accountID}]; ok && account.users != nil && account.users[identity] == userID {
		delete(account.users, identity)
	}
}

// refresh replaces the account's entries with a fresh listing.
func (x *identityIndex) refresh(scope, accountID string, users []surge.User) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountScope{scope, accountID}]; ok && account.users != nil {
		account.users = identitiesOf(users)
	}
}

func identitiesOf(users []surge.User) map[types.NamespacedName]string {
	identities := make(map[types.NamespacedName]string, len(users))
	for _, user := range users {
		namespace, name := user.Metadata[MetadataNamespace], user.Metadata[MetadataName]
		if namespace != "" && name != "" {
			identities[types.NamespacedName{Namespace: namespace, Name: name}] = user.ID
		}
	}
	return identities
}
