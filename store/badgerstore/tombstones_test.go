package badgerstore

import (
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// tombRows counts the tombstone rows (and state row) of a mailbox.
func tombRows(t *testing.T, db *DB, acct, mbox uint64) int {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, p := range [][]byte{tombPrefix(acct, mbox), tombStateKey(acct, mbox)} {
			o := badger.DefaultIteratorOptions
			o.Prefix = p
			it := txn.NewIterator(o)
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTombstonesGoWithMailbox: deleting a mailbox, or the account, leaves
// none of its tombstones.
func TestTombstonesGoWithMailbox(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	const addr = "t@example.org"
	mkAccount(t, db, addr, []byte("k"))
	deliverT(t, db, addr, "Archive", 4)
	deliverT(t, db, addr, "", 4)
	acct, archive, inbox := acctIDOf(t, db, addr), mboxID(t, db, addr, "Archive"), mboxID(t, db, addr, store.Inbox)
	for _, mb := range []uint64{archive, inbox} {
		if _, err := db.Expunge(bg, addr, mb, []uint32{1, 3}); err != nil {
			t.Fatal(err)
		}
		if n := tombRows(t, db, acct, mb); n != 3 {
			t.Fatalf("mailbox %d: %d tombstone rows, want 2 and the state", mb, n)
		}
	}
	if err := db.DeleteMailbox(bg, addr, archive); err != nil {
		t.Fatal(err)
	}
	if n := tombRows(t, db, acct, archive); n != 0 {
		t.Errorf("deleted mailbox kept %d tombstone rows", n)
	}
	if n := tombRows(t, db, acct, inbox); n != 3 {
		t.Errorf("another mailbox lost its tombstones: %d rows", n)
	}
	if _, err := db.DeleteAccount(bg, addr); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rawKeys(t, db, acct, nil); len(keys) != 0 {
		t.Errorf("deleted account left keys %q", keys)
	}
}

// TestTombstonesOlderMailbox: a mailbox from before the store kept
// tombstones has its floor at its HIGHESTMODSEQ of then, so a resync from
// earlier is answered as incomplete, never wrongly as complete; one
// created since has floor 0.
func TestTombstonesOlderMailbox(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	const addr = "old@example.org"
	mkAccount(t, db, addr, []byte("k"))
	deliverT(t, db, addr, "", 5)
	// As a store written before tombstones: no counter.
	if err := db.badgerUpdate(func(txn *badger.Txn) error { return txn.Delete(counterKey(counterTomb)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	inbox := mboxID(t, db, addr, store.Inbox)
	m0, err := db.MailboxByID(bg, addr, inbox)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Vanished(bg, addr, inbox, 1)
	if err != nil || v.Complete || v.Floor != m0.HighestModSeq {
		t.Errorf("older mailbox before any removal: %+v, %v; want floor %d", v, err, m0.HighestModSeq)
	}
	if _, err := db.Expunge(bg, addr, inbox, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Vanished(bg, addr, inbox, m0.HighestModSeq); err != nil || !v.Complete || len(v.UIDs) != 1 || v.UIDs[0] != 2 {
		t.Errorf("older mailbox from its floor: %+v, %v", v, err)
	}
	if v, err := db.Vanished(bg, addr, inbox, 1); err != nil || v.Complete {
		t.Errorf("older mailbox from below its floor: %+v, %v", v, err)
	}
	mb, err := db.CreateMailbox(bg, addr, store.MailboxSpec{Name: "New"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db.Vanished(bg, addr, mb.ID, 0); err != nil || !v.Complete || v.Floor != 0 {
		t.Errorf("new mailbox: %+v, %v", v, err)
	}
}
