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

	"github.com/sealmail/sealmail/store"
)

// statusModSeq returns the HIGHESTMODSEQ of out's STATUS response for
// mailbox.
func statusModSeq(t *testing.T, out, mailbox string) uint64 {
	t.Helper()
	n, at := modSeqIn(t, regexp.MustCompile(`(?m)^\* STATUS "?`+regexp.QuoteMeta(mailbox)+`"? \(.*HIGHESTMODSEQ (\d+)`), out)
	if at < 0 {
		t.Fatalf("no STATUS HIGHESTMODSEQ for %s in %q", mailbox, out)
	}
	return n
}

// TestCondStoreEnablingUntold: the CONDSTORE enabling commands that have
// no writer of their own in the wire layer (SEARCH, UID SEARCH, SORT and
// THREAD with MODSEQ, STATUS and LIST-STATUS with HIGHESTMODSEQ), run
// while a mailbox is selected, write "* OK [HIGHESTMODSEQ n]" before
// their output (RFC 7162 §3.1), once per selection, with the value a
// client may keep: below a flag change another writer committed and has
// not yet told the server. STATUS and LIST-STATUS of the selected
// mailbox give that same value (RFC 7162 §3.1.7), not the store's. It
// fails on a version that announces nothing for these commands, or that
// gives the selected mailbox's STATUS the store's HIGHESTMODSEQ.
func TestCondStoreEnablingUntold(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	ctx := context.Background()
	uid := uint32(0)
	untold := func() (uint64, []store.Message) {
		t.Helper()
		uid = uid%6 + 1
		res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{uid}, Op: store.FlagsAdd, Flags: []string{fmt.Sprintf("$Untold%d", highest())}})
		if err != nil || len(res.Changed) != 1 {
			t.Fatalf("StoreFlags: %v, %v", res, err)
		}
		return res.Changed[0].ModSeq, res.Changed
	}

	for _, tc := range []struct {
		cmd    string
		status string // the mailbox whose STATUS the output has, if any
	}{
		{cmd: "SEARCH MODSEQ 1"},
		{cmd: "UID SEARCH RETURN (MAX) MODSEQ 1"},
		{cmd: "SORT (ARRIVAL) UTF-8 MODSEQ 1"},
		{cmd: "THREAD ORDEREDSUBJECT UTF-8 MODSEQ 1"},
		{cmd: "STATUS INBOX (MESSAGES HIGHESTMODSEQ)", status: "INBOX"},
		{cmd: "STATUS Sent (HIGHESTMODSEQ)", status: "Sent"},
		{cmd: `LIST "" INBOX RETURN (STATUS (HIGHESTMODSEQ))`, status: "INBOX"},
	} {
		c := env.rawLogin(alice, alicePW)
		c.ok("SELECT INBOX")
		flagged, changed := untold()
		out := c.ok(tc.cmd)
		n, at := announced(t, out)
		if n != flagged-1 || at != 0 {
			t.Errorf("%s with a change untold at %d:\n%s\nwant HIGHESTMODSEQ %d first", tc.cmd, flagged, out, flagged-1)
		}
		switch tc.status {
		case "INBOX":
			if got := statusModSeq(t, out, "INBOX"); got != flagged-1 {
				t.Errorf("%s: selected mailbox's HIGHESTMODSEQ %d, want %d", tc.cmd, got, flagged-1)
			}
		case "":
		default:
			sent, err := env.st.Mailbox(ctx, alice, tc.status)
			if err != nil {
				t.Fatal(err)
			}
			if got := statusModSeq(t, out, tc.status); got != sent.HighestModSeq {
				t.Errorf("%s: HIGHESTMODSEQ %d, want the store's %d", tc.cmd, got, sent.HighestModSeq)
			}
		}
		// Once per selection.
		env.srv.FlagsChanged(alice, inbox, changed)
		if out := c.ok(tc.cmd); strings.Contains(out, "OK [HIGHESTMODSEQ") {
			t.Errorf("%s again: %q", tc.cmd, out)
		}
		c.ok("LOGOUT")
	}

	// STATUS of the selected mailbox after the announcement: still not
	// above an untold change, and no second announcement.
	c := env.rawLogin(alice, alicePW)
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 (MODSEQ)")
	flagged, changed := untold()
	out := c.ok("STATUS INBOX (HIGHESTMODSEQ)")
	if got := statusModSeq(t, out, "INBOX"); got != flagged-1 || strings.Contains(out, "OK [HIGHESTMODSEQ") {
		t.Errorf("STATUS of the selected mailbox with a change untold at %d: %q, want HIGHESTMODSEQ %d", flagged, out, flagged-1)
	}
	env.srv.FlagsChanged(alice, inbox, changed)
	// Told: the store's value, and the change follows the STATUS.
	out = c.ok("STATUS INBOX (HIGHESTMODSEQ)")
	if got := statusModSeq(t, out, "INBOX"); got != flagged-1 || !strings.Contains(out, fmt.Sprintf("MODSEQ (%d)", flagged)) {
		t.Errorf("STATUS of the selected mailbox with a change held for the client at %d: %q", flagged, out)
	}
	if out = c.ok("STATUS INBOX (HIGHESTMODSEQ)"); statusModSeq(t, out, "INBOX") != highest() {
		t.Errorf("STATUS of the selected mailbox, all told: %q, want %d", out, highest())
	}

	// ENABLE cannot enable CONDSTORE while a mailbox is selected (RFC
	// 5161 §3.1): it is refused, so it needs no announcement.
	if out, status := c.cmd("ENABLE CONDSTORE"); status != "BAD" {
		t.Errorf("ENABLE while selected: %q", out)
	}
}

// TestCondStoreEnablingResync: a QRESYNC-style client (Python's
// imaplib, testdata/imaplib_enabling_modseq.py) whose first CONDSTORE
// enabling command is UID SEARCH MODSEQ, or STATUS (HIGHESTMODSEQ) of
// the selected mailbox, keeps the HIGHESTMODSEQ it gives and loses the
// connection right after it; it resynchronises from it and gets what it
// had not yet been told: another session's flag change, which came
// after the value in the same command's output. It fails on a version
// that announces nothing for SEARCH, or gives STATUS the store's value.
func TestCondStoreEnablingResync(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 4; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := pyOutput(t, env.python(ctx, env.tlsAddr, "imaplib_enabling_modseq.py", alice, alicePW))
	var got []struct {
		Command   string
		Announced bool
		Lines     []string
		Kept      uint64
		Resync    []string
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != 2 {
		t.Fatalf("output %q: %v", out, err)
	}
	for i, uid := range []string{"2", "3"} {
		g := got[i]
		t.Logf("%s: %q; kept %d; resync %q", g.Command, g.Lines, g.Kept, g.Resync)
		if !slices.ContainsFunc(g.Lines, func(l string) bool { return strings.Contains(l, "UID "+uid) && strings.Contains(l, `\Flagged`) }) {
			t.Fatalf("%s: %q lacks the other session's change", g.Command, g.Lines)
		}
		if !g.Announced {
			t.Errorf("%s: no HIGHESTMODSEQ in %q", g.Command, g.Lines)
			continue
		}
		if fetched := fetchedUIDs(g.Resync); !slices.Equal(fetched, []string{uid}) {
			t.Errorf("%s: resync from %d: %q, want the FETCH of UID %s", g.Command, g.Kept, g.Resync, uid)
		}
	}
}
