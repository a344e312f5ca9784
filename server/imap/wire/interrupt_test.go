package wire

import (
	"bufio"
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// interruptRaceConn is the server's side of a connection whose first
// read deadline in the future — the wait for the first command — is held
// back at the moment the read has computed it and not yet set it: there,
// interrupt (Disconnect or Shutdown) starts on another goroutine, and the
// deadline is set only once the interruption has either set its own
// deadline in the past (which the read's deadline then overtakes: the
// interruption is lost) or waits for the read to set its deadline first
// (Server.interruptHook, as interruptReads takes Conn.waitMu).
type interruptRaceConn struct {
	net.Conn
	interrupt func()
	waiting   chan struct{} // closed by Server.interruptHook
	past      chan struct{} // closed when a deadline in the past is set

	once, waitOnce, pastOnce sync.Once
}

func (c *interruptRaceConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		err := c.Conn.SetReadDeadline(t)
		c.pastOnce.Do(func() { close(c.past) })
		return err
	}
	c.once.Do(func() {
		go c.interrupt()
		select {
		case <-c.past:
		case <-c.waiting:
		}
	})
	return c.Conn.SetReadDeadline(t)
}

// TestInterruptBeforeReadDeadline: Disconnect and Shutdown end a
// connection waiting for a command even when they come between the wait's
// read computing its deadline and setting it. Before Conn.waitMu the read
// set its deadline after theirs, and the connection waited for the
// client for its whole idle timeout (an hour here), unannounced.
func TestInterruptBeforeReadDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		// interrupt interrupts c, served by srv; a Shutdown waits for
		// the connections until ctx ends.
		interrupt func(ctx context.Context, srv *Server, c *Conn)
		bye       string
	}{
		{"Disconnect", func(_ context.Context, _ *Server, c *Conn) { c.Disconnect("UNAVAILABLE", "login revoked") },
			"* BYE [UNAVAILABLE] login revoked"},
		{"Shutdown", func(ctx context.Context, srv *Server, _ *Conn) { srv.Shutdown(ctx) },
			"* BYE Server shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// shutdownCtx ends a Shutdown that waits for a connection that
			// was not interrupted (a failing test).
			shutdownCtx, endShutdown := context.WithCancel(context.Background())
			defer endShutdown()
			b := newMemBackend()
			var conn *Conn // set by NewSession, before the connection's first read
			srv, err := New(Options{
				NewSession: func(c *Conn) (Session, error) {
					conn = c
					return b.newSession(c)
				},
				Logger: testLogger(t),
				Limits: Limits{PreAuth: StateLimits{IdleTimeout: time.Hour, ReadTimeout: time.Hour}, LoginTimeout: time.Hour},
			})
			if err != nil {
				t.Fatal(err)
			}
			rc := &interruptRaceConn{waiting: make(chan struct{}), past: make(chan struct{})}
			rc.interrupt = func() { tc.interrupt(shutdownCtx, srv, conn) }
			srv.interruptHook = func() { rc.waitOnce.Do(func() { close(rc.waiting) }) }

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if rc.Conn, err = ln.Accept(); err != nil {
				t.Fatal(err)
			}
			served := make(chan struct{})
			go func() {
				defer close(served)
				srv.ServeConn(rc)
			}()
			defer func() {
				// Ends what a failing test leaves waiting.
				endShutdown()
				srv.Shutdown(shutdownCtx)
				<-served
			}()

			cl := &tclient{t: t, nc: client, br: bufio.NewReader(client)}
			cl.expectRe(`^\* OK `)
			// line waits 10 s at most; with the interruption lost, the BYE
			// would come after the hour's idle timeout.
			cl.expect(tc.bye)
			select {
			case <-served:
			case <-time.After(10 * time.Second): // only ends a failing test
				t.Fatal("the connection did not end after its BYE")
			}
		})
	}
}
