package surge

import (
	"testing"
	"time"
)

func TestOwedTurns(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type event struct {
		sentAwayUntil time.Duration // a request told to come back then
		arrivedAt     time.Duration // a request that does not give way asks
	}
	tests := []struct {
		name     string
		events   []event
		askAt    time.Duration
		wantHeld bool
		wantWait time.Duration
	}{
		{name: "nobody was sent away", askAt: 0},
		{
			name:     "a create sent away holds resync reads until a second after it is back",
			events:   []event{{sentAwayUntil: 10 * time.Second}},
			askAt:    time.Second,
			wantHeld: true, wantWait: 10 * time.Second,
		},
		{
			name:     "the last of several sets the wait",
			events:   []event{{sentAwayUntil: 10 * time.Second}, {sentAwayUntil: 4 * time.Second}},
			askAt:    0,
			wantHeld: true, wantWait: 11 * time.Second,
		},
		{
			name:   "a create that came back releases the reads",
			events: []event{{sentAwayUntil: 10 * time.Second}, {arrivedAt: 10 * time.Second}},
			askAt:  10 * time.Second,
		},
		{
			name:   "a requeue a little early is still the one expected",
			events: []event{{sentAwayUntil: 10 * time.Second}, {arrivedAt: 9 * time.Second}},
			askAt:  9 * time.Second,
		},
		{
			name:     "a new create long before is not taken for the one expected",
			events:   []event{{sentAwayUntil: 10 * time.Second}, {arrivedAt: time.Second}},
			askAt:    time.Second,
			wantHeld: true, wantWait: 10 * time.Second,
		},
		{
			name:     "one that is late is still waited for within the grace",
			events:   []event{{sentAwayUntil: 10 * time.Second}},
			askAt:    10*time.Second + owedGrace,
			wantHeld: true, wantWait: time.Second,
		},
		{
			name:   "one that never came back is given up after the grace",
			events: []event{{sentAwayUntil: 10 * time.Second}},
			askAt:  10*time.Second + owedGrace + time.Millisecond,
		},
		{
			name:     "the earliest expected is the one taken as back",
			events:   []event{{sentAwayUntil: 10 * time.Second}, {sentAwayUntil: 3 * time.Second}, {arrivedAt: 3 * time.Second}},
			askAt:    3 * time.Second,
			wantHeld: true, wantWait: 8 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o owedTurns
			for _, e := range tt.events {
				if e.sentAwayUntil > 0 {
					o.sentAway(at(e.sentAwayUntil))
				} else {
					o.arrived(at(e.arrivedAt))
				}
			}
			wait, held := o.holdsBack(at(tt.askAt))
			if held != tt.wantHeld || wait != tt.wantWait {
				t.Errorf("holdsBack = %s, %t; want %s, %t", wait, held, tt.wantWait, tt.wantHeld)
			}
		})
	}
}
