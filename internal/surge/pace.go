package surge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTurnWait is the longest a request waits for its turn inside a call.
// A longer wait is handed back to the caller as a *RateLimitedError, so
// that a reconcile requeues instead of holding a worker that other
// resources, or other projects, could use.
const maxTurnWait = 2 * time.Second

// RateLimitedError is a request the client did not send, or that Surge
// answered 429, because of the rate limit: it says when to try again. It
// is about the API key, never about the request, and nothing happened in
// Surge.
type RateLimitedError struct {
	Operation string
	// RetryAfter is when the client expects to have a turn again.
	RetryAfter time.Duration
	// err is Surge's 429 answer, nil when the request was never sent.
	err error
}

func (e *RateLimitedError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("surge %s: held back by the client's rate limit for %s", e.Operation, e.RetryAfter.Round(time.Millisecond))
}

func (e *RateLimitedError) Unwrap() error { return e.err }

// RateLimitedFor reports whether err is a rate limit, and how long to
// wait before trying again.
func RateLimitedFor(err error) (time.Duration, bool) {
	limited, ok := errors.AsType[*RateLimitedError](err)
	if !ok {
		return 0, false
	}
	return limited.RetryAfter, true
}

// WasNotSent reports a request the client held back without sending it,
// which rules out that it happened.
func WasNotSent(err error) bool {
	limited, ok := errors.AsType[*RateLimitedError](err)
	return ok && limited.err == nil
}

// pacer gives requests their turns: all callers of one client share its
// adaptive rate, its pause after a 429 and its retry budget, because
// Surge limits the API key, not the request.
type pacer struct {
	limiter  *rate.Limiter
	burst    int
	observer Observer

	mu           sync.Mutex
	adaptive     adaptiveRate
	budget       retryBudget
	blockedUntil time.Time
}

// newPacer paces at most ceiling requests per second with bursts of burst;
// a ceiling <= 0 leaves only Surge's 429s and Retry-After to pace it.
func newPacer(ceiling float64, burst int, observer Observer) *pacer {
	p := &pacer{burst: burst, observer: observer, budget: newRetryBudget()}
	if ceiling > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(ceiling), burst)
		p.adaptive = newAdaptiveRate(ceiling)
		observer.RateChanged(ceiling, ceiling)
	}
	return p
}

// turn waits for the request's turn and returns when it was given. A wait
// longer than maxTurnWait is not waited for: it becomes a
// *RateLimitedError at once.
func (p *pacer) turn(ctx context.Context, operation string) (time.Time, error) {
	// The pause after a 429 is waited out before a turn is reserved: the
	// limiter counts from the present, and the pause may end later than
	// another caller's.
	for {
		p.mu.Lock()
		hold := time.Until(p.blockedUntil)
		p.mu.Unlock()
		if hold <= 0 {
			break
		}
		if err := p.refuseLongWait(ctx, operation, hold); err != nil {
			return time.Time{}, err
		}
		if !sleep(ctx, hold) {
			return time.Time{}, ctx.Err()
		}
	}
	if p.limiter == nil {
		return time.Now(), nil
	}
	now := time.Now()
	p.mu.Lock()
	allowed := p.adaptive.rate(now)
	p.limiter.SetLimitAt(now, rate.Limit(allowed))
	p.limiter.SetBurstAt(now, p.adaptive.burst(now, p.burst))
	reservation := p.limiter.ReserveN(now, 1)
	p.mu.Unlock()
	p.observer.RateChanged(allowed, p.adaptive.ceiling)
	wait := reservation.DelayFrom(now)
	if err := p.refuseLongWait(ctx, operation, wait); err != nil {
		reservation.CancelAt(now)
		return time.Time{}, err
	}
	if !sleep(ctx, wait) {
		reservation.Cancel()
		return time.Time{}, ctx.Err()
	}
	return time.Now(), nil
}

// refuseLongWait is the *RateLimitedError for a wait too long to spend
// inside a call, or one the call's deadline would cut short.
func (p *pacer) refuseLongWait(ctx context.Context, operation string, wait time.Duration) error {
	deadline, hasDeadline := ctx.Deadline()
	if wait > maxTurnWait || (hasDeadline && time.Until(deadline) < wait) {
		return &RateLimitedError{Operation: operation, RetryAfter: wait}
	}
	return nil
}

// answered records how a request sent at sentAt fared. A 429 lowers the
// rate and pauses the whole client for Retry-After; the returned error is
// then a *RateLimitedError.
func (p *pacer) answered(operation string, sentAt time.Time, err error) error {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	apiErr, isAPIErr := errors.AsType[*Error](err)
	if !isAPIErr || apiErr.StatusCode != http.StatusTooManyRequests {
		if err == nil && p.limiter != nil {
			p.adaptive.succeeded(now)
		}
		return err
	}
	if p.limiter != nil && p.adaptive.throttled(sentAt, now) {
		p.observer.RateChanged(p.adaptive.rate(now), p.adaptive.ceiling)
	}
	// A pause too long to honour is the caller's to wait out by
	// requeueing, but the client still holds back meanwhile.
	if until := now.Add(apiErr.RetryAfter); until.After(p.blockedUntil) {
		p.blockedUntil = until
	}
	return &RateLimitedError{Operation: operation, RetryAfter: max(p.blockedUntil.Sub(now), time.Duration(0)), err: err}
}

// mayRetry spends cost from the retry budget on one retry, if it allows.
func (p *pacer) mayRetry(cost int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.budget.withdraw(cost)
}

// succeeded refills the retry budget; spent is what the request's retries
// cost.
func (p *pacer) succeeded(spent int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget.succeeded(spent)
}
