package listener

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/server/connset"
)

// Defaults for zero Options fields.
const (
	// DefaultHandshakeTimeout bounds an implicit-TLS handshake. Real
	// clients finish in well under a second, even over slow links.
	DefaultHandshakeTimeout = 15 * time.Second
	// DefaultIdleTimeout is the read deadline of a new connection until
	// the protocol sets its own.
	DefaultIdleTimeout = time.Minute
)

// refuseWriteTimeout bounds Options.Refuse's write, made in the accept
// loop.
const refuseWriteTimeout = 100 * time.Millisecond

// Options configures New. The zero value is safe: default caps, default
// deadlines, a plaintext listener, refusals closed without a word.
type Options struct {
	// Name labels log lines ("smtp", "imaps"). "": the listen address.
	Name string
	// Limiter caps open connections; listeners may share one. nil: a
	// Limiter of its own with the default caps.
	Limiter *Limiter
	// TLSConfig makes this an implicit-TLS listener: Accept returns a
	// *tls.Conn whose handshake must end within HandshakeTimeout. nil:
	// plaintext (a protocol may still offer STARTTLS).
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the TLS handshake of an implicit-TLS
	// listener. 0: DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout is the read deadline set on each new connection; the
	// protocol replaces it with its own. 0: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Refuse writes the protocol's goodbye to a plaintext connection over
	// a cap, before the guard closes it (SMTP: "421 4.7.0 …", IMAP: "* BYE
	// …"). It gets the connection with a short write deadline set and
	// must not read. It is not called on implicit-TLS listeners, where a
	// goodbye would cost a handshake. nil: close without a word.
	Refuse func(c net.Conn)
	// Logger gets refusals (at most one line a second) and accept errors.
	// nil: discard.
	Logger *slog.Logger
}

// Listener is a guarded net.Listener; see the package documentation.
type Listener struct {
	ln      net.Listener     // immutable
	opt     Options          // immutable; defaults filled in
	lim     *Limiter         // immutable
	log     *slog.Logger     // immutable
	retry   *connset.Backoff // used by Accept only
	closed  chan struct{}    // closed by Close
	closeMu sync.Once

	refused   atomic.Int64 // refusals not yet logged
	lastLog   atomic.Int64 // unix nanoseconds of the last refusal log line
	acceptErr atomic.Int64 // temporary accept errors in the current run

	acceptedTotal atomic.Uint64 // connections handed to the protocol
	refusedTotal  atomic.Uint64 // connections refused over a cap
}

// Stats are a listener's counts since it was made, for monitoring.
type Stats struct {
	Accepted uint64 // connections handed to the protocol
	Refused  uint64 // connections closed at once over a cap
	Open     int    // connections open now, counted by the Limiter (which listeners may share)
}

// Stats returns the listener's counts.
func (l *Listener) Stats() Stats {
	return Stats{Accepted: l.acceptedTotal.Load(), Refused: l.refusedTotal.Load(), Open: l.lim.Open()}
}

var _ net.Listener = (*Listener)(nil)

// New guards ln. Closing the Listener closes ln.
func New(ln net.Listener, opt Options) *Listener {
	if opt.Name == "" {
		opt.Name = ln.Addr().String()
	}
	if opt.HandshakeTimeout <= 0 {
		opt.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	lim := opt.Limiter
	if lim == nil {
		lim = NewLimiter(LimiterOptions{})
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		ln:     ln,
		opt:    opt,
		lim:    lim,
		log:    log.With("proto", opt.Name),
		closed: make(chan struct{}),
	}
	l.retry = &connset.Backoff{Done: l.closed}
	return l
}

// Accept waits for a connection the caps allow and returns it, as a
// *tls.Conn on an implicit-TLS listener. Temporary accept errors are
// retried (logged, with backoff); Accept returns an error only when the
// listener is closed or accepting fails for good.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.retry.Retry(err) {
				if l.acceptErr.Add(1) == 1 {
					l.log.Warn("accept failed; retrying with backoff until it works again", "err", err)
				}
				continue
			}
			return nil, err
		}
		l.retry.Reset()
		if n := l.acceptErr.Swap(0); n > 0 {
			l.log.Info("accepting again", "failures", n)
		}
		key := ClientKey(c.RemoteAddr())
		if !l.lim.acquire(key) {
			l.refusedTotal.Add(1)
			l.refuse(c)
			continue
		}
		l.acceptedTotal.Add(1)
		c.SetReadDeadline(time.Now().Add(l.opt.IdleTimeout))
		gc := &guardConn{Conn: c, lim: l.lim, key: key}
		if l.opt.TLSConfig == nil {
			return gc, nil
		}
		tc := tls.Server(gc, l.opt.TLSConfig)
		go handshake(tc, l.opt.HandshakeTimeout)
		return tc, nil
	}
}

// handshake bounds tc's handshake: crypto/tls closes the connection when
// the context ends first. Whoever reads or writes tc meanwhile waits for
// this handshake and gets its result.
func handshake(tc *tls.Conn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = tc.HandshakeContext(ctx) // failures surface to the protocol's first read or write
}

// refuse says goodbye to c (plaintext only) and closes it.
func (l *Listener) refuse(c net.Conn) {
	if l.opt.Refuse != nil && l.opt.TLSConfig == nil {
		c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		l.opt.Refuse(c)
	}
	c.Close()
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last >= int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.refused.Add(-n)
		total, per := l.lim.Caps()
		l.log.Warn("connections refused: limit reached", "refused", n, "remote", c.RemoteAddr().String(),
			"limit_total", total, "limit_per_client", per)
	}
}

// Close stops accepting; open connections stay open.
func (l *Listener) Close() error {
	l.closeMu.Do(func() { close(l.closed) })
	return l.ln.Close()
}

// Addr returns the listen address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// guardConn releases its count in the Limiter on its first Close.
type guardConn struct {
	net.Conn
	lim  *Limiter // immutable
	key  string   // immutable
	once sync.Once
}

func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.lim.release(c.key) })
	return err
}
