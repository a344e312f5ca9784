package imap

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// expungeModSeqRe finds the code of EXPUNGE's tagged OK.
var expungeModSeqRe = regexp.MustCompile(`(?m)^x\d+ OK \[HIGHESTMODSEQ (\d+)\] (UID )?EXPUNGE completed\r$`)

// taggedModSeq returns the HIGHESTMODSEQ of out's tagged OK, or 0.
func taggedModSeq(t *testing.T, out string) uint64 {
	t.Helper()
	n, _ := modSeqIn(t, expungeModSeqRe, out)
	return n
}

// modSeqIn returns the mod-sequence that re's first group finds in out
// and where re's match begins, or 0 and -1.
func modSeqIn(t *testing.T, re *regexp.Regexp, out string) (uint64, int) {
	t.Helper()
	m := re.FindStringSubmatchIndex(out)
	if m == nil {
		return 0, -1
	}
	n, err := strconv.ParseUint(out[m[2]:m[3]], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n, m[0]
}

// resyncSeesUntold resynchronises INBOX from mod-sequence from, as a
// client that kept it would (SELECT QRESYNC), and fails t unless the
// change to UID 2 that the untold tests made (a $Untold keyword) comes
// back.
func resyncSeesUntold(t *testing.T, env *testEnv, uidValidity string, from uint64) {
	t.Helper()
	r := env.rawLogin(alice, alicePW)
	r.ok("ENABLE QRESYNC")
	resync := r.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %d))", uidValidity, from))
	if !regexp.MustCompile(`\* \d+ FETCH \(UID 2 .*\$Untold`).MatchString(resync) {
		t.Errorf("resync from %d lacks UID 2's change:\n%s", from, resync)
	}
	r.ok("LOGOUT")
}

// TestExpungeModSeqUntold: EXPUNGE's tagged OK carries HIGHESTMODSEQ
// once CONDSTORE is enabled, and never runs ahead of a change the
// session has not heard of yet. The store is changed directly, the
// server told later: the window in which a writer (another session,
// POP3, retention, a delivery) has committed and not yet told the
// mailbox's sessions. A flag change or a delivery not yet told lowers
// the value below its MODSEQ; a removal not yet told (whose
// mod-sequence the session cannot know) holds it at the value given
// last. Once told, the
// updates come first and the value is the mailbox's HIGHESTMODSEQ. A
// client that resynchronises from the lowered value gets the change.
func TestExpungeModSeqUntold(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	ctx := context.Background()

	// Without CONDSTORE: no code.
	plain := env.rawLogin(alice, alicePW)
	plain.ok("SELECT INBOX")
	if out := plain.ok("UID EXPUNGE 1:*"); strings.Contains(out, "HIGHESTMODSEQ") {
		t.Errorf("EXPUNGE without CONDSTORE:\n%s", out)
	}

	c := env.rawLogin(alice, alicePW)
	c.ok("ENABLE QRESYNC")
	sel := c.ok("SELECT INBOX")
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(sel)[1]

	// Everything told (the session's own changes too): the mailbox's
	// HIGHESTMODSEQ.
	c.ok(`UID STORE 5 +FLAGS (\Seen)`)
	c.ok(`UID STORE 1 +FLAGS.SILENT (\Deleted)`)
	if out := c.ok("UID EXPUNGE 1"); taggedModSeq(t, out) != highest() {
		t.Fatalf("all told: tagged OK %q, HIGHESTMODSEQ %d", out, highest())
	}

	// A flag change committed, not told.
	res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$Untold"}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v, %v", res, err)
	}
	flagged := res.Changed[0].ModSeq
	c.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	out := c.ok("UID EXPUNGE 3")
	lowered := taggedModSeq(t, out)
	if lowered != flagged-1 {
		t.Fatalf("untold flag change at %d: tagged OK %q, want HIGHESTMODSEQ %d", flagged, out, flagged-1)
	}
	// A client that kept it and resynchronises gets the change.
	resyncSeesUntold(t, env, uv, lowered)

	// Told: the FETCH comes first, then the whole value.
	env.srv.FlagsChanged(alice, inbox, res.Changed)
	out = c.ok("UID EXPUNGE 1:*")
	if i, j := strings.Index(out, "$Untold"), strings.Index(out, "[HIGHESTMODSEQ"); i < 0 || j < i || taggedModSeq(t, out) != highest() {
		t.Fatalf("flag change told: %q, HIGHESTMODSEQ %d", out, highest())
	}

	// A removal committed, not told: held at the value given last.
	before := highest()
	if _, err := env.st.Expunge(ctx, alice, inbox, []uint32{4}); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("UID EXPUNGE 1:*"); taggedModSeq(t, out) != before {
		t.Fatalf("untold removal: %q, want HIGHESTMODSEQ %d", out, before)
	}
	env.srv.Expunged(alice, inbox, []uint32{4})
	out = c.ok("UID EXPUNGE 1:*")
	if i, j := strings.Index(out, "* VANISHED 4"), strings.Index(out, "[HIGHESTMODSEQ"); i < 0 || j < i || taggedModSeq(t, out) != highest() {
		t.Fatalf("removal told: %q, HIGHESTMODSEQ %d", out, highest())
	}

	// A delivery committed, not announced.
	ds, err := env.st.Deliver(ctx, []store.Delivery{{Account: alice, MailboxID: inbox, Blob: env.seal(alice, testMessage("m7", "x"))}})
	if err != nil {
		t.Fatal(err)
	}
	if out := c.ok("UID EXPUNGE 1:*"); taggedModSeq(t, out) != highest()-1 {
		t.Fatalf("unannounced delivery: %q, HIGHESTMODSEQ %d", out, highest())
	}
	env.srv.Delivered(ds)
	env.srv.notify.wait()
	out = c.ok("UID EXPUNGE 1:*")
	if i, j := strings.Index(out, "EXISTS"), strings.Index(out, "[HIGHESTMODSEQ"); i < 0 || j < i || taggedModSeq(t, out) != highest() {
		t.Fatalf("delivery announced: %q, HIGHESTMODSEQ %d", out, highest())
	}
}

// TestExpungeModSeqResync: a QRESYNC client (Python's imaplib,
// testdata/imaplib_expunge_modseq.py) that keeps EXPUNGE's tagged
// HIGHESTMODSEQ, loses its connection and resynchronises from it gets
// exactly what it missed: another session's removal that was held back
// from it comes before the tagged OK, whose value is the mailbox's
// HIGHESTMODSEQ; the resync names the later removal (UID 6) and the
// later changes (UID 5's flags, the new UID 7) and nothing it was told.
func TestExpungeModSeqResync(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 6; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := pyOutput(t, env.python(ctx, env.tlsAddr, "imaplib_expunge_modseq.py", alice, alicePW))
	var got struct {
		Fetch, Expunge []string
		Kept, Status   uint64
		Resync         []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	t.Logf("FETCH %q; UID EXPUNGE %q; kept %d; resync %q", got.Fetch, got.Expunge, got.Kept, got.Resync)
	if strings.Contains(strings.Join(got.Fetch, ""), "VANISHED") {
		t.Fatalf("the removal was not held back from FETCH: %q", got.Fetch)
	}
	n := len(got.Expunge)
	if n < 3 || !slices.Contains(got.Expunge[:n-1], "* VANISHED 3") || !slices.Contains(got.Expunge[:n-1], "* VANISHED 4") ||
		!strings.HasSuffix(got.Expunge[n-1], fmt.Sprintf(" OK [HIGHESTMODSEQ %d] UID EXPUNGE completed", got.Kept)) || got.Kept != got.Status {
		t.Errorf("UID EXPUNGE: %q; kept %d, STATUS HIGHESTMODSEQ %d", got.Expunge, got.Kept, got.Status)
	}
	var vanished, fetched []string
	for _, l := range got.Resync {
		if v, ok := strings.CutPrefix(l, "* VANISHED (EARLIER) "); ok {
			vanished = append(vanished, v)
		}
	}
	fetched = fetchedUIDs(got.Resync)
	slices.Sort(fetched)
	if !slices.Equal(vanished, []string{"6"}) || !slices.Equal(fetched, []string{"5", "7"}) {
		t.Errorf("resync from %d: %q, want VANISHED (EARLIER) 6 and FETCH of UIDs 5 and 7", got.Kept, got.Resync)
	}
}

// BenchmarkExpungeModSeq measures what the tagged HIGHESTMODSEQ costs an
// EXPUNGE in a mailbox of 10,000 messages, 100 of them changed since
// SELECT: UID EXPUNGE of a message without \Deleted (no write), by a
// session that enabled QRESYNC and one that did not, alternately. The
// -removal pair removes a message each time (delivered and marked
// \Deleted untimed, so the mailbox keeps its size): the tagged value
// must place the removal's mod-sequence.
//
//	go test -run '^$' -bench ExpungeModSeq -benchmem ./server/imap/
func BenchmarkExpungeModSeq(b *testing.B) {
	env := newEnv(b)
	env.addUser(alice, alicePW)
	env.deliverMany(alice, "", 10000)
	plain, cond := env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW)
	cond.ok("ENABLE QRESYNC")
	plain.ok("SELECT INBOX")
	cond.ok("SELECT INBOX")
	for i := range 100 {
		plain.ok(fmt.Sprintf(`UID STORE %d +FLAGS (\Seen)`, 1+i*100))
	}
	cond.ok("NOOP")
	plain.ok("NOOP")
	for _, s := range []struct {
		name string
		c    *rawConn
	}{{"plain", plain}, {"qresync", cond}} {
		b.Run(s.name, func(b *testing.B) {
			for range b.N {
				s.c.ok("UID EXPUNGE 2")
			}
		})
	}
	blob := env.seal(alice, testMessage("bench", "x"))
	inbox := env.mailboxID(alice, "INBOX")
	for _, s := range []struct {
		name string
		c    *rawConn
	}{{"plain-removal", plain}, {"qresync-removal", cond}} {
		b.Run(s.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				ds, err := env.st.Deliver(context.Background(), []store.Delivery{{Account: alice, MailboxID: inbox, Blob: blob}})
				if err != nil {
					b.Fatal(err)
				}
				env.srv.Delivered(ds)
				env.srv.notify.wait()
				plain.ok("NOOP")
				cond.ok("NOOP")
				s.c.ok(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, ds[0].UID))
				b.StartTimer()
				s.c.ok(fmt.Sprintf("UID EXPUNGE %d", ds[0].UID))
			}
		})
	}
}

// untoldSetup is the start of the tests that change the store before the
// server is told: alice with six messages in INBOX, INBOX's ID, and a
// function that reads its HIGHESTMODSEQ from the store.
func untoldSetup(t *testing.T) (*testEnv, uint64, func() uint64) {
	t.Helper()
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 6; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	inbox := env.mailboxID(alice, "INBOX")
	highest := func() uint64 {
		t.Helper()
		mb, err := env.st.MailboxByID(context.Background(), alice, inbox)
		if err != nil {
			t.Fatal(err)
		}
		return mb.HighestModSeq
	}
	return env, inbox, highest
}

// listingCounter is the server's store counting the listings of whole
// mailboxes (Messages without a UID range).
type listingCounter struct {
	Store
	whole atomic.Int64
}

func (s *listingCounter) Messages(ctx context.Context, address string, mailbox uint64, opt store.ListOptions) ([]store.Message, error) {
	if opt.FromUID == 0 && opt.ToUID == 0 {
		s.whole.Add(1)
	}
	return s.Store.Messages(ctx, address, mailbox, opt)
}

// TestExpungeModSeqNoListing: the store gives a removal's mod-sequence
// (store.ExpungeResult.ModSeq), so the session that made it tells the
// mailbox state of it as of a change told: its EXPUNGE's tagged
// HIGHESTMODSEQ, and the next Poll of another CONDSTORE session that
// was told a higher MODSEQ, need no listing of the mailbox to place it,
// and say the store's value. Before, each read the whole mailbox (the
// removal's mod-sequence was a gap in what the state had heard).
func TestExpungeModSeqNoListing(t *testing.T) {
	env, _, highest := untoldSetup(t)
	counter := &listingCounter{Store: env.srv.st}
	env.srv.st = counter
	c, other := env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW)
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	other.ok("FETCH 1 (MODSEQ)")
	for i, uids := range []string{"2", "3:4"} {
		c.ok(fmt.Sprintf(`UID STORE %s +FLAGS.SILENT (\Deleted)`, uids))
		before := counter.whole.Load()
		out := c.ok("UID EXPUNGE " + uids)
		if n := taggedModSeq(t, out); n != highest() {
			t.Errorf("UID EXPUNGE %s: %q, want OK [HIGHESTMODSEQ %d]", uids, out, highest())
		}
		// The other session is told the flag change's MODSEQ and the
		// removal in one Poll: nothing to correct, nothing to read.
		out = other.ok("NOOP")
		if strings.Contains(out, "HIGHESTMODSEQ") || !strings.Contains(out, "EXPUNGE") {
			t.Errorf("other session's NOOP after removal %d: %q", i+1, out)
		}
		if n := counter.whole.Load() - before; n != 0 {
			t.Errorf("UID EXPUNGE %s and the other session's NOOP listed the mailbox %d times, want 0", uids, n)
		}
	}
	c.ok("LOGOUT")
	other.ok("LOGOUT")
}

// TestExpungedAtNoListing: a removal another part of the process made
// (POP3's QUIT) and told with the store's result (ExpungedAt) is one the
// mailbox's sessions have heard of: a CONDSTORE session told a later
// flag change while the removal is held back needs no listing of the
// mailbox to say which HIGHESTMODSEQ its client may keep, as after
// IMAP's own EXPUNGE.
func TestExpungedAtNoListing(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	counter := &listingCounter{Store: env.srv.st}
	env.srv.st = counter
	c, other := env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW)
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 (MODSEQ)")
	other.ok("SELECT INBOX")
	for _, uids := range [][]uint32{{2}, {3, 4}} {
		res, err := env.st.Expunge(context.Background(), alice, inbox, uids)
		if err != nil || len(res.UIDs) != len(uids) || res.ModSeq != highest() {
			t.Fatalf("Expunge %v: %+v, %v (HIGHESTMODSEQ %d)", uids, res, err, highest())
		}
		before := counter.whole.Load()
		env.srv.ExpungedAt(alice, inbox, res)
		heldBackUnlisted(t, c, other, counter, before, fmt.Sprintf("the removal of %v", uids))
	}
	c.ok("LOGOUT")
	other.ok("LOGOUT")
}

// TestMoveModSeqNoListing: a MOVE's removal from the source mailbox is
// told with the mod-sequence the store gave it (store.CopyResult's
// SrcModSeq; for a move into the same mailbox, its Expunge's), as an
// EXPUNGE's is: a CONDSTORE session told of later flag changes while the
// removal is held back needs no listing of the mailbox to say which
// HIGHESTMODSEQ its client may keep. Before, the removal was a gap in
// what the mailbox state had heard, and that session read the whole
// mailbox.
func TestMoveModSeqNoListing(t *testing.T) {
	env, _, _ := untoldSetup(t)
	counter := &listingCounter{Store: env.srv.st}
	env.srv.st = counter
	c, other := env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW)
	other.ok("CREATE Keep")
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 (MODSEQ)")
	other.ok("ENABLE QRESYNC")
	other.ok("SELECT INBOX")
	for _, move := range []string{"UID MOVE 2 Keep", "UID MOVE 3:4 Keep", "UID MOVE 5 INBOX"} {
		if out := other.ok(move); !strings.Contains(out, "VANISHED") {
			t.Errorf("%s: %q, want VANISHED", move, out)
		}
		heldBackUnlisted(t, c, other, counter, counter.whole.Load(), move)
	}
	c.ok("LOGOUT")
	other.ok("LOGOUT")
}

// heldBackUnlisted checks, after a removal (what) that c, a CONDSTORE
// session, has not been told of: other changes a flag of UID 1 twice; c's
// FETCH holds the removal back (RFC 9051 §7.5.1) while it is told the flag
// changes after it; c's NOOP tells it; and neither listed the whole
// mailbox since before, counter's count when the removal was made.
func heldBackUnlisted(t *testing.T, c, other *rawConn, counter *listingCounter, before int64, what string) {
	t.Helper()
	other.ok(`UID STORE 1 +FLAGS.SILENT (\Flagged)`)
	other.ok(`UID STORE 1 -FLAGS.SILENT (\Flagged)`)
	if out := c.ok("FETCH 1 (FLAGS MODSEQ)"); strings.Contains(out, "EXPUNGE") {
		t.Errorf("FETCH told %s: %q", what, out)
	}
	if out := c.ok("NOOP"); !strings.Contains(out, "EXPUNGE") {
		t.Errorf("NOOP after %s: %q", what, out)
	}
	if n := counter.whole.Load() - before; n != 0 {
		t.Errorf("after %s, the FETCH and NOOP listed the mailbox %d times, want 0", what, n)
	}
}
