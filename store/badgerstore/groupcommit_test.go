package badgerstore

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// queueInOrder starts each call in its own goroutine, one after the other,
// each only once the previous one waits in the writer's queue, so that
// they reach the writer in this order. The writer must be busy. It
// returns a function that waits for all of them.
func queueInOrder(t *testing.T, db *DB, calls ...func()) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call()
		}()
		for len(db.ops) < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	return wg.Wait
}

// TestSessionWritesShareCommit: the writes IMAP sessions make, queued
// together, are applied in arrival order to one transaction with one
// commit; each sees what the earlier ones wrote, a failing one stores
// nothing and disturbs nobody, and UIDs, MODSEQs, counters and
// tombstones come out exactly as if each had run alone.
func TestSessionWritesShareCommit(t *testing.T) {
	var (
		mu      sync.Mutex
		commits []int
	)
	db, err := Open(t.TempDir(), Options{GCInterval: -1, OnCommit: func(_ time.Duration, calls int) {
		mu.Lock()
		commits = append(commits, calls)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const addr = "a@example.org"
	mkAccount(t, db, addr, []byte("s"))
	deliverT(t, db, addr, "", 3) // UIDs 1..3
	inbox := mboxID(t, db, addr, store.Inbox)
	before, err := db.MailboxByID(bg, addr, inbox)
	if err != nil {
		t.Fatal(err)
	}
	base := before.HighestModSeq

	// Hold the writer so that everything below queues up behind it.
	release := holdWriter(t, db)
	mu.Lock()
	commits = nil
	mu.Unlock()

	var (
		delivered           []store.Delivered
		flagged, bad        store.FlagResult
		copied              store.CopyResult
		expunged            store.ExpungeResult
		errs                [7]error
		subscribeName       = "Later/Box"
		summary, sessionKey = []byte("summary of the copy"), []byte("key")
	)
	wait := queueInOrder(t, db,
		func() {
			delivered, errs[0] = db.Deliver(bg, []store.Delivery{{Account: addr, Blob: []byte("fourth")}})
		},
		func() { // the message the Deliver above is adding
			flagged, errs[1] = db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{2, 4}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		},
		func() {
			bad, errs[2] = db.StoreFlags(bg, addr, inbox+1000, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		},
		func() { copied, errs[3] = db.CopyMessages(bg, addr, inbox, inbox, []uint32{4}) },
		func() { expunged, errs[4] = db.Expunge(bg, addr, inbox, []uint32{1, 4}) },
		func() {
			errs[5] = db.SetSummaries(bg, addr, inbox, []store.SummaryUpdate{{UID: 5, Summary: summary, SessionKey: sessionKey}})
		},
		func() { errs[6] = db.SetSubscribed(bg, addr, subscribeName, true) },
	)
	release()
	wait()

	for i, err := range errs {
		if i == 2 {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("StoreFlags on a missing mailbox: %v, %+v; want ErrNotFound", err, bad)
			}
			continue
		}
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mu.Lock()
	if !slices.Equal(commits, []int{1, 7}) {
		t.Errorf("commits carried %v calls, want the blocker's and one of all 7", commits)
	}
	mu.Unlock()

	// Deliver: UID 4 at base+1. StoreFlags: UIDs 2 and 4 at base+2, base+3.
	// Copy: 4 -> 5 at base+4, with \Seen. Expunge: 1 and 4 at base+5.
	if len(delivered) != 1 || delivered[0].UID != 4 {
		t.Errorf("Deliver: %+v, want UID 4", delivered)
	}
	if len(flagged.Changed) != 2 || flagged.Changed[0].UID != 2 || flagged.Changed[0].ModSeq != base+2 ||
		flagged.Changed[1].UID != 4 || flagged.Changed[1].ModSeq != base+3 {
		t.Errorf("StoreFlags changed %+v, want UID 2 at %d and 4 at %d", flagged.Changed, base+2, base+3)
	}
	if len(copied.Pairs) != 1 || copied.Pairs[0] != (store.UIDPair{Src: 4, Dst: 5}) {
		t.Errorf("Copy: %+v, want 4 -> 5", copied.Pairs)
	}
	if !slices.Equal(expunged.UIDs, []uint32{1, 4}) {
		t.Errorf("Expunge removed %v, want [1 4]", expunged)
	}
	m, err := db.MailboxByID(bg, addr, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if m.UIDNext != 6 || m.HighestModSeq != base+5 || m.Messages != 3 || m.Unseen != 1 || m.Deleted != 0 {
		t.Errorf("INBOX %+v, want UIDNEXT 6, HIGHESTMODSEQ %d, 3 messages, 1 unseen", m, base+5)
	}
	ms, err := db.Messages(bg, addr, inbox, store.ListOptions{WithSummary: true})
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, msg := range ms {
		size += msg.SealedSize
	}
	if m.SealedSize != size {
		t.Errorf("INBOX size %d, listed %d", m.SealedSize, size)
	}
	want := []struct {
		uid    uint32
		modseq uint64
		seen   bool
	}{{2, base + 2, true}, {3, base, false}, {5, base + 4, true}}
	if len(ms) != len(want) {
		t.Fatalf("listed %+v", ms)
	}
	for i, w := range want {
		got := ms[i]
		if got.UID != w.uid || store.HasFlag(got.Flags, store.FlagSeen) != w.seen || got.ModSeq != w.modseq {
			t.Errorf("message %d: %+v, want UID %d MODSEQ %d seen %v", i, got, w.uid, w.modseq, w.seen)
		}
	}
	if string(ms[2].Summary) != string(summary) || string(ms[2].SessionKey) != string(sessionKey) {
		t.Errorf("summary of UID 5: %q %q", ms[2].Summary, ms[2].SessionKey)
	}
	v, err := db.Vanished(bg, addr, inbox, base+4)
	if err != nil || !v.Complete || !slices.Equal(v.UIDs, []uint32{1, 4}) {
		t.Errorf("Vanished since %d: %+v, %v; want complete [1 4]", base+4, v, err)
	}
	if v, err := db.Vanished(bg, addr, inbox, base+5); err != nil || len(v.UIDs) != 0 {
		t.Errorf("Vanished since %d: %+v, %v; want nothing", base+5, v, err)
	}
	subs, err := db.Subscriptions(bg, addr)
	if err != nil || !slices.Contains(subs, subscribeName) {
		t.Errorf("Subscriptions: %v, %v; want %q among them", subs, err, subscribeName)
	}
	a, err := db.Account(bg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if a.UsedBytes != size {
		t.Errorf("used %d bytes, the mailboxes hold %d", a.UsedBytes, size)
	}
}

// TestScanSeesOverlay: in batch mode a scan reads the operation's overlay
// over the transaction's pending writes over committed state, in key
// order, with deletions hidden, from its start key on.
func TestScanSeesOverlay(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	key := func(s string) []byte { return append([]byte{'z'}, s...) }
	err := db.badgerUpdate(func(txn *badger.Txn) error {
		for _, k := range []string{"a", "c", "e", "g"} {
			if err := txn.Set(key(k), []byte("committed "+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	earlier := &tx{txn: txn}
	for _, k := range []string{"b", "e"} {
		if err := earlier.set(key(k), []byte("pending "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := earlier.del(key("g")); err != nil {
		t.Fatal(err)
	}
	op := &tx{txn: txn, ov: map[string]ovEntry{}}
	for _, k := range []string{"c", "d", "h"} {
		if err := op.set(key(k), []byte("overlay "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.del(key("a")); err != nil {
		t.Fatal(err)
	}
	list := func(start []byte, keysOnly bool, limit int) []string {
		var out []string
		err := op.scan([]byte{'z'}, start, keysOnly, func(k, v []byte) (bool, error) {
			out = append(out, string(k[1:])+"="+string(v))
			return len(out) < limit, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{"b=pending b", "c=overlay c", "d=overlay d", "e=pending e", "h=overlay h"}
	if got := list(nil, false, 100); !slices.Equal(got, want) {
		t.Errorf("scan = %q, want %q", got, want)
	}
	if got := list(key("c"), false, 2); !slices.Equal(got, want[1:3]) {
		t.Errorf("scan from c, 2 = %q, want %q", got, want[1:3])
	}
	if got := list(key("d1"), true, 100); !slices.Equal(got, []string{"e=", "h="}) {
		t.Errorf("keys from d1 = %q, want [e= h=]", got)
	}
}
