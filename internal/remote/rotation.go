package remote

import (
	"context"
	"sync/atomic"

	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// rotatingClient is the Surge client of one resource for one reconcile. When Surge
// rejects a project's key, it reads the key again and, if the key was
// rotated meanwhile, repeats the call once with the new one: a 401 is a
// refusal, so nothing happened that repeating could double.
//
// It is safe for concurrent use: the reconcile that asked for it may hand
// it to a background listing of the account (the identity index) and go on
// calling it, and either may be the one that switches to a rotated key.
type rotatingClient struct {
	current atomic.Pointer[surge.Client]
	// reload rereads the project's key; nil for the operator's own key,
	// which only a restart changes.
	reload func(context.Context) (*surge.Client, error)
}

func newRotatingClient(key credentials.Key) *rotatingClient {
	c := &rotatingClient{reload: key.Reload}
	c.current.Store(key.Client)
	return c
}

func (c *rotatingClient) retryOnRotatedKey(ctx context.Context, call func(*surge.Client) error) error {
	used := c.current.Load()
	err := call(used)
	if !surge.IsUnauthorized(err) || c.reload == nil {
		return err
	}
	fresh, reloadErr := c.reload(ctx)
	if reloadErr != nil || fresh == used {
		return err
	}
	// Another call may have switched already, to this key or a newer one.
	c.current.CompareAndSwap(used, fresh)
	return call(fresh)
}

// CreateUser creates a user in an account.
func (c *rotatingClient) CreateUser(ctx context.Context, accountID string, fields surge.UserFields) (surge.User, error) {
	var user surge.User
	err := c.retryOnRotatedKey(ctx, func(s *surge.Client) (err error) {
		user, err = s.CreateUser(ctx, accountID, fields)
		return err
	})
	return user, err
}

// GetUser reads a user.
func (c *rotatingClient) GetUser(ctx context.Context, userID string) (surge.User, error) {
	var user surge.User
	err := c.retryOnRotatedKey(ctx, func(s *surge.Client) (err error) {
		user, err = s.GetUser(ctx, userID)
		return err
	})
	return user, err
}

// UpdateUser replaces the whole state of a user.
func (c *rotatingClient) UpdateUser(ctx context.Context, userID string, fields surge.UserFields) (surge.User, error) {
	var user surge.User
	err := c.retryOnRotatedKey(ctx, func(s *surge.Client) (err error) {
		user, err = s.UpdateUser(ctx, userID, fields)
		return err
	})
	return user, err
}

// DeleteUser deletes a user.
func (c *rotatingClient) DeleteUser(ctx context.Context, userID string) error {
	return c.retryOnRotatedKey(ctx, func(s *surge.Client) error {
		return s.DeleteUser(ctx, userID)
	})
}

// ListUsersPage reads one page of an account's users.
func (c *rotatingClient) ListUsersPage(ctx context.Context, accountID, cursor string) ([]surge.User, string, error) {
	var users []surge.User
	var next string
	err := c.retryOnRotatedKey(ctx, func(s *surge.Client) (err error) {
		users, next, err = s.ListUsersPage(ctx, accountID, cursor)
		return err
	})
	return users, next, err
}

// CreateToken issues a component token for a user.
func (c *rotatingClient) CreateToken(ctx context.Context, userID string, durationSeconds int) (string, error) {
	var token string
	err := c.retryOnRotatedKey(ctx, func(s *surge.Client) (err error) {
		token, err = s.CreateToken(ctx, userID, durationSeconds)
		return err
	})
	return token, err
}
