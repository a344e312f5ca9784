package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// TestIdleTimeoutPreAuth checks that a silent client is told BYE and
// disconnected after the pre-auth idle timeout, and one that keeps
// talking without logging in after LoginTimeout. The chatty client runs
// against a server whose idle timeout is far longer than its pauses, so
// that its BYE can only come from LoginTimeout, however slow the machine:
// the test asserts what ended the session, not how fast.
func TestIdleTimeoutPreAuth(t *testing.T) {
	addr, _ := startServer(t, newMemBackend(), func(o *Options) {
		o.Limits.PreAuth.IdleTimeout = 100 * time.Millisecond
	})
	c := dial(t, addr)
	rest, closed := c.closed(1000)
	if !closed || rest != "* BYE Autologout; idle for too long\r\n" {
		t.Errorf("silent client: %q closed=%v", rest, closed)
	}

	addr, _ = startServer(t, newMemBackend(), func(o *Options) {
		o.Limits.PreAuth.IdleTimeout = time.Minute
		o.Limits.LoginTimeout = 400 * time.Millisecond
	})
	c = dial(t, addr)
	answered := 0
	// The bound only ends a failing test; LoginTimeout ends a passing one.
	for stop := time.Now().Add(time.Minute); time.Now().Before(stop); {
		c.send("n NOOP")
		l := c.line()
		if strings.HasPrefix(l, "* BYE") {
			if answered == 0 {
				t.Error("BYE before any command was answered")
			}
			if rest, closed := c.closed(1000); !closed || rest != "" {
				t.Errorf("after BYE: %q closed=%v", rest, closed)
			}
			return
		}
		if l != "n OK NOOP completed" {
			c.until("n OK")
		}
		answered++
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("chatty client never logged out by LoginTimeout")
}

// TestCommandTimeoutPreAuth checks that a command trickled in slowly
// before login is cut off by the pre-auth CommandTimeout.
func TestCommandTimeoutPreAuth(t *testing.T) {
	addr, _ := startServer(t, newMemBackend(), func(o *Options) {
		o.Limits.PreAuth.CommandTimeout = 200 * time.Millisecond
	})
	c := dial(t, addr)
	stop := time.Now().Add(3 * time.Second)
	for time.Now().Before(stop) {
		if err := c.nc.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			break
		}
		if _, err := c.nc.Write([]byte("a")); err != nil {
			return // closed: good
		}
		time.Sleep(20 * time.Millisecond)
		c.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		if l, err := c.br.ReadString('\n'); err == nil {
			if !strings.HasPrefix(l, "* BYE") {
				t.Fatalf("unexpected %q", l)
			}
			return
		}
	}
	t.Error("slow command never cut off")
}

// TestTLSHandshakeTimeout checks that an implicit-TLS connection that
// never starts the handshake is closed (issue 9 item 2 at this layer).
func TestTLSHandshakeTimeout(t *testing.T) {
	b := newMemBackend()
	srv, err := New(Options{NewSession: b.newSession, Limits: Limits{PreAuth: StateLimits{ReadTimeout: 100 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, testTLS(t)))
	defer srv.Shutdown(context.Background())
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("silent TLS client not closed: %v", err)
	}
}

// TestImplicitTLS checks a session over implicit TLS: AUTH=PLAIN is
// offered and LOGIN works.
func TestImplicitTLS(t *testing.T) {
	b := newMemBackend()
	srv, err := New(Options{NewSession: b.newSession})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, testTLS(t)))
	defer srv.Shutdown(context.Background())
	c := dialTLS(t, ln.Addr().String())
	c.send("a CAPABILITY")
	c.expect("* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ENABLE IDLE ID AUTH=PLAIN", "a OK CAPABILITY completed")
	c.login()
}

// TestStartTLSInjection checks that commands pipelined in the clear after
// STARTTLS are not run inside the TLS session (CVE-2011-0411's class).
func TestStartTLSInjection(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, func(o *Options) {
		o.InsecureAuth = false
		o.TLSConfig = testTLS(t)
	})
	c := dial(t, addr)
	c.send("a CAPABILITY")
	c.expect("* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ENABLE IDLE ID STARTTLS LOGINDISABLED", "a OK CAPABILITY completed")
	c.raw("s STARTTLS\r\nx LOGIN user pass\r\n")
	c.expect("s OK Begin TLS negotiation now")
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c2 := &tclient{t: t, nc: tc, br: bufio.NewReader(tc)}
	c2.send("b NOOP")
	c2.expect("b OK NOOP completed") // no "x OK": the injected LOGIN was dropped
	c2.send("c STARTTLS")
	c2.expect("c BAD TLS is already active")
	b.mu.Lock()
	logins := b.logins
	b.mu.Unlock()
	if logins != 0 {
		t.Errorf("%d logins ran", logins)
	}
}

// TestShutdown checks that Shutdown tells idle clients BYE and waits for
// the connections to end.
func TestShutdown(t *testing.T) {
	b := newMemBackend()
	opt := Options{NewSession: b.newSession, InsecureAuth: true}
	srv, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.login()
	c.selectInbox()
	idler := dial(t, ln.Addr().String())
	idler.login()
	idler.send("i IDLE")
	idler.expect("+ idling")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v", err)
	}
	if rest, closed := c.closed(1000); !closed || rest != "* BYE Server shutting down\r\n" {
		t.Errorf("idle client: %q closed=%v", rest, closed)
	}
	if _, closed := idler.closed(1000); !closed {
		t.Error("idling client not closed")
	}
	b.mu.Lock()
	left := len(b.sessions)
	b.mu.Unlock()
	if left != 0 {
		t.Errorf("%d sessions not closed", left)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting")
	}
}

// TestCancelOnDisconnect checks that a command's context is cancelled
// when the client goes away while it runs (a long SEARCH must not keep a
// core busy for nobody; issue 9 item 8 relies on this).
func TestCancelOnDisconnect(t *testing.T) {
	b := newMemBackend()
	b.blocked = make(chan error, 1)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.selectInbox()
	c.send("s SEARCH TEXT block")
	time.Sleep(100 * time.Millisecond) // the command is running
	c.nc.Close()
	select {
	case err := <-b.blocked:
		if err == nil {
			t.Error("context not cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command still running 5 s after the client left")
	}

	// A client that pipelines the next command is not taken for gone.
	c = dial(t, addr)
	c.login()
	c.selectInbox()
	c.send("s SEARCH TEXT block")
	time.Sleep(100 * time.Millisecond)
	c.send("n NOOP")
	select {
	case err := <-b.blocked:
		t.Fatalf("cancelled by a pipelined command: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}
