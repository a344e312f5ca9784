package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/sink"
)

// startSink starts a sink for a test; it stops when the test ends.
func startSink(t *testing.T, opt sink.Options) *sink.Server {
	t.Helper()
	s, err := sink.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// plainSASL is SASL PLAIN for go-smtp's client.
type plainSASL struct{ user, pass string }

func (p plainSASL) Start() (string, []byte, error) {
	return "PLAIN", []byte("\x00" + p.user + "\x00" + p.pass), nil
}
func (p plainSASL) Next([]byte) ([]byte, error) { return nil, nil }

// submit sends msg through the server's submission listener as user.
func submit(t *testing.T, s *server, dataDir, user, pass, from string, to []string, msg string) error {
	t.Helper()
	c, err := gosmtp.DialStartTLS(s.addr("submission"), trustSelfSigned(t, dataDir))
	if err != nil {
		t.Fatalf("submission: %v", err)
	}
	defer c.Close()
	if err := c.Auth(plainSASL{user, pass}); err != nil {
		return err
	}
	return c.SendMail(from, to, strings.NewReader(msg))
}

// inboxOverIMAP returns the whole messages of user's INBOX, read over
// IMAPS as a mail client would.
func inboxOverIMAP(t *testing.T, s *server, dataDir, user string) []string {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, dataDir)})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, alicePW).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	whole := &imap.FetchItemBodySection{}
	got, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var out []string
	for _, m := range got {
		out = append(out, string(m.FindBodySection(whole)))
	}
	return out
}

// waitUntil polls cond; the limit only keeps a broken test from hanging.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSendingBinary runs the real binary: alice submits to bob (local)
// and two remote recipients behind outbound.transports; one of them is
// refused for good, and alice reads the bounce over IMAP. The queue
// commands show, retry and drop entries with the server running and
// stopped.
func TestSendingBinary(t *testing.T) {
	var greylist atomic.Bool
	greylist.Store(true)
	sk := startSink(t, sink.Options{KeepData: true, Rcpt: func(to string) error {
		switch {
		case strings.HasPrefix(to, "gone@"):
			return sink.Reply(550, "5.1.1", "<"+to+">: no such mailbox")
		case strings.HasPrefix(to, "later@") && greylist.Load():
			return sink.Reply(451, "4.7.1", "greylisted, try again")
		}
		return nil
	}})
	te := newTestEnv(t)
	te.env = append(te.env, "SEALMAIL_OUTBOUND_TRANSPORTS=remote.test="+sk.Addr+", slow.test="+sk.Addr)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	s := te.serve()

	msg := "From: Alice <alice@example.org>\r\nTo: bob@example.org, x@remote.test, gone@remote.test\r\nSubject: sending\r\n\r\nHello from the binary.\r\n"
	if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org",
		[]string{"bob@example.org", "x@remote.test", "gone@remote.test"}, msg); err != nil {
		t.Fatalf("submit: %v\n%s", err, s.logs())
	}
	if n := sk.Wait(1, 3*time.Minute); n != 1 {
		t.Fatalf("the sink got %d messages\n%s", n, s.logs())
	}
	if got := sk.Messages()[0]; strings.Join(got.Rcpts, ",") != "x@remote.test" || !strings.Contains(string(got.Data), "Hello from the binary.") {
		t.Fatalf("the sink got %+v", got)
	}
	if in := inboxOverIMAP(t, s, te.dataDir, "bob@example.org"); len(in) != 1 || !strings.Contains(in[0], "Hello from the binary.") {
		t.Fatalf("bob's INBOX: %q", in)
	}
	var bounce string
	waitUntil(t, "the bounce in alice's INBOX", func() bool {
		in := inboxOverIMAP(t, s, te.dataDir, "alice@example.org")
		if len(in) == 1 {
			bounce = in[0]
		}
		return len(in) == 1
	})
	for _, want := range []string{"multipart/report", "Action: failed", "Status: 5.1.1",
		"Diagnostic-Code: smtp; 550 5.1.1 <gone@remote.test>: no such mailbox", "Hello from the binary."} {
		if !strings.Contains(bounce, want) {
			t.Errorf("the bounce lacks %q:\n%s", want, bounce)
		}
	}

	// A greylisted recipient waits in the queue.
	if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org",
		[]string{"later@slow.test"}, strings.Replace(msg, "Subject: sending", "Subject: later", 1)); err != nil {
		t.Fatal(err)
	}
	var entries []queue.EntryInfo
	waitUntil(t, "the deferred entry", func() bool {
		r := te.ok("", "queue", "list", "--json")
		entries = nil
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
			t.Fatalf("queue list --json: %v\n%s", err, r.stdout)
		}
		return len(entries) == 1 && entries[0].Attempts == 1 && !entries[0].Running
	})
	en := entries[0]
	if en.From != "alice@example.org" || en.Account != "alice@example.org" || en.Domain != "slow.test" ||
		strings.Join(en.Rcpts, ",") != "later@slow.test" || !strings.Contains(en.Last, "451 4.7.1 greylisted") {
		t.Fatalf("entry %+v", en)
	}
	r := te.ok("", "queue", "list")
	if !strings.Contains(r.stdout, en.ID) || !strings.Contains(r.stdout, "451 4.7.1 greylisted") || !strings.Contains(r.stdout, "1 entry") {
		t.Fatalf("queue list:\n%s", r.stdout)
	}
	r = te.ok("", "queue", "show", en.Msg)
	for _, want := range []string{"entry " + en.ID, "submitted", "queued", "attempt", "via 127.0.0.1", "no TLS", "at rcpt",
		"451 4.7.1 greylisted, try again", "deferred", "next "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("queue show lacks %q:\n%s", want, r.stdout)
		}
	}
	// The trace search shows the same steps among all the server's.
	r = te.ok("", "trace", "search", "--direction", "outbound", "--to", "later@slow.test")
	for _, want := range []string{"outbound " + en.Msg + " attempt entry " + en.ID, "via 127.0.0.1", "no TLS", "at rcpt",
		"451 4.7.1 greylisted, try again", "outbound " + en.Msg + " deferred"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trace search lacks %q:\n%s", want, r.stdout)
		}
	}
	var d queue.Detail
	if err := json.Unmarshal([]byte(te.ok("", "queue", "show", en.ID, "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 1 || len(d.Trace) < 3 {
		t.Fatalf("queue show --json: %+v", d)
	}
	// Retry, now that the recipient takes mail: delivered.
	greylist.Store(false)
	if r := te.ok("", "queue", "retry", en.Msg); !strings.Contains(r.stdout, "1 entry due now") {
		t.Fatalf("queue retry: %s", r.stdout)
	}
	if n := sk.Wait(2, 3*time.Minute); n != 2 {
		t.Fatalf("after retry the sink has %d messages", n)
	}
	waitUntil(t, "an empty queue", func() bool {
		return strings.Contains(te.ok("", "queue", "list").stdout, "the outbound queue is empty")
	})
	te.fails(exitError, `no queue entry or message "nosuch"`, "", "queue", "drop", "nosuch")

	// Drop, with the server running: a greylisted one again.
	greylist.Store(true)
	if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org",
		[]string{"later@slow.test"}, msg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second deferred entry", func() bool {
		entries = nil
		json.Unmarshal([]byte(te.ok("", "queue", "list", "--json").stdout), &entries)
		return len(entries) == 1 && entries[0].Attempts == 1
	})
	// With the server stopped, the CLI reads the queue itself.
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.logs())
	}
	r = te.ok("", "queue", "list")
	if !strings.Contains(r.stdout, entries[0].ID) {
		t.Fatalf("queue list with the server stopped:\n%s", r.stdout)
	}
	if r := te.ok("", "queue", "drop", entries[0].ID); !strings.Contains(r.stdout, "1 entry dropped") {
		t.Fatalf("queue drop: %s", r.stdout)
	}
	r = te.ok("", "queue", "show", entries[0].Msg)
	if !strings.Contains(r.stdout, "not queued") || !strings.Contains(r.stdout, "dropped") {
		t.Fatalf("queue show after drop:\n%s", r.stdout)
	}
	if n := sk.Count(); n != 2 {
		t.Fatalf("the sink has %d messages after the drop", n)
	}
	// What the operator read of the queue and dropped is in the audit
	// log (through the running server and with it stopped), by
	// transaction id, not by address.
	var shows, drops, lists int
	for _, r := range exportLines(t, te.ok("", "audit", "export").stdout) {
		if !strings.HasPrefix(r.Action, "queue.") {
			continue
		}
		if r.Actor != cliActor(os.Getuid()) || r.Scope != "org" {
			t.Errorf("queue record %+v", r)
		}
		for _, v := range r.Detail {
			if strings.Contains(v, "@") || strings.Contains(v, "slow.test") {
				t.Errorf("an address in the audit log: %+v", r)
			}
		}
		switch r.Action {
		case "queue.list":
			lists++
		case "queue.show":
			if r.Detail["id"] == en.Msg && r.Detail["entries"] == "1" {
				shows++
			}
		case "queue.drop":
			if r.Detail["id"] == entries[0].ID && r.Detail["entries"] == "1" {
				drops++
			}
		case "queue.retry":
			t.Errorf("a retry is not an act on mail's readers or retention: %+v", r)
		}
	}
	if lists == 0 || shows != 1 || drops != 1 {
		t.Errorf("audit log: %d queue.list, %d queue.show of %s, %d queue.drop of %s", lists, shows, en.Msg, drops, entries[0].ID)
	}
	te.ok("", "audit", "verify")
	// The server key was made at first start, private.
	fi, err := os.Stat(filepath.Join(te.dataDir, "server.key"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("server.key: %v %v", fi, err)
	}
}

// TestSendingExpiry runs the real binary: a remote recipient that only
// ever answers 4xx (through outbound.transports) is retried until
// outbound.lifetime runs out, the last attempt at its end; then the
// message bounces into the sender's INBOX, readable over IMAP, with the
// remote's last reply, and leaves the queue.
func TestSendingExpiry(t *testing.T) {
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		return sink.Reply(452, "4.2.2", "mailbox full")
	}})
	te := newTestEnv(t)
	te.env = append(te.env, "SEALMAIL_OUTBOUND_TRANSPORTS=remote.test="+sk.Addr,
		"SEALMAIL_OUTBOUND_LIFETIME=4s", "SEALMAIL_OUTBOUND_DELAY_WARNING=0")
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	msg := "From: Alice <alice@example.org>\r\nTo: full@remote.test\r\nSubject: never arrives\r\n\r\nStuck in the queue.\r\n"
	if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org", []string{"full@remote.test"}, msg); err != nil {
		t.Fatalf("submit: %v\n%s", err, s.logs())
	}
	var bounce string
	waitUntil(t, "the expiry bounce in alice's INBOX", func() bool {
		in := inboxOverIMAP(t, s, te.dataDir, "alice@example.org")
		if len(in) > 0 {
			bounce = in[0]
		}
		return len(in) > 0
	})
	for _, want := range []string{"multipart/report", "Action: failed", "Status: 5.4.7", "delivery time expired",
		"452 4.2.2 mailbox full", "Subject: never arrives"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("the bounce lacks %q:\n%s", want, bounce)
		}
	}
	if in := inboxOverIMAP(t, s, te.dataDir, "alice@example.org"); len(in) != 1 {
		t.Errorf("alice has %d messages, want the bounce alone (no delay warning)", len(in))
	}
	if n := sk.Connections(); n < 2 {
		t.Errorf("%d delivery attempt(s), want the first and one at the end of the lifetime", n)
	}
	if sk.Count() != 0 {
		t.Error("the sink took the message")
	}
	waitUntil(t, "an empty queue", func() bool {
		return strings.Contains(te.ok("", "queue", "list").stdout, "the outbound queue is empty")
	})
	r := te.ok("", "trace", "search", "--direction", "outbound", "--to", "full@remote.test")
	if !strings.Contains(r.stdout, "expired") {
		t.Errorf("the trace does not say the message expired:\n%s", r.stdout)
	}
}
