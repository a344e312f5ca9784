// Package wiretest holds attacks on an IMAP server's wire layer, as
// reusable test steps: the regression tests of issue 9 (items 1, 6, 7 and
// 16) run them against server/imap/wire with a fake Session, and
// server/imap runs the same steps against the real server. Each step
// reports through testing.TB; memory bounds are checked by the caller,
// which runs the server in its own process (HeapInUse).
package wiretest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Target is a server under test.
type Target struct {
	Addr string
	// TLS, if set, dials with implicit TLS.
	TLS *tls.Config
	// User and Pass log in (LOGIN).
	User, Pass string
}

// Client speaks raw IMAP.
type Client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// Dial connects and reads the greeting.
func Dial(t testing.TB, tg Target) *Client {
	t.Helper()
	var nc net.Conn
	var err error
	if tg.TLS != nil {
		nc, err = tls.Dial("tcp", tg.Addr, tg.TLS)
	} else {
		nc, err = net.Dial("tcp", tg.Addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", tg.Addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &Client{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.ExpectRe(`^\* OK `)
	return c
}

// Close closes the connection.
func (c *Client) Close() { c.nc.Close() }

// Raw writes s as it is.
func (c *Client) Raw(s string) error {
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := io.WriteString(c.nc, s)
	return err
}

// RawBytes writes b as it is, without the copy that writing a string to a
// TLS connection makes (floods would measure the client's garbage).
func (c *Client) RawBytes(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// Send writes a line and its CRLF; a write error fails the test.
func (c *Client) Send(line string) {
	c.t.Helper()
	if err := c.Raw(line + "\r\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Line reads one response line without its CRLF.
func (c *Client) Line() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := c.br.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// LineWithin reads one response line, waiting at most d.
func (c *Client) LineWithin(d time.Duration) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	l, err := c.br.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// ExpectRe reads one line, which must match re.
func (c *Client) ExpectRe(re string) string {
	c.t.Helper()
	l, err := c.Line()
	if err != nil {
		c.t.Fatalf("read: %v (want %q)", err, re)
	}
	if !regexp.MustCompile(re).MatchString(l) {
		c.t.Fatalf("got %q, want match of %q", l, re)
	}
	return l
}

// Until reads lines through the first that starts with prefix.
func (c *Client) Until(prefix string) []string {
	c.t.Helper()
	var out []string
	for {
		l, err := c.Line()
		if err != nil {
			c.t.Fatalf("read: %v (after %q, waiting for %q)", err, out, prefix)
		}
		out = append(out, l)
		if strings.HasPrefix(l, prefix) {
			return out
		}
	}
}

// Login logs in with LOGIN.
func (c *Client) Login(tg Target) {
	c.t.Helper()
	c.Send(fmt.Sprintf("L LOGIN %s %s", quote(tg.User), quote(tg.Pass)))
	c.ExpectRe(`^L OK`)
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Rest reads what the server still sends until it closes the connection
// (or 30 s pass), at most max bytes; closed reports that it closed.
func (c *Client) Rest(max int64) (string, bool) {
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(io.LimitReader(c.br, max))
	return string(b), err == nil && int64(len(b)) < max
}

// HeapInUse returns the live heap after a garbage collection: call it
// before and during an attack on a server in this process.
func HeapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// LiteralFlood is issue 9 item 1: conns unauthenticated connections each
// send "a SEARCH" followed by literals × " TEXT {4096+}" with their data,
// as fast as the server reads. Before the fix the server buffered them
// all (60 connections: 232 MiB → 1.7 GiB). Each connection must be
// refused and closed: during (check) the caller samples its memory.
// It returns after every connection ended.
func LiteralFlood(t testing.TB, tg Target, conns, literals int, during func()) {
	t.Helper()
	chunk := []byte(" TEXT {4096+}\r\n" + strings.Repeat("x", 4096))
	var wg sync.WaitGroup
	clients := make([]*Client, conns)
	for i := range clients {
		clients[i] = Dial(t, tg)
	}
	answers := make([]string, conns)
	for i, c := range clients {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if c.Raw("a SEARCH") != nil {
				return
			}
			for range literals {
				if c.RawBytes(chunk) != nil {
					return // the server closed the connection: good
				}
			}
			c.Raw("\r\n")
		}()
		go func() {
			defer wg.Done()
			answers[i], _ = c.Rest(1 << 16)
		}()
	}
	if during != nil {
		during()
	}
	wg.Wait()
	for i, a := range answers {
		if !strings.Contains(a, "BAD") && !strings.Contains(a, "BYE") {
			t.Errorf("connection %d: flood not refused; server sent %q", i, a)
		}
	}
}

// RefusedAppendNotRun is issue 9 item 6: after a refused
// non-synchronising APPEND, the message's own lines must never run as
// commands. It creates victim, sends "APPEND INBOX {size+}" with header
// lines that delete victim and rename INBOX, and checks on a fresh
// connection that both mailboxes are intact. size must exceed the
// server's APPENDLIMIT.
func RefusedAppendNotRun(t testing.TB, tg Target, victim string, size int64) {
	t.Helper()
	c := Dial(t, tg)
	c.Login(tg)
	c.Send("c CREATE " + quote(victim))
	c.Until("c ")
	// As in the report: header lines whose first word reads as a tag.
	payload := "X-Tracking: DELETE " + quote(victim) + "\r\nX-Campaign: RENAME INBOX Pwned\r\nz LOGOUT\r\n"
	c.Raw(fmt.Sprintf("a APPEND INBOX {%d+}\r\n", size))
	// Send at most the payload and a little filler: enough for the
	// header lines to reach the server, not the whole declared size.
	c.Raw(payload)
	c.Raw(strings.Repeat("y", int(min(size-int64(len(payload)), 1<<16))))
	c.Raw("\r\nb NOOP\r\n")
	got, _ := c.Rest(1 << 16)
	for _, bad := range []string{"X-Tracking: OK", "X-Campaign: OK", "z OK", "* BYE Logging out"} {
		if strings.Contains(got, bad) {
			t.Errorf("message bytes ran as a command: %q in %q", bad, got)
		}
	}
	if !strings.Contains(got, "TOOBIG") {
		t.Errorf("refusal without TOOBIG: %q", got)
	}
	d := Dial(t, tg)
	d.Login(tg)
	d.Send(`l LIST "" *`)
	lines := d.Until("l ")
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, victim) || !strings.Contains(all, "INBOX") || strings.Contains(all, "Pwned") {
		t.Errorf("mailboxes changed by message bytes: %q", lines)
	}
}

// RefusedLiteralDiscarded checks, for a command other than APPEND, that
// a non-synchronising literal over the command limit (but within the
// discard budget) is read and thrown away, the command refused, and the
// next command served: the literal's lines are never commands.
func RefusedLiteralDiscarded(t testing.TB, tg Target, size int) {
	t.Helper()
	c := Dial(t, tg)
	c.Login(tg)
	body := "x CREATE Injected\r\n" + strings.Repeat("y", size-len("x CREATE Injected\r\n"))
	c.Raw(fmt.Sprintf("a CREATE {%d+}\r\n%s\r\nb NOOP\r\n", size, body))
	lines := c.Until("b ")
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "a NO [TOOBIG]") && !strings.Contains(all, "a BAD [TOOBIG]") {
		t.Errorf("oversized literal not refused with TOOBIG: %q", lines)
	}
	if strings.Contains(all, "x ") {
		t.Errorf("literal data ran as a command: %q", lines)
	}
	if !strings.HasPrefix(lines[len(lines)-1], "b OK") {
		t.Errorf("next command after the refusal: %q", lines)
	}
}

// AppendNoPrealloc is issue 9 item 7: sessions each announce an APPEND of
// size bytes and send nothing after the continuation request. Before the
// fix the server allocated the declared size at once (20 × 50 MiB →
// 1.1 GiB). It returns with every session waiting; during runs then, for
// the caller to sample memory; then the connections are closed.
func AppendNoPrealloc(t testing.TB, tg Target, sessions int, size int64, during func()) {
	t.Helper()
	var cs []*Client
	for range sessions {
		c := Dial(t, tg)
		c.Login(tg)
		c.Send(fmt.Sprintf("a APPEND INBOX {%d}", size))
		c.ExpectRe(`^\+ `)
		c.Raw("From: x\r\n") // a few bytes of the message
		cs = append(cs, c)
	}
	// Let the servers' reads happen before the caller measures.
	time.Sleep(100 * time.Millisecond)
	if during != nil {
		during()
	}
	for _, c := range cs {
		c.Close()
	}
}

// MalformedAnsweredBad is issue 9 item 16: malformed input is answered
// BAD (or NO [CLIENTBUG]/[CANNOT]), never NO [SERVERBUG], and the
// connection goes on.
func MalformedAnsweredBad(t testing.TB, tg Target) {
	t.Helper()
	check := func(c *Client, tag, cmd string) {
		t.Helper()
		c.Send(tag + " " + cmd)
		lines := c.Until(tag + " ")
		last := lines[len(lines)-1]
		ok := strings.HasPrefix(last, tag+" BAD") ||
			strings.HasPrefix(last, tag+" NO [CLIENTBUG]") || strings.HasPrefix(last, tag+" NO [CANNOT]")
		if !ok || strings.Contains(last, "SERVERBUG") {
			t.Errorf("%.60q: got %q, want BAD or NO [CLIENTBUG]", cmd, last)
		}
		c.Send(tag + "n NOOP")
		c.ExpectRe("^" + tag + "n OK")
	}
	nested := strings.Repeat("(", 2000) + "ALL" + strings.Repeat(")", 2000)
	c := Dial(t, tg)
	check(c, "p1", "SEARCH "+nested)
	check(c, "p2", "ID "+strings.Repeat("(", 2000))
	c.Login(tg)
	check(c, "a1", "CREATE {3+}\r\na\x00b")
	check(c, "a2", "CREATE \"a\x00b\"")
	c.Send("s SELECT INBOX")
	c.Until("s ")
	check(c, "s1", "FETCH 4294967296 (UID)")
	check(c, "s2", "UID FETCH 1:4294967296 (UID)")
	check(c, "s3", "SEARCH "+nested)
	check(c, "s4", "FETCH 1 (BODY[1.0])")
}
