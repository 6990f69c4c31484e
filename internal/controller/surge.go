package controller

import (
	"context"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// SurgeAPI is the part of the Surge API the reconciler needs, through the
// key that serves one resource. The credentials package hands it out; the
// reconciler never speaks HTTP itself.
type SurgeAPI interface {
	CreateUser(ctx context.Context, accountID string, fields surge.UserFields) (surge.User, error)
	GetUser(ctx context.Context, userID string) (surge.User, error)
	UpdateUser(ctx context.Context, userID string, fields surge.UserFields) (surge.User, error)
	DeleteUser(ctx context.Context, userID string) error
	EachUser(ctx context.Context, accountID string, visit func(surge.User) bool) error
	ListUsersPage(ctx context.Context, accountID, cursor string) ([]surge.User, string, error)
	CreateToken(ctx context.Context, userID string, durationSeconds int) (string, error)
	// Scope names the key's project; what one key can see is cached per
	// scope.
	Scope() string
}

// Credentials hands out the Surge client of a resource, or a
// *credentials.Refusal saying why the resource may not reach Surge.
type Credentials interface {
	ClientFor(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (*credentials.Client, error)
	// Admits says the same of obj as ClientFor, without building a client.
	Admits(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error
}

var _ SurgeAPI = (*credentials.Client)(nil)
