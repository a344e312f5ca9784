package smtp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// Regression tests for issue 9 items 9 (quota, delivery rate) and 11
// (RCPT probing), against the running server.

// dialRawFrom connects from a given loopback address (Linux routes all
// of 127/8 to lo), so one test can play several clients.
func dialRawFrom(t *testing.T, addr, from string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.expect("220")
	return rc
}

// TestDefaultQuota: the store's default quota (limits.quota) applies to
// accounts without one of their own: RCPT gets 452 4.2.2 once the
// mailbox is full and 552 5.2.2 for an announced size that can never
// fit, and an account set to no limit is not held to it.
func TestDefaultQuota(t *testing.T) {
	e := newEnvStore(t, badgerstore.Options{DefaultQuota: 4000}, nil)
	if err := e.db.SetQuota(context.Background(), "carol@other.test", store.QuotaNone); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("MAIL FROM:<sender@remote.test> SIZE=5000", "250 ")
	rc.cmd("RCPT TO:<bob@example.org>", "552 5.2.2")
	rc.cmd("RCPT TO:<carol@other.test>", "250 ")
	rc.cmd("RSET", "250 ")
	full := false
	for i := 0; i < 20 && !full; i++ {
		rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
		switch r := rc.cmd("RCPT TO:<bob@example.org>", ""); {
		case strings.HasPrefix(r, "452 4.2.2"):
			full = true
			rc.cmd("RSET", "250 ")
		case strings.HasPrefix(r, "250 "):
			rc.cmd("DATA", "354")
			got := rc.cmd(fmt.Sprintf("Subject: n%d\r\n\r\n%s\r\n.", i, strings.Repeat("w", 700)), "")
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
		t.Fatal("the default quota never filled")
	}
	a, err := e.db.PublicAccount(context.Background(), "bob@example.org")
	if err != nil || a.QuotaLimit != 4000 || a.UsedBytes > 4000 || a.UsedBytes == 0 {
		t.Errorf("bob: limit %d, used %d (%v)", a.QuotaLimit, a.UsedBytes, err)
	}
	for range 3 {
		rc.begin("carol@other.test")
		rc.cmd("DATA", "354")
		rc.cmd("Subject: free\r\n\r\n"+strings.Repeat(strings.Repeat("f", 98)+"\r\n", 30)+".", "250 ")
	}
}

// TestRateLimit: one client may deliver Limits.RateMessages messages and
// Limits.RateBytes bytes (size times accounts) a minute; above either,
// MAIL gets 451 4.7.1, and other clients are not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.RateMessages = 2
		o.Limits.RateBytes = 1 << 20
	})
	rc := dialRawFrom(t, e.addr, "127.0.0.1")
	for i := range 2 {
		rc.begin("alice@example.org")
		rc.cmd("DATA", "354")
		rc.cmd(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n.", i), "250 ")
	}
	rc.cmd("MAIL FROM:<sender@remote.test>", "451 4.7.1")
	other := dialRawFrom(t, e.addr, "127.0.0.2")
	other.begin("alice@example.org")
	other.cmd("DATA", "354")
	other.cmd("Subject: other client\r\n\r\nx\r\n.", "250 ")

	// Bytes: one large message to two accounts overdraws the bucket.
	e2 := newEnv(t, func(o *Options) {
		o.Limits.RateBytes = 100 << 10
		o.Limits.MessageBytes = 1 << 20
	})
	rc2 := dialRaw(t, e2.addr)
	rc2.begin("alice@example.org", "bob@example.org")
	rc2.cmd("DATA", "354")
	rc2.cmd("Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("b", 98)+"\r\n", 600)+".", "250 ")
	rc2.cmd("MAIL FROM:<sender@remote.test>", "451 4.7.1")
	if c := e2.counts(); c["alice@example.org"] != 1 {
		t.Errorf("counts %v", c)
	}
}

// sleeps records the tarpit's waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	s.d = nil
	return d
}

// TestProbingTarpit: RCPTs naming unknown local users get ever slower
// answers after the first three, and the tenth ends the connection with
// 421 4.7.0; the count follows the client to its next connection.
// Known users and relaying refusals are not tarpitted. Under go-smtp,
// 2,016 addresses were probed in 0.08 s on one connection.
func TestProbingTarpit(t *testing.T) {
	var sl sleeps
	e := newEnv(t, func(o *Options) { o.hooks = &testHooks{sleep: sl.sleep, rateGrace: dataRateGrace} })
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	for i := 1; i < DefaultUnknownRecipients; i++ {
		rc.cmd(fmt.Sprintf("RCPT TO:<nobody%d@example.org>", i), "550 5.1.1")
	}
	rc.cmd("RCPT TO:<bob@example.org>", "250 ")
	rc.cmd("RCPT TO:<someone@elsewhere.test>", "550 5.7.1")
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second}
	if got := sl.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tarpit waits %v, want %v", got, want)
	}
	rc.cmd("RCPT TO:<nobody10@example.org>", "421 4.7.0")
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("after 421 got %q, want the connection closed", got)
	}
	if got := sl.take(); len(got) != 1 || got[0] != tarpitMax {
		t.Errorf("last wait %v, want %v", got, tarpitMax)
	}
	// The same client, on a new connection: slow from the first unknown.
	rc2 := dialRaw(t, e.addr)
	rc2.begin()
	rc2.cmd("RCPT TO:<nobody11@example.org>", "550 5.1.1")
	if got := sl.take(); len(got) != 1 || got[0] != tarpitMax {
		t.Errorf("new connection of a prober waits %v, want %v", got, tarpitMax)
	}
	// Another client starts afresh.
	rc3 := dialRawFrom(t, e.addr, "127.0.0.3")
	rc3.begin()
	rc3.cmd("RCPT TO:<typo@example.org>", "550 5.1.1")
	if got := sl.take(); len(got) != 0 {
		t.Errorf("a first unknown recipient waits %v", got)
	}
	e.expectEmpty()
	if logs := e.logs.String(); strings.Contains(logs, "nobody") {
		t.Error("log names probed local parts")
	}
}

// TestTooManyErrors: a client that sends nothing but refused commands is
// dropped after Limits.Errors of them.
func TestTooManyErrors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.Errors = 5 })
	rc := dialRaw(t, e.addr)
	for range 4 {
		rc.cmd("XYZZY", "500 5.5.2")
	}
	rc.send("FOO\r\n")
	rc.expect("500 5.5.2")
	rc.expect("421 4.7.0")
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("got %q, want the connection closed", got)
	}
}
