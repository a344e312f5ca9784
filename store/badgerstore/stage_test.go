package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// stageDeliver stages b for addr and delivers it into mailbox mbox (0:
// INBOX), returning its UID.
func stageDeliver(t *testing.T, db *DB, addr string, mbox uint64, b []byte) uint32 {
	t.Helper()
	w, err := db.StageBlob(bg, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	sb, err := w.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Deliver(bg, []store.Delivery{{Account: addr, MailboxID: mbox, Staged: &sb}})
	if err != nil {
		t.Fatal(err)
	}
	return got[0].UID
}

// TestBlobFileCopyIsALink: a copy of a large message shares the file's
// bytes (a hard link, not a second copy); the bytes stay until the last
// message naming them is destroyed.
func TestBlobFileCopyIsALink(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	const addr = "c@example.org"
	mkAccount(t, db, addr, []byte("s"))
	big := bytes.Repeat([]byte("large blob "), 300<<10)
	inbox, archive := mboxID(t, db, addr, store.Inbox), mboxID(t, db, addr, "Archive")
	uid := stageDeliver(t, db, addr, 0, big)
	res, err := db.CopyMessages(bg, addr, inbox, archive, []uint32{uid})
	if err != nil || len(res.Pairs) != 1 {
		t.Fatalf("copy: %+v, %v", res, err)
	}
	files := blobFiles(t, dir)
	if len(files) != 2 || countPrefix(t, db, pPending) != 0 || countPrefix(t, db, pBlobFile) != 2 {
		t.Fatalf("after copy: files %v, %d markers", files, countPrefix(t, db, pPending))
	}
	a, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Fatal("the copy's file is not a link to the original's")
	}
	if _, err := db.Expunge(bg, addr, inbox, []uint32{uid}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Blob(bg, addr, archive, res.Pairs[0].Dst); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("copy after the original was expunged: %v", err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d files after expunging the original, want 1", n)
	}
	if _, err := db.Expunge(bg, addr, archive, []uint32{res.Pairs[0].Dst}); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Fatalf("%d files after expunging both", n)
	}
	// A failed copy (over quota) leaves no file behind.
	uid = stageDeliver(t, db, addr, 0, big)
	if err := db.SetQuota(bg, addr, int64(len(big))+1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CopyMessages(bg, addr, inbox, archive, []uint32{uid}); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("copy over quota: %v", err)
	}
	if n, m := len(blobFiles(t, dir)), countPrefix(t, db, pPending); n != 1 || m != 0 {
		t.Fatalf("after a failed copy: %d files, %d markers", n, m)
	}
}

// TestBlobFileUnlinkAfterCrash: the transaction that destroys a large
// blob leaves an unlink entry; while a backup runs the file stays, and
// after it the file goes. A crash after that transaction but before the
// unlink leaves the entry and the file, and the next Open removes the
// file.
func TestBlobFileUnlinkAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	const addr = "u@example.org"
	mkAccount(t, db, addr, []byte("s"))
	inbox := mboxID(t, db, addr, store.Inbox)
	uid := stageDeliver(t, db, addr, 0, bytes.Repeat([]byte("x"), 2<<20))
	db.blobsMu.RLock() // as a running backup does
	if _, err := db.Expunge(bg, addr, inbox, []uint32{uid}); err != nil {
		t.Fatal(err)
	}
	if n, u := len(blobFiles(t, dir)), countPrefix(t, db, pUnlink); n != 1 || u != 1 {
		t.Fatalf("during a backup: %d files, %d unlink entries; want the file kept", n, u)
	}
	db.blobsMu.RUnlock()
	if err := db.processUnlinks(); err != nil {
		t.Fatal(err)
	}
	if n, u := len(blobFiles(t, dir)), countPrefix(t, db, pUnlink); n != 0 || u != 0 {
		t.Fatalf("after the backup: %d files, %d unlink entries", n, u)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The state a crash leaves: an unlink entry whose file is still there.
	const id = stagedBit | 12345
	if _, err := shardDir(blobDir(dir), id); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobPath(blobDir(dir), id), []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	bdb, err := openBadger(dir, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(unlinkKey(id), putU64(1)) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	if n, u := len(blobFiles(t, dir)), countPrefix(t, db, pUnlink); n != 0 || u != 0 {
		t.Fatalf("after reopen: %d files, %d unlink entries", n, u)
	}
}

// TestChunksMovedToFiles: a store written by an older version, with a
// large blob in pieces, has it in a file after Open, byte for byte, and
// no pieces.
func TestChunksMovedToFiles(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	const addr = "m@example.org"
	mkAccount(t, db, addr, []byte("s"))
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*stageChunk+777)/16)
	uid := stageDeliver(t, db, addr, 0, big)
	// Rewrite it as an older version stored it: pieces, no file record.
	acct := acctIDOf(t, db, addr)
	var id uint64
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan(acctKey(pBlobFile, acct), nil, true, func(k, _ []byte) (bool, error) {
			id = binary.BigEndian.Uint64(k[9:17])
			return false, nil
		})
	})
	if err != nil || id == 0 {
		t.Fatalf("file record: %v", err)
	}
	err = db.badgerUpdate(func(txn *badger.Txn) error {
		for seq := 0; seq*stageChunk < len(big); seq++ {
			piece := big[seq*stageChunk : min(len(big), (seq+1)*stageChunk)]
			if err := txn.Set(chunkKey(acct, id, uint32(seq)), piece); err != nil {
				return err
			}
		}
		return txn.Delete(blobFileKey(acct, id))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(db.blobPath(id)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	if n, k := countPrefix(t, db, pChunk), countPrefix(t, db, pBlobFile); n != 0 || k != 1 {
		t.Fatalf("after Open: %d pieces, %d file records", n, k)
	}
	if got, err := db.Blob(bg, addr, mboxID(t, db, addr, store.Inbox), uid); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("moved blob: %d bytes, %v", len(got), err)
	}
}

// TestLargeInlineBlobIsAFile: a blob above fileThreshold handed to
// Deliver in memory is written to a file too, never into badger; a
// Deliver that fails leaves no file.
func TestLargeInlineBlobIsAFile(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	const addr = "i@example.org"
	mkAccount(t, db, addr, []byte("s"))
	big := bytes.Repeat([]byte("inline but large "), (fileThreshold+100)/17)
	small := bytes.Repeat([]byte("small "), 1000)
	got, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: big}, {Account: addr, Blob: small}})
	if err != nil {
		t.Fatal(err)
	}
	if n, k := len(blobFiles(t, dir)), countPrefix(t, db, pBlobFile); n != 1 || k != 1 {
		t.Fatalf("%d files, %d file records; want the large blob's", n, k)
	}
	if _, found := rawKeys(t, db, acctIDOf(t, db, addr), big[:64<<10]); found {
		t.Fatal("badger holds the large blob's bytes")
	}
	inbox := mboxID(t, db, addr, store.Inbox)
	for i, want := range [][]byte{big, small} {
		if b, err := db.Blob(bg, addr, inbox, got[i].UID); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("blob %d: %d bytes, %v", i, len(b), err)
		}
	}
	_, err = db.Deliver(bg, []store.Delivery{{Account: addr, Blob: big}, {Account: addr, MailboxID: 1 << 40, Blob: small}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deliver to a missing mailbox: %v", err)
	}
	if n, m := len(blobFiles(t, dir)), countPrefix(t, db, pPending); n != 1 || m != 0 {
		t.Fatalf("after a failed Deliver: %d files, %d markers", n, m)
	}
}

// TestDeleteAccountWhileStaging: a blob writer whose pending marker is
// durable, but whose file is not created yet, when its account is
// deleted; Deliver's own file for a large blob handed over in memory,
// and a copy of a message the vault keeps, stopped at the same point.
// Whenever the process stops after that, the next Open removes every
// blob file that no file record names; without a crash, the writer's
// Discard, Deliver and the copy's end remove them.
func TestDeleteAccountWhileStaging(t *testing.T) {
	const addr = "a@example.org"
	// world is one case's store in dir, with addr, which the store
	// deletes when it reaches point (DB.stageHook).
	type world struct {
		dir  string
		db   *DB
		acct uint64
	}
	newWorld := func(t *testing.T, point string) *world {
		w := &world{dir: t.TempDir()}
		w.db = openDB(t, w.dir)
		t.Cleanup(func() { w.db.Close() })
		mkAccount(t, w.db, addr, []byte("s"))
		w.acct = acctIDOf(t, w.db, addr)
		var once sync.Once
		w.db.stageHook = func(p string) {
			if p != point {
				return
			}
			once.Do(func() {
				if _, err := w.db.DeleteAccount(bg, addr); err != nil {
					t.Errorf("DeleteAccount: %v", err)
				}
			})
		}
		return w
	}
	// crash stops the process: whatever was at work reaches no further
	// step, and the store opens again.
	crash := func(t *testing.T, w *world) {
		if err := w.db.Close(); err != nil {
			t.Fatal(err)
		}
		w.db = openDB(t, w.dir)
	}
	// check wants files blob files and file records left, and no marker
	// or unlink entry.
	check := func(t *testing.T, w *world, files int) {
		t.Helper()
		n, k, p, u := len(blobFiles(t, w.dir)), countPrefix(t, w.db, pBlobFile), countPrefix(t, w.db, pPending), countPrefix(t, w.db, pUnlink)
		if n != files || k != files || p != 0 || u != 0 {
			t.Fatalf("%d blob files, %d file records, %d markers, %d unlink entries; want %d, %d, 0, 0 (a file no record names is never removed)",
				n, k, p, u, files, files)
		}
	}
	big := randBytes(2*stageBuffer + 5) // the first flush comes within Write
	for _, crashed := range []bool{true, false} {
		t.Run(fmt.Sprintf("writer/crash=%v", crashed), func(t *testing.T) {
			w := newWorld(t, "marked")
			bw, err := w.db.StageBlob(bg, addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bw.Write(big); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if n := len(blobFiles(t, w.dir)); n != 1 {
				t.Fatalf("setup: %d blob files, want the writer's", n)
			}
			if crashed {
				crash(t, w) // before Finish and Discard
			} else {
				if _, err := bw.Finish(bg); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Finish after the account was deleted: %v, want ErrNotFound", err)
				}
				if err := bw.Discard(); err != nil {
					t.Fatal(err)
				}
			}
			check(t, w, 0)
			if keys, _ := rawKeys(t, w.db, w.acct, nil); len(keys) != 0 {
				t.Fatalf("rows left of the deleted account: %q", keys)
			}
		})
		t.Run(fmt.Sprintf("memory/crash=%v", crashed), func(t *testing.T) {
			w := newWorld(t, "marked")
			large := randBytes(fileThreshold + 1)
			if crashed {
				bw, err := w.db.StageBlob(bg, addr)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := bw.(*blobWriter).writeAll(bg, large); err != nil {
					t.Fatalf("writeAll: %v", err)
				}
				if n := len(blobFiles(t, w.dir)); n != 1 {
					t.Fatalf("setup: %d blob files, want Deliver's", n)
				}
				crash(t, w) // before Deliver's transaction
			} else if _, err := w.db.Deliver(bg, []store.Delivery{{Account: addr, Blob: large}}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Deliver to the account deleted meanwhile: %v, want ErrNotFound", err)
			}
			check(t, w, 0)
			if keys, _ := rawKeys(t, w.db, w.acct, nil); len(keys) != 0 {
				t.Fatalf("rows left of the deleted account: %q", keys)
			}
		})
		t.Run(fmt.Sprintf("copy/crash=%v", crashed), func(t *testing.T) {
			w := newWorld(t, "copy marked")
			if err := w.db.PutAssignment(bg, store.Assignment{Preset: "P", Scope: "org"}); err != nil {
				t.Fatal(err)
			}
			gen, _ := w.db.PolicyGen(bg)
			bw, err := w.db.StageBlob(bg, addr)
			if err != nil {
				t.Fatal(err)
			}
			bw.Write(big)
			sb, err := bw.Finish(bg)
			if err != nil {
				t.Fatal(err)
			}
			keep := &store.Retention{Class: "default", KeepUntil: time.Now().Add(time.Hour), Gen: gen}
			d, err := w.db.Deliver(bg, []store.Delivery{{Account: addr, Staged: &sb, Retention: keep}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := w.db.prepareCopies(bg, addr, mboxID(t, w.db, addr, store.Inbox), []uint32{d[0].UID})
			if err != nil || c == nil {
				t.Fatalf("prepareCopies: %v, %v", c, err)
			}
			if n := len(blobFiles(t, w.dir)); n != 2 {
				t.Fatalf("setup: %d blob files, want the vaulted one and the copy's", n)
			}
			if crashed {
				crash(t, w) // before the copy's transaction
			} else {
				w.db.endCopies(c)
			}
			check(t, w, 1) // the vaulted message's
		})
	}
}
