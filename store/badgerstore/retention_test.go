package badgerstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// filesContaining returns the files under dir that contain any needle.
func filesContaining(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				out = append(out, filepath.Base(p))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestPurgeLeavesNoBytes: after DestroyMessages, Expunge and
// DeleteAccount, Purge leaves no byte of what they destroyed in any file
// of the directory: not a large blob (value log), not a small blob or
// summary (LSM tree), whether written just now (memtable, the value-log
// file being written) or long ago (tables, older value-log files). Live
// data stays readable, and deliveries running during the Purge succeed.
func TestPurgeLeavesNoBytes(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer func() { db.Close() }()
	const addr, other = "a@example.org", "b@example.org"
	mkAccount(t, db, addr, []byte("wrapped"))
	mkAccount(t, db, other, []byte("wrapped"))
	if err := db.PutAssignment(bg, store.Assignment{Preset: "P", Scope: "org"}); err != nil {
		t.Fatal(err)
	}
	gen, _ := db.PolicyGen(bg)
	inbox := mboxID(t, db, addr, store.Inbox)
	// Old data: delivered, then pushed into tables and an older
	// value-log file by a reopen.
	oldBig, oldSmall := randBytes(20000), randBytes(300)
	live := randBytes(20000)
	due := &store.Retention{Class: "spam", DeleteAfter: time.Now().Add(-time.Hour), Gen: gen}
	if _, err := db.Deliver(bg, []store.Delivery{
		{Account: addr, Blob: oldBig, Retention: due},
		{Account: addr, Blob: oldSmall, Retention: due},
		{Account: other, Blob: live, Retention: &store.Retention{Gen: gen}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	// New data: still in the memtable and the newest value-log file.
	newBig, newSmall, expunged, deleted := randBytes(20000), randBytes(300), randBytes(5000), randBytes(5000)
	summary := randBytes(200)
	d, err := db.Deliver(bg, []store.Delivery{
		{Account: addr, Blob: newBig, Retention: due},
		{Account: addr, Blob: newSmall, Retention: due},
		{Account: addr, Blob: expunged, Retention: &store.Retention{Gen: gen}},
		{Account: "b@example.org", MailboxID: 0, Blob: deleted, Retention: &store.Retention{Gen: gen}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetSummaries(bg, addr, inbox, []store.SummaryUpdate{{UID: d[0].UID, Summary: summary, SessionKey: []byte("k")}}); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{oldBig[9000:9032], oldSmall[100:132], newBig[9000:9032], newSmall[100:132], expunged[1000:1032], deleted[1000:1032], summary[50:82]}
	if got := filesContaining(t, dir, needles...); len(got) == 0 {
		t.Fatal("setup: canaries not on disk")
	}
	due0, err := db.DueMessages(bg, time.Now(), store.DueMessage{}, 0)
	if err != nil || len(due0) != 4 {
		t.Fatalf("DueMessages = %+v, %v", due0, err)
	}
	var refs []store.MessageRef
	for _, x := range due0 {
		refs = append(refs, store.MessageRef{Owner: x.Owner, ID: x.ID})
	}
	if ds, err := db.DestroyMessages(bg, refs, store.DestroyOptions{Due: true}); err != nil || len(ds) != 4 {
		t.Fatalf("DestroyMessages = %+v, %v", ds, err)
	}
	if _, err := db.Expunge(bg, addr, inbox, []uint32{d[2].UID}); err != nil {
		t.Fatal(err)
	}
	binbox := mboxID(t, db, other, store.Inbox)
	if _, err := db.Expunge(bg, other, binbox, []uint32{d[3].UID}); err != nil {
		t.Fatal(err)
	}
	// Deliveries keep succeeding while Purge runs.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var delivered, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Deliver(bg, []store.Delivery{{Account: other, Blob: []byte("during purge"), Retention: &store.Retention{Gen: gen}}}); err != nil {
				failed.Add(1)
				t.Errorf("Deliver during Purge: %v", err)
				return
			}
			delivered.Add(1)
		}
	}()
	rep, err := db.Purge(bg)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := filesContaining(t, dir, needles...); len(got) != 0 {
		t.Errorf("after Purge (%+v), destroyed bytes are still in %v", rep, got)
	}
	b, err := db.Blob(bg, other, binbox, 1)
	if err != nil || !bytes.Equal(b, live) {
		t.Errorf("live blob after Purge: %v", err)
	}
	if delivered.Load() == 0 {
		t.Errorf("no delivery during Purge")
	}
	// Nothing deleted since: the next Purge has nothing to do.
	rep, err = db.Purge(bg)
	if err != nil || rep.Rewritten != 0 {
		t.Errorf("second Purge = %+v, %v", rep, err)
	}
}

// TestRetentionMigration: a store written before retention gets a pending
// record for each message (its internal date as arrival) and the address
// rows, once.
func TestRetentionMigration(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	const addr = "a@example.org"
	mkAccount(t, db, addr, []byte("w"))
	deliverT(t, db, addr, "", 3)
	deliverT(t, db, addr, "Archive", 2)
	// Make it look old: no records, no address rows, no marker.
	err := db.badgerUpdate(func(txn *badger.Txn) error {
		for _, p := range []byte{pRetention, pRecompute, pDue, pAcctAddr} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
			var keys [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return txn.Delete(counterKey(counterRetention))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	rs, err := db.Retained(bg, store.Owner{Address: addr}, 0, 0)
	if err != nil || len(rs) != 5 {
		t.Fatalf("Retained after migration = %d, %v", len(rs), err)
	}
	for _, r := range rs {
		if !r.Retention.Pending || r.Retention.Arrival.IsZero() || r.UID == 0 || r.MailboxID == 0 {
			t.Errorf("migrated record %+v", r)
		}
	}
	p, err := db.PendingRetention(bg, 0)
	if err != nil || len(p) != 5 || p[0].Owner.Address != addr || p[0].Owner.Former != 0 {
		t.Errorf("PendingRetention = %+v, %v", p, err)
	}
}

// TestPurgeClosedStore: Purge on a closed store fails cleanly.
func TestPurgeClosedStore(t *testing.T) {
	db := openDB(t, t.TempDir())
	db.Close()
	if _, err := db.Purge(bg); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Purge after Close: %v", err)
	}
}

// TestStagedRetention: a large (staged) blob under retention is vaulted
// whole by Expunge (its file stays), and its file goes when the sweeper
// destroys it.
func TestStagedRetention(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	const addr = "a@example.org"
	mkAccount(t, db, addr, []byte("w"))
	if err := db.PutAssignment(bg, store.Assignment{Preset: "P", Scope: "org"}); err != nil {
		t.Fatal(err)
	}
	gen, _ := db.PolicyGen(bg)
	big := randBytes(3*stageChunk + 7)
	w, err := db.StageBlob(bg, addr)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	sb, err := w.Finish(bg)
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Second)
	d, err := db.Deliver(bg, []store.Delivery{{Account: addr, Staged: &sb, Retention: &store.Retention{Class: "default", KeepUntil: soon, Gen: gen}}})
	if err != nil {
		t.Fatal(err)
	}
	inbox := mboxID(t, db, addr, store.Inbox)
	if _, v, err := db.ExpungeReport(bg, addr, inbox, []uint32{d[0].UID}); err != nil || len(v) != 1 {
		t.Fatalf("ExpungeReport: vaulted %v, %v", v, err)
	}
	if n, k := len(blobFiles(t, dir)), countPrefix(t, db, pBlobFile); n != 1 || k != 1 {
		t.Fatalf("vaulted staged blob: %d files, %d file records", n, k)
	}
	vs, _ := db.Vault(bg, store.Owner{Address: addr})
	after := soon.Add(time.Second)
	ds, err := db.DestroyMessages(bg, []store.MessageRef{{Owner: store.Owner{Address: addr}, ID: vs[0].ID}}, store.DestroyOptions{Now: after, Due: true})
	if err != nil || len(ds) != 1 {
		t.Fatalf("DestroyMessages = %+v, %v", ds, err)
	}
	if k := countPrefix(t, db, pBlobFile); k != 0 {
		t.Fatalf("after destroying: %d file records", k)
	}
	// The orphan loop unlinks the file after the commit.
	for deadline := time.Now().Add(10 * time.Second); len(blobFiles(t, dir))+countPrefix(t, db, pUnlink) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after destroying: %d files, %d unlink entries", len(blobFiles(t, dir)), countPrefix(t, db, pUnlink))
		}
	}
}
