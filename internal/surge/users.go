package surge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// User is a Surge end user.
type User struct {
	ID        string            `json:"id"`
	FirstName string            `json:"first_name"`
	LastName  string            `json:"last_name,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	PhotoURL  string            `json:"photo_url,omitempty"`
}

// UserFields is the full desired state of a user, sent whole on create and
// on update.
type UserFields struct {
	FirstName string
	LastName  string
	PhotoURL  string
	Metadata  map[string]string
}

// userBody is UserFields on the wire. Surge does not document whether
// PATCH clears a field left out, so every field is always sent: an empty
// optional string as null and empty metadata as {}, which clear them either
// way, where "" would be refused as a photo_url.
type userBody struct {
	FirstName string            `json:"first_name"`
	LastName  *string           `json:"last_name"`
	Metadata  map[string]string `json:"metadata"`
	PhotoURL  *string           `json:"photo_url"`
}

func newUserBody(f UserFields) userBody {
	metadata := f.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	return userBody{FirstName: f.FirstName, LastName: nullable(f.LastName), Metadata: metadata, PhotoURL: nullable(f.PhotoURL)}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateUser creates a user in an account. It is never retried: Surge has
// no idempotency key, so a repeated create makes a second user. After a
// failure without response the user may or may not exist; the caller must
// find out before creating again.
func (c *Client) CreateUser(ctx context.Context, accountID string, f UserFields) (User, error) {
	const operation = "create_user"
	if accountID == "" {
		return User{}, errEmptyID(operation, "account")
	}
	var u User
	err := c.do(ctx, call{
		operation:     operation,
		method:        http.MethodPost,
		path:          "/accounts/" + url.PathEscape(accountID) + "/users",
		body:          newUserBody(f),
		accountScoped: true,
		out:           &u,
	})
	return u, err
}

// GetUser reads a user.
func (c *Client) GetUser(ctx context.Context, userID string) (User, error) {
	const operation = "get_user"
	if userID == "" {
		return User{}, errEmptyID(operation, "user")
	}
	var u User
	err := c.do(ctx, call{
		operation: operation,
		method:    http.MethodGet,
		path:      userPath(userID),
		retrySafe: true,
		out:       &u,
	})
	return u, err
}

// UpdateUser replaces the whole state of a user with f. Since the whole
// state is sent, repeating it has the same effect, so it is retried.
func (c *Client) UpdateUser(ctx context.Context, userID string, f UserFields) (User, error) {
	const operation = "update_user"
	if userID == "" {
		return User{}, errEmptyID(operation, "user")
	}
	var u User
	err := c.do(ctx, call{
		operation: operation,
		method:    http.MethodPatch,
		path:      userPath(userID),
		body:      newUserBody(f),
		retrySafe: true,
		out:       &u,
	})
	return u, err
}

// DeleteUser deletes a user. A user that does not exist is a not-found
// error, including when a retry follows a delete whose response was lost;
// callers wanting the user gone can treat IsNotFound as success.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	const operation = "delete_user"
	if userID == "" {
		return errEmptyID(operation, "user")
	}
	return c.do(ctx, call{
		operation: operation,
		method:    http.MethodDelete,
		path:      userPath(userID),
		retrySafe: true,
	})
}

type listPage struct {
	Data       []User `json:"data"`
	Pagination struct {
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

// ListUsers returns every user of an account, reading all pages.
func (c *Client) ListUsers(ctx context.Context, accountID string) ([]User, error) {
	users := []User{}
	err := c.EachUser(ctx, accountID, func(u User) bool {
		users = append(users, u)
		return true
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// EachUser calls visit with every user of an account, page by page, until
// visit returns false: a search stops reading pages once it has found what
// it looks for.
func (c *Client) EachUser(ctx context.Context, accountID string, visit func(User) bool) error {
	seen := map[string]bool{}
	cursor := ""
	for {
		users, next, err := c.ListUsersPage(ctx, accountID, cursor)
		if err != nil {
			return err
		}
		for _, u := range users {
			if !visit(u) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		// A server handing back a cursor already followed would keep this
		// loop going forever.
		if seen[next] {
			return fmt.Errorf("surge list_users: pagination repeated cursor %q", next)
		}
		seen[next] = true
		cursor = next
	}
}

// ListUsersPage reads one page of an account's users: the first when cursor
// is empty, else the one after cursor. next is empty on the last page. A walk
// through a large account can resume from the last cursor after a failure.
func (c *Client) ListUsersPage(ctx context.Context, accountID, cursor string) (users []User, next string, err error) {
	const operation = "list_users"
	if accountID == "" {
		return nil, "", errEmptyID(operation, "account")
	}
	var query url.Values
	if cursor != "" {
		query = url.Values{"after": {cursor}}
	}
	var page listPage
	err = c.do(ctx, call{
		operation:     operation,
		method:        http.MethodGet,
		path:          "/accounts/" + url.PathEscape(accountID) + "/users",
		query:         query,
		retrySafe:     true,
		accountScoped: true,
		out:           &page,
	})
	if err != nil {
		return nil, "", err
	}
	if page.Pagination.NextCursor != nil {
		next = *page.Pagination.NextCursor
	}
	return page.Data, next, nil
}

// CreateToken issues a token for the embedded components of a user, valid
// durationSeconds (15 to 3600; 0 lets Surge choose its default of 900).
// Read its expiry with ParseTokenClaims. Issuing a second token is
// harmless, so it is retried.
func (c *Client) CreateToken(ctx context.Context, userID string, durationSeconds int) (string, error) {
	const operation = "create_token"
	if userID == "" {
		return "", errEmptyID(operation, "user")
	}
	var body struct {
		DurationSeconds int `json:"duration_seconds,omitempty"`
	}
	body.DurationSeconds = durationSeconds
	var out struct {
		Token string `json:"token"`
	}
	err := c.do(ctx, call{
		operation: operation,
		method:    http.MethodPost,
		path:      userPath(userID) + "/tokens",
		body:      body,
		retrySafe: true,
		out:       &out,
	})
	if err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", errors.New("surge create_token: response has no token")
	}
	return out.Token, nil
}

// probeUserID is an id no user has, in Surge's id format.
const probeUserID = "usr_00000000000000000000000000"

// CheckKey asks Surge whether it accepts the client's key, with a read
// that changes nothing: reading a user that does not exist answers 404
// not_found to an accepted key, and 401 or 403 to a rejected one.
func (c *Client) CheckKey(ctx context.Context) error {
	_, err := c.GetUser(ctx, probeUserID)
	if IsNotFound(err) {
		return nil
	}
	return err
}

func userPath(userID string) string { return "/users/" + url.PathEscape(userID) }

func errEmptyID(operation, kind string) error {
	return fmt.Errorf("surge %s: %s id is empty", operation, kind)
}
