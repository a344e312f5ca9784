package badgerstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/storetest"
)

// openChecked opens a store whose writer compares the listing cache with
// the disk after every commit and fails t on a difference.
func openChecked(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	db.checkLists = func(err error) { t.Errorf("after a commit: %v", err) }
	return db
}

// checkedInbox opens a checked store (openChecked) in a temporary
// directory, closed when the test ends, creates addr there with n
// messages in its INBOX, and returns the store and the INBOX's ID.
func checkedInbox(t *testing.T, addr string, n int) (*DB, uint64) {
	t.Helper()
	db := openChecked(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	mkAccount(t, db, addr, []byte("secret"))
	if n > 0 {
		deliverT(t, db, addr, "", n)
	}
	return db, mboxID(t, db, addr, store.Inbox)
}

// TestConformanceCheckedLists runs the conformance suite with the
// listing cache checked after every commit: a write path of the suite
// that leaves a cached listing different from the disk fails it.
func TestConformanceCheckedLists(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) store.Store { return openChecked(t, dir) })
}

// snapshotListing lists a whole mailbox twice in one read transaction:
// from the cache (ok false if it does not hold the mailbox at that
// state) and from badger.
func snapshotListing(t *testing.T, db *DB, addr string, mbox uint64) (cached, disk []store.Message, ok bool) {
	t.Helper()
	err := db.read(bg, func(t *tx) error {
		acct, err := accountID(t, addr)
		if err != nil {
			return err
		}
		rec, err := loadMailboxRec(t, acct, mbox)
		if err != nil {
			return err
		}
		cached, _, ok = db.lists.get(mboxRef{acct, mbox}, tagOf(&rec.Mailbox), 0, 0, false)
		ls, err := listMetas(bg, t, acct, &rec.Mailbox, store.ListOptions{})
		disk, _ = toMessages(ls, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return cached, disk, ok
}

func sameMessages(a, b []store.Message) bool {
	return slices.EqualFunc(a, b, func(x, y store.Message) bool {
		return x.UID == y.UID && x.ModSeq == y.ModSeq && x.SealedSize == y.SealedSize && x.EmailID == y.EmailID &&
			x.InternalDate.Equal(y.InternalDate) && x.SaveDate.Equal(y.SaveDate) && slices.Equal(x.Flags, y.Flags)
	})
}

// TestListCacheEveryWrite warms the cache of every mailbox, runs each
// write that can change a mailbox's messages, and compares each cached
// listing with the disk after it (the writer's check does so too, after
// every commit). The writes a session makes all the time must leave the
// cache warm: those are what it is for.
func TestListCacheEveryWrite(t *testing.T) {
	const addr = "every@example.org"
	db, inbox := checkedInbox(t, addr, 12)
	trash := mboxID(t, db, addr, "Trash")
	deliverT(t, db, addr, "Trash", 3)
	boxes := []uint64{inbox, trash}
	warm := func() {
		t.Helper()
		for _, id := range boxes {
			if _, err := db.Messages(bg, addr, id, store.ListOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(name string, mustHit bool) {
		t.Helper()
		for _, id := range boxes {
			cached, disk, ok := snapshotListing(t, db, addr, id)
			if ok && !sameMessages(cached, disk) {
				t.Errorf("%s: mailbox #%d: cached %v, on disk %v", name, id, cached, disk)
			}
			if mustHit && !ok {
				t.Errorf("%s: mailbox #%d not cached after the write", name, id)
			}
			got, err := db.Messages(bg, addr, id, store.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessages(got, disk) {
				t.Errorf("%s: mailbox #%d: Messages %v, on disk %v", name, id, got, disk)
			}
		}
	}
	steps := []struct {
		name    string
		mustHit bool
		run     func() error
	}{
		{"StoreFlags", true, func() error {
			_, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{1, 2, 3}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen, "$Work"}})
			return err
		}},
		{"StoreFlags remove", true, func() error {
			_, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsRemove, Flags: []string{"$Work"}})
			return err
		}},
		{"Deliver", true, func() error {
			_, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: []byte("new")}, {Account: addr, MailboxID: trash, Blob: []byte("t")}})
			return err
		}},
		{"SetSummaries", true, func() error {
			return db.SetSummaries(bg, addr, inbox, []store.SummaryUpdate{{UID: 4, Summary: []byte("s"), SessionKey: []byte("k")}})
		}},
		{"Expunge", true, func() error {
			_, err := db.Expunge(bg, addr, inbox, []uint32{3, 5})
			return err
		}},
		{"ExpungeReport", true, func() error {
			_, _, err := db.ExpungeReport(bg, addr, inbox, []uint32{6})
			return err
		}},
		{"CopyMessages", false, func() error {
			_, err := db.CopyMessages(bg, addr, inbox, trash, []uint32{1, 2})
			return err
		}},
		{"CopyMessages into itself", false, func() error {
			_, err := db.CopyMessages(bg, addr, inbox, inbox, []uint32{7})
			return err
		}},
		{"MoveMessages", false, func() error {
			_, err := db.MoveMessages(bg, addr, inbox, trash, []uint32{8})
			return err
		}},
		{"MoveMessages into itself", false, func() error {
			_, err := db.MoveMessages(bg, addr, inbox, inbox, []uint32{9})
			return err
		}},
		{"VaultMessages", false, func() error {
			_, err := db.VaultMessages(bg, addr, inbox, []uint32{10}, "test")
			return err
		}},
		{"RestoreFromVault", false, func() error {
			v, err := db.Vault(bg, store.Owner{Address: addr})
			if err != nil || len(v) == 0 {
				return fmt.Errorf("vault: %v, %d entries", err, len(v))
			}
			_, err = db.RestoreFromVault(bg, addr, v[0].ID, inbox)
			return err
		}},
		{"DestroyMessages", false, func() error {
			rs, err := db.RetainedByUID(bg, addr, inbox, []uint32{11})
			if err != nil || len(rs) != 1 {
				return fmt.Errorf("retained: %v, %d", err, len(rs))
			}
			_, err = db.DestroyMessages(bg, []store.MessageRef{{Owner: store.Owner{Address: addr}, ID: rs[0].ID}}, store.DestroyOptions{Now: time.Now()})
			return err
		}},
		{"RenameMailbox", false, func() error { return db.RenameMailbox(bg, addr, trash, "Bin") }},
		{"SetSubscribed", false, func() error { return db.SetSubscribed(bg, addr, "Bin", false) }},
		{"DeleteMailbox", false, func() error {
			if err := db.DeleteMailbox(bg, addr, trash); err != nil {
				return err
			}
			boxes = boxes[:1]
			return nil
		}},
	}
	for _, s := range steps {
		warm()
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		check(s.name, s.mustHit)
	}
	// A deleted account's listings leave the cache with it.
	warm()
	if _, err := db.DeleteAccount(bg, addr); err != nil {
		t.Fatal(err)
	}
	if n := db.lists.len(); n != 0 {
		t.Errorf("after DeleteAccount the cache holds %d mailboxes", n)
	}
}

// TestListCacheConcurrent interleaves writers and listers on two
// mailboxes. Every lister compares the cache with the disk in one
// snapshot, lists ranges, and checks Messages against what it can know;
// the writer's check compares after every commit.
func TestListCacheConcurrent(t *testing.T) {
	const addr = "busy@example.org"
	db, inbox := checkedInbox(t, addr, 30)
	deliverT(t, db, addr, "Archive", 10)
	arch := mboxID(t, db, addr, "Archive")
	const rounds = 60
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	uids := func(r *rand.Rand) []uint32 {
		u := make([]uint32, 1+r.IntN(3))
		for i := range u {
			u[i] = 1 + r.Uint32N(60)
		}
		return u
	}
	writer := func(seed uint64, f func(r *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			for range rounds {
				if err := f(r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	flags := []string{store.FlagSeen, store.FlagDeleted, store.FlagFlagged, "$A", "$B"}
	for w := range 3 {
		writer(uint64(w), func(r *rand.Rand) error {
			_, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: uids(r), Op: store.FlagOp(r.IntN(3)), Flags: []string{flags[r.IntN(len(flags))]}})
			return err
		})
	}
	writer(10, func(r *rand.Rand) error {
		switch r.IntN(5) {
		case 0:
			_, err := db.Expunge(bg, addr, inbox, uids(r))
			return err
		case 1:
			_, err := db.MoveMessages(bg, addr, inbox, arch, uids(r))
			return err
		case 2:
			_, err := db.CopyMessages(bg, addr, arch, inbox, []uint32{1 + r.Uint32N(20)})
			return err
		default:
			_, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: []byte("x")}})
			return err
		}
	})
	listers := 3
	done := make(chan struct{})
	var lw sync.WaitGroup
	hits := make([]int, listers)
	for l := range listers {
		lw.Add(1)
		go func() {
			defer lw.Done()
			r := rand.New(rand.NewPCG(uint64(100+l), 3))
			for {
				select {
				case <-done:
					return
				default:
				}
				id := inbox
				if r.IntN(3) == 0 {
					id = arch
				}
				cached, disk, ok := snapshotListing(t, db, addr, id)
				if ok {
					hits[l]++
					if !sameMessages(cached, disk) {
						errs <- fmt.Errorf("mailbox #%d: cached %v, on disk %v", id, cached, disk)
						return
					}
				}
				whole, err := db.Messages(bg, addr, id, store.ListOptions{})
				if err != nil {
					errs <- err
					return
				}
				if !slices.IsSortedFunc(whole, func(a, b store.Message) int { return int(a.UID) - int(b.UID) }) {
					errs <- fmt.Errorf("listing out of order: %v", whole)
					return
				}
				from := 1 + r.Uint32N(50)
				part, err := db.Messages(bg, addr, id, store.ListOptions{FromUID: from, ToUID: from + r.Uint32N(30)})
				if err != nil {
					errs <- err
					return
				}
				for _, m := range part {
					if m.UID < from {
						errs <- fmt.Errorf("range from %d listed UID %d", from, m.UID)
						return
					}
				}
				// A caller may change what it got.
				for i := range whole {
					whole[i].Flags = append(whole[i].Flags, "$Mine")
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	lw.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, h := range hits {
		total += h
	}
	if total == 0 {
		t.Error("no listing was served from the cache")
	}
	for _, id := range []uint64{inbox, arch} {
		cached, disk, ok := snapshotListing(t, db, addr, id)
		if ok && !sameMessages(cached, disk) {
			t.Errorf("mailbox #%d at the end: cached %v, on disk %v", id, cached, disk)
		}
	}
}

// TestListCacheBound keeps the cache within its bound, least recently
// used first, and never caches a mailbox above a quarter of it.
func TestListCacheBound(t *testing.T) {
	db, err := Open(t.TempDir(), Options{GCInterval: -1, ListCache: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const addr = "bound@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	names := []string{"Sent", "Drafts", "Trash", "Junk", "Archive"}
	for _, n := range names {
		deliverT(t, db, addr, n, 10)
		if _, err := db.Messages(bg, addr, mboxID(t, db, addr, n), store.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if db.lists.n > 40 || db.lists.len() != 4 {
		t.Errorf("cache holds %d messages in %d mailboxes, want ≤ 40 in 4", db.lists.n, db.lists.len())
	}
	if _, _, ok := snapshotListing(t, db, addr, mboxID(t, db, addr, "Sent")); ok {
		t.Error("the least recently used mailbox is still cached")
	}
	deliverT(t, db, addr, "", 11)
	inbox := mboxID(t, db, addr, store.Inbox)
	if _, err := db.Messages(bg, addr, inbox, store.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := snapshotListing(t, db, addr, inbox); ok {
		t.Error("a mailbox above a quarter of the bound is cached")
	}
}

// TestListCacheOldSnapshot has a reader whose transaction began before a
// flag change list the mailbox after the writer brought the cache up to
// date: what it puts is of an older state, and no later listing may be
// served from it.
func TestListCacheOldSnapshot(t *testing.T) {
	const addr = "old@example.org"
	db, inbox := checkedInbox(t, addr, 5)
	for _, drop := range []bool{false, true} {
		if _, err := db.Messages(bg, addr, inbox, store.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		old := db.bdb.NewTransaction(false)
		res, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{fmt.Sprintf("$K%v", drop)}})
		if err != nil || len(res.Changed) != 1 {
			t.Fatalf("StoreFlags: %v, %v", res, err)
		}
		if drop {
			db.lists.mu.Lock()
			for _, e := range db.lists.entries {
				db.lists.removeLocked(e)
			}
			db.lists.mu.Unlock()
		}
		stale, err := db.messagesIn(bg, &tx{txn: old}, addr, inbox, store.ListOptions{})
		old.Discard()
		if err != nil {
			t.Fatal(err)
		}
		if stale[1].ModSeq == res.Changed[0].ModSeq {
			t.Fatal("the old snapshot saw the change")
		}
		got, err := db.Messages(bg, addr, inbox, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got[1].ModSeq != res.Changed[0].ModSeq || !slices.Equal(got[1].Flags, res.Changed[0].Flags) {
			t.Errorf("drop %v: after the change, listed %+v, want %+v", drop, got[1], res.Changed[0])
		}
	}
}

// TestIDCacheDeletedAccount has a reader whose snapshot predates an
// account's deletion read the account's ID after the deletion: it must
// not put the old ID back in the cache, where the re-created account's
// reads would find it.
func TestIDCacheDeletedAccount(t *testing.T) {
	const addr = "again@example.org"
	db, inbox := checkedInbox(t, addr, 0)
	if _, err := db.Messages(bg, addr, inbox, store.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	gen := db.ids.generation()
	old := db.bdb.NewTransaction(false)
	defer old.Discard()
	if _, err := db.DeleteAccount(bg, addr); err != nil {
		t.Fatal(err)
	}
	oldID, err := accountID(&tx{txn: old, ids: db.ids, idGen: gen}, addr)
	if err != nil {
		t.Fatal(err)
	}
	mkAccount(t, db, addr, []byte("secret"))
	deliverT(t, db, addr, "", 1)
	newInbox := mboxID(t, db, addr, store.Inbox)
	ms, err := db.Messages(bg, addr, newInbox, store.ListOptions{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("the re-created account's INBOX: %v, %v (its old account ID %d)", ms, err, oldID)
	}
	if _, err := db.Messages(bg, addr, inbox, store.ListOptions{}); err == nil {
		t.Error("the deleted account's INBOX is still listed")
	}
}
