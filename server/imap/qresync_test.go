package imap

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/store"
)

// qresyncState returns the UIDVALIDITY and HIGHESTMODSEQ of addr's INBOX.
func qresyncState(t *testing.T, env *testEnv, addr string) (uint32, uint64) {
	t.Helper()
	mb, err := env.st.Mailbox(context.Background(), addr, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	return mb.UIDValidity, mb.HighestModSeq
}

var fetchUIDRe = regexp.MustCompile(`UID (\d+)`)

// fetchedUIDs returns the UIDs of the FETCH responses in text.
func fetchedUIDs(lines []string) []string {
	var out []string
	for _, l := range lines {
		if m := fetchUIDRe.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// untaggedLines returns the lines of out that start with "* " and
// contain word.
func untaggedLines(out, word string) []string {
	var l []string
	for _, line := range strings.Split(out, "\r\n") {
		if strings.HasPrefix(line, "* ") && strings.Contains(line, word) {
			l = append(l, line)
		}
	}
	return l
}

// TestQResync: QRESYNC (RFC 7162 §3.2) with Python's imaplib: SELECT
// (QRESYNC …) answers VANISHED (EARLIER) with the UIDs expunged since
// (limited to known-uids) and FETCH (UID FLAGS MODSEQ) of the messages
// changed since; UID FETCH (CHANGEDSINCE n VANISHED) likewise; EXPUNGE is
// answered as VANISHED; a mismatching UIDVALIDITY makes it a plain
// SELECT; QRESYNC before ENABLE is refused.
func TestQResync(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 6; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	uv, ms0 := qresyncState(t, env, alice)

	// Changes by a client without QRESYNC: a flag on 2, 3 and 5 expunged.
	c := env.dial(alice, alicePW)
	if !c.Caps().Has(imap.CapQResync) {
		t.Fatalf("QRESYNC not advertised: %v", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(3, 5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(3, 5)).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout()

	q := func(extra string) string { return fmt.Sprintf("(QRESYNC (%d %d%s))", uv, ms0, extra) }
	res := env.runImaplib(alice, alicePW,
		pycmd("SELECT", "INBOX", q("")),                                                         // 0: BAD, not enabled
		pycmd("ENABLE", "QRESYNC"),                                                              // 1
		pycmd("SELECT", "INBOX", q("")),                                                         // 2
		pycmd("EXAMINE", "INBOX", q(" 1:4")),                                                    // 3: known-uids
		pycmd("SELECT", "INBOX", fmt.Sprintf("(QRESYNC (%d %d))", uv+1, ms0)),                   // 4: other UIDVALIDITY
		pycmd("UID", "FETCH", "1:*", "(FLAGS)", fmt.Sprintf("(CHANGEDSINCE %d VANISHED)", ms0)), // 5
		pycmd("UID", "FETCH", "4:*", "(FLAGS)", fmt.Sprintf("(CHANGEDSINCE %d VANISHED)", ms0)), // 6
		pycmd("FETCH", "1:*", "(FLAGS)", fmt.Sprintf("(CHANGEDSINCE %d VANISHED)", ms0)),        // 7: BAD, not UID
		pycmd("STORE", "1", "+FLAGS", `(\Deleted)`),                                             // 8
		pycmd("EXPUNGE"), // 9
		pycmd("STORE", "1", "+FLAGS.SILENT", `(\Deleted)`), // 10
		pycmd("CLOSE"), // 11
	)
	if res[0].Status != "BAD" {
		t.Errorf("SELECT (QRESYNC) before ENABLE: %s %s", res[0].Status, res[0].Text)
	}
	for i := 1; i < len(res); i++ {
		if want := map[int]string{7: "BAD"}[i]; want != "" {
			if res[i].Status != want {
				t.Errorf("command %d: %s %s, want %s", i, res[i].Status, res[i].Text, want)
			}
			continue
		}
		if res[i].Status != "OK" {
			t.Fatalf("command %d: %s %s", i, res[i].Status, res[i].Text)
		}
	}
	if got := res[1].first("ENABLED"); !strings.Contains(got, "QRESYNC") {
		t.Errorf("ENABLED = %q", got)
	}
	if got := res[2].all("VANISHED"); len(got) != 1 || got[0] != "(EARLIER) 3,5" {
		t.Errorf("SELECT (QRESYNC): VANISHED %q, want (EARLIER) 3,5", got)
	}
	if got := res[2].all("FETCH"); len(got) != 1 || !strings.Contains(got[0], "UID 2") ||
		!strings.Contains(got[0], `\Flagged`) || !strings.Contains(got[0], "MODSEQ") {
		t.Errorf("SELECT (QRESYNC): FETCH %q, want message 2 with FLAGS and MODSEQ", got)
	}
	if got := res[3].all("VANISHED"); len(got) != 1 || got[0] != "(EARLIER) 3" {
		t.Errorf("EXAMINE (QRESYNC … 1:4): VANISHED %q, want (EARLIER) 3", got)
	}
	if _, ok := res[3].Untagged["CLOSED"]; !ok {
		t.Errorf("re-SELECT without [CLOSED]: %v", res[3].Untagged)
	}
	if got := res[4].all("VANISHED"); len(got) != 0 || len(res[4].all("FETCH")) != 0 {
		t.Errorf("SELECT with another UIDVALIDITY resynchronised: %v", res[4].Untagged)
	}
	if got := res[5].all("VANISHED"); len(got) != 1 || got[0] != "(EARLIER) 3,5" {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): VANISHED %q", got)
	}
	if got := fetchedUIDs(res[5].all("FETCH")); strings.Join(got, ",") != "2" {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): FETCH of UIDs %v, want 2", got)
	}
	if got := res[6].all("VANISHED"); len(got) != 1 || got[0] != "(EARLIER) 5" {
		t.Errorf("UID FETCH 4:* (CHANGEDSINCE VANISHED): VANISHED %q", got)
	}
	// STORE answers with the UID once QRESYNC is on (RFC 7162 §3.2.4).
	if got := fetchedUIDs(res[8].all("FETCH")); strings.Join(got, ",") != "1" {
		t.Errorf("STORE with QRESYNC: FETCH %q, want UID 1", res[8].all("FETCH"))
	}
	if got := res[9].all("VANISHED"); len(got) != 1 || got[0] != "1" {
		t.Errorf("EXPUNGE with QRESYNC: VANISHED %q, want 1", got)
	}
	if got := res[9].all("EXPUNGE"); len(got) != 0 {
		t.Errorf("EXPUNGE with QRESYNC sent EXPUNGE %q", got)
	}
	if len(res[11].all("VANISHED"))+len(res[11].all("EXPUNGE")) != 0 {
		t.Errorf("CLOSE wrote expunge responses: %v", res[11].Untagged)
	}
	msgs, err := env.messages(alice, "", storeList())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].UID != 4 || msgs[1].UID != 6 {
		t.Errorf("after CLOSE: %d messages, first UID %d", len(msgs), msgs[0].UID)
	}
}

// TestQResyncOtherSessions: another session's EXPUNGE (and a MOVE out)
// reaches a session with QRESYNC as VANISHED, never EXPUNGE; flag changes
// as FETCH with UID and MODSEQ; and a SELECT (QRESYNC …) from the
// mod-sequence the first session was left at finds exactly those.
func TestQResyncOtherSessions(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 5; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	a := env.rawLogin(alice, alicePW)
	a.ok("ENABLE QRESYNC")
	a.ok("SELECT INBOX")
	uv, ms0 := qresyncState(t, env, alice)

	b := env.dial(alice, alicePW)
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.UIDSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Move(imap.UIDSetNum(1), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.UIDSetNum(5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	out := a.ok("NOOP")
	if l := untaggedLines(out, "EXPUNGE"); len(l) != 0 {
		t.Errorf("EXPUNGE sent with QRESYNC: %q", l)
	}
	van := untaggedLines(out, "VANISHED")
	if strings.Join(van, "|") != "* VANISHED 1:2,4" && strings.Join(van, "|") != "* VANISHED 2,4|* VANISHED 1" {
		t.Errorf("NOOP after another session's EXPUNGE and MOVE: VANISHED %q\n%s", van, out)
	}
	if f := untaggedLines(out, "FETCH"); len(f) != 1 || !strings.Contains(f[0], "UID 5") || !strings.Contains(f[0], "MODSEQ") {
		t.Errorf("NOOP after another session's STORE: FETCH %q", f)
	}

	// A fresh session resynchronising from ms0 learns the same.
	c := env.rawLogin(alice, alicePW)
	c.ok("ENABLE QRESYNC")
	out = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:5))", uv, ms0))
	if van := untaggedLines(out, "VANISHED"); len(van) != 1 || van[0] != "* VANISHED (EARLIER) 1:2,4" {
		t.Errorf("SELECT (QRESYNC): VANISHED %q\n%s", van, out)
	}
	if f := untaggedLines(out, "FETCH"); len(f) != 1 || !strings.Contains(f[0], "UID 5") {
		t.Errorf("SELECT (QRESYNC): FETCH %q", f)
	}
	// From the current HIGHESTMODSEQ: nothing.
	_, ms1 := qresyncState(t, env, alice)
	out = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv, ms1))
	if l := append(untaggedLines(out, "VANISHED"), untaggedLines(out, "FETCH")...); len(l) != 0 {
		t.Errorf("SELECT (QRESYNC) from the current HIGHESTMODSEQ: %q", l)
	}
	if !strings.Contains(out, "* OK [CLOSED]") {
		t.Errorf("re-SELECT without [CLOSED]:\n%s", out)
	}
}

// TestQResyncBelowFloor: a resync from below the store's tombstone floor
// (here: one removal larger than store.TombstoneBulk) answers every known
// UID that is not in the mailbox, narrowed by the sequence match data,
// and never a UID that is.
func TestQResyncBelowFloor(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	ctx := context.Background()
	inbox := env.mailboxID(alice, "")
	n := store.TombstoneBulk + 10
	ds := make([]store.Delivery, n)
	for i := range ds {
		// FLAGS and VANISHED need no body: an opaque blob will do.
		ds[i] = store.Delivery{Account: alice, MailboxID: inbox, InternalDate: time.Now(), Blob: []byte{byte(i)}}
	}
	if _, err := env.st.Deliver(ctx, ds); err != nil {
		t.Fatal(err)
	}
	uv, ms0 := qresyncState(t, env, alice)
	// Remove 1:5 and 11:n, keeping 6:10: more than TombstoneBulk at once.
	var gone []uint32
	for u := uint32(1); u <= uint32(n); u++ {
		if u < 6 || u > 10 {
			gone = append(gone, u)
		}
	}
	if _, err := env.st.Expunge(ctx, alice, inbox, gone); err != nil {
		t.Fatal(err)
	}
	if v, err := env.st.Vanished(ctx, alice, inbox, ms0); err != nil || v.Complete {
		t.Fatalf("Vanished after a bulk removal = %+v, %v: want incomplete", v, err)
	}
	c := env.rawLogin(alice, alicePW)
	c.ok("ENABLE QRESYNC")
	last := n
	out := c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv, ms0))
	want := fmt.Sprintf("* VANISHED (EARLIER) 1:5,11:%d", last)
	if van := untaggedLines(out, "VANISHED"); len(van) != 1 || van[0] != want {
		t.Errorf("below the floor: VANISHED %q, want %q", van, want)
	}
	out = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 3:8,20))", uv, ms0))
	if van := untaggedLines(out, "VANISHED"); len(van) != 1 || van[0] != "* VANISHED (EARLIER) 3:5,20" {
		t.Errorf("below the floor with known-uids: VANISHED %q", van)
	}
	// The client's message 1 was UID 6, as here: nothing at or below
	// 6 can be missing; 7 was its message 2, which here is UID 7 too.
	out = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:12 (1:2 6:7)))", uv, ms0))
	if van := untaggedLines(out, "VANISHED"); len(van) != 1 || van[0] != "* VANISHED (EARLIER) 11:12" {
		t.Errorf("below the floor with seq-match: VANISHED %q", van)
	}
	out = c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms0))
	if van := untaggedLines(out, "VANISHED"); len(van) != 1 || van[0] != want {
		t.Errorf("UID FETCH below the floor: VANISHED %q, want %q", van, want)
	}
}

// TestQResyncHeldExpunge: while another session's removal is held back
// from a QRESYNC client (after FETCH and STORE by sequence number), the
// MODSEQs it is told of do not carry it past the removal (RFC 7162 §3.2,
// erratum 1810 of RFC 5162): the command ends with a HIGHESTMODSEQ below
// the removal's, so a client that loses the connection before hearing of
// the removal and resynchronises from where it was left (Python's
// imaplib, testdata/imaplib_held_expunge.py) gets it in VANISHED
// (EARLIER).
func TestQResyncHeldExpunge(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 5; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := pyOutput(t, env.python(ctx, env.tlsAddr, "imaplib_held_expunge.py", alice, alicePW))
	var rounds map[string]struct {
		Status   string   `json:"status"`
		Lines    []string `json:"lines"`
		Selected uint64   `json:"selected"`
		Left     uint64   `json:"left"`
		Told     bool     `json:"told"`
		Resync   string   `json:"resync"`
		Vanished string   `json:"vanished"`
	}
	if err := json.Unmarshal(out, &rounds); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	for name, gone := range map[string]string{"fetch": "1", "store": "3"} {
		r, ok := rounds[name]
		if !ok {
			t.Fatalf("round %s missing: %s", name, out)
		}
		lines := strings.Join(r.Lines, "")
		if r.Status != "OK" || r.Resync != "OK" {
			t.Fatalf("%s: command %s, resync %s\n%s", name, r.Status, r.Resync, lines)
		}
		if r.Told {
			t.Fatalf("%s: the removal was not held back\n%s", name, lines)
		}
		// The scenario: A was sent a MODSEQ above the removal's.
		if !regexp.MustCompile(`FETCH .*MODSEQ \(\d+\)`).MatchString(lines) {
			t.Fatalf("%s: no FETCH MODSEQ\n%s", name, lines)
		}
		van := strings.TrimPrefix(strings.TrimSpace(r.Vanished), "* VANISHED (EARLIER) ")
		if !slices.Contains(strings.Split(van, ","), gone) {
			t.Errorf("%s: left at MODSEQ %d (SELECT said %d); resync VANISHED %q, want UID %s in it\n%s",
				name, r.Left, r.Selected, r.Vanished, gone, lines)
		}
	}
}
