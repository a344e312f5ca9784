package imap

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// TestPollModSeqUntold: a FETCH MODSEQ that a client may take as its
// HIGHESTMODSEQ (RFC 7162 §3.2, as qresync_client.modseq_left does) is
// followed, before the command ends, by "* OK [HIGHESTMODSEQ n]" when
// it runs ahead of a change the session has not heard of: another
// writer committed it and has not told the server, and a later change
// was told and written first. n is below the untold change; the client
// that resynchronises from it gets it. When the change is told, no
// correction follows. It fails on a version whose Poll writes no
// correction.
func TestPollModSeqUntold(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	ctx := context.Background()
	c := env.rawLogin(alice, alicePW)
	sel := c.ok("SELECT INBOX")
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(sel)[1]
	c.ok("FETCH 1 (MODSEQ)")
	b := env.rawLogin(alice, alicePW)
	b.ok("SELECT INBOX")

	// A flag change committed, not told; another told after it.
	res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$Untold"}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v, %v", res, err)
	}
	untold := res.Changed[0].ModSeq
	b.ok(`UID STORE 3 +FLAGS.SILENT (\Flagged)`)
	out := c.ok("NOOP")
	n, at := announced(t, out)
	if i := strings.Index(out, fmt.Sprintf("MODSEQ (%d)", untold+1)); i < 0 || n != untold-1 || at < i {
		t.Fatalf("change at %d written, one at %d untold: %q, want HIGHESTMODSEQ %d after the FETCH", untold+1, untold, out, untold-1)
	}
	resyncSeesUntold(t, env, uv, n)

	// Told: its FETCH needs no correction.
	env.srv.FlagsChanged(alice, inbox, res.Changed)
	if out := c.ok("NOOP"); !strings.Contains(out, "$Untold") || strings.Contains(out, "HIGHESTMODSEQ") {
		t.Fatalf("untold change told: %q", out)
	}

	// A removal committed, not told: back to the last safe value, as
	// its own mod-sequence is not known. The session's own STORE's
	// FETCH MODSEQ is corrected the same way.
	if _, err := env.st.Expunge(ctx, alice, inbox, []uint32{4}); err != nil {
		t.Fatal(err)
	}
	out = c.ok(`UID STORE 5 +FLAGS (\Seen)`)
	if n, _ := announced(t, out); n == 0 || n > highest()-2 || !strings.Contains(out, fmt.Sprintf("MODSEQ (%d)", highest())) {
		t.Fatalf("own change at %d after a removal untold at %d: %q", highest(), highest()-1, out)
	}
	env.srv.Expunged(alice, inbox, []uint32{4})
	if out := c.ok("NOOP"); !strings.Contains(out, "EXPUNGE") || strings.Contains(out, "HIGHESTMODSEQ") {
		t.Fatalf("removal told: %q", out)
	}
}

// TestPollModSeqResync: a QRESYNC client (Python's imaplib,
// testdata/imaplib_poll_modseq.py) that keeps the highest FETCH MODSEQ
// it was told, corrected by any later HIGHESTMODSEQ, and loses the
// connection after a NOOP that told it another session's flag change
// while an earlier change, committed straight to the store, had not
// been told yet: it resynchronises and gets both changes. It fails on a
// version that leaves the client with the told change's MODSEQ.
func TestPollModSeqResync(t *testing.T) {
	env, inbox, _ := untoldSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := env.python(ctx, env.tlsAddr, "imaplib_poll_modseq.py", alice, alicePW)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	if l, err := rd.ReadString('\n'); l != "selected\n" {
		cmd.Wait()
		t.Fatalf("script: %q, %v\n%s", l, err, stderr.String())
	}
	// The untold change, while A has INBOX selected.
	res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$Untold"}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v, %v", res, err)
	}
	fmt.Fprintln(stdin, "go")
	out, _ := io.ReadAll(rd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("script: %v\n%s\n%s", err, out, stderr.String())
	}
	env.srv.FlagsChanged(alice, inbox, res.Changed)
	var got struct {
		Noop   []string
		Kept   uint64
		Resync []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	t.Logf("NOOP %q; kept %d; resync %q", got.Noop, got.Kept, got.Resync)
	if !slices.ContainsFunc(got.Noop, func(l string) bool { return strings.Contains(l, "UID 3") && strings.Contains(l, `\Flagged`) }) {
		t.Fatalf("NOOP: %q lacks the other session's change", got.Noop)
	}
	fetched := fetchedUIDs(got.Resync)
	slices.Sort(fetched)
	if !slices.Equal(fetched, []string{"2", "3"}) {
		t.Errorf("resync from %d: %q, want the FETCH of UIDs 2 and 3", got.Kept, got.Resync)
	}
}

// BenchmarkPollModSeq measures what correctModSeq's check costs the
// Poll that tells a client another session's flag change, in a mailbox
// of 10,000 messages: the NOOP after each change (the change itself is
// not timed), side by side, by a session that did not enable CONDSTORE
// (no check), by one that did and is the first to check the change, and
// by one whose check another session's already covered (untimed, before
// it). The state counts the changes it was told of in a row, so none of
// them reads the store. The -removal pair has another session also
// remove a message before each change (and a delivery keep the size):
// the store gives that session the removal's mod-sequence and the state
// hears of it (expungedAt), so the run has no gap there either. (Before
// it did, the CONDSTORE session's check read the store's listing, from
// its listing cache, after each removal: 1.3-1.5 ms and 1.6 MB per Poll
// against 0.43 ms and a few KB since.)
//
//	go test -run '^$' -bench PollModSeq -benchmem ./server/imap/
func BenchmarkPollModSeq(b *testing.B) {
	env := newEnv(b)
	env.addUser(alice, alicePW)
	ctx := context.Background()
	inbox := env.mailboxID(alice, "INBOX")
	blob := env.seal(alice, testMessage("bench", "x"))
	env.deliverMany(alice, "", 10000)
	writer, plain, first, second := env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW), env.rawLogin(alice, alicePW)
	for _, c := range []*rawConn{writer, plain, first, second} {
		c.ok("SELECT INBOX")
	}
	first.ok("FETCH 1 (MODSEQ)")
	second.ok("FETCH 1 (MODSEQ)")
	// Each change flips \Seen of the newest message the session knows,
	// which no removal reaches.
	known, newest, seen := uint32(10000), uint32(10000), false
	oldest := uint32(1) // the next message to remove
	for _, s := range []struct {
		name    string
		before  *rawConn // polls first, untimed
		c       *rawConn
		removal bool
	}{
		{"plain", nil, plain, false},
		{"condstore", nil, first, false},
		{"condstore-shared", first, second, false},
		{"plain-removal", nil, plain, true},
		{"condstore-removal", nil, first, true},
	} {
		b.Run(s.name, func(b *testing.B) {
			s.c.ok("NOOP")
			for range b.N {
				b.StopTimer()
				if known != newest {
					known, seen = newest, false
				}
				if s.removal {
					ds, err := env.st.Deliver(ctx, []store.Delivery{{Account: alice, MailboxID: inbox, Blob: blob}})
					if err != nil {
						b.Fatal(err)
					}
					env.srv.Delivered(ds)
					env.srv.notify.wait()
					newest = ds[0].UID // known after this NOOP
					writer.ok(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, oldest))
					writer.ok(fmt.Sprintf("UID EXPUNGE %d", oldest))
					oldest++
				}
				op := "+"
				if seen {
					op = "-"
				}
				writer.ok(fmt.Sprintf(`UID STORE %d %sFLAGS.SILENT (\Seen)`, known, op))
				seen = !seen
				if s.before != nil {
					s.before.ok("NOOP")
				}
				b.StartTimer()
				if out := s.c.ok("NOOP"); !strings.Contains(out, "FETCH") {
					b.Fatalf("NOOP: %q", out)
				}
			}
		})
	}
}

// TestModSeqBelowTombstoneFloor: once a removal too large for
// tombstones (store.TombstoneBulk) has raised the tombstone floor above
// the session's SELECT, the mod-sequence a client may keep is still
// found (from the listing, not the tombstones): EXPUNGE's tagged OK
// carries it, and an untold removal still holds it back. It fails on a
// version that read the removals from the tombstones, which then gave
// none.
func TestModSeqBelowTombstoneFloor(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	ctx := context.Background()
	inbox := env.mailboxID(alice, "INBOX")
	ds := make([]store.Delivery, store.TombstoneBulk+10)
	for i := range ds {
		ds[i] = store.Delivery{Account: alice, MailboxID: inbox, Blob: []byte(fmt.Sprint(i))}
	}
	if _, err := env.st.Deliver(ctx, ds); err != nil {
		t.Fatal(err)
	}
	c := env.rawLogin(alice, alicePW)
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	b := env.rawLogin(alice, alicePW)
	b.ok("SELECT INBOX")
	b.ok(fmt.Sprintf(`UID STORE 1:%d +FLAGS.SILENT (\Deleted)`, store.TombstoneBulk+1))
	b.ok("EXPUNGE")
	v, err := env.st.Vanished(ctx, alice, inbox, 1)
	if err != nil || v.Complete {
		t.Fatalf("the tombstone floor was not raised: %+v, %v", v, err)
	}
	mb, err := env.st.MailboxByID(ctx, alice, inbox)
	if err != nil {
		t.Fatal(err)
	}
	out := c.ok("UID EXPUNGE 1:*")
	if n := taggedModSeq(t, out); n != mb.HighestModSeq {
		t.Fatalf("below the tombstone floor: %q, want HIGHESTMODSEQ %d", out, mb.HighestModSeq)
	}
	// A removal not told: back to the last value.
	if _, err := env.st.Expunge(ctx, alice, inbox, []uint32{store.TombstoneBulk + 5}); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("UID EXPUNGE 1:*"); taggedModSeq(t, out) != mb.HighestModSeq {
		t.Fatalf("untold removal below the floor: %q, want HIGHESTMODSEQ %d", out, mb.HighestModSeq)
	}
}
