package listener

import (
	"fmt"
	"net"
	"sync"
)

// Defaults for zero LimiterOptions fields.
const (
	// DefaultConnections bounds open connections in total.
	DefaultConnections = 1000
	// DefaultConnectionsPerClient bounds open connections from one
	// client address (an IPv4 address or an IPv6 /64).
	DefaultConnectionsPerClient = 20
)

// LimiterOptions configures NewLimiter. Zero fields take the defaults;
// no cap can be switched off.
type LimiterOptions struct {
	// Connections bounds open connections in total; 0: DefaultConnections.
	Connections int
	// PerClient bounds open connections from one client: an IPv4
	// address, or the /64 of an IPv6 address. 0:
	// DefaultConnectionsPerClient, but never more than Connections.
	PerClient int
}

// Validate reports a negative field, or PerClient above Connections.
func (o LimiterOptions) Validate() error {
	if o.Connections < 0 || o.PerClient < 0 {
		return fmt.Errorf("listener: negative connection limit")
	}
	if o.PerClient > 0 && o.Connections > 0 && o.PerClient > o.Connections {
		return fmt.Errorf("listener: %d connections per client exceed the total of %d", o.PerClient, o.Connections)
	}
	return nil
}

// Limiter counts open connections in total and per client. Listeners
// that share one share its caps. It is safe for concurrent use.
type Limiter struct {
	total, perClient int // immutable

	mu    sync.Mutex
	open  int            // guarded by mu
	byKey map[string]int // guarded by mu
}

// NewLimiter returns a Limiter with opt's caps (defaults for zero fields;
// a PerClient above Connections is lowered to it).
func NewLimiter(opt LimiterOptions) *Limiter {
	total, per := opt.Connections, opt.PerClient
	if total <= 0 {
		total = DefaultConnections
	}
	if per <= 0 {
		per = DefaultConnectionsPerClient
	}
	per = min(per, total)
	return &Limiter{total: total, perClient: per, byKey: make(map[string]int)}
}

// Caps returns the limiter's total and per-client caps.
func (l *Limiter) Caps() (total, perClient int) { return l.total, l.perClient }

// Open returns the number of open connections.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// acquire counts one more connection from key, if the caps allow it.
func (l *Limiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.byKey[key] >= l.perClient {
		return false
	}
	l.open++
	l.byKey[key]++
	return true
}

func (l *Limiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byKey[key]--; l.byKey[key] <= 0 {
		delete(l.byKey, key)
	}
}

// ClientKey is what connections from a are counted by: the IPv4 address,
// or the first 64 bits of an IPv6 address (IPv4-mapped addresses count as
// IPv4). Addresses without an IP (Unix sockets) share the key "".
func ClientKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return ""
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
