package surge

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// owedGrace is how long after it was expected back a request sent away is
// still waited for. Past it, the request is taken to have gone elsewhere
// (its resource was deleted, say), and resync reads stop waiting for it.
const owedGrace = 5 * time.Second

// owedTurns remembers the requests that do not give way, and that the
// client sent away to come back later (a turn too far off, a pause after a
// 429): until each has come back, or its grace has run out, the reads of
// a resync get no turn. However low the rate, a create, an update or a
// deletion then waits only behind others of its kind, never behind the
// resync of thousands of settled resources. It is pure; the caller
// serialises calls.
type owedTurns struct {
	// back holds when each request sent away is expected back, earliest
	// first.
	back []time.Time
}

// sentAway records a request told to come back at at.
func (o *owedTurns) sentAway(at time.Time) {
	i, _ := slices.BinarySearchFunc(o.back, at, time.Time.Compare)
	o.back = slices.Insert(o.back, i, at)
}

// arrived is told of a request that does not give way, asking for a turn
// at now: the earliest request expected back by then is taken to be this
// one. A request that comes back a little early, as a requeue may, is
// still recognised.
func (o *owedTurns) arrived(now time.Time) {
	if len(o.back) > 0 && !o.back[0].After(now.Add(maxTurnWait)) {
		o.back = o.back[1:]
	}
}

// holdsBack reports whether a resync read asking at now must wait, and
// until when: until the last request sent away is expected back, and a
// second more, so that it finds the turns free.
func (o *owedTurns) holdsBack(now time.Time) (time.Duration, bool) {
	o.back = slices.DeleteFunc(o.back, func(at time.Time) bool { return at.Add(owedGrace).Before(now) })
	if len(o.back) == 0 {
		return 0, false
	}
	return max(o.back[len(o.back)-1].Sub(now), 0) + time.Second, true
}

type resyncKey struct{}

// Resync marks the requests made with the returned context as the reads
// of a resync, which confirm what is already settled: they give way to
// every other request of the client, however long those wait. Writes made
// with it do not give way.
func Resync(ctx context.Context) context.Context {
	return context.WithValue(ctx, resyncKey{}, true)
}

// givesWay says whether a request of method, made with ctx, gives way to
// the others.
func givesWay(ctx context.Context, method string) bool {
	resync, _ := ctx.Value(resyncKey{}).(bool)
	return resync && method == http.MethodGet
}
