package badgerstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// TestReadSeesAcknowledgedWrites: reads share the snapshot of the last
// commit (snapshot.go); every write a caller was answered for must be in
// what that caller reads next, while other callers write and read at the
// same time.
func TestReadSeesAcknowledgedWrites(t *testing.T) {
	db := openChecked(t, t.TempDir())
	defer db.Close()
	const addr = "rw@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	const writers, rounds, msgs = 4, 40, 5
	boxes := make([]uint64, writers)
	for w := range boxes {
		m, err := db.CreateMailbox(bg, addr, store.MailboxSpec{Name: fmt.Sprintf("box%d", w)})
		if err != nil {
			t.Fatal(err)
		}
		boxes[w] = m.ID
		deliverT(t, db, addr, m.Name, msgs)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	go func() { // a reader that only keeps snapshots in use
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Messages(bg, addr, boxes[0], store.ListOptions{}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			box, n := boxes[w], msgs
			for r := range rounds {
				uid := uint32(1 + r%n)
				op := store.FlagsAdd
				if r/n%2 == 1 {
					op = store.FlagsRemove
				}
				if _, err := db.StoreFlags(bg, addr, box, store.FlagUpdate{UIDs: []uint32{uid}, Op: op, Flags: []string{store.FlagFlagged}}); err != nil {
					errs <- err
					return
				}
				if r%7 == 0 {
					if _, err := db.Deliver(bg, []store.Delivery{{Account: addr, MailboxID: box, Blob: []byte("x")}}); err != nil {
						errs <- err
						return
					}
					n++
				}
				ms, err := db.Messages(bg, addr, box, store.ListOptions{})
				if err != nil {
					errs <- err
					return
				}
				if len(ms) != n {
					errs <- fmt.Errorf("box %d round %d: %d messages listed, %d delivered", w, r, len(ms), n)
					return
				}
				if got := slices.Contains(ms[uid-1].Flags, store.FlagFlagged); got != (op == store.FlagsAdd) {
					errs <- fmt.Errorf("box %d round %d: UID %d flags %v after %v", w, r, uid, ms[uid-1].Flags, op)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestReadSeesBackgroundCommit: commits outside the writer (the chunks
// of a deletion) make their state current too, before they return.
func TestReadSeesBackgroundCommit(t *testing.T) {
	db := openChecked(t, t.TempDir())
	defer db.Close()
	mkAccount(t, db, "bg@example.org", []byte("secret")) // a writer commit: a snapshot is current
	key := []byte{pScratch, 'x'}
	has := func() bool {
		t.Helper()
		var ok bool
		if err := db.read(bg, func(tx *tx) error {
			var err error
			ok, err = tx.has(key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if err := db.badgerUpdate(func(txn *badger.Txn) error { return txn.Set(key, []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("a key committed outside the writer is not read back")
	}
	if err := db.deleteKeys([][]byte{key}); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("a key deleted outside the writer is still read")
	}
	// Purge reopens badger: the snapshot of the old one must go with it.
	if _, err := db.Purge(bg); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("deleted key read after Purge")
	}
	deliverT(t, db, "bg@example.org", "", 1)
	if ms, err := db.Messages(bg, "bg@example.org", mboxID(t, db, "bg@example.org", store.Inbox), store.ListOptions{}); err != nil || len(ms) != 1 {
		t.Fatalf("after Purge: %d messages, %v", len(ms), err)
	}
}

// BenchmarkReadWhileCommitting lists a 30-message mailbox while conc
// other callers change flags without pause, so that a commit (and its
// fsync) is nearly always in flight: what a FETCH or STATUS waits for
// under a busy IMAP server. Reports the listings' mean latency.
func BenchmarkReadWhileCommitting(b *testing.B) {
	ctx := context.Background()
	for _, conc := range []int{0, 4} {
		b.Run(fmt.Sprintf("writers=%d", conc), func(b *testing.B) {
			db := benchDB(b, Options{ListCache: -1})
			ds := make([]store.Delivery, 30)
			for i := range ds {
				ds[i] = store.Delivery{Account: benchAddr, Blob: make([]byte, 2000)}
			}
			if _, err := db.Deliver(ctx, ds); err != nil {
				b.Fatal(err)
			}
			m, err := db.Mailbox(ctx, benchAddr, store.Inbox)
			if err != nil {
				b.Fatal(err)
			}
			inbox := m.ID
			box, err := db.CreateMailbox(ctx, benchAddr, store.MailboxSpec{Name: "busy"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.Deliver(ctx, []store.Delivery{{Account: benchAddr, MailboxID: box.ID, Blob: []byte("x")}}); err != nil {
				b.Fatal(err)
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			for range conc {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						op := store.FlagsAdd
						if i%2 == 1 {
							op = store.FlagsRemove
						}
						if _, err := db.StoreFlags(ctx, benchAddr, box.ID, store.FlagUpdate{UIDs: []uint32{1}, Op: op, Flags: []string{store.FlagSeen}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			time.Sleep(20 * time.Millisecond)
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.Messages(ctx, benchAddr, inbox, store.ListOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
		})
	}
}
