package surge

import (
	"math"
	"testing"
	"time"
)

func TestAdaptiveRate(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	// successesPerSecond feeds n successes a second for d before until.
	successes := func(a *adaptiveRate, perSecond float64, from, until time.Duration) {
		step := time.Duration(float64(time.Second) / perSecond)
		for now := from; now < until; now += step {
			a.succeeded(at(now))
		}
	}
	for _, tt := range []struct {
		name string
		// events runs against a rate of ceiling 100 and returns the time
		// at which the rate is read.
		events func(a *adaptiveRate) time.Time
		want   float64
	}{
		{
			name:   "starts at the initial rate, not the ceiling",
			events: func(*adaptiveRate) time.Time { return at(time.Hour) },
			want:   initialRate,
		},
		{
			name: "doubles from the first success until the first 429",
			events: func(a *adaptiveRate) time.Time {
				a.succeeded(at(0))
				return at(2 * slowStartDoubling)
			},
			want: 4 * initialRate,
		},
		{
			name: "climbs no higher than the ceiling without a 429",
			events: func(a *adaptiveRate) time.Time {
				a.succeeded(at(0))
				return at(time.Hour)
			},
			want: 100,
		},
		{
			name: "a 429 with nothing served keeps a share of the allowed rate",
			events: func(a *adaptiveRate) time.Time {
				a.throttled(at(0), at(time.Millisecond))
				return at(time.Millisecond)
			},
			want: decreaseFactor * initialRate,
		},
		{
			name: "a 429 falls from the rate Surge served, not the ceiling",
			events: func(a *adaptiveRate) time.Time {
				successes(a, 10, 0, 20*time.Second)
				a.throttled(at(20*time.Second), at(20*time.Second))
				return at(20 * time.Second)
			},
			want: 7,
		},
		{
			name: "a 429 in the first second falls from the rate served so far, not from nearly nothing",
			events: func(a *adaptiveRate) time.Time {
				successes(a, 20, 0, time.Second)
				a.throttled(at(time.Second), at(time.Second))
				return at(time.Second)
			},
			want: decreaseFactor * 20,
		},
		{
			name: "a 429 with too short a history to tell a rate from keeps a share of the allowed rate",
			events: func(a *adaptiveRate) time.Time {
				a.succeeded(at(0))
				a.throttled(at(10*time.Millisecond), at(10*time.Millisecond))
				return at(10 * time.Millisecond)
			},
			want: decreaseFactor * initialRate,
		},
		{
			name: "right after a 429 it is a share of the peak",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 20, at(0)
				return at(0)
			},
			want: decreaseFactor * 20,
		},
		{
			name: "climbs back to where it drew the 429 after the recovery time",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 20, at(0)
				return at(recoveryTime)
			},
			want: 20,
		},
		{
			name: "half way back it is close to the peak already: the curve is flat there",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 20, at(0)
				return at(recoveryTime / 2)
			},
			want: 20 * (1 - 0.3/8),
		},
		{
			name: "probes above the peak after it",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 20, at(0)
				return at(2 * recoveryTime)
			},
			want: 26,
		},
		{
			name: "at a low rate the climb back takes recoveryRequests requests, not recoveryTime",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 5, at(0)
				return at(recoveryTime)
			},
			want: 5 * (1 - 0.3/8),
		},
		{
			name: "at a low rate it is back at the peak after recoveryRequests requests",
			events: func(a *adaptiveRate) time.Time {
				a.peak, a.decreasedAt = 5, at(0)
				return at(recoveryRequests / 5 * time.Second)
			},
			want: 5,
		},
		{
			name: "never climbs above the ceiling",
			events: func(a *adaptiveRate) time.Time {
				a.throttled(at(0), at(0))
				return at(time.Hour)
			},
			want: 100,
		},
		{
			name: "429s to requests sent before the decrease do not decrease again",
			events: func(a *adaptiveRate) time.Time {
				a.throttled(at(0), at(100*time.Millisecond))
				a.throttled(at(50*time.Millisecond), at(150*time.Millisecond))
				a.throttled(at(100*time.Millisecond), at(200*time.Millisecond))
				return at(100 * time.Millisecond)
			},
			want: decreaseFactor * initialRate,
		},
		{
			name: "a 429 to a request sent at the lowered rate lowers it again",
			events: func(a *adaptiveRate) time.Time {
				a.throttled(at(0), at(100*time.Millisecond))
				a.throttled(at(150*time.Millisecond), at(200*time.Millisecond))
				return at(200 * time.Millisecond)
			},
			want: initialRate * (1 - 0.3*math.Pow(1-0.1/recoveryTime.Seconds(), 3)) * decreaseFactor,
		},
		{
			name: "never falls below the floor",
			events: func(a *adaptiveRate) time.Time {
				for i := range 40 {
					a.throttled(at(time.Duration(2*i+1)*time.Millisecond), at(time.Duration(2*i+2)*time.Millisecond))
				}
				return at(80 * time.Millisecond)
			},
			want: minAdaptiveRate,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAdaptiveRate(100)
			now := tt.events(&a)
			if got := a.rate(now); math.Abs(got-tt.want) > 0.05*tt.want {
				t.Errorf("rate = %.3f, want %.3f", got, tt.want)
			}
		})
	}
}

func TestAdaptiveBurst(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name       string
		peak       float64
		configured int
		want       int
	}{
		{"the configured burst at a high rate", 100, 40, 40},
		{"half a second's worth at a low rate", 10, 40, 5},
		{"at least one request", 1, 40, 1},
		{"never above the configured burst", 90, 10, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := adaptiveRate{ceiling: 100, peak: tt.peak, decreasedAt: now.Add(-recoveryTime)}
			if got := a.burst(now, tt.configured); got != tt.want {
				t.Errorf("burst = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestServedRateFollowsSuccesses(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var served eventRate
	if got := served.at(start); got != 0 {
		t.Errorf("nothing served: %v, want 0", got)
	}
	for i := range 200 {
		served.add(start.Add(time.Duration(i) * 50 * time.Millisecond))
	}
	if got := served.at(start.Add(10 * time.Second)); math.Abs(got-20) > 1.5 {
		t.Errorf("20 successes a second measured as %.2f", got)
	}
	if got := served.at(start.Add(20 * time.Second)); got > 0.01 {
		t.Errorf("ten seconds after the last success: %.3f, want about 0", got)
	}
}
