package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// Regression tests of the compliance failures that Dovecot's imaptest
// found (issue 11), on the wire, where the exact responses matter. Each
// failed with go-imap's imapserver underneath.

func appendCmd(mailbox string, msg string) string {
	return fmt.Sprintf("APPEND %s {%d+}\r\n%s", mailbox, len(msg), msg)
}

func mustContain(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s: no %q in:\n%s", what, s, out)
		}
	}
}

func mustNotContain(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(out, s) {
			t.Errorf("%s: %q in:\n%s", what, s, out)
		}
	}
}

// TestRecent: \Recent belongs to the first session that sees a message
// (RFC 3501 §2.3.2), for IMAP4rev1 clients: EXAMINE shows it without
// taking it, STATUS counts it, SELECT takes it, a session that has the
// mailbox selected takes the messages copied in.
func TestRecent(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	r := env.rawLogin(alice, alicePW)
	r.ok(`CREATE "Box"`)
	r.ok(appendCmd("Box", string(testMessage("one", "1"))))
	r.ok(appendCmd("Box", string(testMessage("two", "2"))))
	mustContain(t, "EXAMINE", r.ok(`EXAMINE "Box"`), "* 2 EXISTS", "* 2 RECENT")
	r.ok("CLOSE")
	mustContain(t, "STATUS", r.ok(`STATUS "Box" (MESSAGES RECENT)`), "RECENT 2")
	out := r.ok(`SELECT "Box"`)
	mustContain(t, "SELECT", out, "* 2 RECENT")
	mustContain(t, "SEARCH RECENT", r.ok("SEARCH RECENT"), "* SEARCH 1 2")
	mustContain(t, "FETCH FLAGS", r.ok("FETCH 1 FLAGS"), `FLAGS (\Recent)`)
	r.ok("CLOSE")
	mustContain(t, "STATUS after SELECT", r.ok(`STATUS "Box" (RECENT)`), "RECENT 0")

	// Copied into a mailbox another session has selected: recent there.
	b := env.rawLogin(alice, alicePW)
	b.ok(`SELECT "Box"`)
	r.ok(`SELECT "INBOX"`)
	r.ok(appendCmd("INBOX", string(testMessage("three", "3"))))
	r.ok(`COPY 1 "Box"`)
	mustContain(t, "NOOP after COPY", b.ok("NOOP"), "* 3 EXISTS", "* 1 RECENT")
	mustContain(t, "FETCH the copy", b.ok("FETCH 3 (FLAGS)"), `\Recent`)
	mustContain(t, "SEARCH NEW", b.ok("SEARCH NEW"), "* SEARCH 3")
}

// TestNewKeywordAnnounced: a keyword that appears (this session's STORE,
// another session's) is announced with FLAGS before any FETCH uses it
// (imaptest's state checker counted 568 violations in 30 s).
func TestNewKeywordAnnounced(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("one", "1"))
	a := env.rawLogin(alice, alicePW)
	b := env.rawLogin(alice, alicePW)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	out := a.ok(`STORE 1 +FLAGS ($Hello)`)
	flags := strings.Index(out, "* FLAGS (")
	fetch := strings.Index(out, "FETCH (FLAGS (")
	if flags < 0 || fetch < 0 || flags > fetch || !strings.Contains(out[flags:], "$Hello") {
		t.Errorf("own STORE: FLAGS not announced before the FETCH:\n%s", out)
	}
	out = b.ok("NOOP")
	flags = strings.Index(out, "* FLAGS (")
	fetch = strings.Index(out, "FETCH (")
	if flags < 0 || fetch < 0 || flags > fetch || !strings.Contains(out[fetch:], "$Hello") {
		t.Errorf("other session: FLAGS not announced before the FETCH:\n%s", out)
	}
	mustContain(t, "PERMANENTFLAGS", out, "[PERMANENTFLAGS (")
	mustNotContain(t, "second NOOP", b.ok("NOOP"), "* FLAGS")
	// NIL is a keyword too.
	out = a.ok("STORE 1 +FLAGS NIL")
	if i := strings.Index(out, "* FLAGS ("); i < 0 || !strings.Contains(out[i:strings.Index(out[i:], "\r\n")+i], "NIL") {
		t.Errorf("NIL keyword not announced:\n%s", out)
	}
}

// TestSubscriptionsOutliveMailbox: DELETE keeps the subscription (RFC
// 9051 §6.3.7); LIST (SUBSCRIBED) shows it \NonExistent; LSUB with '%'
// gives unsubscribed parents \Noselect; RECURSIVEMATCH gives CHILDINFO
// to a name whose subscribed child does not match.
func TestSubscriptionsOutliveMailbox(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	r := env.rawLogin(alice, alicePW)
	for _, n := range []string{"p/gone", "p/deep/leaf", "p/deep2/leaf", "p/plain"} {
		r.ok(`CREATE "` + n + `"`)
	}
	for _, n := range []string{"p/gone", "p/deep/leaf", "p/deep2"} {
		r.ok(`SUBSCRIBE "` + n + `"`)
	}
	r.ok(`DELETE "p/gone"`)
	out := r.ok(`LIST (SUBSCRIBED) "" "p/*"`)
	mustContain(t, "LIST (SUBSCRIBED)", out, `(\NonExistent \Subscribed) "/" "p/gone"`, `"p/deep/leaf"`, `"p/deep2"`)
	mustNotContain(t, "LIST (SUBSCRIBED)", out, `"p/plain"`, `\Noselect \Subscribed) "/" "p/gone"`)
	out = r.ok(`LSUB "" "p/%"`)
	mustContain(t, "LSUB %", out, `* LSUB () "/" "p/gone"`, `* LSUB (\Noselect) "/" "p/deep"`, `* LSUB () "/" "p/deep2"`)
	mustNotContain(t, "LSUB %", out, `"p/deep/leaf"`, `"p/plain"`)
	out = r.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "p/%"`)
	mustContain(t, "RECURSIVEMATCH", out, `"p/deep" ("CHILDINFO" ("SUBSCRIBED"))`)
	mustNotContain(t, "RECURSIVEMATCH", out, `"p/deep2" ("CHILDINFO"`)
	out = r.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" ("p/deep" "p/deep/leaf")`)
	mustNotContain(t, "RECURSIVEMATCH, child listed", out, `CHILDINFO`)
	mustContain(t, "RECURSIVEMATCH, child listed", out, `"p/deep/leaf"`)
	// Creating the mailbox again finds it subscribed.
	r.ok(`CREATE "p/gone"`)
	mustContain(t, "LIST after re-CREATE", r.ok(`LIST "" "p/gone" RETURN (SUBSCRIBED)`), `\Subscribed`)
}

// TestEnvelopeGroupsAndRoutes: ENVELOPE keeps address groups, addresses
// without '@' and source routes, and takes a comment as the name when
// there is no display name.
func TestEnvelopeGroupsAndRoutes(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", []byte("Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nFrom: user@domain (Real Name)\r\n"+
		"To: group: g1@d1.org, g2@d2.org;, undisclosed-recipients:;\r\nCc: <@route:user@domain>\r\n\r\nbody\r\n"))
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	out := r.ok("FETCH 1 ENVELOPE")
	mustContain(t, "ENVELOPE", out,
		`(("Real Name" NIL "user" "domain"))`,
		`((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`,
		`((NIL "@route" "user" "domain"))`)
}

// TestSearchAddresses: SEARCH FROM/TO/CC/BCC match the parsed addresses
// (display name decoded, mailbox@host, group names), not the raw field:
// a comment name, an encoded name and a group name match; text of the
// field outside any address does not.
func TestSearchAddresses(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", []byte("From: user-from@domain.org (RealFrom)\r\nTo: groupname: g1@d.org;\r\n\r\n1\r\n"))
	env.deliver(alice, "", []byte("From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\nCc: <user-cc (comment)@ (comment) domain.org>\r\n\r\n2\r\n"))
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	for q, want := range map[string]string{
		"FROM realfrom":             "* SEARCH 1\r\n",
		"FROM user-from@domain.org": "* SEARCH 1\r\n",
		"TO groupname":              "* SEARCH 1\r\n",
		"FROM jörg":                 "* SEARCH 2\r\n",
		"CC user-cc@domain.org":     "* SEARCH 2\r\n",
		"CC comment":                "* SEARCH\r\n",
	} {
		if i := strings.Index(q, "jörg"); i >= 0 {
			q = fmt.Sprintf("CHARSET UTF-8 %s{%d+}\r\n%s", q[:i], len(q[i:]), q[i:])
		}
		out := r.ok("SEARCH " + q)
		mustContain(t, "SEARCH "+q, out, want)
	}
}

// TestBinaryContent: a binary APPEND (literal8 with NUL bytes) is stored
// with its binary part re-encoded as base64, as Dovecot does, so BODY[]
// never carries NUL (a literal must not) and sizes agree; BINARY gives
// the original bytes, partial BINARY says its origin, BINARY.SIZE
// announces the decoded size.
func TestBinaryContent(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	r := env.rawLogin(alice, alicePW)
	msg := "From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\nab\x00cd\r\n"
	r.ok(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg))
	r.ok("SELECT INBOX")
	out := r.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<1.3>)")
	mustContain(t, "BINARY", out, "BINARY.SIZE[1] 7", "BINARY[1] ~{7}\r\nab\x00cd\r\n", "BINARY[1]<1> ~{3}\r\nb\x00c")
	out = r.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[HEADER] BODYSTRUCTURE)")
	mustContain(t, "BODY[1]", out, "BODY[1] {14}\r\nYWIAY2QNCg==\r\n", "Content-Transfer-Encoding: base64", `"BASE64" 14`)
	mustNotContain(t, "BODY", out, "\x00")
	b64 := "From: a@b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
	r.ok(appendCmd("INBOX", b64))
	r.ok("NOOP")
	out = r.ok("FETCH 2 (BINARY.SIZE[1] BINARY.PEEK[1]<6.100>)")
	mustContain(t, "base64", out, "BINARY.SIZE[1] 11", "BINARY[1]<6> ~{5}\r\nworld")
	unknown := "From: a@b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
	r.ok(appendCmd("INBOX", unknown))
	r.ok("NOOP")
	if out, st := r.cmd("FETCH 3 (BINARY.PEEK[1])"); st != "NO" || !strings.Contains(out, "[UNKNOWN-CTE]") {
		t.Errorf("BINARY of an unknown encoding: %s", out)
	}
}

// TestFetchRacingExpunge: a FETCH of a message another session expunged
// (and this one was not told yet) answers the others whole and ends
// NO [EXPUNGEISSUED], never with a half-written FETCH or NONEXISTENT.
func TestFetchRacingExpunge(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := range 3 {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "body"))
	}
	a := env.rawLogin(alice, alicePW)
	b := env.rawLogin(alice, alicePW)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	b.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	out, st := a.cmd("FETCH 1:3 (UID ENVELOPE BODY.PEEK[TEXT])")
	if st != "NO" || !strings.Contains(out, "[EXPUNGEISSUED]") || strings.Contains(out, "NONEXISTENT") {
		t.Errorf("FETCH racing EXPUNGE: %s", out)
	}
	mustContain(t, "FETCH racing EXPUNGE", out, "* 1 FETCH (UID 1 ", "* 3 FETCH (UID 3 ")
	mustNotContain(t, "FETCH racing EXPUNGE", out, "* 2 FETCH")
	mustContain(t, "NOOP after", a.ok("NOOP"), "* 2 EXPUNGE")
}

// TestMultiAppend: MULTIAPPEND (RFC 3502) stores every message of the
// command in one transaction, or none: a message refused midway (too
// large) leaves nothing behind.
func TestMultiAppend(t *testing.T) {
	env := newEnv(t, envOptions{opt: Options{AppendLimit: 1000}})
	env.addUser(alice, alicePW)
	r := env.rawLogin(alice, alicePW)
	one, two := string(testMessage("one", "1")), string(testMessage("two", "2"))
	out := r.ok(fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s", len(one), one, len(two), two))
	mustContain(t, "MULTIAPPEND", out, "[APPENDUID ", " 1:2]")
	big := strings.Repeat("x", 2000)
	out, st := r.cmd(fmt.Sprintf("APPEND INBOX {%d}\r\n%s {%d}", len(one), one, len(big)))
	if st != "NO" || !strings.Contains(out, "[TOOBIG]") {
		t.Errorf("MULTIAPPEND with a message too large: %s", out)
	}
	mustContain(t, "STATUS", r.ok("STATUS INBOX (MESSAGES)"), "MESSAGES 2")
}

// TestIdleSeesEveryDelivery: while deliveries land and another session
// selects the mailbox over and over, an IDLE session is told of every
// message, in order, and never of an EXPUNGE. (A SELECT that reconciled
// with a listing made before a delivery announced it as expunged, and
// the message came back as "out of UID order", unannounced until the next
// SELECT.)
func TestIdleSeesEveryDelivery(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	idle := env.rawLogin(alice, alicePW)
	idle.ok("SELECT INBOX")
	fmt.Fprintf(idle.conn, "i IDLE\r\n")
	if l := idle.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	const n = 150
	done := make(chan struct{})
	go func() {
		defer close(done)
		sel := env.rawLogin(alice, alicePW)
		for range 3 * n {
			sel.ok("SELECT INBOX")
		}
	}()
	for i := range n {
		ds, err := env.st.Deliver(t.Context(), []store.Delivery{{Account: alice, Blob: env.seal(alice, testMessage(fmt.Sprintf("m%d", i), "x"))}})
		if err != nil {
			t.Fatal(err)
		}
		env.srv.Delivered(ds)
	}
	<-done
	last := 0
	for last < n {
		l := idle.line()
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("IDLE session told of an EXPUNGE: %q", l)
		}
		var k int
		if _, err := fmt.Sscanf(l, "* %d EXISTS", &k); err == nil {
			if k < last {
				t.Fatalf("EXISTS went down from %d to %d", last, k)
			}
			last = k
		}
	}
	fmt.Fprintf(idle.conn, "DONE\r\n")
	for {
		l := idle.line()
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("told of an EXPUNGE: %q", l)
		}
		if strings.HasPrefix(l, "i ") {
			break
		}
	}
}

// TestAppendLargeAndQuota: a message larger than what APPEND keeps in
// memory is staged in the store as it is sealed and reads back exactly;
// an APPEND over the account's quota is refused before the client sends
// the message.
func TestAppendLargeAndQuota(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	r := env.rawLogin(alice, alicePW)
	big := string(testMessage("big", strings.Repeat("a line of a big appended message\r\n", 3*inlineMax/34)))
	r.ok(appendCmd("INBOX", big))
	r.ok("SELECT INBOX")
	out := r.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
	mustContain(t, "big message", out, fmt.Sprintf("RFC822.SIZE %d", len(big)))
	if !strings.Contains(strings.ReplaceAll(out, "\r\n", "\n"), strings.ReplaceAll(big, "\r\n", "\n")) {
		t.Errorf("the big message does not read back")
	}
	if err := env.st.SetQuota(t.Context(), alice, 1000); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(r.conn, "q APPEND INBOX {500}\r\n")
	if l := r.line(); !strings.HasPrefix(l, "q NO [OVERQUOTA]") {
		t.Errorf("APPEND over quota: %q", l)
	}
}

// TestModSeqNeverGoesBack: imaptest's state checker saw "MODSEQ dropped"
// under concurrent STOREs, two ways. A session that read a message's
// flags itself (FETCH) was then sent an older change queued before; and
// sessions reporting their STOREs after the store committed them, in the
// other order, queued the older change over the newer one.
func TestModSeqNeverGoesBack(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("one", "1"))
	a := env.rawLogin(alice, alicePW)
	b := env.rawLogin(alice, alicePW)
	for _, c := range []*rawConn{a, b} {
		c.ok("ENABLE CONDSTORE")
		c.ok("SELECT INBOX")
	}
	a.ok("STORE 1 +FLAGS.SILENT (\\Seen)") // queued for b
	// A change the registry does not hear of (another process's).
	ctx := context.Background()
	mb, err := env.st.Mailbox(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.st.StoreFlags(ctx, alice, mb.ID, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{store.FlagFlagged}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v %v", res, err)
	}
	newest := res.Changed[0].ModSeq
	out := b.ok("FETCH 1 (FLAGS MODSEQ)")
	mustContain(t, "b's FETCH", out, fmt.Sprintf("MODSEQ (%d)", newest))
	mustNotContain(t, "b's FETCH", out, fmt.Sprintf("MODSEQ (%d)", newest-1))
	mustNotContain(t, "b's NOOP", b.ok("NOOP"), "FETCH")

	// Two changes reported to the registry in the other order than
	// committed: the later report of the older one is not queued.
	r1, err := env.st.StoreFlags(ctx, alice, mb.ID, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{store.FlagAnswered}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := env.st.StoreFlags(ctx, alice, mb.ID, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{store.FlagDraft}})
	if err != nil {
		t.Fatal(err)
	}
	st := env.srv.reg.lookup(alice, mb.ID)
	if st == nil {
		t.Fatal("no state for the selected INBOX")
	}
	st.mu.Lock()
	st.flagsLocked(r2.Changed, nil)
	st.flagsLocked(r1.Changed, nil)
	st.mu.Unlock()
	env.srv.reg.release(st)
	out = b.ok("NOOP")
	mustContain(t, "b's NOOP", out, fmt.Sprintf("MODSEQ (%d)", r2.Changed[0].ModSeq), `\Draft`)
	mustNotContain(t, "b's NOOP", out, fmt.Sprintf("MODSEQ (%d)", r1.Changed[0].ModSeq))
}
