package listener

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/internal/testutil"
)

// serve accepts on l until it is closed and hands each connection to h.
func serve(t *testing.T, l net.Listener, h func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); h(c) }()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
}

func tcpListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127/8 to lo), so tests can play several clients.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readLine reads one line, or the error that ended the connection.
func readLine(c net.Conn) string {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "ERR " + err.Error()
	}
	return line
}

// TestCaps: the per-client cap refuses a client's extra connections with
// the protocol's goodbye while other clients still get in; the total cap
// refuses everyone; a closed connection frees its place.
func TestCaps(t *testing.T) {
	lim := NewLimiter(LimiterOptions{Connections: 3, PerClient: 2})
	l := New(tcpListen(t), Options{
		Name:    "test",
		Limiter: lim,
		Refuse:  func(c net.Conn) { io.WriteString(c, "421 4.7.0 too many connections\r\n") },
	})
	serve(t, l, func(c net.Conn) {
		io.WriteString(c, "220 hello\r\n")
		io.Copy(io.Discard, c) // until the client closes
		c.Close()
	})
	addr := l.Addr().String()
	a1 := dialFrom(t, "127.0.0.1", addr)
	if got := readLine(a1); got != "220 hello\r\n" {
		t.Fatalf("first connection: %q", got)
	}
	a2 := dialFrom(t, "127.0.0.1", addr)
	readLine(a2)
	if got := readLine(dialFrom(t, "127.0.0.1", addr)); got != "421 4.7.0 too many connections\r\n" {
		t.Errorf("third connection from one client: %q, want the refusal", got)
	}
	b1 := dialFrom(t, "127.0.0.2", addr)
	if got := readLine(b1); got != "220 hello\r\n" {
		t.Errorf("another client: %q", got)
	}
	if got := readLine(dialFrom(t, "127.0.0.3", addr)); !strings.HasPrefix(got, "421 ") {
		t.Errorf("fourth connection in all: %q, want the refusal", got)
	}
	a1.Close()
	waitOpen(t, lim, 2)
	if got := readLine(dialFrom(t, "127.0.0.3", addr)); got != "220 hello\r\n" {
		t.Errorf("after a close: %q", got)
	}
	if st := l.Stats(); st.Accepted != 4 || st.Refused != 2 || st.Open != 3 {
		t.Errorf("stats %+v, want 4 accepted, 2 refused, 3 open", st)
	}
}

// waitOpen waits until lim counts n open connections.
func waitOpen(t *testing.T, lim *Limiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); lim.Open() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", lim.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedLimiter: two listeners sharing a Limiter count together.
func TestSharedLimiter(t *testing.T) {
	lim := NewLimiter(LimiterOptions{Connections: 1, PerClient: 1})
	l1, l2 := New(tcpListen(t), Options{Limiter: lim}), New(tcpListen(t), Options{Limiter: lim})
	hold := func(c net.Conn) { io.WriteString(c, "hi\n"); io.Copy(io.Discard, c); c.Close() }
	serve(t, l1, hold)
	serve(t, l2, hold)
	c := dialFrom(t, "127.0.0.1", l1.Addr().String())
	readLine(c)
	if got := readLine(dialFrom(t, "127.0.0.1", l2.Addr().String())); !strings.HasPrefix(got, "ERR") {
		t.Errorf("second listener admitted a connection over the shared cap: %q", got)
	}
}

// TestHandshakeTimeout: on an implicit-TLS listener a client that never
// starts the handshake is closed after HandshakeTimeout, even though the
// protocol (like imapserver writing its greeting) waits on the connection
// without a read deadline; a real client gets a *tls.Conn that works.
func TestHandshakeTimeout(t *testing.T) {
	cert, pool := testutil.Cert("localhost")
	lim := NewLimiter(LimiterOptions{})
	l := New(tcpListen(t), Options{
		Limiter:          lim,
		TLSConfig:        &tls.Config{Certificates: []tls.Certificate{cert}},
		HandshakeTimeout: 300 * time.Millisecond,
		IdleTimeout:      time.Hour,
	})
	isTLS := make(chan bool, 4)
	serve(t, l, func(c net.Conn) {
		_, ok := c.(*tls.Conn)
		isTLS <- ok
		c.SetReadDeadline(time.Time{}) // the protocol clears deadlines: only the handshake timer is left
		if _, err := io.WriteString(c, "* OK ready\r\n"); err != nil {
			c.Close()
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	})
	silent := dialFrom(t, "127.0.0.1", l.Addr().String())
	if !<-isTLS {
		t.Error("Accept did not return a *tls.Conn")
	}
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := silent.Read(make([]byte, 1))
	if err == nil || n != 0 {
		t.Fatalf("silent client: read %d bytes, %v; want the connection closed", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client still connected after 30 s")
	}
	t.Logf("silent client closed after %v", time.Since(start).Round(time.Millisecond))
	waitOpen(t, lim, 0)

	tc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	defer tc.Close()
	if got := readLine(tc); got != "* OK ready\r\n" {
		t.Errorf("TLS client read %q", got)
	}
	// No goodbye over TLS: a refused client is just closed.
	lim2 := NewLimiter(LimiterOptions{Connections: 1})
	refused := false
	l2 := New(tcpListen(t), Options{Limiter: lim2, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Refuse: func(net.Conn) { refused = true }})
	serve(t, l2, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	dialFrom(t, "127.0.0.1", l2.Addr().String())
	waitOpen(t, lim2, 1)
	if got := readLine(dialFrom(t, "127.0.0.1", l2.Addr().String())); !strings.HasPrefix(got, "ERR") {
		t.Errorf("refused TLS client read %q", got)
	}
	if refused {
		t.Error("Refuse called on an implicit-TLS listener")
	}
}

// TestIdleTimeout: the guard's read deadline ends a connection whose
// protocol reads without setting one; a protocol that sets its own keeps
// its own.
func TestIdleTimeout(t *testing.T) {
	l := New(tcpListen(t), Options{IdleTimeout: 200 * time.Millisecond})
	errc := make(chan error, 2)
	serve(t, l, func(c net.Conn) {
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			errc <- err
			return
		}
		// The "protocol" takes over after its first byte.
		c.SetReadDeadline(time.Now().Add(time.Hour))
		time.Sleep(400 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.Read(b)
		errc <- err
	})
	dialFrom(t, "127.0.0.1", l.Addr().String())
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent connection: %v, want a deadline error", err)
	}
	c := dialFrom(t, "127.0.0.1", l.Addr().String())
	c.Write([]byte("x"))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after the protocol's own deadline: %v", err)
	}
}

// TestAcceptRetries: temporary errors (out of descriptors, a connection
// reset before accept) are retried, not returned; a closed listener ends
// Accept at once, also in the middle of a backoff wait.
func TestAcceptRetries(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	fl := testutil.NewFlakyListener(tcpListen(t), emfile, emfile, syscall.ECONNABORTED, emfile)
	l := New(fl, Options{})
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after temporary errors: %v", err)
	}
	c.Close()

	fl.Fail(emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile)
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(100 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still retrying after Close")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                "192.0.2.1",
		"::ffff:192.0.2.1":         "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"::1":                      "::/64",
		"fe80::1234:5678:9abc:def": "fe80::/64",
	} {
		if got := ClientKey(&net.TCPAddr{IP: net.ParseIP(in), Port: 25}); got != want {
			t.Errorf("ClientKey(%s) = %q, want %q", in, got, want)
		}
	}
	if got := ClientKey(&net.UnixAddr{Name: "/x", Net: "unix"}); got != "" {
		t.Errorf("ClientKey(unix) = %q", got)
	}
}

func TestLimiterOptions(t *testing.T) {
	if err := (LimiterOptions{Connections: 5, PerClient: 6}).Validate(); err == nil {
		t.Error("per-client above total accepted")
	}
	if err := (LimiterOptions{Connections: -1}).Validate(); err == nil {
		t.Error("negative accepted")
	}
	if total, per := NewLimiter(LimiterOptions{}).Caps(); total != DefaultConnections || per != DefaultConnectionsPerClient {
		t.Errorf("zero options: caps %d, %d", total, per)
	}
	if total, per := NewLimiter(LimiterOptions{Connections: 5}).Caps(); total != 5 || per != 5 {
		t.Errorf("per-client default above total: caps %d, %d", total, per)
	}
}

func TestShare(t *testing.T) {
	if got, scaled := Share(100, []int{10, 20, 30}); scaled || got[0] != 10 || got[2] != 30 {
		t.Errorf("fits: %v %v", got, scaled)
	}
	got, scaled := Share(120, []int{1000, 1000, 200})
	if !scaled || got[0]+got[1]+got[2] > 120 || got[0] != got[1] || got[2] >= got[0] {
		t.Errorf("scaled: %v %v", got, scaled)
	}
	if got, _ := Share(1, []int{5, 5}); got[0] != 1 || got[1] != 1 {
		t.Errorf("tiny budget: %v", got)
	}
	if b := ConnectionBudget(200, 40); b != 200-40-Reserve {
		t.Errorf("budget %d", b)
	}
	if b := ConnectionBudget(20, 40); b != 1 {
		t.Errorf("budget below zero: %d", b)
	}
}
