package controller

import (
	"context"
	"time"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/remote"
)

// Connector connects a SurgeEndUser to the Surge side of its project. The
// remote package provides it; the reconciler never speaks to Surge's
// client itself.
type Connector interface {
	// Connect returns obj's Surge side, or a *credentials.Refusal saying
	// why obj may not reach Surge.
	Connect(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (*remote.EndUser, error)
	// Admits says the same of obj as Connect, without reading its key.
	Admits(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error
}

// EndUserRemote is the Surge side of one SurgeEndUser: its user in its
// account, through its project's key. Every error is a *remote.Error.
type EndUserRemote interface {
	Get(ctx context.Context, userID string) (remote.User, error)
	Create(ctx context.Context, fields remote.Fields, leaveBy time.Time) (remote.User, error)
	Update(ctx context.Context, userID string, fields remote.Fields) error
	Delete(ctx context.Context, userID string) error
	MintToken(ctx context.Context, userID string, durationSeconds int) (string, error)
	// Lookup finds the users that carry the resource's identity in its
	// account, from a listing that started at or after since; it waits for
	// one at most wait.
	Lookup(ctx context.Context, since time.Time, wait time.Duration) (remote.Identity, error)
	// Listed says whether the last complete listing of the account listed
	// the user.
	Listed(userID string) bool
}

// Projects is what a project reconciler needs of the Surge side: whether a
// project's key is accepted, and to forget a project that is gone.
type Projects interface {
	CheckKey(ctx context.Context, ref credentials.Ref) error
	ForgetProject(ref credentials.Ref)
}

var (
	_ EndUserRemote = (*remote.EndUser)(nil)
	_ Connector     = (*remote.Connector)(nil)
	_ Projects      = (*remote.Connector)(nil)
)
