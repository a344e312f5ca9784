package badgerstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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

// blobFiles lists the blob files of the store in dir.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(blobDir(dir), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStagedFilesRemoved: a large blob is a file, mode 0600, and badger
// holds none of its bytes; the files of staged blobs never delivered are
// removed by Discard, by Open after a crash, and with their message or
// account.
func TestStagedFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("secret"))
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*stageChunk+100)/16)

	w, err := db.StageBlob(bg, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d files while writing, want 1", n)
	}
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if n, m := len(blobFiles(t, dir)), countPrefix(t, db, pPending); n != 0 || m != 0 {
		t.Fatalf("after Discard: %d files, %d markers", n, m)
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
	files := blobFiles(t, dir)
	if len(files) != 1 || countPrefix(t, db, pPending) != 0 || countPrefix(t, db, pBlobFile) != 1 || countPrefix(t, db, pUnlink) != 0 {
		t.Fatalf("after reopen: files %v (want the delivered blob's), %d markers", files, countPrefix(t, db, pPending))
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(big)) {
		t.Fatalf("blob file: %v, %v", fi, err)
	}
	if got, err := os.ReadFile(files[0]); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("blob file content: %v", err)
	}
	if keys, found := rawKeys(t, db, acctIDOf(t, db, "a@example.org"), big[:4096]); found {
		t.Fatalf("badger holds the large blob's bytes: %q", keys)
	}
	inbox := mboxID(t, db, "a@example.org", store.Inbox)
	if b, err := db.Blob(bg, "a@example.org", inbox, 1); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("delivered staged blob after reopen: %v", err)
	}
	if _, err := db.Expunge(bg, "a@example.org", inbox, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if n, r := len(blobFiles(t, dir)), countPrefix(t, db, pBlobFile)+countPrefix(t, db, pUnlink); n != 0 || r != 0 {
		t.Fatalf("after expunge: %d files, %d records", n, r)
	}
	// Deleting the account takes a writer's file with it.
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
	w4.Discard()
	if n, m := len(blobFiles(t, dir)), countPrefix(t, db, pPending); n != 0 || m != 0 {
		t.Fatalf("after DeleteAccount: %d files, %d markers", n, m)
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
