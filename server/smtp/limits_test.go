package smtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/listener"
	"github.com/sealmail/sealmail/store"
)

func TestOversize(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MessageBytes = 4096 })
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	// Announced too large: refused at MAIL.
	rc.cmd("MAIL FROM:<sender@remote.test> SIZE=5000", "552 5.3.4")
	// Not announced: refused after the data, nothing stored.
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("DATA", "354")
	rc.send("Subject: big\r\n\r\n")
	for range 100 {
		rc.send(strings.Repeat("x", 70) + "\r\n")
	}
	rc.cmd(".", "552 5.3.4")
	// The same through BDAT.
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	chunk := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 70)+"\r\n", 40)
	rc.send(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	rc.expect("250 ")
	rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	rc.expect("552 5.3.4")
	// A message just under the limit still works on the same connection.
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: small\r\n\r\nfits\r\n.", "250 2.0.0")
	got := e.inbox("alice@example.org")
	if len(got) != 1 || !strings.Contains(got[0], "Subject: small") {
		t.Errorf("alice has %d messages, want only the small one", len(got))
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.Recipients = 2 })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org", "bob@example.org")
	rc.cmd("RCPT TO:<carol@other.test>", "452 4.5.3")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: two\r\n\r\nx\r\n.", "250 2.0.0")
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 || c["carol@other.test"] != 0 {
		t.Errorf("counts %v", c)
	}
}

// TestBareNewlineSmuggling sends payloads that try to end a message early
// or smuggle a second one with bare CR/LF sequences (the SMTP smuggling
// family), or carry a NUL. Each must be refused whole: nothing stored for
// anyone, and the smuggled recipient in particular gets nothing. Under
// go-smtp, <CRLF>.<CR>X was dot-unstuffed into X and stored, and NULs
// were stored.
func TestBareNewlineSmuggling(t *testing.T) {
	smuggled := "MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
	payloads := map[string]struct{ p, want string }{
		"LF.LF":     {"Subject: a\r\n\r\nbody\n.\n" + smuggled, "550 5.6.11"},
		"LF.CRLF":   {"Subject: a\r\n\r\nbody\n.\r\n" + smuggled, "550 5.6.11"},
		"CRLF.LF":   {"Subject: a\r\n\r\nbody\r\n.\n" + smuggled, "550 5.6.11"},
		"CR.CR":     {"Subject: a\r\n\r\nbody\r.\r" + smuggled, "550 5.6.11"},
		"CRLF.CR":   {"Subject: a\r\n\r\nbody\r\n.\r" + smuggled, "550 5.6.11"},
		"CRLF.CR X": {"Subject: a\r\n\r\nbody\r\n.\rX\r\n", "550 5.6.11"},
		"CR.CRLF":   {"Subject: a\r\n\r\nbody\r.\r\n" + smuggled, "550 5.6.11"},
		"bare LF":   {"Subject: a\nX: b\r\n\r\nbody\r\n", "550 5.6.11"},
		"bare CR":   {"Subject: a\rX: b\r\n\r\nbody\r\n", "550 5.6.11"},
		"LF first":  {"\nSubject: a\r\n\r\nbody\r\n", "550 5.6.11"},
		"NUL":       {"Subject: a\r\n\r\nbo\x00dy\r\n", "550 5.6.0"},
		"NUL LF":    {"Subject: a\r\n\r\nbo\x00dy\n\r\n", "550 5.6.0"},
	}
	for name, tc := range payloads {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			rc := dialRaw(t, e.addr)
			rc.begin("alice@example.org")
			rc.cmd("DATA", "354")
			rc.send(tc.p)
			rc.cmd(".", tc.want)
			// Whatever the client says next is a command, not message text.
			rc.cmd("RSET", "250 ")
			rc.cmd("QUIT", "221")
			e.expectEmpty()
		})
	}
	t.Run("BDAT", func(t *testing.T) {
		e := newEnv(t, nil)
		rc := dialRaw(t, e.addr)
		rc.cmd("EHLO client.remote.test", "250 ")
		for _, tc := range []struct{ p, want string }{
			{"Subject: a\r\n\r\nbody\n.\n" + smuggled, "550 5.6.11"},
			{"Subject: a\r\n\r\nbody\r\n.\r" + smuggled, "550 5.6.11"},
			{"Subject: a\r\n\r\nbody\r", "550 5.6.11"},
			{"Subject: a\r\n\r\nbo\x00dy\r\n", "550 5.6.0"},
		} {
			rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
			rc.cmd("RCPT TO:<alice@example.org>", "250 ")
			rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(tc.p), tc.p))
			rc.expect(tc.want)
			rc.cmd("NOOP", "250 ")
		}
		e.expectEmpty()
	})
}

func TestChunking(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	parts := []string{"Subject: chunked\r\n", "\r\nfirst half, ", "second half\r\n.\r\n"}
	for i, p := range parts {
		last := ""
		want := fmt.Sprintf("250 2.0.0 %d octets received", len(p))
		if i == len(parts)-1 {
			last = " LAST"
			want = "250 2.0.0"
		}
		rc.send(fmt.Sprintf("BDAT %d%s\r\n%s", len(p), last, p))
		rc.expect(want)
	}
	got := e.inbox("alice@example.org")
	if len(got) != 1 || !strings.HasSuffix(got[0], "\r\nSubject: chunked\r\n\r\nfirst half, second half\r\n.\r\n") {
		t.Errorf("got %q", got)
	}
}

func TestLineTooLong(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.LineLength = 1000 })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	rc.send("Subject: long\r\n\r\n" + strings.Repeat("z", 1500) + "\r\n")
	rc.cmd(".", "554 5.6.0")
	rc.cmd("NOOP", "250 ")
	// Through BDAT the library does not bound lines; our scanner does.
	rc2 := dialRaw(t, e.addr)
	rc2.begin("alice@example.org")
	p := "Subject: long\r\n\r\n" + strings.Repeat("z", 1500) + "\r\n"
	rc2.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(p), p))
	rc2.expect("554 5.6.0")
	rc2.cmd("NOOP", "250 ")
	e.expectEmpty()
}

func TestMailLoop(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.Hops = 3 })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	rc.send(strings.Repeat("Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n", 4) + "Subject: loop\r\n\r\nReceived: in the body does not count\r\n")
	rc.cmd(".", "554 5.4.6")
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("DATA", "354")
	rc.send(strings.Repeat("received : from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n", 3) + "Subject: ok\r\n\r\n" + strings.Repeat("Received: body\r\n", 5))
	rc.cmd(".", "250 ")
	if c := e.counts(); c["alice@example.org"] != 1 {
		t.Errorf("counts %v", c)
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := e.db.SetQuota(ctx, "bob@example.org", 3000); err != nil {
		t.Fatalf("SetQuota: %v", err)
	}
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	// Announced size that can never fit.
	rc.cmd("MAIL FROM:<sender@remote.test> SIZE=5000", "250 ")
	rc.cmd("RCPT TO:<bob@example.org>", "552 5.2.2")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("RSET", "250 ")
	// Unannounced, sealed copy larger than the whole quota.
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<bob@example.org>", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("DATA", "354")
	rc.send("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("q", 60)+"\r\n", 60))
	rc.cmd(".", "552 5.2.2")
	// Small messages until the quota is used up: then 452 4.2.2 at RCPT.
	// The store may also refuse the last one at commit (452 4.2.2).
	full := false
	for i := 0; i < 20 && !full; i++ {
		rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
		r := rc.cmd("RCPT TO:<bob@example.org>", "")
		switch {
		case strings.HasPrefix(r, "452 4.2.2"):
			full = true
			rc.cmd("RSET", "250 ")
		case strings.HasPrefix(r, "250 "):
			rc.cmd("DATA", "354")
			got := rc.cmd(fmt.Sprintf("Subject: n%d\r\n\r\n%s\r\n.", i, strings.Repeat("w", 500)), "")
			if strings.HasPrefix(got, "452 4.2.2") {
				full = true
			} else if !strings.HasPrefix(got, "250 ") {
				t.Fatalf("DATA %d: %q", i, got)
			}
		default:
			t.Fatalf("RCPT %d: %q", i, r)
		}
	}
	if !full {
		t.Fatal("quota never reported full")
	}
	n := e.counts()["bob@example.org"]
	if n == 0 {
		t.Error("bob got nothing before the quota filled")
	}
	acct, err := e.db.Account(ctx, "bob@example.org")
	if err != nil || acct.UsedBytes > acct.QuotaBytes {
		t.Errorf("bob's usage %d over quota %d (%v)", acct.UsedBytes, acct.QuotaBytes, err)
	}
	if e.counts()["alice@example.org"] != 0 {
		t.Error("a refused multi-recipient message reached alice")
	}
}

// failingStore fails Deliver with an error full of internal detail, and
// counts calls.
type failingStore struct {
	Store
	err error
}

func (f failingStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	return nil, f.err
}

func TestStoreFailureIsTemporaryAndOpaque(t *testing.T) {
	secret := "/var/lib/sealmail/vlog/000042.vlog: input/output error"
	var e *testEnv
	e = newEnv(t, func(o *Options) { o.Store = failingStore{Store: o.Store, err: errors.New(secret)} })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org", "bob@example.org")
	rc.cmd("DATA", "354")
	got := rc.cmd("Subject: x\r\n\r\ny\r\n.", "451 4.3.0")
	if strings.Contains(got, "vlog") || strings.Contains(got, "input/output") {
		t.Errorf("reply leaks the cause: %q", got)
	}
	if !strings.Contains(e.logs.String(), "000042.vlog") {
		t.Error("cause not logged")
	}
	e.mu.Lock()
	if len(e.notes) != 0 {
		t.Errorf("OnDeliver called after a failed commit: %v", e.notes)
	}
	e.mu.Unlock()
	e.expectEmpty()

	// A quota error at commit maps to 452 4.2.2.
	e2 := newEnv(t, func(o *Options) {
		o.Store = failingStore{Store: o.Store, err: fmt.Errorf("badgerstore: deliver to alice: %w", store.ErrOverQuota)}
	})
	rc2 := dialRaw(t, e2.addr)
	rc2.begin("alice@example.org")
	rc2.cmd("DATA", "354")
	rc2.cmd("Subject: x\r\n\r\ny\r\n.", "452 4.2.2")

	// A delivery too large for one store transaction is refused for good
	// (552 5.3.4), not retried for days (451).
	e3 := newEnv(t, func(o *Options) {
		o.Store = failingStore{Store: o.Store, err: fmt.Errorf("badgerstore: deliver: %w", store.ErrTooLarge)}
	})
	rc3 := dialRaw(t, e3.addr)
	rc3.begin("alice@example.org")
	rc3.cmd("DATA", "354")
	rc3.cmd("Subject: x\r\n\r\ny\r\n.", "552 5.3.4")
}

func TestBadSender(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	// RFC 5321 §4.5.3.1.10: 501 for a path over 256 bytes.
	rc.cmd("MAIL FROM:<"+strings.Repeat("a", 300)+"@remote.test>", "501 5.1.7")
	rc.cmd("MAIL FROM:<jörg@remote.test>", "553 5.6.7")
	rc.cmd("MAIL FROM:<jörg@remote.test> SMTPUTF8", "250 ")
	rc.cmd("RCPT TO:<alice@example.org>", "250 ")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: utf8 ✓\r\n\r\nx\r\n.", "250 ")
	got := e.inbox("alice@example.org")
	if len(got) != 1 || !strings.HasPrefix(got[0], "Return-Path: <jörg@remote.test>\r\n") || !strings.Contains(got[0], "with UTF8SMTP id") {
		t.Errorf("got %q", got)
	}
}

// guarded serves SMTP as cmd/sealmail does: on a listener guarded by
// server/listener, with Server.Refuse as its goodbye.
func guarded(lim listener.LimiterOptions) func(net.Listener, *Server) net.Listener {
	return func(ln net.Listener, srv *Server) net.Listener {
		return listener.New(ln, listener.Options{Limiter: listener.NewLimiter(lim), Refuse: srv.Refuse})
	}
}

func TestConnectionLimits(t *testing.T) {
	e := newEnvWrap(t, func(o *Options) { o.Limits.CommandTimeout = 20 * time.Second },
		guarded(listener.LimiterOptions{Connections: 10, PerClient: 2}))
	a := dialRaw(t, e.addr)
	dialRaw(t, e.addr)
	third := dialRawNoGreeting(t, e.addr)
	if got := third.reply(); !strings.HasPrefix(got, "421 4.7.0 mx.example.org ") {
		t.Fatalf("third connection: %q, want 421 4.7.0", got)
	}
	if got := third.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("third connection stays open: %q", got)
	}
	a.cmd("QUIT", "221")
	// The slot frees once the server has closed its side.
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.connCount() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connection count stuck at %d", e.srv.connCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	dialRaw(t, e.addr).cmd("NOOP", "250 ")
}

func TestCommandTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.CommandTimeout = 200 * time.Millisecond })
	rc := dialRaw(t, e.addr)
	if got := rc.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Errorf("idle client got %q, want 421 4.4.2", got)
	}
	// Idle inside a transaction: a temporary reply, then the connection
	// is closed.
	rc2 := dialRaw(t, e.addr)
	rc2.cmd("EHLO client.remote.test", "250 ")
	rc2.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	if got := rc2.reply(); !strings.HasPrefix(got, "421 4.4.") {
		t.Errorf("idle client in a transaction got %q, want 421", got)
	}
	if got := rc2.reply(); !strings.HasPrefix(got, "EOF") || strings.Contains(got, "timeout") {
		t.Errorf("after the timeout got %q, want the connection closed", got)
	}
}

// TestDataTimeout: a client that stalls inside DATA gets 421 4.4.2 and is
// disconnected; nothing it sent is stored, and nothing it sends later can
// be read as a command.
func TestDataTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.DataTimeout = 300 * time.Millisecond
		o.Limits.CommandTimeout = 20 * time.Second
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	rc.send("Subject: slow\r\n\r\nMAIL FROM:<x@elsewhere.test>\r\n")
	rc.expect("421 4.4.2")
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("after a data timeout got %q, want the connection closed", got)
	}
	e.expectEmpty()
}

// TestBDATTimeout: a client that stalls inside a BDAT chunk gets a
// temporary error and is disconnected, so the rest of its chunk is never
// read as commands.
func TestBDATTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.DataTimeout = 300 * time.Millisecond
		o.Limits.CommandTimeout = 300 * time.Millisecond
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.send("BDAT 200 LAST\r\nSubject: slow\r\n\r\n")
	rc.expect("421 4.4.2")
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("after a BDAT timeout got %q, want the connection closed", got)
	}
	e.expectEmpty()
}

func TestTotalConnectionLimit(t *testing.T) {
	e := newEnvWrap(t, nil, guarded(listener.LimiterOptions{Connections: 2, PerClient: 10}))
	dialRaw(t, e.addr)
	dialRaw(t, e.addr)
	third := dialRawNoGreeting(t, e.addr)
	if got := third.reply(); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("third connection: %q, want 421 4.7.0", got)
	}
}

// TestPipelining sends a whole transaction in one write (RFC 2920) and
// gets the replies in order.
func TestPipelining(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.send("MAIL FROM:<sender@remote.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250 ", "250 ", "550 5.1.1", "250 ", "354"} {
		rc.expect(want)
	}
	rc.send("Subject: pipelined \xc3\xa9\r\n\r\n8bit body \xe2\x9c\x93\r\n.\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<carol@other.test>\r\nBDAT 14 LAST\r\nSubject: b\r\n\r\nQUIT\r\n")
	for _, want := range []string{"250 2.0.0", "250 ", "250 ", "250 2.0.0", "221"} {
		rc.expect(want)
	}
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 || c["carol@other.test"] != 1 {
		t.Errorf("counts %v", c)
	}
	if m := e.inbox("alice@example.org"); len(m) != 1 || !strings.HasSuffix(m[0], "\r\nSubject: pipelined \xc3\xa9\r\n\r\n8bit body \xe2\x9c\x93\r\n") {
		t.Errorf("8-bit message changed: %q", m)
	}
}

// gatedStore holds every Deliver until the test releases it, and records
// whether the commit finished.
type gatedStore struct {
	Store
	entered   chan struct{}
	release   chan struct{}
	committed atomic.Bool
}

func (g *gatedStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	g.entered <- struct{}{}
	<-g.release
	out, err := g.Store.Deliver(ctx, ds)
	if err == nil {
		g.committed.Store(true)
	}
	return out, err
}

// TestReplyOnlyAfterCommit: all copies go to the store in one Deliver
// call, and the client hears nothing until that call has returned.
func TestReplyOnlyAfterCommit(t *testing.T) {
	var g *gatedStore
	var seen []int
	e := newEnv(t, func(o *Options) {
		g = &gatedStore{Store: o.Store, entered: make(chan struct{}, 1), release: make(chan struct{})}
		o.Store = countingStore{Store: g, seen: &seen}
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org", "team@example.org", "carol@other.test")
	rc.cmd("DATA", "354")
	rc.send("Subject: gated\r\n\r\nbody\r\n.\r\n")
	<-g.entered
	// The commit is held: no reply may arrive yet.
	rc.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := rc.r.ReadString('\n'); err == nil || line != "" {
		t.Fatalf("reply %q before the commit", line)
	}
	close(g.release)
	rc.expect("250 2.0.0")
	if !g.committed.Load() {
		t.Error("250 before the commit finished")
	}
	if len(seen) != 1 || seen[0] != 3 {
		t.Errorf("Deliver calls with %v copies, want one call with 3", seen)
	}
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 || c["carol@other.test"] != 1 {
		t.Errorf("counts %v", c)
	}
}

// countingStore records the number of copies of each Deliver call.
type countingStore struct {
	Store
	seen *[]int
}

func (c countingStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	*c.seen = append(*c.seen, len(ds))
	return c.Store.Deliver(ctx, ds)
}

// brokenKeyStore hands out a corrupt public key for one account.
type brokenKeyStore struct {
	Store
	broken string
}

func (b brokenKeyStore) PublicAccount(ctx context.Context, addr string) (store.PublicAccount, error) {
	a, err := b.Store.PublicAccount(ctx, addr)
	if err == nil && a.Address == b.broken {
		a.PublicKey = []byte("not an OpenPGP key")
		a.KeyFingerprint = "broken"
	}
	return a, err
}

// TestSealFailureStoresNothing: when one recipient's copy cannot be
// sealed, no recipient gets the message and the client may retry.
func TestSealFailureStoresNothing(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Store = brokenKeyStore{Store: o.Store, broken: "bob@example.org"} })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org", "carol@other.test", "bob@example.org")
	rc.cmd("DATA", "354")
	got := rc.cmd("Subject: x\r\n\r\ny\r\n.", "451 4.3.0")
	if strings.Contains(got, "OpenPGP") || strings.Contains(got, "bob") {
		t.Errorf("reply leaks the cause: %q", got)
	}
	e.expectEmpty()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.notes) != 0 {
		t.Errorf("OnDeliver called: %v", e.notes)
	}
}
