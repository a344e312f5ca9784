package wire

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the writes of the connections it accepts.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

// TestPipelinedResponsesOneWrite: the responses to commands a client
// sent together go out together, in one write (one TLS record, one
// segment), not one per command; a command whose line is not complete
// yet, or that waits for a continuation, does not hold the earlier
// responses back.
func TestPipelinedResponsesOneWrite(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	srv, err := New(Options{NewSession: b.newSession, InsecureAuth: true, Caps: allCaps, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go srv.Serve(cl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c := dial(t, ln.Addr().String())
	c.login()

	before := cl.writes.Load()
	c.raw("p1 NOOP\r\np2 NOOP\r\np3 NOOP\r\n")
	c.expect("p1 OK NOOP completed", "p2 OK NOOP completed", "p3 OK NOOP completed")
	if n := cl.writes.Load() - before; n != 1 {
		t.Errorf("three pipelined NOOPs answered in %d writes, want 1", n)
	}

	// The next command's line is incomplete: p4's response goes out now.
	c.raw("p4 NOOP\r\np5 NO")
	c.expect("p4 OK NOOP completed")
	c.raw("OP\r\n")
	c.expect("p5 OK NOOP completed")

	// A synchronising literal: its continuation request carries p6's
	// response out first.
	c.raw("p6 NOOP\r\np7 SELECT {5}\r\n")
	c.expect("p6 OK NOOP completed")
	if l := c.line(); l[0] != '+' {
		t.Fatalf("want a continuation request, got %q", l)
	}
	c.raw("INBOX\r\n")
	c.until("p7 OK")
}
