package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// testEnv is a running POP3 server over a badger store in a temporary
// directory, with a plaintext (STLS) and an implicit-TLS listener.
type testEnv struct {
	t        testing.TB
	st       *badgerstore.DB
	acc      *account.Service
	srv      *Server
	addr     string // STLS
	tlsAddr  string // implicit TLS
	clientTL *tls.Config
	changes  *recordChanges
	logs     *testutil.LogBuffer
}

// recordChanges is a Changes that remembers what it was told.
type recordChanges struct {
	mu       sync.Mutex
	expunged []uint32
	modseqs  []uint64 // each ExpungedAt's removal mod-sequence
	flagged  []uint32
}

func (r *recordChanges) ExpungedAt(account string, mailbox uint64, res store.ExpungeResult) {
	r.mu.Lock()
	r.expunged = append(r.expunged, res.UIDs...)
	r.modseqs = append(r.modseqs, res.ModSeq)
	r.mu.Unlock()
}

func (r *recordChanges) FlagsChanged(account string, mailbox uint64, changed []store.Message) {
	r.mu.Lock()
	for _, m := range changed {
		r.flagged = append(r.flagged, m.UID)
	}
	r.mu.Unlock()
}

// newEnv starts a server; opt's Store, Accounts, TLSConfig, Logger and
// Changes are filled in. wrap, if given, makes the server's store from
// the badger one.
func newEnv(t testing.TB, opt Options, wrap ...func(*badgerstore.DB) Store) *testEnv {
	t.Helper()
	dir := t.TempDir()
	logs := &testutil.LogBuffer{}
	logger := logs.Logger()
	st, err := badgerstore.Open(dir, badgerstore.Options{Logger: logger})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	acc, err := account.New(account.Options{
		Store: st, Domains: []string{"example.org"}, KDF: crypto.TestKDF(),
		Logger: logger, FailureDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("account.New: %v", err)
	}
	cert, pool := testutil.Cert("127.0.0.1", "localhost")
	rc := &recordChanges{}
	opt.Store = st
	if len(wrap) > 0 {
		opt.Store = wrap[0](st)
	}
	opt.Accounts = acc
	opt.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	opt.Logger = logger
	if opt.Changes == nil {
		opt.Changes = rc
	}
	srv, err := New(opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{
		t: t, st: st, acc: acc, srv: srv, changes: rc, logs: logs,
		addr: ln.Addr().String(), tlsAddr: tln.Addr().String(),
		clientTL: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
	}
	var wg sync.WaitGroup
	for _, l := range []net.Listener{ln, tls.NewListener(tln, opt.TLSConfig)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
		acc.Close()
		st.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return env
}

func (e *testEnv) addUser(addr, password string) {
	e.t.Helper()
	if _, err := e.acc.Create(context.Background(), addr, []byte(password)); err != nil {
		e.t.Fatalf("create %s: %v", addr, err)
	}
}

// seal seals msg to the account's public key, as SMTP does.
func (e *testEnv) seal(addr string, msg []byte) []byte {
	e.t.Helper()
	b, err := testutil.SealFor(context.Background(), e.st, addr, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// deliver stores a sealed copy of msg in INBOX as SMTP would.
func (e *testEnv) deliver(addr string, msg []byte, flags ...string) store.Delivered {
	e.t.Helper()
	ds, err := e.st.Deliver(context.Background(), []store.Delivery{{
		Account: addr, InternalDate: time.Now(), Flags: flags, Blob: e.seal(addr, msg),
	}})
	if err != nil {
		e.t.Fatalf("Deliver: %v", err)
	}
	return ds[0]
}

func (e *testEnv) inbox(addr string) store.Mailbox {
	e.t.Helper()
	mb, err := e.st.Mailbox(context.Background(), addr, store.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

func (e *testEnv) messages(addr string) []store.Message {
	e.t.Helper()
	ms, err := e.st.Messages(context.Background(), addr, e.inbox(addr).ID, store.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func testMessage(subject, body string) []byte {
	return []byte("From: Alice Example <alice@example.org>\r\n" +
		"To: bob@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@example.org>\r\n" +
		"\r\n" + body)
}

// client is a raw POP3 client for transcripts.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func (e *testEnv) dialPlain() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.newClient(nc)
}

func (e *testEnv) dialTLS() *client {
	e.t.Helper()
	nc, err := tls.Dial("tcp", e.tlsAddr, e.clientTL)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.newClient(nc)
}

func (e *testEnv) newClient(nc net.Conn) *client {
	c := &client{t: e.t, nc: nc, r: bufio.NewReader(nc)}
	e.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// starttls upgrades the connection after the server's +OK to STLS.
func (c *client) starttls(conf *tls.Config) {
	c.t.Helper()
	tc := tls.Client(c.nc, conf)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.nc = tc
	c.r = bufio.NewReader(tc)
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// readLine returns one line without CRLF; "" and false at EOF.
func (c *client) readLine() (string, bool) {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		if l != "" {
			c.t.Fatalf("partial line %q: %v", l, err)
		}
		return "", false
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n"), true
}

// expect reads one line and checks it: exact, or a prefix when want
// ends with "*".
func (c *client) expect(want string) string {
	c.t.Helper()
	got, ok := c.readLine()
	if !ok {
		c.t.Fatalf("EOF, want %q", want)
	}
	if p, isPrefix := strings.CutSuffix(want, "*"); isPrefix {
		if !strings.HasPrefix(got, p) {
			c.t.Fatalf("got %q, want prefix %q", got, p)
		}
	} else if got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
	return got
}

// multi reads a multi-line response's body up to ".", undoing dot
// stuffing, and returns it with CRLF line ends.
func (c *client) multi() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l, ok := c.readLine()
		if !ok {
			c.t.Fatal("EOF in a multi-line response")
		}
		if l == "." {
			return b.String()
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		b.WriteString(l + "\r\n")
	}
}

// expectEOF checks that the server closes the connection.
func (c *client) expectEOF() {
	c.t.Helper()
	if l, ok := c.readLine(); ok {
		c.t.Fatalf("got %q, want the connection closed", l)
	}
}

// login logs in with USER/PASS on a TLS client.
func (c *client) login(user, pw string) {
	c.t.Helper()
	c.expect("+OK*")
	c.send("USER " + user)
	c.expect("+OK*")
	c.send("PASS " + pw)
	c.expect("+OK*")
}
