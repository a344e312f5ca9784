package smtp

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// clientKey is what a client is counted by, for connection caps, rates
// and probing: an IPv4 address, or the /64 of an IPv6 address (which one
// subscriber usually holds whole). IPv4-mapped addresses count as IPv4;
// addresses without an IP share "".
func clientKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return ""
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// clientTableSize bounds the clients a clientTable remembers; the least
// recently seen are forgotten first.
const clientTableSize = 16384

// clientWindow is how long a client's unknown recipients count.
const clientWindow = 15 * time.Minute

// clientTable remembers recent clients: their delivery rate (token
// buckets refilled per minute) and the unknown recipients they named. It
// is bounded (least recently seen forgotten first), so a flood of
// addresses costs bounded memory; a forgotten client starts afresh.
type clientTable struct {
	max int // immutable

	mu  sync.Mutex
	m   map[string]*list.Element // guarded by mu; values *clientState
	lru *list.List               // guarded by mu; front: most recent
}

type clientState struct {
	key string
	// Delivery rate: tokens left, refilled continuously up to the limit.
	msgs, bytes float64
	refilled    time.Time
	// Probing: unknown recipients since unknownSince.
	unknown      int
	unknownSince time.Time
}

func newClientTable(max int) *clientTable {
	return &clientTable{max: max, m: make(map[string]*list.Element), lru: list.New()}
}

// get returns key's state, making it (with full buckets) if needed. The
// caller holds t.mu.
func (t *clientTable) getLocked(key string, lim Limits, now time.Time) *clientState {
	if e, ok := t.m[key]; ok {
		t.lru.MoveToFront(e)
		return e.Value.(*clientState)
	}
	st := &clientState{key: key, msgs: float64(lim.RateMessages), bytes: float64(lim.RateBytes), refilled: now}
	t.m[key] = t.lru.PushFront(st)
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.m, old.Value.(*clientState).key)
	}
	return st
}

// refill adds what a minute's rate gives for the time since the last
// refill, up to the limits.
func (st *clientState) refill(lim Limits, now time.Time) {
	el := now.Sub(st.refilled).Minutes()
	if el <= 0 {
		return
	}
	st.msgs = min(st.msgs+el*float64(lim.RateMessages), float64(lim.RateMessages))
	st.bytes = min(st.bytes+el*float64(lim.RateBytes), float64(lim.RateBytes))
	st.refilled = now
}

// allow reports whether key may start another message now: it has a
// message left in its bucket and its byte bucket is not overdrawn.
func (t *clientTable) allow(key string, lim Limits, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.getLocked(key, lim, now)
	st.refill(lim, now)
	return st.msgs >= 1 && st.bytes > 0
}

// charge takes one message and n bytes (message size times receiving
// accounts) from key's buckets. The byte bucket may go below zero: a
// large message is let through whole, and the client waits longer after.
func (t *clientTable) charge(key string, lim Limits, now time.Time, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.getLocked(key, lim, now)
	st.refill(lim, now)
	st.msgs--
	st.bytes -= float64(n)
}

// addUnknown counts an unknown recipient named by key and returns how
// many it named within clientWindow.
func (t *clientTable) addUnknown(key string, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.getLocked(key, Limits{}, now)
	if now.Sub(st.unknownSince) > clientWindow {
		st.unknown, st.unknownSince = 0, now
	}
	st.unknown++
	return st.unknown
}
