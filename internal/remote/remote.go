// Package remote is the reconcilers' only way to Surge. A Connector
// connects a SurgeEndUser to the Surge side of its project, through the key
// the credentials name for it; the EndUser it returns has the verbs the
// reconciler needs: read, create, update and delete the user, mint a token,
// and look the resource's identity up in its account. Behind them are the
// parts the reconciler never sees: the Surge client's types, the repeat of
// a call after a rotated key, the classification of every failure (what to
// do next, and whether a create may still be in flight), and the identity
// index that lists accounts in the background.
package remote

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// User is an end user as Surge holds it.
type User struct {
	ID        string
	FirstName string
	LastName  string
	PhotoURL  string
	Metadata  map[string]string
}

// Fields is the whole state a user is given by a create or an update.
type Fields struct {
	FirstName string
	LastName  string
	PhotoURL  string
	Metadata  map[string]string
}

// TokenClaims is what a component token says of itself.
type TokenClaims struct {
	// Subject is the id of the user the token is for.
	Subject   string
	ExpiresAt time.Time
}

// ParseTokenClaims reads the subject and expiry of a token Surge issued,
// without verifying it: use it only on tokens that came from Surge.
func ParseTokenClaims(token string) (TokenClaims, error) {
	claims, err := surge.ParseTokenClaims(token)
	return TokenClaims{Subject: claims.Subject, ExpiresAt: claims.ExpiresAt}, err
}

// Connector connects SurgeEndUsers to Surge. It runs with the manager, which
// bounds the identity index's background listings.
type Connector struct {
	keys  *credentials.Manager
	index *identityIndex
}

// NewConnector connects through the keys the credentials hand out. budget
// bounds the identity index's memory in bytes; DefaultIdentityBudget when
// zero.
func NewConnector(keys *credentials.Manager, clk clock.PassiveClock, budget int) *Connector {
	if budget <= 0 {
		budget = DefaultIdentityBudget
	}
	return &Connector{keys: keys, index: newIdentityIndex(clk, budget)}
}

// Start keeps the manager's context for the index's listings until it ends.
func (c *Connector) Start(ctx context.Context) error { return c.index.Start(ctx) }

// NeedLeaderElection is false: a standby may list as soon as it leads.
func (c *Connector) NeedLeaderElection() bool { return c.index.NeedLeaderElection() }

// Connect returns the Surge side of obj, or the *credentials.Refusal that
// says why obj may not reach Surge.
func (c *Connector) Connect(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (*EndUser, error) {
	key, err := c.keys.KeyFor(ctx, obj)
	if err != nil {
		return nil, err
	}
	return &EndUser{
		client:   newRotatingClient(key),
		index:    c.index,
		account:  accountScope{scope: key.Scope, accountID: obj.Spec.AccountID},
		identity: types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name},
	}, nil
}

// Admits says whether obj may reach Surge, as Connect would, without
// reading its key.
func (c *Connector) Admits(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error {
	return c.keys.Admits(ctx, obj)
}

// CheckKey reads the project's key again and asks Surge whether it accepts
// it.
func (c *Connector) CheckKey(ctx context.Context, ref credentials.Ref) error {
	client, err := c.keys.ProjectClient(ctx, ref, true)
	if err != nil {
		return err
	}
	return classify(client.CheckKey(ctx))
}

// ForgetProject drops the client of a project that is gone, and what was
// learnt through its key.
func (c *Connector) ForgetProject(ref credentials.Ref) {
	c.keys.Forget(ref)
	c.index.ForgetScope(ref.String())
}

// EndUser is the Surge side of one SurgeEndUser for one reconcile: its
// account, through its project's key. Every error it returns is an *Error,
// or a *credentials.Refusal.
type EndUser struct {
	client   *rotatingClient
	index    *identityIndex
	account  accountScope
	identity types.NamespacedName
}

// Get reads a user. A user Surge says is gone leaves the identity index.
func (u *EndUser) Get(ctx context.Context, userID string) (User, error) {
	user, err := u.client.GetUser(ctx, userID)
	if surge.IsNotFound(err) {
		u.index.forget(u.account, u.identity, userID)
	}
	return UserOf(user), classify(err)
}

// Create sends a create of a user in the resource's account, which must
// leave by leaveBy or not at all. The user created joins the identity
// index.
func (u *EndUser) Create(ctx context.Context, fields Fields, leaveBy time.Time) (User, error) {
	user, err := u.client.CreateUser(surge.SendBy(ctx, leaveBy), u.account.accountID, fields.wire())
	if err != nil {
		return User{}, classify(err)
	}
	u.index.remember(u.account, u.identity, user.ID)
	return UserOf(user), nil
}

// Update replaces the whole state of a user.
func (u *EndUser) Update(ctx context.Context, userID string, fields Fields) error {
	_, err := u.client.UpdateUser(ctx, userID, fields.wire())
	return classify(err)
}

// Delete deletes a user; one already gone counts as deleted. It leaves the
// identity index.
func (u *EndUser) Delete(ctx context.Context, userID string) error {
	if err := u.client.DeleteUser(ctx, userID); err != nil && !surge.IsNotFound(err) {
		return classify(err)
	}
	u.index.forget(u.account, u.identity, userID)
	return nil
}

// MintToken issues a component token for a user.
func (u *EndUser) MintToken(ctx context.Context, userID string, durationSeconds int) (string, error) {
	token, err := u.client.CreateToken(ctx, userID, durationSeconds)
	return token, classify(err)
}

// Lookup returns the users that carry the resource's identity in its
// account. It waits at most wait for a listing that started at or after
// since to end, starting one if needed. The error is the failure that ended
// the last listing, if it lasts until a person fixes it.
func (u *EndUser) Lookup(ctx context.Context, since time.Time, wait time.Duration) (Identity, error) {
	return u.index.lookup(ctx, u.client, u.account, u.identity, since, wait)
}

// Listed says whether the last complete listing of the account listed the
// user: it is in the account.
func (u *EndUser) Listed(userID string) bool {
	return u.index.listed(u.account, userID)
}

// Resync marks the calls made with the returned context as those of a
// resync, which confirm what is already settled: their reads give way to
// every other call on the same key, so that however low the rate a
// create, an update or a deletion never waits behind them.
func Resync(ctx context.Context) context.Context { return surge.Resync(ctx) }

// IdentityOf is the namespace and name of the resource a user's tags name,
// if they name one a resource could have.
func IdentityOf(user User) (types.NamespacedName, bool) {
	return identityOf(surge.User{ID: user.ID, Metadata: user.Metadata})
}

// UserOf is a user of the Surge client, as this package shows it.
func UserOf(user surge.User) User {
	return User{ID: user.ID, FirstName: user.FirstName, LastName: user.LastName, PhotoURL: user.PhotoURL, Metadata: user.Metadata}
}

func (f Fields) wire() surge.UserFields {
	return surge.UserFields{FirstName: f.FirstName, LastName: f.LastName, PhotoURL: f.PhotoURL, Metadata: f.Metadata}
}
