package smtp

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// FuzzSubmissionSession plays arbitrary client bytes against a running
// submission server (plaintext counted as TLS, so that AUTH and what
// follows it are reached), over badger, the account service and a queue
// that is not started: only well-formed reply lines come back, and once
// the connection is over no connection and no in-flight memory is left.
// Seeds: testdata/submission (Thunderbird-like, AUTH LOGIN with BDAT,
// spoofing).
func FuzzSubmissionSession(f *testing.F) {
	files, err := filepath.Glob("testdata/submission/*.txt")
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
	db, err := badgerstore.Open(f.TempDir(), badgerstore.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		createAccount(f, db, a)
	}
	accts, err := account.New(account.Options{Store: db, Domains: []string{"example.org"}, KDF: crypto.TestKDF(), FailureDelay: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer accts.Close()
	q, err := queue.New(queue.Options{Store: db, Key: bytes.Repeat([]byte{3}, queue.KeySize), Hostname: "mx.example.org",
		Domains: []string{"example.org"}})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{
		Hostname: "mx.example.org", Domains: []string{"example.org"}, Store: db,
		Limits: Limits{MessageBytes: 1 << 20, LineLength: 1000, CommandTimeout: 500 * time.Millisecond,
			DataTimeout: 2 * time.Second, Errors: 10, RateMessages: 1 << 30, RateBytes: 1 << 50},
		Submission: &SubmissionOptions{Accounts: rightOnly{accts}, Queue: q},
		hooks:      &testHooks{sleep: func(context.Context, time.Duration) {}, rateGrace: dataRateGrace, plainIsTLS: true},
	})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzSession(t, srv, ln.Addr().String(), in)
	})
}

// rightOnly passes the right credentials to the account service and
// refuses anything else itself: failed guesses would make the throttle
// wait (up to a minute per attempt), and fuzzing would test nothing but
// the throttle.
type rightOnly struct{ svc *account.Service }

func (r rightOnly) Login(ctx context.Context, req account.LoginRequest) (*account.Session, error) {
	if string(req.Secret) != testPassword || req.Username != "alice@example.org" && req.Username != "bob@example.org" {
		return nil, account.ErrBadCredentials
	}
	return r.svc.Login(ctx, req)
}

// FuzzScanHeader reads arbitrary header sections: never a panic, and
// what it reports holds: every From or Sender address parsed, a From
// found when it says so.
func FuzzScanHeader(f *testing.F) {
	for _, s := range []string{
		"From: Alice <alice@example.org>\r\nSubject: x\r\n\r\nbody\r\n",
		"From: a@b.c,\r\n d@e.f\r\nSender: s@t.u\r\nMessage-ID: <x>\r\nDate: now\r\nTLS-Required: No\r\n\r\n",
		"Subject: no from\r\n\r\n",
		"From: =?utf-8?q?J=C3=B6rg?= <jörg@bücher.example>\r\n\r\n",
		"From: x\r\nFrom: y\r\n\r\n",
		"Received: from a\r\n\tby b\r\nFrom: \"q@x\" <a@b.c>\r\n",
		"From: " + strings.Repeat("a", 20000) + "@b.c\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := scanHeader(bytes.NewReader(in))
		if err != nil {
			return
		}
		if !h.hasFrom || len(h.from) == 0 {
			t.Fatalf("no From, no error: %+v", h)
		}
		for _, a := range append(h.from, h.sender...) {
			if !strings.Contains(a, "@") || !utf8.ValidString(a) {
				t.Fatalf("address %q", a)
			}
		}
	})
}

// FuzzXtext decodes xtext and utf-8-addr-xtext (RFC 3461, RFC 6533):
// never a panic; what decodes is valid UTF-8.
func FuzzXtext(f *testing.F) {
	for _, s := range []string{"abc+2Bdef", "a+3D", "+", "+2", "j\\x{00F6}rg@x", "\\x{110000}", "\\x{", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := decodeXtext(s); ok && !utf8.ValidString(d) {
			t.Fatalf("decodeXtext(%q) = %q", s, d)
		}
		if d, ok := decodeUTF8Xtext(s); ok && !utf8.ValidString(d) {
			t.Fatalf("decodeUTF8Xtext(%q) = %q", s, d)
		}
	})
}
