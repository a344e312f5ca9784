package smtp

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// connTracker counts open connections, in total and per remote address,
// and knows them all so Shutdown can close the idle ones.
type connTracker struct {
	maxTotal, maxPerIP int // immutable

	mu       sync.Mutex
	perIP    map[string]int            // guarded by mu
	conns    map[*trackedConn]struct{} // guarded by mu
	draining bool                      // guarded by mu; no new connections
}

func newConnTracker(maxTotal, maxPerIP int) *connTracker {
	return &connTracker{
		maxTotal: maxTotal,
		maxPerIP: maxPerIP,
		perIP:    make(map[string]int),
		conns:    make(map[*trackedConn]struct{}),
	}
}

// remoteKey is the address connections are counted by.
func remoteKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// admit wraps c if the limits allow one more connection.
func (t *connTracker) admit(c net.Conn) (*trackedConn, bool) {
	ip := remoteKey(c.RemoteAddr())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining || len(t.conns) >= t.maxTotal || t.perIP[ip] >= t.maxPerIP {
		return nil, false
	}
	tc := &trackedConn{Conn: c, t: t, ip: ip}
	t.conns[tc] = struct{}{}
	t.perIP[ip]++
	return tc, true
}

func (t *connTracker) release(tc *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[tc]; !ok {
		return
	}
	delete(t.conns, tc)
	if t.perIP[tc.ip]--; t.perIP[tc.ip] <= 0 {
		delete(t.perIP, tc.ip)
	}
}

// drain refuses new connections and asks every open one to close as soon
// as no transaction is between its data and its reply.
func (t *connTracker) drain() {
	t.mu.Lock()
	t.draining = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for tc := range t.conns {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		tc.drain()
	}
}

// closeAll closes every open connection, whatever it is doing.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for tc := range t.conns {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// count returns the number of open connections.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// connState is where a connection is in its current transaction.
type connState uint8

const (
	connIdle     connState = iota // no transaction open: may be closed
	connTx                        // MAIL accepted, DATA/BDAT not yet begun
	connData                      // inside Session.Data
	connReplying                  // Data returned, its reply not yet written
)

// trackedConn is a connection counted by a connTracker. Closing it is
// idempotent and releases its count. While draining, it closes itself at
// the first moment no transaction is open, so a transaction that has
// begun (MAIL accepted) may finish, and one that has committed always
// gets its reply out first.
type trackedConn struct {
	net.Conn
	t  *connTracker // immutable
	ip string       // immutable

	mu       sync.Mutex
	state    connState // guarded by mu
	draining bool      // guarded by mu
	timedOut bool      // guarded by mu; a read timed out: no more reads, close after the next write
	closed   bool      // guarded by mu
}

// trackedOf finds the trackedConn under c (which may be a *tls.Conn after
// STARTTLS), or nil.
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// Read refuses to read on once a read has timed out: the client may be
// in the middle of a message, and what it sends next must not be taken
// for commands (go-smtp would carry on reading after a DATA or BDAT
// timeout). go-smtp then writes its reply, which closes the connection.
// Inside a transaction the timeout is reported as errDataTimeout: go-smtp
// sends a BDAT chunk's read error as the reply, and would otherwise
// answer a permanent 554 with the socket error's text.
func (c *trackedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	closeNow := c.draining && c.state == connIdle
	timedOut := c.timedOut
	c.mu.Unlock()
	if closeNow {
		c.Close()
		return 0, net.ErrClosed
	}
	if timedOut {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(b)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.mu.Lock()
		c.timedOut = true
		inTx := c.state == connTx || c.state == connData
		c.mu.Unlock()
		if inTx {
			return n, errDataTimeout
		}
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	closeNow := c.timedOut
	if c.state == connReplying {
		c.state = connIdle
		closeNow = closeNow || c.draining
	}
	c.mu.Unlock()
	if closeNow {
		c.Close()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.t.release(c)
	return c.Conn.Close()
}

// beginTx marks a transaction open (MAIL accepted). It returns false if
// the server is draining: the caller refuses the MAIL command.
func (c *trackedConn) beginTx() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.state = connTx
	return true
}

// beginData marks that Session.Data runs for the open transaction.
func (c *trackedConn) beginData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = connData
}

// endData marks that Data returned; the next write is its reply.
func (c *trackedConn) endData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == connData {
		c.state = connReplying
	}
}

// endTx marks the transaction closed (RSET, EHLO, end of data). A reply
// still owed for data keeps the connection open until it is written.
func (c *trackedConn) endTx() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == connTx || c.state == connData {
		c.state = connIdle
	}
}

func (c *trackedConn) drain() {
	c.mu.Lock()
	c.draining = true
	closeNow := c.state == connIdle
	c.mu.Unlock()
	if closeNow {
		c.Close()
	}
}

// limitListener admits connections through a connTracker and answers the
// rest with 421 4.7.0 (RFC 5321 §3.8).
type limitListener struct {
	net.Listener
	t   *connTracker // immutable
	log *slog.Logger // immutable
}

// rejectWriteTimeout bounds the write of the 421 greeting, which happens
// in the accept loop.
const rejectWriteTimeout = 100 * time.Millisecond

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.t.admit(c); ok {
			return tc, nil
		}
		l.log.Info("connection refused: limit reached", keyRemote, c.RemoteAddr().String())
		c.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
		c.Write([]byte("421 4.7.0 " + errConnLimit.Message + "\r\n"))
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			l.log.Debug("close refused connection", keyErr, err)
		}
	}
}
