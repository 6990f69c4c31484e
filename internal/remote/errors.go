package remote

import (
	"errors"
	"fmt"
	"time"

	"github.com/surge-operator/surge-operator/internal/intent"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// Kind is what a failed call to Surge calls for.
type Kind int

const (
	// Unavailable: Surge could not be reached, or failed; trying again may
	// pass.
	Unavailable Kind = iota
	// RateLimited: Surge's rate limit for the key is spent; the call may be
	// made again after Wait.
	RateLimited
	// KeyRejected: Surge refuses the API key; a person must fix it.
	KeyRejected
	// AccountNotFound: the account does not exist, or the key cannot reach
	// it.
	AccountNotFound
	// Refused: Surge refuses the request as it stands; a person must change
	// it.
	Refused
	// NotFound: Surge says the user does not exist.
	NotFound
)

// Error is a failed call to Surge, classified. Its message is the client's,
// which never holds the key.
type Error struct {
	Kind Kind
	// Fate says whether Surge may still carry the call out.
	Fate intent.Fate
	// Wait is how long to wait before the call is made again: the rate
	// limit's wait, or for Unavailable the wait Surge asked for when it is
	// longer than the client waits within a call; 0 when nothing was asked.
	Wait time.Duration
	// Status is Surge's HTTP status and error type, such as
	// "401 invalid_api_key"; empty when no answer came.
	Status string
	err    error
}

func (e *Error) Error() string {
	if e.err == nil {
		return "surge: " + e.Status
	}
	return e.err.Error()
}
func (e *Error) Unwrap() error { return e.err }

// classify turns an error of the Surge client into an *Error; nil stays nil.
func classify(err error) error {
	if err == nil {
		return nil
	}
	classified := &Error{Kind: Unavailable, Fate: fateOf(err), err: err}
	if apiErr, ok := errors.AsType[*surge.Error](err); ok {
		classified.Status = fmt.Sprintf("%d %s", apiErr.StatusCode, apiErr.Type)
	}
	if wait, limited := surge.RateLimitedFor(err); limited {
		classified.Kind, classified.Wait = RateLimited, wait
		return classified
	}
	switch {
	case surge.IsUnauthorized(err):
		classified.Kind = KeyRejected
	case surge.IsAccountNotFound(err):
		classified.Kind = AccountNotFound
	case surge.IsNotFound(err):
		classified.Kind = NotFound
	case surge.IsInvalid(err):
		classified.Kind = Refused
	default:
		classified.Wait = surge.DeferredRetry(err)
	}
	return classified
}

func fateOf(err error) intent.Fate {
	switch surge.FateOf(err) {
	case surge.NotDone:
		return intent.NotDone
	case surge.Finished:
		return intent.Finished
	}
	return intent.MaybeInFlight
}

// KindOf is the kind of a failed call, and whether err is one.
func KindOf(err error) (Kind, bool) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return Unavailable, false
	}
	return e.Kind, true
}

// IsNotFound says that Surge itself says the user does not exist.
func IsNotFound(err error) bool {
	kind, ok := KindOf(err)
	return ok && kind == NotFound
}

// FateOf is what err tells of whether Surge carried the call out. An error
// that did not come from a call is taken as maybe in flight.
func FateOf(err error) intent.Fate {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Fate
	}
	return intent.MaybeInFlight
}

// lastsUntilFixed says whether a listing that failed with err would fail
// again however often it is retried: the key or the account, or the request.
func lastsUntilFixed(err error) bool {
	kind, ok := KindOf(err)
	return ok && (kind == KeyRejected || kind == AccountNotFound || kind == Refused)
}
