package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const testPassword = "correct horse battery staple"

// env is a queue over badger in a temp dir, with a local account
// (alice@example.org), a test DNS server and a test clock.
type env struct {
	t     testing.TB
	q     *Queue
	db    *badgerstore.DB
	dns   *dnstest.Server
	clock *testutil.Clock
	accts *account.Service
	logs  *testutil.LogBuffer
	opt   Options
}

var testKey = bytes.Repeat([]byte{7}, KeySize)

// newEnv builds the environment; edit may change the options before
// New. The queue is started unless noStart.
func newEnv(t testing.TB, edit func(*Options)) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), edit, true)
}

func newEnvIn(t testing.TB, dir string, edit func(*Options), start bool) *env {
	t.Helper()
	db, err := badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, clock: testutil.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)), logs: &testutil.LogBuffer{}}
	e.dns = dnstest.Start(t)
	res, err := resolver.New(resolver.Options{Server: e.dns.Addr, CacheEntries: -1, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.accts, err = account.New(account.Options{Store: db, Domains: []string{"example.org"}, KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PublicAccount(context.Background(), "alice@example.org"); err != nil {
		if _, err := e.accts.Create(context.Background(), "alice@example.org", []byte(testPassword)); err != nil {
			t.Fatal(err)
		}
	}
	opt := Options{
		Store:     db,
		Key:       testKey,
		Hostname:  "mail.example.org",
		Domains:   []string{"example.org"},
		Aliases:   map[string][]string{"sales@example.org": {"alice@example.org"}},
		Resolver:  res,
		Now:       e.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryBase: time.Minute,
	}
	if edit != nil {
		edit(&opt)
	}
	e.opt = opt
	e.q, err = New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := e.q.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.close() })
	return e
}

var closeOnce sync.Map

func (e *env) close() {
	if _, done := closeOnce.LoadOrStore(e, true); done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.q.Shutdown(ctx)
	e.accts.Close()
	e.db.Close()
	if e.t.Failed() {
		e.t.Logf("queue log:\n%s", e.logs.String())
	}
}

// advance moves the clock and lets the scheduler look.
func (e *env) advance(d time.Duration) {
	e.clock.Advance(d)
	e.q.poke()
}

// mx makes dom's MX a host on 127.0.0.1 (the sink's port is
// Options.MXPort).
func (e *env) mx(dom string) {
	e.t.Helper()
	if err := e.dns.Add(
		dom+". 300 IN MX 10 mx."+dom+".",
		"mx."+dom+". 300 IN A 127.0.0.1",
	); err != nil {
		e.t.Fatal(err)
	}
}

// startSink starts a sink; it stops when the test ends.
func startSink(t testing.TB, opt sink.Options) *sink.Server {
	t.Helper()
	s, err := sink.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sinkPort(t *testing.T, s *sink.Server) int {
	_, p, _ := net.SplitHostPort(s.Addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// message is a small test message from alice.
func message(id string, extra string) []byte {
	return []byte("From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: test " + id +
		"\r\nMessage-ID: <" + id + "@example.org>\r\n" + extra + "\r\nHello Bob,\r\n.leading dot\r\n")
}

// submit queues m with body as submission would (no local copies).
func (e *env) submit(m *Message, body []byte) {
	e.t.Helper()
	m.Size = int64(len(body))
	if m.From == "" && m.Account == "" {
		m.Account, m.From = "alice@example.org", "alice@example.org"
	}
	p, err := e.q.Prepare(context.Background(), m, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("Prepare: %v", err)
	}
	if _, err := e.db.UpdateQueue(context.Background(), p.Change); err != nil {
		p.Discard()
		e.t.Fatalf("UpdateQueue: %v", err)
	}
	e.q.Committed(p)
}

// waitFor waits until cond holds. It does not judge speed: the limit
// only keeps a broken test from hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) queueLen() int {
	e.t.Helper()
	n, err := e.q.Len(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// entry returns an entry, or fails.
func (e *env) entry(id string) store.QueueEntry {
	e.t.Helper()
	en, err := e.db.QueueEntry(context.Background(), id)
	if err != nil {
		e.t.Fatalf("QueueEntry(%s): %v", id, err)
	}
	return en
}

// idle waits until no delivery runs and nothing waits to start.
func (e *env) idle() {
	e.t.Helper()
	waitFor(e.t, "the queue to be idle", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		if e.q.running > 0 {
			return false
		}
		for _, d := range e.q.dests {
			if len(d.waiting) > 0 {
				return false
			}
		}
		return true
	})
}

// traceOf returns the outbound trace of a message.
func (e *env) traceOf(msg string) []*trace.Outbound {
	e.t.Helper()
	d, err := e.q.Show(context.Background(), msg)
	if err != nil {
		e.t.Fatalf("Show(%s): %v", msg, err)
	}
	var out []*trace.Outbound
	for _, r := range d.Trace {
		out = append(out, r.Out)
	}
	return out
}

func events(os []*trace.Outbound, event string) []*trace.Outbound {
	var out []*trace.Outbound
	for _, o := range os {
		if o.Event == event {
			out = append(out, o)
		}
	}
	return out
}

// inbox returns alice's INBOX messages, opened with her password.
func (e *env) inbox(addr string) []string {
	e.t.Helper()
	ctx := context.Background()
	sess, err := e.accts.Login(ctx, account.LoginRequest{Remote: "127.0.0.1", Username: addr, Secret: []byte(testPassword)})
	if err != nil {
		e.t.Fatalf("login %s: %v", addr, err)
	}
	defer sess.Close()
	mb, err := e.db.Mailbox(ctx, addr, store.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	ms, err := e.db.Messages(ctx, addr, mb.ID, store.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		blob, err := e.db.Blob(ctx, addr, mb.ID, m.UID)
		if err != nil {
			e.t.Fatal(err)
		}
		r, _, err := sess.Keyring().Open(bytes.NewReader(blob))
		if err != nil {
			e.t.Fatalf("open message %d: %v", m.UID, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// testCert makes a new self-signed certificate for names and 127.0.0.1,
// and a pool that trusts it.
func testCert(_ testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	return testutil.NewCert(append(names, "127.0.0.1")...)
}

func contains(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("missing %q", sub)
		}
	}
	return nil
}

// netConn and dialer let tests dial what they like in DialContext.
type netConn = net.Conn

var dialer net.Dialer

// certPool trusts cert alone.
func certPool(t *testing.T, cert tls.Certificate) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(cert.Leaf)
	return p
}

// gone waits until the entry is out of the queue (its outcome
// committed).
func (e *env) gone(id string) {
	e.t.Helper()
	waitFor(e.t, id+" to leave the queue", func() bool {
		_, err := e.db.QueueEntry(context.Background(), id)
		return err != nil
	})
}
