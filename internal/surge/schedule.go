package surge

import "time"

// speedUp is how much faster than the pace of the waiting turns the rate
// must have grown for them to be given again at the new pace. Without it,
// turns handed out while the client was slow would keep it slow for as
// long as they wait (up to maxTurnWait), however fast it may go by then.
const speedUp = 1.25

// schedule gives requests their turns at a rate that may change from one
// turn to the next. Each turn comes one interval, at the rate of the
// moment, after the one before it, so that turns taken at different rates
// never fall on top of one another; after an idle spell, up to burst turns
// come at once. It is a virtual-time token bucket, and pure: the caller
// serialises calls and commits a turn by keeping the schedule returned.
type schedule struct {
	// due is when the turn after the last one given falls due, were no
	// burst allowed. It runs ahead of the clock while turns wait.
	due time.Time
	// pace is the rate the waiting turns were spaced at.
	pace float64
	// epoch counts restarts: a turn given under an earlier epoch is
	// taken again.
	epoch uint64
}

// turn is when a request asking at now may go, at perSecond with bursts
// of burst, and the schedule once that turn is taken. When the rate has
// grown well past the pace of the turns still waiting, the schedule starts
// over at now first, in a new epoch.
func (s schedule) turn(now time.Time, perSecond float64, burst int) (time.Time, schedule) {
	switch {
	case !s.due.After(now):
		// No turn is waiting: the pace is the rate of the moment.
		s.pace = perSecond
	case perSecond >= speedUp*s.pace:
		s = s.restart(now, perSecond, burst)
	}
	interval := intervalOf(perSecond)
	due := laterOf(s.due, now)
	at := laterOf(now, due.Add(-time.Duration(max(burst, 1)-1)*interval))
	s.due = due.Add(interval)
	return at, s
}

// restart starts the schedule over at from, at perSecond: the next turn
// comes at from, the one after it an interval later, and so on, with no
// burst. Turns given before are of an earlier epoch.
func (s schedule) restart(from time.Time, perSecond float64, burst int) schedule {
	return schedule{
		due:   from.Add(time.Duration(max(burst, 1)-1) * intervalOf(perSecond)),
		pace:  perSecond,
		epoch: s.epoch + 1,
	}
}

func intervalOf(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / perSecond)
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
