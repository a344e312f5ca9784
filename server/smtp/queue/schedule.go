package queue

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The scheduler: one goroutine (loop) holds at most Options.Active due
// entries in memory (their envelopes, never their bodies), grouped by
// destination, and starts deliveries as the limits allow: Connections
// in all, DestinationConnections and DestinationRate per destination.
// It refills what it holds from the store's due index when it has room
// and there may be more, and sleeps until the next entry is due, a
// delivery ends, or new mail is committed. Memory is thus bounded by
// Active and the deliveries in progress, whatever the queue's length.

const (
	// idleWait is the longest the scheduler sleeps: it then looks again
	// (and prunes the trace when that is due).
	idleWait = 10 * time.Minute
	// holdAfterFailure keeps an entry whose outcome could not be
	// committed out of the schedule for a while, so that a failing store
	// does not make it be sent again at once.
	holdAfterFailure = time.Minute
	// trimEvery is how often trace records past TraceRetention go.
	trimEvery = time.Hour
	// commitTimeout bounds the commit of a delivery's outcome, which runs
	// even when the delivery was cut off.
	commitTimeout = 30 * time.Second
)

// loop is the scheduler goroutine.
func (q *Queue) loop() {
	defer close(q.loopDone)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := q.schedule()
		wait := idleWait
		if !next.IsZero() {
			wait = min(max(next.Sub(q.now()), time.Millisecond), idleWait)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
			q.mu.Lock()
			q.dirty = true
			q.mu.Unlock()
		}
	}
}

// schedule refills, starts what it can and returns when it must look
// again (zero: when woken).
func (q *Queue) schedule() time.Time {
	ctx := q.jobCtx
	q.trim(ctx, q.now())
	q.mu.Lock()
	room := q.opt.Active - len(q.active)
	waiting := 0
	for _, d := range q.dests {
		waiting += len(d.waiting)
	}
	// Refill when there may be more due entries and either a good share
	// of room (a refill reads what is held too) or nothing left to start.
	refill := q.dirty && room > 0 && (room >= max(q.opt.Active/8, 1) || waiting == 0)
	if refill {
		q.dirty = false
	}
	// The time is read after the flag is taken: whoever set the flag
	// (a clock that moved, a retry) is then seen by this refill.
	now := q.now()
	q.mu.Unlock()
	if refill {
		if err := q.refill(ctx, now, room); err != nil && ctx.Err() == nil {
			q.log.Error("queue: read due entries", "err", err)
		}
	}
	q.mu.Lock()
	next := q.dispatchLocked(now)
	q.mu.Unlock()
	if nd, ok := q.nextDue(ctx, now); ok && (next.IsZero() || nd.Before(next)) {
		next = nd
	}
	return next
}

// refill loads due entries the scheduler does not hold yet, at most
// room of them, in due order.
func (q *Queue) refill(ctx context.Context, now time.Time, room int) error {
	q.mu.Lock()
	q.finishedDuring = map[string]bool{}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.finishedDuring = nil
		q.mu.Unlock()
	}()
	var cur store.QueueCursor
	added := 0
	for added < room {
		page, err := q.st.QueueDue(ctx, cur, now, max(room, 64))
		if err != nil {
			return err
		}
		q.mu.Lock()
		for _, e := range page {
			if added == room {
				break
			}
			cur = store.QueueCursor{Next: e.Next, ID: e.ID}
			if _, ok := q.active[e.ID]; ok || q.finishedDuring[e.ID] {
				continue
			}
			if until, ok := q.held[e.ID]; ok {
				if now.Before(until) {
					continue
				}
				delete(q.held, e.ID)
			}
			env, err := q.seal.decodeEnvelope(e.ID, e.Meta)
			if err != nil {
				// Unreadable (another key, damage): leave it for the
				// operator (queue show, drop); never deliver it.
				q.log.Error("queue entry does not open; holding it", "entry", e.ID, "err", err)
				q.held[e.ID] = now.Add(idleWait)
				continue
			}
			q.addLocked(e, env)
			added++
		}
		full := added == room
		q.moreDue = full
		q.mu.Unlock()
		if len(page) == 0 || full {
			break
		}
	}
	// Forget holds that have run out.
	q.mu.Lock()
	for id, until := range q.held {
		if !now.Before(until) {
			delete(q.held, id)
		}
	}
	q.mu.Unlock()
	return nil
}

// addLocked holds an entry and queues it for its destination.
func (q *Queue) addLocked(e store.QueueEntry, env *envelope) {
	_, key := q.route(env.Domain)
	d := q.dests[key]
	if d == nil {
		d = &dest{key: key, tokens: float64(q.burst()), refilled: q.now()}
		q.dests[key] = d
	}
	it := &item{e: e, env: env, dest: d}
	q.active[e.ID] = it
	d.waiting = append(d.waiting, it)
}

// burst is the rate bucket's size: a tenth of a minute's rate, at least
// one message.
func (q *Queue) burst() int {
	return max(q.opt.DestinationRate/10, 1)
}

// take takes one start from d's rate bucket, or reports when one will
// be there.
func (q *Queue) take(d *dest, now time.Time) (bool, time.Time) {
	rate := q.opt.DestinationRate
	if rate <= 0 {
		return true, time.Time{}
	}
	perSec := float64(rate) / 60
	if el := now.Sub(d.refilled).Seconds(); el > 0 {
		d.tokens = min(d.tokens+el*perSec, float64(q.burst()))
		d.refilled = now
	}
	if d.tokens >= 1 {
		d.tokens--
		return true, time.Time{}
	}
	return false, now.Add(time.Duration((1 - d.tokens) / perSec * float64(time.Second)))
}

// dispatchLocked starts deliveries while the limits allow and returns
// when a rate bucket will allow the next (zero: not waiting on one).
func (q *Queue) dispatchLocked(now time.Time) time.Time {
	var next time.Time
	if q.closing {
		return next
	}
	for _, d := range q.dests {
		for len(d.waiting) > 0 && d.running < q.opt.DestinationConnections && q.running < q.opt.Connections {
			ok, at := q.take(d, now)
			if !ok {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				break
			}
			it := d.waiting[0]
			d.waiting[0] = nil
			d.waiting = d.waiting[1:]
			q.startLocked(it)
		}
		if len(d.waiting) == 0 && d.running == 0 && (q.opt.DestinationRate <= 0 || d.tokens >= float64(q.burst())) {
			delete(q.dests, d.key)
		}
	}
	return next
}

// startLocked runs one delivery on its own goroutine.
func (q *Queue) startLocked(it *item) {
	ctx, cancel := context.WithCancel(q.jobCtx)
	it.running, it.cancel, it.done = true, cancel, make(chan struct{})
	it.dest.running++
	q.running++
	q.jobs.Add(1)
	go func() {
		defer q.jobs.Done()
		defer cancel()
		q.attempt(ctx, it)
		q.finish(it)
	}()
}

// finish forgets a delivered entry (the store has its new state) and
// wakes the scheduler.
func (q *Queue) finish(it *item) {
	q.mu.Lock()
	delete(q.active, it.e.ID)
	if q.finishedDuring != nil {
		q.finishedDuring[it.e.ID] = true
	}
	it.running = false
	it.dest.running--
	q.running--
	if q.moreDue {
		q.dirty = true
	}
	close(it.done)
	q.mu.Unlock()
	q.kick()
}

// hold keeps an entry out of the schedule for a while.
func (q *Queue) hold(id string, until time.Time) {
	q.mu.Lock()
	q.held[id] = until
	q.mu.Unlock()
}

// nextDue returns when the first entry not due yet will be.
func (q *Queue) nextDue(ctx context.Context, now time.Time) (time.Time, bool) {
	// IDs are printable ASCII, so every entry due at now sorts before
	// (now, "\x7f"): the cursor skips exactly those.
	es, err := q.st.QueueDue(ctx, store.QueueCursor{Next: now, ID: "\x7f"}, now.Add(100*365*24*time.Hour), 1)
	if err != nil || len(es) == 0 {
		return time.Time{}, false
	}
	return es[0].Next, true
}

// trim prunes trace records past TraceRetention, at most every
// trimEvery.
func (q *Queue) trim(ctx context.Context, now time.Time) {
	q.mu.Lock()
	due := now.Sub(q.lastTrim) >= trimEvery
	if due {
		q.lastTrim = now
	}
	q.mu.Unlock()
	if !due {
		return
	}
	n, err := q.st.PruneTraces(ctx, store.TraceOutbound, now.Add(-q.opt.TraceRetention))
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn("queue: prune trace", "err", err)
		}
		return
	}
	if n > 0 {
		q.log.Info("queue: pruned old trace records", "count", n)
	}
}

// backoff returns the wait after the n-th failed attempt (n ≥ 1):
// RetryBase doubled per attempt, at most RetryMax, spread by ±10% so
// that mail held up together does not return together.
func (q *Queue) backoff(n int) time.Duration {
	d := q.opt.RetryBase
	for i := 1; i < n && d < q.opt.RetryMax; i++ {
		d *= 2
	}
	d = min(d, q.opt.RetryMax)
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
