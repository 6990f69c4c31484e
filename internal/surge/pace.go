package surge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
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
	// paced is false when the client has no ceiling of its own, and only
	// Surge's 429s and Retry-After hold it back.
	paced    bool
	burst    int
	observer Observer

	mu       sync.Mutex
	adaptive adaptiveRate
	schedule schedule
	// retake is closed when the schedule starts over, to wake the
	// requests waiting for turns of the epoch that ended.
	retake       chan struct{}
	budget       retryBudget
	blockedUntil time.Time
	owed         owedTurns
}

// newPacer paces at most ceiling requests per second with bursts of burst;
// a ceiling <= 0 leaves only Surge's 429s and Retry-After to pace it.
func newPacer(ceiling float64, burst int, observer Observer) *pacer {
	p := &pacer{burst: max(burst, 1), observer: observer, budget: newRetryBudget(), retake: make(chan struct{})}
	if ceiling > 0 {
		p.paced = true
		p.adaptive = newAdaptiveRate(ceiling)
		observer.RateChanged(p.adaptive.rate(time.Now()), ceiling)
	}
	return p
}

// turn waits for the request's turn and returns when it was given. A wait
// longer than maxTurnWait is not waited for: it becomes a
// *RateLimitedError at once.
func (p *pacer) turn(ctx context.Context, operation string) (time.Time, error) {
	for {
		// The pause after a 429 is waited out before a turn is taken:
		// turns count from the present, and the pause may end later
		// than another caller's.
		if err := p.waitPause(ctx, operation); err != nil {
			return time.Time{}, err
		}
		if !p.paced {
			return time.Now(), nil
		}
		now := time.Now()
		p.mu.Lock()
		allowed := p.adaptive.rate(now)
		at, taken := p.schedule.turn(now, allowed, p.adaptive.burst(now, p.burst))
		wait := at.Sub(now)
		err := p.refuseLongWait(ctx, operation, wait)
		if err == nil {
			p.setSchedule(taken)
		}
		retake := p.retake
		p.mu.Unlock()
		p.observer.RateChanged(allowed, p.adaptive.ceiling)
		if err != nil {
			return time.Time{}, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return time.Time{}, ctx.Err()
		case <-retake:
			// The schedule started over: a 429 paused and slowed the
			// client, or its rate grew well past the pace this turn was
			// given at. The turn is taken again under the new one,
			// rather than sent into the limit with the others given
			// before the 429, or left waiting at a pace since outgrown.
			timer.Stop()
			continue
		case <-timer.C:
		}
		// A 429 may have come just as the turn came.
		if err := p.waitPause(ctx, operation); err != nil {
			return time.Time{}, err
		}
		p.mu.Lock()
		current := p.schedule.epoch == taken.epoch
		p.mu.Unlock()
		if current {
			return time.Now(), nil
		}
	}
}

// giveWay holds back a resync read while a request that does not give
// way is expected back for a turn.
func (p *pacer) giveWay(operation string) error {
	p.mu.Lock()
	wait, held := p.owed.holdsBack(time.Now())
	p.mu.Unlock()
	if held {
		return &RateLimitedError{Operation: operation, RetryAfter: wait}
	}
	return nil
}

// arrived is told of a request that does not give way, before its first
// turn.
func (p *pacer) arrived() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owed.arrived(time.Now())
}

// sentAway is told of a request that does not give way, and that the
// client sent away to come back after retryAfter.
func (p *pacer) sentAway(retryAfter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.owed.sentAway(time.Now().Add(retryAfter))
}

// setSchedule keeps s, and wakes the requests waiting for turns of an
// epoch s ended. The caller holds p.mu.
func (p *pacer) setSchedule(s schedule) {
	if s.epoch != p.schedule.epoch {
		close(p.retake)
		p.retake = make(chan struct{})
	}
	p.schedule = s
}

// waitPause waits out the pause after a 429, or hands a long one back.
func (p *pacer) waitPause(ctx context.Context, operation string) error {
	for {
		p.mu.Lock()
		hold := time.Until(p.blockedUntil)
		p.mu.Unlock()
		if hold <= 0 {
			return nil
		}
		if err := p.refuseLongWait(ctx, operation, hold); err != nil {
			return err
		}
		if !sleep(ctx, hold) {
			return ctx.Err()
		}
	}
}

// refuseLongWait is the *RateLimitedError for a wait too long to spend
// inside a call, or one the call's deadline or SendBy would cut short.
func (p *pacer) refuseLongWait(ctx context.Context, operation string, wait time.Duration) error {
	deadline, hasDeadline := ctx.Deadline()
	if wait > maxTurnWait || (hasDeadline && time.Until(deadline) < wait) || tooLateToSend(ctx, time.Now().Add(wait)) {
		return &RateLimitedError{Operation: operation, RetryAfter: wait}
	}
	return nil
}

type sendByKey struct{}

// SendBy bounds when the requests made with the returned context may leave:
// one whose turn comes after latest is held back, unsent, as a
// *RateLimitedError that WasNotSent reports. A caller that records a send
// time before a request that must not happen twice learns from it how late
// Surge can have received the request.
func SendBy(ctx context.Context, latest time.Time) context.Context {
	return context.WithValue(ctx, sendByKey{}, latest)
}

// tooLateToSend says whether a request of ctx leaving at departure would
// leave after its SendBy bound.
func tooLateToSend(ctx context.Context, departure time.Time) bool {
	latest, bounded := ctx.Value(sendByKey{}).(time.Time)
	return bounded && departure.After(latest)
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
		if err == nil && p.paced {
			p.adaptive.succeeded(now)
		}
		return err
	}
	decreased := p.paced && p.adaptive.throttled(sentAt, now)
	// A pause too long to honour is the caller's to wait out by
	// requeueing, but the client still holds back meanwhile.
	if until := now.Add(apiErr.RetryAfter); until.After(p.blockedUntil) {
		p.blockedUntil = until
	}
	retryAfter := max(p.blockedUntil.Sub(now), time.Duration(0))
	if p.paced {
		// Surge has no turn left for the client: the turns given before
		// are taken again after the pause, one interval apart at the
		// rate now allowed, rather than all sent when it ends.
		from := laterOf(now, p.blockedUntil)
		allowed := p.adaptive.rate(from)
		p.setSchedule(p.schedule.restart(from, allowed, p.adaptive.burst(from, p.burst)))
		// The caller that drew the 429 is told to come back one turn
		// after the pause: the first turn goes to a request held back
		// during it. While Surge answers every request 429 with a long
		// Retry-After, one request goes out a pause, and this way they
		// take turns instead of racing for it at the end of each pause.
		retryAfter += intervalOf(allowed)
	}
	if decreased {
		p.observer.RateChanged(p.adaptive.rate(now), p.adaptive.ceiling)
	}
	return &RateLimitedError{Operation: operation, RetryAfter: retryAfter, err: err}
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
