package surge

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ms := time.Millisecond
	type ask struct {
		at    time.Duration
		rate  float64
		burst int
	}
	for _, tt := range []struct {
		name string
		// before runs on the empty schedule first; restart, when set,
		// then starts it over at that time.
		before  []ask
		restart *ask
		asks    []ask
		// want is the turn of each of asks, from start.
		want []time.Duration
		// newEpochs is how many times the schedule started over.
		newEpochs uint64
	}{
		{
			name: "an idle client goes at once",
			asks: []ask{{0, 10, 1}, {time.Second, 10, 1}},
			want: []time.Duration{0, time.Second},
		},
		{
			name: "turns asked together are one interval apart",
			asks: []ask{{0, 10, 1}, {0, 10, 1}, {0, 10, 1}},
			want: []time.Duration{0, 100 * ms, 200 * ms},
		},
		{
			name: "after an idle spell, burst turns come at once, then one an interval",
			asks: []ask{{0, 10, 3}, {0, 10, 3}, {0, 10, 3}, {0, 10, 3}, {0, 10, 3}},
			want: []time.Duration{0, 0, 0, 100 * ms, 200 * ms},
		},
		{
			name: "a short idle spell earns part of the burst back",
			asks: []ask{{0, 10, 3}, {0, 10, 3}, {0, 10, 3}, {150 * ms, 10, 3}, {150 * ms, 10, 3}},
			want: []time.Duration{0, 0, 0, 150 * ms, 200 * ms},
		},
		{
			name: "a turn at a slower rate comes after the turns given at the faster one",
			asks: []ask{{0, 10, 1}, {0, 10, 1}, {0, 2, 1}, {0, 2, 1}},
			want: []time.Duration{0, 100 * ms, 200 * ms, 700 * ms},
		},
		{
			name: "a turn at a slightly faster rate does not overtake the turns waiting",
			asks: []ask{{0, 2, 1}, {0, 2, 1}, {0, 2, 1}, {0, 2.4, 1}},
			want: []time.Duration{0, 500 * ms, time.Second, 1500 * ms},
		},
		{
			name:      "a rate grown well past the pace of the waiting turns starts the schedule over",
			asks:      []ask{{0, 2, 1}, {0, 2, 1}, {0, 2, 1}, {10 * ms, 4, 1}, {10 * ms, 4, 1}},
			want:      []time.Duration{0, 500 * ms, time.Second, 10 * ms, 260 * ms},
			newEpochs: 1,
		},
		{
			name: "with no turn waiting, a faster rate is the new pace without starting over",
			asks: []ask{{0, 2, 1}, {time.Second, 100, 1}, {time.Second, 100, 1}},
			want: []time.Duration{0, time.Second, time.Second + 10*ms},
		},
		{
			name:      "after a restart the turns come one interval apart from its start, with no burst",
			before:    []ask{{0, 10, 5}, {0, 10, 5}},
			restart:   &ask{time.Second, 5, 5},
			asks:      []ask{{100 * ms, 5, 5}, {100 * ms, 5, 5}, {3 * time.Second, 5, 5}},
			want:      []time.Duration{time.Second, 1200 * ms, 3 * time.Second},
			newEpochs: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s schedule
			for _, a := range tt.before {
				_, s = s.turn(at(a.at), a.rate, a.burst)
			}
			if tt.restart != nil {
				s = s.restart(at(tt.restart.at), tt.restart.rate, tt.restart.burst)
			}
			for i, a := range tt.asks {
				var turn time.Time
				turn, s = s.turn(at(a.at), a.rate, a.burst)
				if got := turn.Sub(start); got != tt.want[i] {
					t.Errorf("turn %d asked at %v at %g/s: %v, want %v", i+1, a.at, a.rate, got, tt.want[i])
				}
			}
			if got := s.epoch; got != tt.newEpochs {
				t.Errorf("started over %d times, want %d", got, tt.newEpochs)
			}
		})
	}
}
