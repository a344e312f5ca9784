package badgerstore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// countPrefix counts the keys that start with prefix byte p.
func countPrefix(t *testing.T, db *DB, p byte) int {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{p}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStagedPiecesRemoved: pieces of staged blobs never delivered are
// removed by Discard, by Open after a crash, and with their message or
// account; a large blob is stored in pieces.
func TestStagedPiecesRemoved(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("secret"))
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*stageChunk+100)/16)

	w, err := db.StageBlob(bg, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	if n := countPrefix(t, db, pChunk); n != 3 {
		t.Fatalf("%d pieces written before Finish, want 3 full ones", n)
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if n, m := countPrefix(t, db, pChunk), countPrefix(t, db, pPending); n != 0 || m != 0 {
		t.Fatalf("after Discard: %d pieces, %d markers", n, m)
	}

	// Left behind by a "crash": one finished, one half written.
	w1, _ := db.StageBlob(bg, "a@example.org")
	w1.Write(big)
	if _, err := w1.Finish(bg); err != nil {
		t.Fatal(err)
	}
	w2, _ := db.StageBlob(bg, "a@example.org")
	w2.Write(big[:stageChunk+1])
	// And one delivered, which must survive.
	w3, _ := db.StageBlob(bg, "a@example.org")
	w3.Write(big)
	sb, err := w3.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Deliver(bg, []store.Delivery{{Account: "a@example.org", Staged: &sb}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	if n, m := countPrefix(t, db, pChunk), countPrefix(t, db, pPending); n != 4 || m != 0 {
		t.Fatalf("after reopen: %d pieces (want the delivered blob's 4), %d markers", n, m)
	}
	inbox := mboxID(t, db, "a@example.org", store.Inbox)
	if b, err := db.Blob(bg, "a@example.org", inbox, 1); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("delivered staged blob after reopen: %v", err)
	}
	if _, err := db.Expunge(bg, "a@example.org", inbox, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if n, o := countPrefix(t, db, pChunk), countPrefix(t, db, pOrphans); n != 0 || o != 0 {
		t.Fatalf("after expunge: %d pieces, %d orphan lists", n, o)
	}
	// Deleting the account takes a writer's pieces with it.
	w4, _ := db.StageBlob(bg, "a@example.org")
	w4.Write(big)
	if _, err := db.DeleteAccount(bg, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := w4.Write(big); err == nil {
		if _, err := w4.Finish(bg); err == nil {
			t.Fatal("a writer finished after its account was deleted")
		}
	}
	if n, m := countPrefix(t, db, pChunk), countPrefix(t, db, pPending); n != 0 || m != 0 {
		t.Fatalf("after DeleteAccount: %d pieces, %d markers", n, m)
	}
}

// TestDefaultQuota: Options.DefaultQuota is the limit of accounts whose
// setting is store.QuotaDefault, and of no other.
func TestDefaultQuota(t *testing.T) {
	db, err := Open(t.TempDir(), Options{GCInterval: -1, DefaultQuota: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range []string{"d@example.org", "none@example.org", "own@example.org"} {
		mkAccount(t, db, a, []byte("s"))
	}
	if err := db.SetQuota(bg, "none@example.org", store.QuotaNone); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(bg, "own@example.org", 5000); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]int64{"d@example.org": 1000, "none@example.org": 0, "own@example.org": 5000} {
		p, err := db.PublicAccount(bg, addr)
		if err != nil || p.QuotaLimit != want {
			t.Errorf("%s: QuotaLimit %d, want %d (%v)", addr, p.QuotaLimit, want, err)
		}
		_, err = db.Deliver(bg, []store.Delivery{{Account: addr, Blob: make([]byte, 2000)}})
		if over := errors.Is(err, store.ErrOverQuota); over != (want == 1000) {
			t.Errorf("%s: 2000 bytes: %v", addr, err)
		}
	}
}
