package controller

import (
	"context"

	"github.com/surge-operator/surge-operator/internal/surge"
)

// SurgeAPI is the part of the Surge API the reconciler needs. *surge.Client
// implements it; the reconciler never speaks HTTP itself.
type SurgeAPI interface {
	CreateUser(ctx context.Context, accountID string, fields surge.UserFields) (surge.User, error)
	GetUser(ctx context.Context, userID string) (surge.User, error)
	UpdateUser(ctx context.Context, userID string, fields surge.UserFields) (surge.User, error)
	DeleteUser(ctx context.Context, userID string) error
	ListUsers(ctx context.Context, accountID string) ([]surge.User, error)
	CreateToken(ctx context.Context, userID string, durationSeconds int) (string, error)
}

var _ SurgeAPI = (*surge.Client)(nil)
