package badgerstore

import (
	"fmt"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestGCWhileWriting: value-log GC runs while deliveries, staged blobs
// and purges commit. badger v4.9's GC rewrite reads the memtable's
// version counter, which commits write, without a common lock; the race
// detector catches it unless the store keeps GC and commits apart
// (DB.gcMu). Run with -race.
func TestGCWhileWriting(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer func() { db.Close() }()
	const addr = "gc@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	big := make([]byte, 4<<10) // above the value threshold: the value log
	deliver := func(n int) []uint32 {
		var uids []uint32
		for range n {
			got, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: big}})
			if err != nil {
				t.Error(err)
				return nil
			}
			uids = append(uids, got[0].UID)
		}
		return uids
	}
	inbox, err := db.Mailbox(bg, addr, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		uids := deliver(200)
		if _, err := db.Expunge(bg, addr, inbox.ID, uids); err != nil {
			t.Fatal(err)
		}
		// A new value-log file after the reopen, and compaction that
		// counts the expunged blobs as garbage: GC has a file to rewrite.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openDB(t, dir)
		if err := db.bdb.Flatten(1); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { db.runGC() })
		wg.Go(func() { deliver(50) })
		wg.Go(func() {
			// Staged pieces commit outside the writer.
			w, err := db.StageBlob(bg, addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Discard()
			for range 3 {
				if _, err := w.Write(make([]byte, 1<<20)); err != nil {
					t.Error(err)
					return
				}
			}
			if _, err := w.Finish(bg); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			m, err := db.CreateMailbox(bg, addr, store.MailboxSpec{Name: fmt.Sprint("doomed", round)})
			if err != nil {
				t.Error(err)
				return
			}
			if err := db.DeleteMailbox(bg, addr, m.ID); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
}
