package surge

import (
	"fmt"
	"testing"
	"time"
)

// surgeAfterStorm answers, in virtual time, like a Surge whose limit is
// limit requests a second (a token bucket holding half a second's worth),
// after a storm: until stormEnds it answers 429 to one request in three
// and 500 to the rest.
type surgeAfterStorm struct {
	limit     float64
	stormEnds time.Time
	tokens    float64
	filledAt  time.Time
	sent      int
}

type answer int

const (
	answerOK answer = iota
	answer429
	answer500
)

func (s *surgeAfterStorm) answer(now time.Time) answer {
	s.sent++
	if now.Before(s.stormEnds) {
		if s.sent%3 == 0 {
			return answer429
		}
		return answer500
	}
	if s.filledAt.IsZero() {
		s.filledAt, s.tokens = now, s.limit/2
	}
	s.tokens = min(s.limit/2, s.tokens+now.Sub(s.filledAt).Seconds()*s.limit)
	s.filledAt = now
	if s.tokens < 1 {
		return answer429
	}
	s.tokens--
	return answerOK
}

// recoveryAfterStorm drives an adaptive rate of ceiling 200 against
// surgeAfterStorm, sending as fast as it allows, and returns how long after
// the storm the rate of successes first holds at 85% of the limit for a
// second; false if not within ten minutes.
func recoveryAfterStorm(limit float64) (time.Duration, bool) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	surge := &surgeAfterStorm{limit: limit, stormEnds: start.Add(30 * time.Second)}
	a := newAdaptiveRate(200)
	var okAt []time.Time
	for now := start; now.Before(surge.stormEnds.Add(10 * time.Minute)); {
		switch surge.answer(now) {
		case answerOK:
			a.succeeded(now)
			okAt = append(okAt, now)
		case answer429:
			a.throttled(now, now)
		case answer500:
		}
		if now.After(surge.stormEnds.Add(time.Second)) {
			window := 0
			for i := len(okAt) - 1; i >= 0 && now.Sub(okAt[i]) < time.Second; i-- {
				window++
			}
			if float64(window) >= 0.85*limit {
				return now.Sub(surge.stormEnds), true
			}
		}
		now = now.Add(time.Duration(float64(time.Second) / a.rate(now)))
	}
	return 0, false
}

// After an episode of 429s and 500s, the rate climbs back to Surge's limit
// once they stop: in seconds at 5 requests a second, in under a minute at
// 50 (the time is virtual: the simulation runs the rate's arithmetic).
func TestTheRateRecoversAfterAStorm(t *testing.T) {
	for _, tc := range []struct {
		limit  float64
		within time.Duration
	}{
		{5, 30 * time.Second},
		{50, time.Minute},
		{200, 2 * time.Minute},
	} {
		t.Run(fmt.Sprint(tc.limit, " rps"), func(t *testing.T) {
			took, recovered := recoveryAfterStorm(tc.limit)
			t.Logf("at a limit of %.0f rps: 85%% of it served %v after the storm", tc.limit, took)
			if !recovered || took > tc.within {
				t.Errorf("85%% of a limit of %.0f rps served after %v (recovered: %v), want within %v", tc.limit, took, recovered, tc.within)
			}
		})
	}
}

// steadyState drives the rate against a Surge of limit requests a second
// for ten minutes and returns, after the first minute, the share of the
// limit served and the share of requests answered 429.
func steadyState(limit float64) (served, limited float64) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	surge := &surgeAfterStorm{limit: limit, stormEnds: start}
	a := newAdaptiveRate(200)
	ok, throttled := 0, 0
	counted := start.Add(time.Minute)
	end := start.Add(10 * time.Minute)
	for now := start; now.Before(end); now = now.Add(time.Duration(float64(time.Second) / a.rate(now))) {
		switch surge.answer(now) {
		case answerOK:
			a.succeeded(now)
			if now.After(counted) {
				ok++
			}
		case answer429:
			a.throttled(now, now)
			if now.After(counted) {
				throttled++
			}
		}
	}
	return float64(ok) / (end.Sub(counted).Seconds() * limit), float64(throttled) / float64(ok+throttled)
}

// Climbing faster after a storm costs nothing in the steady state at 5
// requests a second and above: most of the limit served, few 429s.
func TestTheSteadyStateServesTheLimitWithFew429s(t *testing.T) {
	for _, limit := range []float64{5, 10, 50, 200} {
		served, limited := steadyState(limit)
		t.Logf("at a limit of %.0f rps: %.0f%% of it served, %.1f%% answered 429", limit, 100*served, 100*limited)
		if served < 0.9 || limited > 0.025 {
			t.Errorf("at a limit of %.0f rps: %.0f%% of it served with %.1f%% answered 429, want at least 90%% with at most 2.5%%", limit, 100*served, 100*limited)
		}
	}
}
