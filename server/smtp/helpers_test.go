package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const testPassword = "correct horse battery staple"

// testEnv is a real server on 127.0.0.1:0 over badger in a temp dir.
type testEnv struct {
	t     *testing.T
	srv   *Server
	addr  string
	db    *badgerstore.DB
	dir   string
	logs  *testutil.LogBuffer
	mu    sync.Mutex
	notes [][]store.Delivered // guarded by mu; what OnDeliver saw
	done  chan error          // Serve's result
	stop  sync.Once
	// beforeClose run after the server's shutdown, before the store
	// closes (a queue, an account service).
	beforeClose []func()
}

// testAccounts are created in every env.
var testAccounts = []string{"alice@example.org", "bob@example.org", "carol@other.test"}

// accountSecrets makes keys for BenchmarkSeal, which needs a public key
// and no account.
func accountSecrets(t testing.TB, addr string) *crypto.AccountSecrets {
	t.Helper()
	sec, err := crypto.NewAccount(addr, []byte(testPassword), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatalf("NewAccount(%s): %v", addr, err)
	}
	return sec
}

// createAccount creates addr through the account service, as `sealmail
// user add` does.
func createAccount(t testing.TB, db store.Store, addr string) {
	t.Helper()
	_, domain, _ := policy.SplitAddress(addr)
	acc, err := account.New(account.Options{Store: db, Domains: []string{domain}, KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	if _, err := acc.Create(context.Background(), addr, []byte(testPassword)); err != nil {
		t.Fatalf("create %s: %v", addr, err)
	}
}

// newEnv starts a server; edit may change the options first (its Store
// field, if set, wraps the badger store).
func newEnv(t *testing.T, edit func(*Options)) *testEnv {
	return newEnvWrap(t, edit, nil)
}

// newEnvWrap is newEnv serving on wrap(listener) when wrap is not nil, as
// cmd/sealmail serves on a guarded listener.
func newEnvWrap(t *testing.T, edit func(*Options), wrap func(net.Listener, *Server) net.Listener) *testEnv {
	t.Helper()
	return startEnv(t, badgerstore.Options{}, edit, wrap)
}

// newEnvStore is newEnv over a badger store opened with storeOpt.
func newEnvStore(t *testing.T, storeOpt badgerstore.Options, edit func(*Options)) *testEnv {
	t.Helper()
	return startEnv(t, storeOpt, edit, nil)
}

func startEnv(t *testing.T, storeOpt badgerstore.Options, edit func(*Options), wrap func(net.Listener, *Server) net.Listener) *testEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := badgerstore.Open(dir, storeOpt)
	if err != nil {
		t.Fatalf("badgerstore.Open: %v", err)
	}
	for _, a := range testAccounts {
		createAccount(t, db, a)
	}
	e := &testEnv{t: t, db: db, dir: dir, logs: &testutil.LogBuffer{}, done: make(chan error, 1)}
	opt := Options{
		Hostname: "mx.example.org",
		Domains:  []string{"example.org", "other.test"},
		Store:    db,
		Aliases:  map[string][]string{"team@example.org": {"alice@example.org", "bob@example.org"}},
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnDeliver: func(ds []store.Delivered) {
			e.mu.Lock()
			e.notes = append(e.notes, ds)
			e.mu.Unlock()
		},
	}
	if edit != nil {
		edit(&opt)
	}
	srv, err := New(opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.srv, e.addr = srv, ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln, srv)
	}
	go func() { e.done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		e.shutdown()
		for _, f := range e.beforeClose {
			f()
		}
		db.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// shutdown stops the server and checks Serve's result.
func (e *testEnv) shutdown() {
	e.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			e.t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-e.done:
			if err != nil {
				e.t.Errorf("Serve returned %v after Shutdown", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Errorf("Serve did not return after Shutdown")
		}
	})
}

// waitNotes waits until OnDeliver has seen n calls (it runs after the
// 250, on a goroutine of the server's) and returns them.
func (e *testEnv) waitNotes(n int) [][]store.Delivered {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		notes := slices.Clone(e.notes)
		e.mu.Unlock()
		if len(notes) >= n {
			return notes
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("OnDeliver called %d times, want %d", len(notes), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inboxID returns the ID of addr's INBOX.
func (e *testEnv) inboxID(addr string) uint64 {
	e.t.Helper()
	m, err := e.db.Mailbox(context.Background(), addr, store.Inbox)
	if err != nil {
		e.t.Fatalf("Mailbox(%s, INBOX): %v", addr, err)
	}
	return m.ID
}

// inbox returns the decrypted messages in addr's INBOX, in UID order.
func (e *testEnv) inbox(addr string) []string {
	e.t.Helper()
	return e.box(addr, store.Inbox)
}

// box returns the decrypted messages in addr's mailbox name, in UID
// order.
func (e *testEnv) box(addr, name string) []string {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.db.Mailbox(ctx, addr, name)
	if err != nil {
		e.t.Fatalf("Mailbox(%s, %s): %v", addr, name, err)
	}
	inbox := mb.ID
	msgs, err := e.db.Messages(ctx, addr, inbox, store.ListOptions{})
	if err != nil {
		e.t.Fatalf("Messages(%s): %v", addr, err)
	}
	if len(msgs) == 0 {
		return nil
	}
	acct, err := e.db.Account(ctx, addr)
	if err != nil {
		e.t.Fatalf("Account(%s): %v", addr, err)
	}
	var slots [][]byte
	for _, s := range acct.Slots {
		slots = append(slots, s.Data)
	}
	kr, err := crypto.Unlock(slots, []byte(testPassword), acct.WrappedKey)
	if err != nil {
		e.t.Fatalf("Unlock(%s): %v", addr, err)
	}
	defer kr.Wipe()
	var out []string
	for _, m := range msgs {
		blob, err := e.db.Blob(ctx, addr, inbox, m.UID)
		if err != nil {
			e.t.Fatalf("Blob(%s, %d): %v", addr, m.UID, err)
		}
		if bytes.HasPrefix(blob, []byte("Return-Path")) || bytes.Contains(blob, []byte("Received: from")) {
			e.t.Fatalf("message %d of %s is stored in the clear", m.UID, addr)
		}
		plain, _, err := kr.Open(bytes.NewReader(blob))
		if err != nil {
			e.t.Fatalf("Open(%s, %d): %v", addr, m.UID, err)
		}
		b, err := io.ReadAll(plain)
		if err != nil {
			e.t.Fatalf("read plaintext (%s, %d): %v", addr, m.UID, err)
		}
		out = append(out, string(b))
	}
	return out
}

// counts returns how many messages each test account holds.
func (e *testEnv) counts() map[string]int {
	e.t.Helper()
	m := map[string]int{}
	for _, a := range testAccounts {
		msgs, err := e.db.Messages(context.Background(), a, e.inboxID(a), store.ListOptions{})
		if err != nil {
			e.t.Fatalf("Messages(%s): %v", a, err)
		}
		m[a] = len(msgs)
	}
	return m
}

func (e *testEnv) expectEmpty() {
	e.t.Helper()
	for a, n := range e.counts() {
		if n != 0 {
			e.t.Errorf("%s has %d messages, want none", a, n)
		}
	}
}

// rawConn is a line-level SMTP client for transcripts that a well-behaved
// client library would refuse to send.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.expect("220")
	return rc
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (rc *rawConn) reply() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var last string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return "EOF: " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		last = line
		if len(line) < 4 || line[3] != '-' {
			return last
		}
	}
}

func (rc *rawConn) expect(prefix string) string {
	rc.t.Helper()
	got := rc.reply()
	if !strings.HasPrefix(got, prefix) {
		rc.t.Fatalf("reply %q, want prefix %q", got, prefix)
	}
	return got
}

// dialRawNoGreeting connects without reading the greeting.
func dialRawNoGreeting(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command line and checks the reply's prefix.
func (rc *rawConn) cmd(line, prefix string) string {
	rc.t.Helper()
	rc.send(line + "\r\n")
	return rc.expect(prefix)
}

// begin greets, opens a transaction from sender@remote.test and adds
// each recipient, expecting every step to be accepted.
func (rc *rawConn) begin(rcpts ...string) {
	rc.t.Helper()
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	for _, r := range rcpts {
		rc.cmd("RCPT TO:<"+r+">", "250 ")
	}
}

// testTLSConfig returns a server config with a self-signed certificate
// for mx.example.org and a client config trusting it.
func testTLSConfig(testing.TB) (server, client *tls.Config) {
	cert, pool := testutil.Cert("mx.example.org")
	server = &tls.Config{Certificates: []tls.Certificate{cert}}
	client = &tls.Config{RootCAs: pool, ServerName: "mx.example.org"}
	return server, client
}

// certPEM returns the server certificate of cfg in PEM, for clients'
// trust stores.
func certPEM(cfg *tls.Config) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Certificate[0]})
}

// testMessage is a small well-formed message.
func testMessage(subject, body string) string {
	return "From: Sender <sender@remote.test>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@remote.test>\r\n" +
		"\r\n" + body + "\r\n"
}
