package wire

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

const msg1 = "From: <alice@example.org>\r\nSubject: hello\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\n\r\nHello world\r\n"
const msg2 = "From: <bob@example.org>\r\nSubject: second\r\n\r\nA longer body than the first one.\r\n"

// TestTranscriptBasic drives a session through the dispatcher with raw
// commands and checks every response byte for byte.
func TestTranscriptBasic(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	b.deliver("INBOX", msg2, imap.FlagSeen)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)

	c.send("a1 CAPABILITY")
	c.expect("* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ENABLE IDLE ID AUTH=PLAIN", "a1 OK CAPABILITY completed")
	c.send("a2 NOOP")
	c.expect("a2 OK NOOP completed")
	c.send("a3 SELECT INBOX")
	c.expect("a3 BAD Log in first")
	c.send("a4 LOGIN user wrong")
	c.expect("a4 NO [AUTHENTICATIONFAILED] Invalid credentials")
	c.send("a5 LOGIN user pass")
	c.expectRe(`^a5 OK \[CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL\+ ENABLE IDLE NAMESPACE UNSELECT UIDPLUS ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS MOVE STATUS=SIZE CHILDREN BINARY SPECIAL-USE UNAUTHENTICATE ID CONDSTORE .* APPENDLIMIT=52428800\] Logged in$`)
	c.send("a6 LOGIN user pass")
	c.expect("a6 BAD Already authenticated")
	c.send("a7 SELECT INBOX")
	c.expect(
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft)`,
		"* 2 EXISTS",
		"* 0 RECENT",
		"* OK [UNSEEN 1] First unseen",
		`* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft \*)] Flags permitted`,
		"* OK [UIDNEXT 3] Predicted next UID",
		"* OK [UIDVALIDITY 1] UIDs valid",
		"* OK [HIGHESTMODSEQ 3] Highest",
		"a7 OK [READ-WRITE] SELECT completed",
	)
	c.send("a8 FETCH 1:* (UID FLAGS RFC822.SIZE)")
	c.expect(
		fmt.Sprintf("* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d)", len(msg1)),
		fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Seen) RFC822.SIZE %d)`, len(msg2)),
		"a8 OK FETCH completed",
	)
	// BODY[TEXT] sets \Seen, so the response carries FLAGS; the fake
	// backend answers HEADER.FIELDS with the whole header: the framing
	// of literals is what is tested.
	c.send("a9 FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY[TEXT]<6.5>)")
	hdr := msg1[:strings.Index(msg1, "\r\n\r\n")+4]
	c.expect(fmt.Sprintf(`* 1 FETCH (FLAGS (\Seen) BODY[HEADER.FIELDS (Subject)] {%d}`, len(hdr)))
	if got := c.literal(len(hdr)); got != hdr {
		t.Errorf("header literal %q", got)
	}
	c.expect(` BODY[TEXT]<6> {5}`)
	if got := c.literal(5); got != "world" {
		t.Errorf("partial text %q", got)
	}
	c.expect(`)`, "a9 OK FETCH completed")

	c.send(`b1 STORE 1 +FLAGS (\Flagged)`)
	c.expect(`* 1 FETCH (FLAGS (\Seen \Flagged))`, "b1 OK STORE completed")
	c.send(`b2 UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	c.expect("b2 OK UID STORE completed")
	c.send("b3 SEARCH DELETED")
	c.expect("* SEARCH 2", "b3 OK SEARCH completed")
	c.send("b4 UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
	c.expect(`* ESEARCH (TAG "b4") UID MIN 1 MAX 2 COUNT 2 ALL 1:2`, "b4 OK UID SEARCH completed")
	c.send("b5 EXPUNGE")
	c.expect("* 2 EXPUNGE", "b5 OK EXPUNGE completed")
	c.send("b6 FETCH 2 UID")
	c.expect("b6 OK FETCH completed")
	c.send("b7 COPY 1 Nowhere")
	c.expect("b7 NO [TRYCREATE] No such mailbox")
	c.send("b8 CREATE Archive")
	c.expect("b8 OK [MAILBOXID (M2)] CREATE completed")
	c.send("b9 COPY 1 Archive")
	c.expect("b9 OK [COPYUID 2 1 1] COPY completed")
	c.send("c1 UID MOVE 1 Archive")
	c.expect("* OK [COPYUID 2 1 2] Moved", "* 1 EXPUNGE", "c1 OK UID MOVE completed")
	c.send("c2 STATUS Archive (MESSAGES UIDNEXT UIDVALIDITY UNSEEN APPENDLIMIT)")
	c.expect("* STATUS \"Archive\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 2 UNSEEN 0 APPENDLIMIT 52428800)", "c2 OK STATUS completed")
	c.send(`c3 LIST "" *`)
	c.expect(`* LIST (\HasNoChildren) "/" "Archive"`, `* LIST (\HasNoChildren) "/" "INBOX"`, "c3 OK LIST completed")
	c.send(`c4 LIST "" ""`)
	c.expect(`* LIST (\Noselect) "/" ""`, "c4 OK LIST completed")
	c.send("c5 NAMESPACE")
	c.expect(`* NAMESPACE (("" "/")) NIL NIL`, "c5 OK NAMESPACE completed")
	c.send("c6 CLOSE")
	c.expect("c6 OK CLOSE completed")
	c.send("c7 FETCH 1 UID")
	c.expect("c7 BAD No mailbox selected")
	c.send("c8 LOGOUT")
	c.expect("* BYE Logging out", "c8 OK LOGOUT completed")
	if rest, closed := c.closed(100); !closed {
		t.Errorf("still open after LOGOUT; read %q", rest)
	}
}

// TestTranscriptRev2 checks the IMAP4rev2 forms: ESEARCH for SEARCH, no
// RECENT, LIST in SELECT, UTF-8 names.
func TestTranscriptRev2(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.send("e1 ENABLE IMAP4rev2 FOO")
	c.expect("* ENABLED IMAP4rev2", "e1 OK ENABLE completed")
	c.send(`e2 CREATE "Tom & Jerry/Entwürfe"`)
	c.expect("e2 OK [MAILBOXID (M2)] CREATE completed")
	c.send(`e3 LIST "" "Tom*"`)
	c.expect(`* LIST (\HasNoChildren) "/" "Tom & Jerry/Entwürfe"`, "e3 OK LIST completed")
	c.send("e4 EXAMINE INBOX")
	c.expect(
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft)`,
		"* 1 EXISTS",
		`* LIST () "/" "INBOX"`,
		`* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft \*)] Flags permitted`,
		"* OK [UIDNEXT 2] Predicted next UID",
		"* OK [UIDVALIDITY 1] UIDs valid",
		"* OK [HIGHESTMODSEQ 2] Highest",
		"e4 OK [READ-ONLY] EXAMINE completed",
	)
	c.send("e5 SEARCH ALL")
	c.expect(`* ESEARCH (TAG "e5") ALL 1`, "e5 OK SEARCH completed")
	c.send("e6 SEARCH RETURN (SAVE) ALL")
	c.expect("e6 OK SEARCH completed")
	c.send("e7 FETCH $ (UID)")
	c.expect("* 1 FETCH (UID 1)", "e7 OK FETCH completed")
	c.send("e8 SELECT INBOX")
	c.expect("* OK [CLOSED] Previous mailbox closed")
	c.until("e8 OK [READ-WRITE]")
}

// TestTranscriptMUTF7 checks names for an IMAP4rev1 client: decoded on
// the way in, encoded on the way out.
func TestTranscriptMUTF7(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.send(`m1 CREATE "Tom &- Jerry/Entw&APw-rfe"`)
	c.expect("m1 OK [MAILBOXID (M2)] CREATE completed")
	b.mu.Lock()
	_, ok := b.mailboxes["Tom & Jerry/Entwürfe"]
	b.mu.Unlock()
	if !ok {
		t.Fatal("mailbox not created under its UTF-8 name")
	}
	c.send(`m2 LIST "" "Tom*"`)
	c.expect(`* LIST (\HasNoChildren) "/" "Tom &- Jerry/Entw&APw-rfe"`, "m2 OK LIST completed")
	c.send(`m3 CREATE "Tom & Jerry"`)
	c.expect("m3 NO [CANNOT] Mailbox name is not valid modified UTF-7")
	c.send("m4 CREATE \"Entw\xfcrfe\"")
	c.expect("m4 NO [CANNOT] Mailbox name has 8-bit characters that are not UTF-8")
	c.send(`m5 LIST "" "&"`)
	c.expect("m5 OK LIST completed")
	c.send(`m6 RENAME "Tom &- Jerry/Entw&APw-rfe" &Jjo-`)
	c.expect("m6 OK RENAME completed")
	c.send(`m7 STATUS &Jjo- (MESSAGES)`)
	c.expect(`* STATUS "&Jjo-" (MESSAGES 0)`, "m7 OK STATUS completed")
}

// TestTranscriptLiterals checks synchronising and non-synchronising
// literals, LOGIN by literal, and the continuation requests.
func TestTranscriptLiterals(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.send("l1 LOGIN {4}")
	c.expect("+ Ready for literal data")
	c.send("user {4}")
	c.expect("+ Ready for literal data")
	c.send("pass")
	c.expectRe(`^l1 OK \[CAPABILITY .*\] Logged in$`)
	c.send("l2 CREATE {3+}\r\nabc")
	c.expect("l2 OK [MAILBOXID (M2)] CREATE completed")
	c.send("l3 APPEND abc (\\Seen) {5}")
	c.expect("+ Ready for literal data")
	c.send("Hello")
	c.expect("l3 OK [APPENDUID 2 1] APPEND completed")
	c.send("l4 APPEND abc {5+}\r\nHello {6+}\r\nWorld!")
	c.expect("l4 OK [APPENDUID 2 2:3] APPEND completed")
	c.send("l5 APPEND nope {5}")
	c.expect("l5 NO [TRYCREATE] No such mailbox")
	c.send("l6 APPEND abc {0}")
	c.expect("+ Ready for literal data")
	c.send("")
	c.expect("l6 NO [CANNOT] Empty message")
	c.send("l7 APPEND abc CATENATE (TEXT {3+}\r\nabc URL \"/INBOX;UIDVALIDITY=9/;UID=1\" TEXT {2}")
	c.expect("l7 NO [BADURL /INBOX;UIDVALIDITY=9/;UID=1] Bad URL")
	c.send("l8 NOOP")
	c.expect("l8 OK NOOP completed")

	// An Appender that checks messages refuses one before "+".
	b.mu.Lock()
	b.quota = 100
	b.mu.Unlock()
	c.send("l9 APPEND abc {200}")
	c.expect("l9 NO [OVERQUOTA] Over quota")
	c.send("m1 APPEND abc {5}") // the second message of a MULTIAPPEND is refused
	c.expect("+ Ready for literal data")
	c.send("Hello {200+}")
	c.raw(strings.Repeat("x", 200) + "\r\n")
	c.expect("m1 NO [OVERQUOTA] Over quota")
	c.send("m2 STATUS abc (MESSAGES)") // MULTIAPPEND is all or nothing
	c.expect(`* STATUS "abc" (MESSAGES 3)`, "m2 OK STATUS completed")
}

// TestTranscriptAuthenticate checks AUTHENTICATE PLAIN, with and without
// an initial response, cancelled, and refused without TLS.
func TestTranscriptAuthenticate(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.send("p1 AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send("*")
	c.expect("p1 BAD Authentication cancelled")
	c.send("p2 AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send("AHVzZXIAd3Jvbmc=") // \0user\0wrong
	c.expect("p2 NO [AUTHENTICATIONFAILED] Invalid credentials")
	c.send("p3 AUTHENTICATE PLAIN b3RoZXIAdXNlcgBwYXNz") // other\0user\0pass
	c.expect("p3 NO [AUTHORIZATIONFAILED] Cannot act as another user")
	c.send("p4 AUTHENTICATE PLAIN AHVzZXIAcGFzcw==")
	c.expectRe(`^p4 OK \[CAPABILITY .*\] Logged in$`)
	c.send("p5 UNAUTHENTICATE")
	c.expect("p5 OK UNAUTHENTICATE completed")
	c.send("p6 SELECT INBOX")
	c.expect("p6 BAD Log in first")

	// Without TLS and InsecureAuth, passwords are refused.
	addr2, _ := startServer(t, newMemBackend(), func(o *Options) { o.InsecureAuth = false })
	c2 := dial(t, addr2)
	c2.send("q1 CAPABILITY")
	c2.expect("* CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ENABLE IDLE ID LOGINDISABLED", "q1 OK CAPABILITY completed")
	c2.send("q2 LOGIN user pass")
	c2.expect("q2 NO [PRIVACYREQUIRED] Authentication requires TLS")
	c2.send("q3 AUTHENTICATE PLAIN AHVzZXIAcGFzcw==")
	c2.expect("q3 NO [PRIVACYREQUIRED] Authentication requires TLS")
}

// TestTranscriptErrors checks that malformed and misplaced commands get
// BAD without closing the connection, in every state.
func TestTranscriptErrors(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.send("x1 FROBNICATE")
	c.expect("x1 BAD Unknown command")
	c.send("")
	c.send("*** garbage")
	c.expect("* BAD Missing or invalid tag")
	c.send("x2")
	c.expect("x2 BAD Missing command")
	c.send("x3 FROBNICATE {5}") // refused: no "+", the client sends nothing more
	c.expect("x3 BAD Unknown command")
	c.send("x4 NOOP")
	c.expect("x4 OK NOOP completed")
	c.login()
	c.selectInbox()
	c.send("x5 FETCH 4294967296 (UID)")
	c.expect("x5 BAD [CLIENTBUG] Number out of range")
	c.send("x6 FETCH 1 (UID")
	c.expect("x6 BAD Missing argument: expected space or )")
	c.send("x7 UID FETCH 1:* FLAGS")
	c.expect("* 1 FETCH (UID 1 FLAGS ())", "x7 OK UID FETCH completed")
	c.send("x8 CREATE {3+}\r\na\x00b")
	c.expect("x8 BAD [CLIENTBUG] NUL in literal")
	c.send("x9 ENABLE CONDSTORE")
	c.expect("x9 BAD Command not allowed in this state")
	c.send("y1 NOOP")
	c.expect("y1 OK NOOP completed")
}

// TestTranscriptIdle checks IDLE: continuation, updates from another
// session while idling, DONE.
func TestTranscriptIdle(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.selectInbox()
	c.send("i1 IDLE")
	c.expect("+ idling")
	b.deliver("INBOX", msg2)
	c.expect("* 2 EXISTS")
	c.send("DONE")
	c.expect("i1 OK IDLE terminated")
	c.send("i2 IDLE")
	c.expect("+ idling")
	c.send("NOPE")
	c.expect("i2 BAD Expected DONE")
	c.send("i3 NOOP")
	c.expect("i3 OK NOOP completed")
}

// TestTranscriptIdleKeepalive checks the "* OK Still here" keepalive.
func TestTranscriptIdleKeepalive(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, func(o *Options) { o.Limits.IdleKeepalive = 50 * time.Millisecond })
	c := dial(t, addr)
	c.login()
	c.send("k1 IDLE")
	c.expect("+ idling")
	c.expect("* OK Still here")
	c.send("DONE")
	c.until("k1 OK")
}

// TestTranscriptExtensions checks the extensions whose output the
// dispatcher formats: ESORT, THREAD, QUOTA, ID, NOTIFY, CONDSTORE.
func TestTranscriptExtensions(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg2)
	b.deliver("INBOX", msg1)
	b.deliver("INBOX", "Subject: x\r\n\r\ny\r\n")
	addr, _ := startServer(t, b, func(o *Options) {
		o.ServerID = &imap.IDData{Name: "sealmail", Vendor: "sealmail.org"}
	})
	c := dial(t, addr)
	c.send(`d1 ID ("name" "test" "version" "1.0")`)
	c.expect(`* ID ("name" "sealmail" "vendor" "sealmail.org")`, "d1 OK ID completed")
	// The largest ID RFC 2971 allows, before login: 30 fields of
	// 30 + 1,024 bytes.
	var id strings.Builder
	for i := range 30 {
		fmt.Fprintf(&id, " \"k%029d\" \"%s\"", i, strings.Repeat("v", 1024))
	}
	c.send("d0 ID (" + id.String()[1:] + ")")
	c.until("d0 OK")
	c.login()
	c.selectInbox()
	c.send("d2 SORT (SIZE) UTF-8 ALL")
	c.expect("* SORT 3 1 2", "d2 OK SORT completed")
	c.send("d3 UID SORT RETURN (MIN MAX COUNT ALL) (REVERSE SIZE) UTF-8 ALL")
	// ESORT keeps the sort order: MIN and MAX are the first and last.
	c.expect(`* ESEARCH (TAG "d3") UID MIN 2 MAX 3 COUNT 3 ALL 2,1,3`, "d3 OK UID SORT completed")
	c.send("d4 THREAD ORDEREDSUBJECT UTF-8 ALL")
	c.expect("* THREAD (1 2 3)", "d4 OK THREAD completed")
	c.send("d5 THREAD REFERENCES UTF-8 ALL")
	c.expect("d5 BAD Unsupported threading algorithm REFERENCES")
	c.send("d6 GETQUOTAROOT INBOX")
	c.expect(`* QUOTAROOT "INBOX" ""`, `* QUOTA "" (STORAGE 10 1024)`, "d6 OK GETQUOTAROOT completed")
	c.send("d7 SETQUOTA \"\" (STORAGE 1)")
	c.expect("d7 NO [NOPERM] Quotas are set by the administrator")
	c.send("d8 FETCH 1 (MODSEQ)")
	c.expect("* 1 FETCH (MODSEQ (2))", "d8 OK FETCH completed")
	c.send("d9 STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)")
	c.expect("d9 OK [MODIFIED 1] Conditional STORE failed for some messages")
	c.send("e1 SEARCH RETURN (PARTIAL 2:3) ALL")
	c.expect(`* ESEARCH (TAG "e1") PARTIAL (2:3 2:3)`, "e1 OK SEARCH completed")
	c.send("e2 NOTIFY SET (selected (MessageNew MessageExpunge))")
	c.expect("e2 OK NOTIFY completed")
	b.deliver("INBOX", msg1)
	c.expect("* 4 EXISTS")
	c.send("e3 NOTIFY NONE")
	c.expect("e3 OK NOTIFY completed")
}

// TestTranscriptQResync checks VANISHED in place of EXPUNGE after ENABLE
// QRESYNC, and SELECT's QRESYNC parameter.
func TestTranscriptQResync(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1, imap.FlagDeleted)
	b.deliver("INBOX", msg2)
	b.deliver("INBOX", msg1, imap.FlagDeleted)
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.send("q1 ENABLE QRESYNC")
	c.expect("* ENABLED QRESYNC", "q1 OK ENABLE completed")
	c.send("q2 SELECT INBOX (QRESYNC (1 3))")
	lines := c.until("q2 OK")
	// After the mailbox data, before the tagged OK (RFC 7162 §3.2.5.1).
	if n := len(lines); n < 2 || lines[n-2] != `* 3 FETCH (UID 3 FLAGS (\Deleted) MODSEQ (4))` || !strings.Contains(strings.Join(lines[:n-2], "\n"), "* 3 EXISTS") {
		t.Errorf("QRESYNC select: %q", lines)
	}
	c.send("q3 EXPUNGE")
	c.expect("* VANISHED 1,3", "q3 OK EXPUNGE completed")
}

// TestTranscriptCompress checks COMPRESS=DEFLATE: after the OK both
// directions are raw DEFLATE.
func TestTranscriptCompress(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	c := dial(t, addr)
	c.login()
	c.send("z1 COMPRESS DEFLATE")
	c.expect("z1 OK DEFLATE active")
	zc := newDeflateClient(t, c)
	zc.send("z2 NOOP")
	zc.expect("z2 OK NOOP completed")
	zc.send("z3 COMPRESS DEFLATE")
	zc.expect("z3 NO [COMPRESSIONACTIVE] Compression is already active")
	zc.send("z4 CAPABILITY")
	l := zc.line()
	if strings.Contains(l, "COMPRESS=DEFLATE") {
		t.Errorf("COMPRESS still advertised: %q", l)
	}
	zc.expect("z4 OK CAPABILITY completed")
}

// TestTranscriptPollBye checks that a BYE from Poll ends the connection:
// at once during IDLE, after the command otherwise.
func TestTranscriptPollBye(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	idler := dial(t, addr)
	idler.login()
	idler.selectInbox()
	idler.send("i IDLE")
	idler.expect("+ idling")
	c := dial(t, addr)
	c.login()
	c.selectInbox()
	b.mu.Lock()
	b.bye = true
	b.mu.Unlock()
	b.signal()
	if rest, closed := idler.closed(1000); !closed || rest != "* BYE Selected mailbox was deleted, have to disconnect\r\n" {
		t.Errorf("idling: %q closed=%v", rest, closed)
	}
	c.send("n NOOP")
	if rest, closed := c.closed(1000); !closed || rest != "* BYE Selected mailbox was deleted, have to disconnect\r\n" {
		t.Errorf("after NOOP: %q closed=%v", rest, closed)
	}
}
