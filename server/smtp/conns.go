package smtp

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
)

// connTracker knows every open connection, so that Shutdown can close
// the idle ones and let transactions in flight finish. Connection caps
// are not its business: cmd/sealmail serves SMTP on a listener guarded by
// server/listener, whose Refuse hook is Server.Refuse.
type connTracker struct {
	mu       sync.Mutex
	conns    map[*trackedConn]struct{} // guarded by mu
	draining bool                      // guarded by mu; no new connections
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[*trackedConn]struct{})}
}

// admit wraps c, unless the server is draining.
func (t *connTracker) admit(c net.Conn) (*trackedConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return nil, false
	}
	tc := &trackedConn{Conn: c, t: t}
	t.conns[tc] = struct{}{}
	return tc, true
}

func (t *connTracker) release(tc *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, tc)
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
	t *connTracker // immutable

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

// trackListener registers every connection with a connTracker; while
// the server drains, a connection that slipped past the closing listener
// is closed at once.
type trackListener struct {
	net.Listener
	t *connTracker // immutable
}

func (l *trackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.t.admit(c); ok {
			return tc, nil
		}
		c.Close()
	}
}

// Refuse tells a client over a connection limit to come back later (RFC
// 5321 §3.8: 421 before the greeting) on c, which the caller closes. It is
// the Refuse hook for server/listener.
func (s *Server) Refuse(c net.Conn) {
	fmt.Fprintf(c, "421 4.7.0 %s %s\r\n", s.opt.Hostname, errConnLimit.Message)
}
