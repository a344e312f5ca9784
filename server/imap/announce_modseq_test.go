package imap

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// announceRe finds the untagged HIGHESTMODSEQ of a CONDSTORE enabling
// command.
var announceRe = regexp.MustCompile(`(?m)^\* OK \[HIGHESTMODSEQ (\d+)\]`)

// announced returns the untagged HIGHESTMODSEQ of out and where it is,
// or 0 and -1.
func announced(t *testing.T, out string) (uint64, int) {
	t.Helper()
	return modSeqIn(t, announceRe, out)
}

// TestAnnounceModSeqUntold: the HIGHESTMODSEQ that the first CONDSTORE
// enabling command of a selection writes (RFC 7162 §3.1), which a client
// may keep, never runs ahead of a change the session has not heard of,
// nor of one its view still holds for the client (the value comes
// before the command's output and the updates after it). The store is
// changed directly, the server told later: the window in which a writer
// (another session, POP3, retention, a delivery) has committed and not
// yet told the mailbox's sessions. A flag change or a delivery not yet
// told lowers the value below its MODSEQ; a removal not yet told holds
// it at SELECT's; a change told and not yet written lowers it below its
// MODSEQ and is written after it. A client that resynchronises from the
// lowered value gets the change. It fails on a version that announces
// the mailbox's HIGHESTMODSEQ.
func TestAnnounceModSeqUntold(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	ctx := context.Background()

	// Everything told: the mailbox's HIGHESTMODSEQ, once per selection.
	c := env.rawLogin(alice, alicePW)
	sel := c.ok("SELECT INBOX")
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(sel)[1]
	if out := c.ok("FETCH 1 (MODSEQ)"); !strings.HasPrefix(out, fmt.Sprintf("* OK [HIGHESTMODSEQ %d]", highest())) {
		t.Fatalf("all told: %q, HIGHESTMODSEQ %d", out, highest())
	}
	if out := c.ok("FETCH 1 (MODSEQ)"); strings.Contains(out, "HIGHESTMODSEQ") {
		t.Fatalf("second enabling command: %q", out)
	}

	// A flag change committed, not told (FETCH MODSEQ).
	c2 := env.rawLogin(alice, alicePW)
	c2.ok("SELECT INBOX")
	res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$Untold"}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v, %v", res, err)
	}
	flagged := res.Changed[0].ModSeq
	out := c2.ok("FETCH 1 (MODSEQ)")
	if n, _ := announced(t, out); n != flagged-1 {
		t.Fatalf("untold flag change at %d: %q, want HIGHESTMODSEQ %d", flagged, out, flagged-1)
	}
	// A client that kept it and resynchronises gets the change.
	resyncSeesUntold(t, env, uv, flagged-1)
	env.srv.FlagsChanged(alice, inbox, res.Changed)

	// A removal committed, not told (STORE UNCHANGEDSINCE): held at
	// SELECT's value, since its own mod-sequence is not known.
	c3 := env.rawLogin(alice, alicePW)
	selMS := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(c3.ok("SELECT INBOX"))[1]
	if _, err := env.st.Expunge(ctx, alice, inbox, []uint32{4}); err != nil {
		t.Fatal(err)
	}
	out = c3.ok(fmt.Sprintf(`UID STORE 1 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Seen)`, highest()))
	if n, _ := announced(t, out); strconv.FormatUint(n, 10) != selMS {
		t.Fatalf("untold removal: %q, want HIGHESTMODSEQ %s", out, selMS)
	}
	env.srv.Expunged(alice, inbox, []uint32{4})

	// A delivery committed, not announced (FETCH CHANGEDSINCE).
	c4 := env.rawLogin(alice, alicePW)
	c4.ok("SELECT INBOX")
	ds, err := env.st.Deliver(ctx, []store.Delivery{{Account: alice, MailboxID: inbox, Blob: env.seal(alice, testMessage("m7", "x"))}})
	if err != nil {
		t.Fatal(err)
	}
	out = c4.ok("FETCH 1 (FLAGS) (CHANGEDSINCE 1)")
	if n, _ := announced(t, out); n != highest()-1 {
		t.Fatalf("unannounced delivery: %q, want HIGHESTMODSEQ %d", out, highest()-1)
	}
	env.srv.Delivered(ds)
	env.srv.notify.wait()

	// A change another session made and told, which the view holds for
	// the client until the command ends: below it, and it follows.
	c5 := env.rawLogin(alice, alicePW)
	c5.ok("SELECT INBOX")
	b := env.rawLogin(alice, alicePW)
	b.ok("SELECT INBOX")
	b.ok(`UID STORE 5 +FLAGS.SILENT (\Flagged)`)
	changed := highest()
	out = c5.ok("FETCH 1 (MODSEQ)")
	n, at := announced(t, out)
	if i := strings.Index(out, `\Flagged`); n != changed-1 || i < at {
		t.Fatalf("change held for the client at %d: %q, want HIGHESTMODSEQ %d before it", changed, out, changed-1)
	}
}

// TestAnnounceModSeqResync: a QRESYNC-style client (Python's imaplib,
// testdata/imaplib_announce_modseq.py) that keeps the HIGHESTMODSEQ of
// its first CONDSTORE enabling command and loses the connection right
// after it resynchronises from it and gets what it had not yet been
// told: another session's flag change, which came after the value in
// the same command's output.
func TestAnnounceModSeqResync(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 4; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := pyOutput(t, env.python(ctx, env.tlsAddr, "imaplib_announce_modseq.py", alice, alicePW))
	var got struct {
		Fetch  []string
		Kept   uint64
		Resync []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	t.Logf("FETCH %q; kept %d; resync %q", got.Fetch, got.Kept, got.Resync)
	if got.Kept == 0 || !slices.ContainsFunc(got.Fetch, func(l string) bool { return strings.Contains(l, "UID 3") && strings.Contains(l, `\Flagged`) }) {
		t.Fatalf("FETCH: %q, kept %d", got.Fetch, got.Kept)
	}
	if fetched := fetchedUIDs(got.Resync); !slices.Equal(fetched, []string{"3"}) {
		t.Errorf("resync from %d: %q, want the FETCH of UID 3", got.Kept, got.Resync)
	}
}
