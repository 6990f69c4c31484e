package surge

import (
	"math"
	"time"
)

// The shape of the adaptive rate. Surge publishes no limit, so the client
// finds it: it starts low and doubles its rate until the first 429, falls
// to a share of the rate Surge actually served when told 429, and climbs
// back along a cubic curve that is flat near the rate that last drew a 429
// and steep away from it, as TCP CUBIC and the AWS SDKs' adaptive retry
// mode do.
const (
	// initialRate is the rate before the first answer. From the first
	// success the rate doubles every slowStartDoubling until the first
	// 429 or the ceiling: 10 to 200 in about 2 s. Starting at the
	// ceiling instead would send dozens of requests into a low limit
	// before the first 429 came back, and each of them would draw one.
	initialRate       = 10
	slowStartDoubling = 500 * time.Millisecond
	// decreaseFactor is the share of the served rate kept after a 429.
	decreaseFactor = 0.7
	// The rate takes recoveryTime to climb back to where it drew the last
	// 429, or the time recoveryRequests take at that rate when that is
	// longer (below 10 rps). Each climb ends in about one 429: 4 s at
	// 5 rps would hold only 20 requests, one 429 in 20, where at 50 rps
	// they are 200.
	recoveryTime     = 4 * time.Second
	recoveryRequests = 40
	// maxRecoveryTime bounds the climb: after a storm of 429s has brought
	// the rate down to a request or two a second, 40 requests would take
	// minutes. Below 4 rps the climb therefore holds fewer requests, and
	// ends in a 429 more often.
	maxRecoveryTime = 10 * time.Second
	// Past the climb and probeDelay more, the rate also grows by
	// probeAcceleration requests a second for every second squared: near a
	// peak of tens of requests a second the cubic is the steeper, but a
	// peak that a storm set low is left in seconds, where the cubic,
	// scaled by the peak, would take minutes.
	probeDelay        = 5 * time.Second
	probeAcceleration = 0.1
	// minAdaptiveRate keeps the client probing even when Surge refused
	// everything.
	minAdaptiveRate = 0.5
	// servedRateWindow smooths the measured rate of successful answers,
	// the best estimate of Surge's limit at the moment of a 429.
	servedRateWindow = time.Second
	// burstWindow caps the burst at this much of the current rate, so
	// that a client slowed to a few requests per second does not fire
	// its whole configured burst after an idle spell.
	burstWindow = 500 * time.Millisecond
)

// adaptiveRate decides the client's pace from the answers it gets. It is
// pure: every method takes the time, and the caller serialises calls.
type adaptiveRate struct {
	ceiling float64
	// peak is the rate believed to be close to Surge's limit: where the
	// last 429 was drawn. Zero until the first 429.
	peak float64
	// decreasedAt is the time of the last decrease. A 429 to a request
	// sent before it tells of the rate before that decrease, which was
	// already acted on.
	decreasedAt time.Time
	served      eventRate
}

func newAdaptiveRate(ceiling float64) adaptiveRate {
	return adaptiveRate{ceiling: ceiling}
}

// rate is the pace allowed at now.
func (a *adaptiveRate) rate(now time.Time) float64 {
	if a.peak == 0 {
		return a.slowStart(now)
	}
	// One cubic through three points: decreaseFactor × peak right after
	// the decrease, flat at peak after the recovery, and steepening above
	// it to probe for a limit that was raised.
	elapsed, recovery := now.Sub(a.decreasedAt), a.recovery()
	progress := 1 - elapsed.Seconds()/recovery.Seconds()
	r := a.peak * (1 - (1-decreaseFactor)*progress*progress*progress)
	if beyond := (elapsed - recovery - probeDelay).Seconds(); beyond > 0 {
		r = max(r, a.peak+probeAcceleration*beyond*beyond)
	}
	return min(max(r, minAdaptiveRate), a.ceiling)
}

// recovery is how long the rate takes to climb back to the peak.
func (a *adaptiveRate) recovery() time.Duration {
	return min(max(recoveryTime, time.Duration(recoveryRequests/a.peak*float64(time.Second))), maxRecoveryTime)
}

// slowStart is the rate before the first 429: initialRate, doubling from
// the first success, up to the ceiling.
func (a *adaptiveRate) slowStart(now time.Time) float64 {
	start := min(initialRate, a.ceiling)
	if a.served.since.IsZero() {
		return start
	}
	doublings := now.Sub(a.served.since).Seconds() / slowStartDoubling.Seconds()
	return min(start*math.Pow(2, doublings), a.ceiling)
}

// burst is the schedule's burst at now, at most configured.
func (a *adaptiveRate) burst(now time.Time, configured int) int {
	return max(1, min(configured, int(a.rate(now)*burstWindow.Seconds())))
}

// succeeded records a successful answer.
func (a *adaptiveRate) succeeded(now time.Time) {
	a.served.add(now)
}

// throttled records a 429 to a request sent at sentAt, and reports
// whether the rate fell.
func (a *adaptiveRate) throttled(sentAt, now time.Time) bool {
	if !sentAt.After(a.decreasedAt) {
		return false
	}
	current := a.rate(now)
	// While the client sends less than it may, its allowed rate says
	// nothing of Surge's limit; the rate Surge served does.
	if served := a.served.at(now); served > 0 {
		current = min(current, served)
	}
	a.peak = max(current, minAdaptiveRate)
	a.decreasedAt = now
	return true
}

// eventRate is an exponentially weighted rate of events per second.
type eventRate struct {
	value     float64
	updatedAt time.Time
	// since is the first event. Until the window has passed since, the
	// average has not filled up, and is scaled up by what it lacks: a 429
	// in the first second must not be read as Surge serving almost nothing.
	since time.Time
}

// minServedHistory is the least history the rate is told from; with less,
// it is unknown (0).
const minServedHistory = 100 * time.Millisecond

func (e *eventRate) at(now time.Time) float64 {
	history := now.Sub(e.since)
	if e.since.IsZero() || history < minServedHistory {
		return 0
	}
	filled := 1 - math.Exp(-history.Seconds()/servedRateWindow.Seconds())
	return e.value * math.Exp(-now.Sub(e.updatedAt).Seconds()/servedRateWindow.Seconds()) / filled
}

func (e *eventRate) add(now time.Time) {
	if e.since.IsZero() {
		e.since = now
		e.updatedAt = now
	}
	e.value = e.value*math.Exp(-now.Sub(e.updatedAt).Seconds()/servedRateWindow.Seconds()) + 1/servedRateWindow.Seconds()
	e.updatedAt = now
}
