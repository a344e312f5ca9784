package account

import (
	"context"
	"math"
	"net"
	"sync"
	"time"
)

// limits are the login throttle's parameters (defaultLimits; tests use
// others).
type limits struct {
	// halfLife is how fast attempt scores decay.
	halfLife time.Duration

	// An address's first ipFree attempts that did not succeed cost
	// nothing extra; after that, its attempts are spaced by a gap that
	// doubles per attempt up to ipMaxGap. An attempt that would wait more
	// than ipMaxWait is refused: this refuses an address, never an
	// account.
	ipFree              float64
	ipBaseGap, ipMaxGap time.Duration
	ipMaxWait           time.Duration
	// Likewise per account (whatever the address), but never refused and
	// never waiting more than acctMaxWait, so that guessing from many
	// addresses slows down without locking the owner out.
	acctFree                float64
	acctBaseGap, acctMaxGap time.Duration
	acctMaxWait             time.Duration

	// In flight (admitted and not yet answered, failure delay included,
	// for an address or a known pair; admitted and not yet checked for an
	// account): at most ipInFlight attempts per address and acctInFlight
	// per account run at once; ipQueue and acctQueue more wait for a place;
	// anything beyond is refused at once, before any work.
	ipInFlight, ipQueue     int
	acctInFlight, acctQueue int

	// A known pair (an address the account logged in from within
	// trustedFor, with fewer than pairMaxFailures failures since) skips
	// the address and account limits above, has its own in-flight limit,
	// and goes first in the unlock queue: an attacker's failures, however
	// many, cannot slow the owner's usual devices down.
	trustedFor              time.Duration
	pairMaxFailures         int
	pairInFlight, pairQueue int

	// maxEntries bounds each of the throttle's maps.
	maxEntries int
}

var defaultLimits = limits{
	halfLife: 10 * time.Minute,

	ipFree: 5, ipBaseGap: 500 * time.Millisecond, ipMaxGap: 30 * time.Second, ipMaxWait: 60 * time.Second,
	acctFree: 3, acctBaseGap: 250 * time.Millisecond, acctMaxGap: 5 * time.Second, acctMaxWait: 30 * time.Second,

	ipInFlight: 4, ipQueue: 8,
	acctInFlight: 2, acctQueue: 4,

	trustedFor: 30 * 24 * time.Hour, pairMaxFailures: 5,
	pairInFlight: 8, pairQueue: 8,

	maxEntries: 100000,
}

// clientKey returns the throttling key of a remote address: the IPv4
// address, or the /64 of an IPv6 address (one host usually owns a whole
// /64).
func clientKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

// score is a decaying count of attempts that have not succeeded, and the
// earliest start of the next attempt.
type score struct {
	value float64
	at    time.Time
	next  time.Time
}

func (s *score) decayed(now time.Time, halfLife time.Duration) float64 {
	if s == nil || s.at.IsZero() {
		return 0
	}
	return s.value * math.Exp2(-float64(now.Sub(s.at))/float64(halfLife))
}

func (s *score) add(now time.Time, d float64, halfLife time.Duration) {
	s.value = max(s.decayed(now, halfLife)+d, 0)
	s.at = now
}

// reserve returns when the next attempt may start (at the earliest now)
// and books the one after it gap later.
func (s *score) reserve(now time.Time, gap time.Duration) time.Time {
	slot := now
	if s.next.After(slot) {
		slot = s.next
	}
	s.next = slot.Add(gap)
	return slot
}

func expWait(base time.Duration, n float64, max time.Duration) time.Duration {
	if n > 30 {
		return max
	}
	d := time.Duration(float64(base) * math.Exp2(n-1))
	if d > max || d <= 0 {
		return max
	}
	return d
}

// pairState is what the throttle knows of one (address, account) pair.
type pairState struct {
	lastSuccess time.Time
	failures    int // since lastSuccess
}

// lane limits how many attempts of one key run at once, with a bounded
// FIFO of waiters.
type lane struct {
	running int
	waiters []chan struct{}
}

// lanes is a keyed set of lanes with the same limits.
type lanes struct {
	run, queue int
	m          map[string]*lane
}

func (l *lanes) full(k string) bool {
	ln := l.m[k]
	return ln != nil && ln.running+len(ln.waiters) >= l.run+l.queue
}

// take runs k now (nil) or queues it (a channel closed when it may run).
func (l *lanes) take(k string) chan struct{} {
	ln := l.m[k]
	if ln == nil {
		ln = &lane{}
		l.m[k] = ln
	}
	if ln.running < l.run {
		ln.running++
		return nil
	}
	ch := make(chan struct{})
	ln.waiters = append(ln.waiters, ch)
	return ch
}

// release hands k's place to its first waiter or frees it.
func (l *lanes) release(k string) {
	ln := l.m[k]
	if ln == nil {
		return
	}
	if len(ln.waiters) > 0 {
		close(ln.waiters[0])
		ln.waiters = ln.waiters[1:]
		return
	}
	ln.running--
	if ln.running <= 0 {
		delete(l.m, k)
	}
}

// abandon removes a waiter that gave up. It returns false if the waiter
// was already handed a place, which the caller must then release.
func (l *lanes) abandon(k string, ch chan struct{}) bool {
	ln := l.m[k]
	if ln == nil {
		return false
	}
	for i, w := range ln.waiters {
		if w == ch {
			ln.waiters = append(ln.waiters[:i], ln.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// throttle decides whether and when a login attempt may start. An
// attempt is counted when it starts to run (it has its places in the
// address's and account's lanes) and refunded when it succeeds, or when
// it ends without having checked a secret (its client left while it
// waited, the unlock queue shed it). Parallel guesses therefore count as
// much as sequential ones: at most ipInFlight of an address run at once,
// each counted before it runs. Attempts waiting for a place are not
// counted, so a busy address of correct logins (many clients behind one
// NAT, all reconnecting after a restart) earns no gaps from its own
// queue; what it gets refused (a full lane) never counts either. A
// success on one account refunds only its own attempt, never failures
// against others.
type throttle struct {
	lim limits           // immutable
	now func() time.Time // immutable

	mu     sync.Mutex
	byIP   map[string]*score     // guarded by mu
	byAcct map[string]*score     // guarded by mu
	pairs  map[string]*pairState // guarded by mu; key pairKey(ip, account)
	ipL    lanes                 // guarded by mu
	acctL  lanes                 // guarded by mu
	pairL  lanes                 // guarded by mu
}

func newThrottle(lim limits, now func() time.Time) *throttle {
	return &throttle{
		lim: lim, now: now,
		byIP:   make(map[string]*score),
		byAcct: make(map[string]*score),
		pairs:  make(map[string]*pairState),
		ipL:    lanes{run: lim.ipInFlight, queue: lim.ipQueue, m: make(map[string]*lane)},
		acctL:  lanes{run: lim.acctInFlight, queue: lim.acctQueue, m: make(map[string]*lane)},
		pairL:  lanes{run: lim.pairInFlight, queue: lim.pairQueue, m: make(map[string]*lane)},
	}
}

func pairKey(ip, account string) string { return account + "\x00" + ip }

// ticket is one admitted attempt. done must be called once.
type ticket struct {
	t       *throttle
	ip      string
	account string
	trusted bool    // a known pair
	score   float64 // the address's score at admission, for the unlock queue
	counted bool    // counted against the address and account (not trusted)
	held    []heldLane
	// checked: a secret was tested (a cache entry tried, or a place in
	// the unlock gate taken). Set by the login on its goroutine.
	checked bool
}

// outcome is how an admitted attempt ended.
type outcome int

const (
	// failed: a secret was checked and did not open the account (or the
	// attempt ended for another reason after a check).
	failed outcome = iota
	// succeeded: the account is unlocked.
	succeeded
	// unchecked: the attempt ended before any secret was checked (its
	// client left, the unlock queue shed it): it is not counted.
	unchecked
)

type heldLane struct {
	l *lanes
	k string
}

// admit waits for the attempt's turn and counts it: first a place in its
// lanes (the address's and the account's, or the known pair's), then the
// gaps its address and account have earned. It returns ErrThrottled
// without waiting when the address or account already has too many
// attempts queued, or the address would wait too long; a refused
// attempt is not counted.
func (t *throttle) admit(ctx context.Context, ip, account string) (*ticket, error) {
	t.mu.Lock()
	now := t.now()
	t.pruneLocked(now)
	tk := &ticket{t: t, ip: ip, account: account}
	pk := pairKey(ip, account)
	if p := t.pairs[pk]; p != nil && now.Sub(p.lastSuccess) < t.lim.trustedFor && p.failures < t.lim.pairMaxFailures {
		tk.trusted = true
	}
	var order []heldLane
	if tk.trusted {
		if t.pairL.full(pk) {
			t.mu.Unlock()
			return nil, ErrThrottled
		}
		order = []heldLane{{&t.pairL, pk}}
	} else {
		if t.ipL.full(ip) || t.acctL.full(account) || t.ipTooLongLocked(ip, now) {
			t.mu.Unlock()
			return nil, ErrThrottled
		}
		order = []heldLane{{&t.ipL, ip}, {&t.acctL, account}}
	}
	// Take places now, in order, so the queue bounds hold from the start.
	var waits []chan struct{}
	for _, h := range order {
		waits = append(waits, h.l.take(h.k))
		tk.held = append(tk.held, h)
	}
	t.mu.Unlock()

	for i, ch := range waits {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
			waits[i] = nil
		case <-ctx.Done():
			t.abandon(tk, waits)
			return nil, ctx.Err()
		}
	}
	if tk.trusted {
		return tk, nil
	}
	wait, err := t.count(tk)
	if err != nil {
		tk.end(unchecked)
		return nil, err
	}
	if err := sleepCtx(ctx, wait); err != nil {
		tk.end(unchecked)
		return nil, err
	}
	return tk, nil
}

// ipTooLongLocked reports whether an attempt from ip would wait longer
// than ipMaxWait for the gaps the address has earned.
func (t *throttle) ipTooLongLocked(ip string, now time.Time) bool {
	s := t.byIP[ip]
	return s != nil && s.decayed(now, t.lim.halfLife) >= t.lim.ipFree && s.next.Sub(now) > t.lim.ipMaxWait
}

// count counts an attempt that has its places (so the attempts of its
// address and account running now are counted already) and books its
// start after the gaps they have earned: it returns how long to wait,
// or ErrThrottled if the address would wait too long.
func (t *throttle) count(tk *ticket) (time.Duration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.ipTooLongLocked(tk.ip, now) {
		return 0, ErrThrottled
	}
	var wait time.Duration
	ipS := t.scoreLocked(t.byIP, tk.ip)
	if n := ipS.decayed(now, t.lim.halfLife) - t.lim.ipFree; n >= 0 {
		gap := expWait(t.lim.ipBaseGap, n+1, t.lim.ipMaxGap)
		wait = ipS.reserve(now, gap).Sub(now)
	}
	acctS := t.scoreLocked(t.byAcct, tk.account)
	if n := acctS.decayed(now, t.lim.halfLife) - t.lim.acctFree; n >= 0 {
		gap := expWait(t.lim.acctBaseGap, n+1, t.lim.acctMaxGap)
		if acctS.next.Sub(now) > t.lim.acctMaxWait {
			acctS.next = now.Add(t.lim.acctMaxWait)
		}
		wait = max(wait, acctS.reserve(now, gap).Sub(now))
	}
	tk.score = ipS.decayed(now, t.lim.halfLife)
	ipS.add(now, 1, t.lim.halfLife)
	acctS.add(now, 1, t.lim.halfLife)
	tk.counted = true
	return wait, nil
}

// abandon gives back the places of an attempt that stopped waiting for
// them.
func (t *throttle) abandon(tk *ticket, waits []chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, h := range tk.held {
		if waits[i] != nil && h.l.abandon(h.k, waits[i]) {
			continue
		}
		h.l.release(h.k)
	}
	tk.held = nil
}

// done ends an admitted attempt that checked a secret: it frees its
// places and, on success, refunds its count and trusts the pair; on
// failure it counts against the pair's trust.
func (tk *ticket) done(success bool) {
	if success {
		tk.end(succeeded)
	} else {
		tk.end(failed)
	}
}

// end ends an admitted attempt: it frees its places; on success it
// refunds its count and trusts the pair; an attempt that checked no
// secret is refunded and leaves the pair as it was; a failure counts
// against the pair's trust.
func (tk *ticket) end(o outcome) {
	t := tk.t
	t.mu.Lock()
	defer t.mu.Unlock()
	tk.releaseLocked(nil)
	tk.settleLocked(o)
}

// fail settles a failed attempt and frees its place in the account's
// lane, but keeps its place among its address's (or known pair's)
// attempts in flight until release: until it is answered, failure delay
// included, so that an address's guesses in flight are bounded whatever
// the delay. The account's place is not held through the delay: guesses
// from many addresses must not keep the owner's new devices out longer
// than their checks take.
func (tk *ticket) fail() {
	t := tk.t
	t.mu.Lock()
	defer t.mu.Unlock()
	tk.releaseLocked(&t.acctL)
	tk.settleLocked(failed)
}

// release frees the places fail kept.
func (tk *ticket) release() {
	t := tk.t
	t.mu.Lock()
	defer t.mu.Unlock()
	tk.releaseLocked(nil)
}

// releaseLocked frees the attempt's places in lanes l (nil: all).
func (tk *ticket) releaseLocked(l *lanes) {
	var kept []heldLane
	for i := len(tk.held) - 1; i >= 0; i-- {
		h := tk.held[i]
		if l != nil && h.l != l {
			kept = append([]heldLane{h}, kept...)
			continue
		}
		h.l.release(h.k)
	}
	tk.held = kept
}

// settleLocked does the accounting of an ended attempt (see end).
func (tk *ticket) settleLocked(o outcome) {
	t := tk.t
	now := t.now()
	if o != failed && tk.counted {
		if s := t.byIP[tk.ip]; s != nil {
			s.add(now, -1, t.lim.halfLife)
		}
		if s := t.byAcct[tk.account]; s != nil {
			s.add(now, -1, t.lim.halfLife)
		}
	}
	tk.counted = false
	pk := pairKey(tk.ip, tk.account)
	switch o {
	case succeeded:
		t.pairs[pk] = &pairState{lastSuccess: now}
	case failed:
		if p := t.pairs[pk]; p != nil {
			p.failures++
		}
	}
}

func (t *throttle) scoreLocked(m map[string]*score, k string) *score {
	s := m[k]
	if s == nil {
		s = &score{}
		m[k] = s
	}
	return s
}

// pruneLocked drops decayed entries when a map grows too large, then
// arbitrary ones: under attack the maps must not grow without bound.
func (t *throttle) pruneLocked(now time.Time) {
	for _, m := range []map[string]*score{t.byIP, t.byAcct} {
		if len(m) < t.lim.maxEntries {
			continue
		}
		for k, s := range m {
			if s.decayed(now, t.lim.halfLife) < 1 && !s.next.After(now) {
				delete(m, k)
			}
		}
		for k := range m {
			if len(m) < t.lim.maxEntries {
				break
			}
			delete(m, k)
		}
	}
	if len(t.pairs) >= t.lim.maxEntries {
		for k, p := range t.pairs {
			if now.Sub(p.lastSuccess) >= t.lim.trustedFor || len(t.pairs) >= t.lim.maxEntries {
				delete(t.pairs, k)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gateQueuePerUnlock bounds the unlock queue: this many waiting attempts
// (known pairs excepted) per concurrent unlock.
const gateQueuePerUnlock = 8

// gate bounds concurrent argon2id runs. Waiters from known pairs go
// first; the others in arrival order. When the queue of others is full, a
// newcomer whose address has fewer failed attempts than the worst waiter
// takes that waiter's place (which is refused): the heaviest guessers are
// shed first.
type gate struct {
	maxQueue int // immutable

	mu   sync.Mutex
	free int           // guarded by mu
	q    []*gateWaiter // guarded by mu; arrival order
}

type gateWaiter struct {
	trusted bool
	score   float64
	ch      chan error // buffered 1: nil (run) or ErrThrottled (shed)
}

func newGate(n, maxQueue int) *gate {
	return &gate{free: n, maxQueue: maxQueue}
}

// acquire waits for a place to run, or fails with ErrThrottled (shed) or
// the context's error.
func (g *gate) acquire(ctx context.Context, trusted bool, score float64) error {
	g.mu.Lock()
	if g.free > 0 && len(g.q) == 0 {
		g.free--
		g.mu.Unlock()
		return nil
	}
	if !trusted {
		worst, others := -1, 0
		for i, w := range g.q {
			if w.trusted {
				continue
			}
			others++
			if worst < 0 || w.score >= g.q[worst].score {
				worst = i
			}
		}
		if others >= g.maxQueue {
			if g.q[worst].score <= score {
				g.mu.Unlock()
				return ErrThrottled
			}
			g.q[worst].ch <- ErrThrottled
			g.q = append(g.q[:worst], g.q[worst+1:]...)
		}
	}
	w := &gateWaiter{trusted: trusted, score: score, ch: make(chan error, 1)}
	g.q = append(g.q, w)
	g.mu.Unlock()

	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		g.mu.Lock()
		for i, x := range g.q {
			if x == w {
				g.q = append(g.q[:i], g.q[i+1:]...)
				g.mu.Unlock()
				return ctx.Err()
			}
		}
		g.mu.Unlock()
		// Already granted or shed.
		if err := <-w.ch; err == nil {
			g.release()
		}
		return ctx.Err()
	}
}

// release hands the place to the next waiter (known pairs first) or frees
// it.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := -1
	for i, w := range g.q {
		if w.trusted {
			next = i
			break
		}
	}
	if next < 0 && len(g.q) > 0 {
		next = 0
	}
	if next < 0 {
		g.free++
		return
	}
	w := g.q[next]
	g.q = append(g.q[:next], g.q[next+1:]...)
	w.ch <- nil
}
