package wire

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// allCaps are every optional extension, for tests.
var allCaps = []imap.Cap{
	imap.CapCondStore, imap.CapQResync, imap.CapQuota, "QUOTA=RES-STORAGE",
	imap.CapSort, imap.CapESort, "THREAD=ORDEREDSUBJECT", imap.CapMultiAppend,
	imap.CapCatenate, imap.CapNotify, "COMPRESS=DEFLATE", imap.CapWithin,
	"CONTEXT=SEARCH", "CONTEXT=SORT", imap.CapSaveDate, imap.CapObjectID, imap.CapPreview, imap.CapCreateSpecialUse,
	imap.CapUTF8Accept,
}

// testLogger logs to the test, at debug level, when -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer runs a Server over b on 127.0.0.1:0. mod may change the
// options (InsecureAuth and every capability by default).
func startServer(t testing.TB, b *memBackend, mod func(*Options)) (string, *Server) {
	t.Helper()
	opt := Options{NewSession: b.newSession, InsecureAuth: true, Caps: allCaps, Logger: testLogger(t)}
	if mod != nil {
		mod(&opt)
	}
	srv, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ln.Addr().String(), srv
}

// tclient speaks raw IMAP for transcript tests.
type tclient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *tclient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &tclient{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.expectRe(`^\* OK \[CAPABILITY IMAP4rev1 IMAP4rev2 .*\] sealmail ready$`)
	return c
}

func dialTLS(t testing.TB, addr string) *tclient {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &tclient{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.expectRe(`^\* OK `)
	return c
}

// send writes a line with CRLF.
func (c *tclient) send(line string) { c.raw(line + "\r\n") }

func (c *tclient) raw(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one response line without CRLF.
func (c *tclient) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// literal reads n bytes of a literal.
func (c *tclient) literal(n int) string {
	c.t.Helper()
	buf := make([]byte, n)
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c.br, buf); err != nil {
		c.t.Fatalf("read literal: %v", err)
	}
	return string(buf)
}

// expect reads one line per argument and compares exactly.
func (c *tclient) expect(lines ...string) {
	c.t.Helper()
	for _, want := range lines {
		if got := c.line(); got != want {
			c.t.Fatalf("got  %q\nwant %q", got, want)
		}
	}
}

func (c *tclient) expectRe(re string) string {
	c.t.Helper()
	got := c.line()
	if !regexp.MustCompile(re).MatchString(got) {
		c.t.Fatalf("got %q, want match of %q", got, re)
	}
	return got
}

// until reads lines up to and including the first that starts with
// prefix, returning them.
func (c *tclient) until(prefix string) []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		out = append(out, l)
		if strings.HasPrefix(l, prefix) {
			return out
		}
	}
}

// closed reports whether the server closed the connection (reading up
// to max bytes of anything it still sends). A reset counts as closed: a
// server that closes while a command the client sent is still unread
// in its socket makes the kernel answer with RST instead of FIN (the
// chatty client of TestIdleTimeoutPreAuth does that when LoginTimeout
// strikes between its NOOPs).
func (c *tclient) closed(max int) (string, bool) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, err := io.ReadAll(io.LimitReader(c.br, int64(max)))
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return string(buf), err == nil && len(buf) < max
}

func (c *tclient) login() {
	c.t.Helper()
	c.send("L LOGIN user pass")
	c.expectRe(`^L OK \[CAPABILITY .*\] Logged in$`)
}

func (c *tclient) selectInbox() {
	c.t.Helper()
	c.send("S SELECT INBOX")
	c.until("S OK")
}

// newDeflateClient switches a client to COMPRESS=DEFLATE.
func newDeflateClient(t testing.TB, c *tclient) *tclient {
	fr := flate.NewReader(c.br)
	fw, _ := flate.NewWriter(c.nc, flate.BestSpeed)
	return &tclient{t: t, nc: &deflateConn{Conn: c.nc, r: fr, w: fw}, br: bufio.NewReader(fr)}
}

type deflateConn struct {
	net.Conn
	r io.Reader
	w *flate.Writer
}

func (d *deflateConn) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *deflateConn) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err == nil {
		err = d.w.Flush()
	}
	return n, err
}
