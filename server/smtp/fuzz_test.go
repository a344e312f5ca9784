package smtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// FuzzCommand feeds arbitrary command lines to the parser: parseCommand,
// then the argument parser of MAIL, RCPT or BDAT. Nothing may panic, and
// whatever is accepted must be safe to use: verbs are letters, paths are
// valid UTF-8 without controls or angle brackets in the domain, within
// the RFC's length, parameters unique.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{
		"EHLO client.example", "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8",
		"MAIL FROM:<>", "mail from: <a@b.test>", "RCPT TO:<postmaster>", "RCPT TO:<@a,@b:c@d.test>",
		`RCPT TO:<"a b\"c"@d.test>`, "RCPT TO:<a@[192.0.2.1]>", "BDAT 100 LAST", "BDAT 0",
		"MAIL FROM:<a@b.test> SIZE=99999999999999999999999", "RCPT TO:<jörg@bücher.test>",
		"MAIL FROM:<a@b.test> AUTH=<>", "RCPT TO:<a@b.test> NOTIFY=NEVER", "NOOP \x00", "QUIT",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, rep := parseCommand(line)
		if rep != nil {
			if rep.Code/100 != 5 {
				t.Fatalf("refusal %v is not permanent", rep)
			}
			return
		}
		for _, c := range cmd.verb {
			if c < 'A' || c > 'Z' {
				t.Fatalf("verb %q", cmd.verb)
			}
		}
		checkPathOK := func(p path) {
			for _, s := range []string{p.local, p.domain} {
				if !utf8.ValidString(s) {
					t.Fatalf("invalid UTF-8 in %+v", p)
				}
				for _, r := range s {
					if r < 0x20 || r == 0x7f {
						t.Fatalf("control in %+v", p)
					}
				}
			}
			if strings.ContainsAny(p.domain, "<> \"\\") {
				t.Fatalf("domain %q", p.domain)
			}
			if !p.quoted && strings.ContainsAny(p.local, " \"\\") {
				t.Fatalf("unquoted local part %q", p.local)
			}
			if len(p.local)+len(p.domain) > maxPathLen {
				t.Fatalf("path of %d bytes", len(p.local)+len(p.domain))
			}
		}
		switch cmd.verb {
		case "MAIL":
			m, rep := parseMail(cmd.arg, mailParams{esmtp: true, dsn: true, requireTLS: true})
			if rep == nil {
				checkPathOK(m.from)
				if m.size < 0 {
					t.Fatalf("size %d", m.size)
				}
			}
		case "RCPT":
			p, _, rep := parseRcpt(cmd.arg, true)
			if rep == nil {
				checkPathOK(p)
				if p.isNull() {
					t.Fatal("null forward path accepted")
				}
				if p.domain == "" && !strings.EqualFold(p.local, "postmaster") {
					t.Fatalf("domainless %q accepted", p.local)
				}
			}
		case "BDAT":
			if n, _, ok := parseBDAT(cmd.arg); ok && n < 0 {
				t.Fatalf("chunk size %d", n)
			}
		}
	})
}

// memStore is an in-memory Store for FuzzSession: fixed accounts, and
// deliveries checked and counted, not kept.
type memStore struct {
	accounts map[string]store.PublicAccount // immutable

	mu        sync.Mutex
	delivered int                       // guarded by mu
	staged    map[uint64]*memBlobWriter // guarded by mu
	next      uint64                    // guarded by mu
}

func (m *memStore) PublicAccount(ctx context.Context, addr string) (store.PublicAccount, error) {
	if a, ok := m.accounts[addr]; ok {
		return a, nil
	}
	return store.PublicAccount{}, store.ErrNotFound
}

func (m *memStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.Delivered, len(ds))
	for i, d := range ds {
		switch {
		case d.Staged != nil:
			w := m.staged[d.Staged.Ref]
			if w == nil || !w.done || w.buf.Len() == 0 {
				return nil, errors.New("memStore: unknown staged blob")
			}
			delete(m.staged, d.Staged.Ref)
		case len(d.Blob) == 0:
			return nil, errors.New("memStore: empty blob")
		}
		m.delivered++
		out[i] = store.Delivered{Account: d.Account, MailboxID: 1, Mailbox: store.Inbox, UID: uint32(m.delivered)}
	}
	return out, nil
}

func (m *memStore) Mailboxes(ctx context.Context, addr string) ([]store.Mailbox, error) {
	return []store.Mailbox{{ID: 1, Name: store.Inbox}}, nil
}

func (m *memStore) StageBlob(ctx context.Context, addr string) (store.BlobWriter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	w := &memBlobWriter{m: m, ref: m.next, account: addr}
	if m.staged == nil {
		m.staged = map[uint64]*memBlobWriter{}
	}
	m.staged[w.ref] = w
	return w, nil
}

type memBlobWriter struct {
	m       *memStore
	ref     uint64
	account string
	buf     bytes.Buffer
	done    bool
}

func (w *memBlobWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memBlobWriter) Finish(ctx context.Context) (store.StagedBlob, error) {
	w.done = true
	return store.StagedBlob{Account: w.account, Size: int64(w.buf.Len()), Ref: w.ref}, nil
}
func (w *memBlobWriter) Discard() error {
	w.m.mu.Lock()
	delete(w.m.staged, w.ref)
	w.m.mu.Unlock()
	return nil
}

// fuzzServer is one server for every FuzzSession input: short timeouts,
// small limits, no tarpit sleeps.
var fuzzServer struct {
	once sync.Once
	srv  *Server
	addr string
	err  error
}

func startFuzzServer(t testing.TB) (*Server, string) {
	fuzzServer.once.Do(func() {
		sec, err := crypto.NewAccount("fuzz@example.org", []byte(testPassword), crypto.AccountOptions{KDF: crypto.TestKDF()})
		if err != nil {
			fuzzServer.err = err
			return
		}
		ms := &memStore{accounts: map[string]store.PublicAccount{}}
		for _, a := range testAccounts {
			ms.accounts[a] = store.PublicAccount{Address: a, PublicKey: sec.PublicKey, KeyFingerprint: sec.Fingerprint}
		}
		ms.accounts["postmaster@example.org"] = ms.accounts["alice@example.org"]
		srvTLS, _ := testTLSConfig(t)
		srv, err := New(Options{
			Hostname:  "mx.example.org",
			Domains:   []string{"example.org", "other.test"},
			Store:     ms,
			Aliases:   map[string][]string{"team@example.org": {"alice@example.org", "bob@example.org"}},
			TLSConfig: srvTLS,
			Limits: Limits{
				MessageBytes: 2 << 20, LineLength: 1000, CommandTimeout: 500 * time.Millisecond,
				DataTimeout: 2 * time.Second, Errors: 10, UnknownRecipients: 5,
				RateMessages: 1 << 30, RateBytes: 1 << 50,
			},
			hooks: &testHooks{sleep: func(context.Context, time.Duration) {}, rateGrace: dataRateGrace},
		})
		if err != nil {
			fuzzServer.err = err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fuzzServer.err = err
			return
		}
		go srv.Serve(ln)
		fuzzServer.srv, fuzzServer.addr = srv, ln.Addr().String()
	})
	if fuzzServer.err != nil {
		t.Fatal(fuzzServer.err)
	}
	return fuzzServer.srv, fuzzServer.addr
}

// replyLine is one line of a reply: code, separator, optional text.
var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9]([ -].*)?$`)

// FuzzSession plays arbitrary client bytes against a running server, as
// one connection, and checks what came back: only well-formed reply
// lines, every message handed to the store non-empty, and once the
// connection is over, no connection and no in-flight memory left. Its
// seeds are real transcripts (testdata/transcripts: go-smtp's and
// Python smtplib's clients, a Postfix-style BDAT session) and the attacks
// of issue 9.
func FuzzSession(f *testing.F) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		f.Fatalf("no transcripts: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, addr := startFuzzServer(t)
		fuzzSession(t, srv, addr, in)
	})
}

// fuzzSession sends in to the server at addr as one session and checks
// that every reply is a well-formed line and that the session leaves
// nothing behind: no connection, no budget.
func fuzzSession(t *testing.T, srv *Server, addr string, in []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading replies: %v", err)
	}
	s := string(out)
	if s != "" && !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("output does not end in CRLF: %q", s)
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if s != "" && !replyLine.MatchString(line) {
			t.Fatalf("bad reply line %q in %q", line, s)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.connCount() > 0 || srv.budget.inUse() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the session: %d connections, %d bytes of budget in use", srv.connCount(), srv.budget.inUse())
		}
		time.Sleep(time.Millisecond)
	}
}
