package smtp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startShutdown runs Shutdown in the background and waits until every
// open connection has been told to drain, so what the test does next
// happens during the drain.
func startShutdown(t *testing.T, e *testEnv) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !allDraining(e.srv) {
		if time.Now().After(deadline) {
			t.Fatal("connections were not told to drain")
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// allDraining reports whether the server is closing and every
// connection it still holds knows it.
func allDraining(s *Server) bool {
	if !s.conns.Closing() {
		return false
	}
	all := true
	s.conns.Each(func(c *conn) {
		c.mu.Lock()
		all = all && c.draining
		c.mu.Unlock()
	})
	return all
}

// expectClosed reads what is left on rc: at most a 421 (the server says
// why it closes, RFC 5321 §3.8), then the end of the connection.
func expectClosed(t *testing.T, rc *rawConn, what string) {
	t.Helper()
	got := rc.reply()
	if strings.HasPrefix(got, "421 ") {
		got = rc.reply()
	}
	if !strings.HasPrefix(got, "EOF") {
		t.Errorf("%s: got %q, want the connection closed", what, got)
	}
}

// finishShutdown checks the results of Shutdown and Serve.
func finishShutdown(t *testing.T, e *testEnv, done <-chan error) {
	t.Helper()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		e.done <- nil // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return")
	}
}

func TestShutdownClosesIdleAndFinishesBusy(t *testing.T) {
	e := newEnv(t, nil)
	idle := dialRaw(t, e.addr)
	idle.cmd("EHLO client.remote.test", "250 ")
	busy := dialRaw(t, e.addr)
	busy.begin("alice@example.org")
	busy.cmd("DATA", "354")
	busy.send("Subject: during shutdown\r\n\r\nfirst part\r\n")

	done := startShutdown(t, e)
	// The idle connection is closed at once, with 421 4.3.2.
	idle.expect("421 4.3.2")
	expectClosed(t, idle, "idle connection")
	// The busy one finishes its message and gets its reply, then is closed.
	busy.cmd("second part\r\n.", "250 2.0.0")
	expectClosed(t, busy, "busy connection after its reply")
	finishShutdown(t, e, done)
	if got := e.inbox("alice@example.org"); len(got) != 1 || !strings.Contains(got[0], "second part") {
		t.Errorf("message in flight at shutdown: %q", got)
	}
}

// TestShutdownFinishesOpenTransaction: a transaction is in flight from
// MAIL on, so a client between RCPT and DATA (or between BDAT chunks)
// when Shutdown starts still gets its message through; a new MAIL is
// refused with 421 and the connection closed.
func TestShutdownFinishesOpenTransaction(t *testing.T) {
	e := newEnv(t, nil)
	data := dialRaw(t, e.addr)
	data.begin("alice@example.org")
	bdat := dialRaw(t, e.addr)
	bdat.begin("bob@example.org")
	first := "Subject: chunked at shutdown\r\n\r\n"
	bdat.send("BDAT " + strconv.Itoa(len(first)) + "\r\n" + first)
	bdat.expect("250 ")
	late := dialRaw(t, e.addr)
	late.cmd("EHLO client.remote.test", "250 ")
	late.cmd("NOOP", "250 ") // the session exists before Shutdown

	done := startShutdown(t, e)
	expectClosed(t, late, "connection without a transaction")
	data.cmd("DATA", "354")
	data.cmd("Subject: data at shutdown\r\n\r\nbody\r\n.", "250 2.0.0")
	expectClosed(t, data, "DATA connection after its reply")
	last := "body\r\n"
	bdat.send("BDAT " + strconv.Itoa(len(last)) + " LAST\r\n" + last)
	bdat.expect("250 2.0.0")
	expectClosed(t, bdat, "BDAT connection after its reply")
	finishShutdown(t, e, done)
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 {
		t.Errorf("counts %v, want one message each for alice and bob", c)
	}
}

// TestShutdownClosesAfterRSET: a transaction abandoned with RSET during
// the drain ends it; the connection is closed after the reply.
func TestShutdownClosesAfterRSET(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")

	done := startShutdown(t, e)
	rc.cmd("RSET", "250 ")
	expectClosed(t, rc, "after RSET")
	finishShutdown(t, e, done)
	e.expectEmpty()
}

// TestShutdownDeadline: a client stalling inside its transaction is cut
// off when the Shutdown context ends, and Shutdown says so.
func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	rc.send("Subject: never finished\r\n\r\n")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's error", err)
	}
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") || strings.Contains(got, "timeout") {
		t.Errorf("stalled client got %q, want the connection closed", got)
	}
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		e.done <- nil // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.connCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", e.srv.connCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.expectEmpty()
}
