package controller

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// identityIndex maps each resource identity (namespace and name, from the
// reserved metadata keys) to the remote user carrying it, per account. It
// lets a resource created anew, say after a cluster was rebuilt or after a
// deletion with deletionPolicy Orphan, find its user again instead of making a
// second one.
//
// Each account is listed once per process; afterwards the index learns of
// the users this process creates and deletes. Such a user predates any
// resource that may claim it, so a listing taken at any time after the user
// was created, plus what the process did since, is enough to find it.
type identityIndex struct {
	surge SurgeAPI

	mu       sync.Mutex
	accounts map[string]*accountIdentities
}

type accountIdentities struct {
	loaded chan struct{}
	err    error
	users  map[types.NamespacedName]string
}

func newIdentityIndex(surgeAPI SurgeAPI) *identityIndex {
	return &identityIndex{surge: surgeAPI, accounts: map[string]*accountIdentities{}}
}

// lookup returns the id of the user that carries identity in the account.
func (x *identityIndex) lookup(ctx context.Context, accountID string, identity types.NamespacedName) (string, bool, error) {
	account, err := x.load(ctx, accountID)
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
func (x *identityIndex) load(ctx context.Context, accountID string) (*accountIdentities, error) {
	x.mu.Lock()
	account, ok := x.accounts[accountID]
	if !ok {
		account = &accountIdentities{loaded: make(chan struct{})}
		x.accounts[accountID] = account
		x.mu.Unlock()
		users, err := x.surge.ListUsers(ctx, accountID)
		x.mu.Lock()
		if err != nil {
			account.err = err
			delete(x.accounts, accountID)
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
func (x *identityIndex) remember(accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountID]; ok && account.users != nil {
		account.users[identity] = userID
	}
}

// forget drops the user, deleted in Surge, from the index.
func (x *identityIndex) forget(accountID string, identity types.NamespacedName, userID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountID]; ok && account.users != nil && account.users[identity] == userID {
		delete(account.users, identity)
	}
}

// refresh replaces the account's entries with a fresh listing.
func (x *identityIndex) refresh(accountID string, users []surge.User) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if account, ok := x.accounts[accountID]; ok && account.users != nil {
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
