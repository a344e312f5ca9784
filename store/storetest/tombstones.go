package storetest

import (
	"slices"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// vanished calls Vanished and fails t on an error.
func vanished(t *testing.T, s store.Store, addr string, mbox, since uint64) store.VanishedSince {
	t.Helper()
	v, err := s.Vanished(ctxBg, addr, mbox, since)
	if err != nil {
		t.Fatalf("Vanished(%d, %d): %v", mbox, since, err)
	}
	return v
}

// wantVanished checks an exact answer.
func wantVanished(t *testing.T, what string, v store.VanishedSince, uids ...uint32) {
	t.Helper()
	if !v.Complete || !equalUIDs(v.UIDs, uids) {
		t.Errorf("%s: Vanished = %+v, want complete %v", what, v, uids)
	}
}

// testTombstones: every kind of removal from a mailbox that stays is
// answered by Vanished since any earlier mod-sequence, and nothing else
// is.
func testTombstones(t *testing.T, s store.Store) {
	const addr = "tomb@example.org"
	newAccount(t, s, addr)
	inbox, trash := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Trash")
	deliverN(t, s, addr, "", 10, 10)
	m0 := mailbox(t, s, addr, store.Inbox)
	wantVanished(t, "nothing removed", vanished(t, s, addr, inbox, 0))
	wantVanished(t, "nothing removed since", vanished(t, s, addr, inbox, m0.HighestModSeq))

	// A flag change is no removal.
	if _, err := s.StoreFlags(ctxBg, addr, inbox, store.FlagUpdate{UIDs: []uint32{1, 2}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}}); err != nil {
		t.Fatal(err)
	}
	wantVanished(t, "after flags", vanished(t, s, addr, inbox, m0.HighestModSeq))

	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{2, 5}); err != nil {
		t.Fatal(err)
	}
	m1 := mailbox(t, s, addr, store.Inbox)
	if m1.HighestModSeq <= m0.HighestModSeq+2 {
		t.Errorf("expunge did not raise HIGHESTMODSEQ: %d -> %d", m0.HighestModSeq, m1.HighestModSeq)
	}
	wantVanished(t, "after expunge", vanished(t, s, addr, inbox, m0.HighestModSeq), 2, 5)
	wantVanished(t, "from 0", vanished(t, s, addr, inbox, 0), 2, 5)
	wantVanished(t, "at the expunge", vanished(t, s, addr, inbox, m1.HighestModSeq))
	wantVanished(t, "just before the expunge", vanished(t, s, addr, inbox, m1.HighestModSeq-1), 2, 5)

	// The source of a move loses its UIDs; the target loses nothing.
	moved, err := s.MoveMessages(ctxBg, addr, inbox, trash, []uint32{7, 3})
	if err != nil {
		t.Fatal(err)
	}
	m2 := mailbox(t, s, addr, store.Inbox)
	if moved.SrcModSeq != m2.HighestModSeq {
		t.Errorf("move: SrcModSeq %d, want the source's HIGHESTMODSEQ %d", moved.SrcModSeq, m2.HighestModSeq)
	}
	wantVanished(t, "at the move", vanished(t, s, addr, inbox, moved.SrcModSeq))
	wantVanished(t, "just before the move", vanished(t, s, addr, inbox, moved.SrcModSeq-1), 3, 7)
	wantVanished(t, "after move", vanished(t, s, addr, inbox, m1.HighestModSeq), 3, 7)
	wantVanished(t, "after move, from the start", vanished(t, s, addr, inbox, m0.HighestModSeq), 2, 3, 5, 7)
	wantVanished(t, "move target", vanished(t, s, addr, trash, 0))

	// A move into the same mailbox gives the message a new UID: the old
	// one is gone.
	res, err := s.MoveMessages(ctxBg, addr, inbox, inbox, []uint32{9})
	if err != nil || len(res.Pairs) != 1 {
		t.Fatalf("move into the same mailbox: %+v, %v", res, err)
	}
	m3 := mailbox(t, s, addr, store.Inbox)
	wantVanished(t, "move within", vanished(t, s, addr, inbox, m2.HighestModSeq), 9)
	if res.SrcModSeq != m3.HighestModSeq {
		t.Errorf("move within: SrcModSeq %d, want HIGHESTMODSEQ %d", res.SrcModSeq, m3.HighestModSeq)
	}

	// The vault takes a message out of its mailbox too.
	if _, err := s.VaultMessages(ctxBg, addr, inbox, []uint32{10}, "test"); err != nil {
		t.Fatal(err)
	}
	wantVanished(t, "vaulted", vanished(t, s, addr, inbox, m3.HighestModSeq), 10)

	// Copies and deliveries remove nothing.
	if res, err := s.CopyMessages(ctxBg, addr, inbox, trash, []uint32{1}); err != nil || res.SrcModSeq != 0 {
		t.Fatalf("copy: %+v, %v (want SrcModSeq 0)", res, err)
	}
	deliverN(t, s, addr, "", 1, 10)
	m4 := mailbox(t, s, addr, store.Inbox)
	wantVanished(t, "copy and delivery", vanished(t, s, addr, inbox, m3.HighestModSeq), 10)
	wantVanished(t, "at the end", vanished(t, s, addr, inbox, m4.HighestModSeq))

	// A deleted mailbox, and one that never was.
	if err := s.DeleteMailbox(ctxBg, addr, trash); err != nil {
		t.Fatal(err)
	}
	_, err = s.Vanished(ctxBg, addr, trash, 0)
	wantErr(t, "Vanished in a deleted mailbox", err, store.ErrNotFound)
	_, err = s.Vanished(ctxBg, addr, unknownID, 0)
	wantErr(t, "Vanished in an unknown mailbox", err, store.ErrNotFound)
	_, err = s.Vanished(ctxBg, "nobody@example.org", inbox, 0)
	wantErr(t, "Vanished of an unknown account", err, store.ErrNotFound)
}

// testTombstonesBounded: past the window and for a bulk removal the floor
// rises, and what is below it is answered as incomplete, never wrongly
// complete.
func testTombstonesBounded(t *testing.T, s store.Store) {
	const addr = "tombs@example.org"
	newAccount(t, s, addr)
	inbox := idOf(t, s, addr, store.Inbox)
	total := store.TombstoneWindow + store.TombstoneBulk/2
	var uids []uint32
	for len(uids) < total {
		uids = append(uids, deliverN(t, s, addr, "", min(2000, total-len(uids)), 1)...)
	}
	m0 := mailbox(t, s, addr, store.Inbox)
	// Removed in chunks the store records, oldest first; remember the
	// mod-sequence before each.
	type chunk struct {
		before uint64
		uids   []uint32
	}
	var chunks []chunk
	for rest := uids; len(rest) > 0; {
		n := min(len(rest), store.TombstoneBulk)
		chunks = append(chunks, chunk{mailbox(t, s, addr, store.Inbox).HighestModSeq, rest[:n]})
		if _, err := s.Expunge(ctxBg, addr, inbox, rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	v := vanished(t, s, addr, inbox, m0.HighestModSeq)
	if v.Complete {
		if !equalUIDs(v.UIDs, uids) {
			t.Errorf("complete answer with %d of %d UIDs", len(v.UIDs), len(uids))
		}
	} else {
		// The newest TombstoneWindow removals are kept, and only UIDs
		// that were removed are named.
		newest := uids[len(uids)-store.TombstoneWindow:]
		for _, u := range newest {
			if _, ok := slices.BinarySearch(v.UIDs, u); !ok {
				t.Fatalf("UID %d of the newest %d removals is missing", u, store.TombstoneWindow)
			}
		}
		for _, u := range v.UIDs {
			if _, ok := slices.BinarySearch(uids, u); !ok {
				t.Fatalf("UID %d was never removed", u)
			}
		}
		if v.Floor <= m0.HighestModSeq {
			t.Errorf("incomplete answer with floor %d at or below %d", v.Floor, m0.HighestModSeq)
		}
		// From the floor on, the answer is complete.
		if f := vanished(t, s, addr, inbox, v.Floor); !f.Complete {
			t.Errorf("Vanished from the floor %d incomplete: %+v", v.Floor, f.Floor)
		}
	}
	last := chunks[len(chunks)-1]
	wantVanished(t, "the last chunk", vanished(t, s, addr, inbox, last.before), last.uids...)

	// One removal larger than TombstoneBulk.
	big := deliverN(t, s, addr, "", store.TombstoneBulk+1, 1)
	m1 := mailbox(t, s, addr, store.Inbox)
	deliverN(t, s, addr, "", 1, 1)
	if _, err := s.Expunge(ctxBg, addr, inbox, big); err != nil {
		t.Fatal(err)
	}
	m2 := mailbox(t, s, addr, store.Inbox)
	if v := vanished(t, s, addr, inbox, m1.HighestModSeq); v.Complete && !equalUIDs(v.UIDs, big) {
		t.Errorf("bulk removal answered complete with %d of %d UIDs", len(v.UIDs), len(big))
	}
	wantVanished(t, "after the bulk removal", vanished(t, s, addr, inbox, m2.HighestModSeq))
}

// testTombstonesReopen: tombstones are durable.
func testTombstonesReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	const addr = "tombr@example.org"
	newAccount(t, s, addr)
	inbox := idOf(t, s, addr, store.Inbox)
	deliverN(t, s, addr, "", 5, 10)
	m0 := mailbox(t, s, addr, store.Inbox)
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	wantVanished(t, "after reopen", vanished(t, s, addr, inbox, m0.HighestModSeq), 4)
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	wantVanished(t, "after reopen and expunge", vanished(t, s, addr, inbox, m0.HighestModSeq), 1, 4)
}
