package imap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// testEnv is a running server over a badger store in a temporary directory.
type testEnv struct {
	t        testing.TB
	dir      string
	st       *badgerstore.DB
	acc      *account.Service
	srv      *Server
	addr     string // STARTTLS listener
	tlsAddr  string // implicit TLS listener
	clientTL *tls.Config
	closed   bool
	logs     *testutil.LogBuffer
}

// testCert returns the servers' certificate, for 127.0.0.1 and
// localhost, and a pool trusting it.
func testCert(testing.TB) (tls.Certificate, *x509.CertPool) {
	return testutil.Cert("127.0.0.1", "localhost")
}

type envOptions struct {
	opt Options
	// acc configures the account service; Store, Domains, KDF and Logger
	// are filled in, FailureDelay defaults to 10 ms.
	acc account.Options
}

func newEnv(t testing.TB, eo ...envOptions) *testEnv {
	t.Helper()
	dir := t.TempDir()
	logs := &testutil.LogBuffer{}
	logger := logs.Logger()
	st, err := badgerstore.Open(dir, badgerstore.Options{Logger: logger})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cert, pool := testCert(t)
	var opt Options
	var aopt account.Options
	if len(eo) > 0 {
		opt, aopt = eo[0].opt, eo[0].acc
	}
	aopt.Store = st
	aopt.Domains = []string{"example.org"}
	aopt.KDF = crypto.TestKDF()
	aopt.Logger = logger
	if aopt.FailureDelay == 0 {
		aopt.FailureDelay = 10 * time.Millisecond
	}
	acc, err := account.New(aopt)
	if err != nil {
		t.Fatalf("account.New: %v", err)
	}
	opt.Store = st
	opt.Accounts = acc
	opt.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	opt.Logger = logger
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
	tlsLn := tls.NewListener(tln, opt.TLSConfig)
	env := &testEnv{
		t: t, dir: dir, st: st, acc: acc, srv: srv,
		addr: ln.Addr().String(), tlsAddr: tln.Addr().String(),
		clientTL: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		logs:     logs,
	}
	var wg sync.WaitGroup
	for _, l := range []net.Listener{ln, tlsLn} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		env.shutdown()
		wg.Wait()
		acc.Close()
		if !env.closed {
			st.Close()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return env
}

func (e *testEnv) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown: %v", err)
	}
}

// closeStore shuts the server down and closes the store (for at-rest checks).
func (e *testEnv) closeStore() {
	e.shutdown()
	if !e.closed {
		e.closed = true
		if err := e.st.Close(); err != nil {
			e.t.Fatalf("close store: %v", err)
		}
	}
}

// addUser creates an account with the default mailboxes.
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

// mailboxID returns the ID of the mailbox now called name ("" is INBOX).
func (e *testEnv) mailboxID(addr, name string) uint64 {
	e.t.Helper()
	if name == "" {
		name = store.Inbox
	}
	m, err := e.st.Mailbox(context.Background(), addr, name)
	if err != nil {
		e.t.Fatalf("Mailbox(%s, %q): %v", addr, name, err)
	}
	return m.ID
}

// messages lists the mailbox now called name straight from the store.
func (e *testEnv) messages(addr, name string, opt store.ListOptions) ([]store.Message, error) {
	e.t.Helper()
	return e.st.Messages(context.Background(), addr, e.mailboxID(addr, name), opt)
}

// deliver stores a sealed copy of msg as SMTP would and tells the server.
// mailbox is a name, resolved now; "" is INBOX.
func (e *testEnv) deliver(addr, mailbox string, msg []byte, flags ...string) store.Delivered {
	e.t.Helper()
	ds, err := e.st.Deliver(context.Background(), []store.Delivery{{
		Account: addr, MailboxID: e.mailboxID(addr, mailbox), InternalDate: time.Now(), Flags: flags, Blob: e.seal(addr, msg),
	}})
	if err != nil {
		e.t.Fatalf("Deliver: %v", err)
	}
	e.srv.Delivered(ds)
	e.srv.notify.wait() // announced in the background: wait for it
	return ds[0]
}

// dial connects with implicit TLS and logs in.
func (e *testEnv) dial(addr, password string, opts ...*imapclient.Options) *imapclient.Client {
	e.t.Helper()
	o := &imapclient.Options{}
	if len(opts) > 0 && opts[0] != nil {
		o = opts[0]
	}
	o.TLSConfig = e.clientTL
	c, err := imapclient.DialTLS(e.tlsAddr, o)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(addr, password).Wait(); err != nil {
		e.t.Fatalf("login: %v", err)
	}
	return c
}

func testMessage(subject, body string) []byte {
	return []byte("From: Alice Example <alice@example.org>\r\n" +
		"To: bob@example.com\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n" +
		"Message-ID: <" + subject + "@example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" + body + "\r\n")
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchClientsEnv); spec != "" {
		// Child process of BenchmarkIdleSessionMemory.
		if err := runBenchClients(spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	closeBenchFixture()
	os.Exit(code)
}

func storeList() store.ListOptions            { return store.ListOptions{} }
func storeListWithSummary() store.ListOptions { return store.ListOptions{WithSummary: true} }

func hasFlagStr(fs []string, f string) bool { return store.HasFlag(fs, f) }

func isWipedErr(err error) bool { return errors.Is(err, crypto.ErrWiped) }
