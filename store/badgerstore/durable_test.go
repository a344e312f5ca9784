package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/sealmail/sealmail/store"
)

// logFiles returns the names of the memtable logs and value-log files in
// dir.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".mem") || strings.HasSuffix(n, ".vlog") {
			names = append(names, n)
		}
	}
	return names
}

// notOnDisk returns, for each memtable log and value-log file in dir that
// holds pages the kernel has not yet written to the disk (dirty, or
// under writeback), how many it holds. It asks the page cache
// (cachestat, Linux 6.5 and later).
func notOnDisk(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out := make(map[string]uint64)
	for _, n := range logFiles(t, dir) {
		f, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a flushed memtable's log, deleted meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		var cs unix.Cachestat_t
		err = unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &cs, 0)
		f.Close()
		if err != nil {
			t.Fatalf("cachestat %s: %v (this test needs Linux 6.5 or later)", n, err)
		}
		if d := cs.Dirty + cs.Writeback; d > 0 {
			out[n] = d
		}
	}
	return out
}

// TestCommitsReachTheDisk: when a write returns, every page it wrote to
// badger's logs is on the disk — the value log after a delivery, the
// memtable's log after a flag change, and, when a commit fills the
// memtable and badger starts a new log, the old log's last pages too.
// badger runs with SyncWrites off and the store syncs (durable.go); a
// sync that missed a file leaves its pages dirty here.
func TestCommitsReachTheDisk(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	check := func(what string) {
		t.Helper()
		if d := notOnDisk(t, dir); len(d) > 0 {
			t.Fatalf("after %s, pages not on the disk: %v", what, d)
		}
	}
	const addr = "sync@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	check("creating an account")
	deliverT(t, db, addr, "", 3) // 2000-byte blobs: the value log
	check("a delivery")
	inbox := mboxID(t, db, addr, store.Inbox)
	vlogSyncs := db.durable.vlogSyncs.Load()
	if _, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
		t.Fatal(err)
	}
	check("a flag change")
	if n := db.durable.vlogSyncs.Load(); n != vlogSyncs {
		t.Errorf("a flag change synced the value log (%d syncs, was %d)", n, vlogSyncs)
	}
	walSyncs := db.durable.walSyncs.Load()
	if _, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
		t.Fatal(err)
	}
	if n := db.durable.walSyncs.Load(); n != walSyncs {
		t.Errorf("setting a flag already set synced the memtable log (%d syncs, was %d)", n, walSyncs)
	}

	// Until badger has started two new memtable logs: writes that are
	// not synced (as another committer's are between its commit and its
	// sync), each followed by a write of the store's, whose sync must
	// cover them even when one of the two writes filled the memtable and
	// badger went on in a new log.
	startWAL := db.durable.wal.fid
	val := bytes.Repeat([]byte{'v'}, vlogMin-100)
	for round := 0; db.durable.wal.fid < startWAL+2; round++ {
		if round == 60 {
			t.Fatalf("no new memtable log after %d rounds (fid %d)", round, db.durable.wal.fid)
		}
		// badger's own Update: neither synced nor counted.
		err := db.bdb.Update(func(txn *badger.Txn) error {
			for i := range 1000 {
				if err := txn.Set([]byte(fmt.Sprintf("%c%06d%04d", pScratch, round, i)), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.update(bg, func(tx *tx) error { return tx.set([]byte{pScratch}, []byte{byte(round)}) })
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("round %d of small writes", round))
	}
	// Deliveries of blobs for the value log until badger has started a
	// new value-log file: it does so right after the write that filled
	// the last one, before the store syncs.
	startVlog := db.durable.vlog.fid
	blob := bytes.Repeat([]byte{'m'}, fileThreshold-4096)
	for n := 0; db.durable.vlog.fid < startVlog+1; n++ {
		if n == 200 {
			t.Fatalf("no new value-log file after %d deliveries", n)
		}
		if _, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: blob}}); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("delivery %d of a large blob", n))
	}
	if _, err := db.StoreFlags(bg, addr, inbox, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
		t.Fatal(err)
	}
	check("a flag change after the new logs")
}

// TestGCSyncsBeforeDeleting: value-log GC rewrites the values it keeps
// without a sync, so the file they came from must still exist when the
// store syncs them (DB.gcOnce holds an iterator, which makes badger put
// the deletion off), and after GC nothing is left unsynced.
func TestGCSyncsBeforeDeleting(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer func() { db.Close() }()
	// Ten versions of 30 keys with values for the value log: the last
	// version of each is live, the others are garbage once compacted.
	key := func(i int) []byte { return []byte(fmt.Sprintf("%ck%02d", pScratch, i)) }
	val := func(v, i int) []byte { return bytes.Repeat([]byte{byte('a' + v), byte(i)}, 2<<10) }
	for v := range 10 {
		err := db.update(bg, func(tx *tx) error {
			for i := range 30 {
				if err := tx.set(key(i), val(v, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Each version in a table of its own, and a new value-log file
		// (GC leaves the newest alone).
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openDB(t, dir)
	}
	// Compaction counts the old versions as garbage.
	if err := db.bdb.Flatten(1); err != nil {
		t.Fatal(err)
	}
	before := logFiles(t, dir)
	var gone []string // value-log files missing when the sync began
	db.durable.beforeSyncAll = func() {
		now := logFiles(t, dir)
		for _, n := range before {
			if strings.HasSuffix(n, ".vlog") && !slices.Contains(now, n) {
				gone = append(gone, n)
			}
		}
	}
	// badger's Close truncates the last value-log file after its sync,
	// which leaves the zeroed tail of a page dirty: sync that first.
	for _, n := range before {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := notOnDisk(t, dir); len(d) > 0 {
		t.Fatalf("before GC, pages not on the disk: %v", d)
	}
	if err := db.gcOnce(0.5); err != nil {
		t.Fatalf("gcOnce: %v (GC had nothing to rewrite?)", err)
	}
	if len(gone) > 0 {
		t.Errorf("value-log files deleted before the rewritten values were synced: %v", gone)
	}
	var deleted []string
	after := logFiles(t, dir)
	for _, n := range before {
		if strings.HasSuffix(n, ".vlog") && !slices.Contains(after, n) {
			deleted = append(deleted, n)
		}
	}
	if len(deleted) == 0 {
		t.Fatalf("GC deleted no value-log file: before %v, after %v", before, after)
	}
	if d := notOnDisk(t, dir); len(d) > 0 {
		t.Fatalf("after GC, pages not on the disk: %v", d)
	}
	// The live versions read back.
	err := db.read(bg, func(tx *tx) error {
		for i := range 30 {
			v, err := tx.get(key(i))
			if err != nil || !bytes.Equal(v, val(9, i)) {
				return fmt.Errorf("key %d after GC: %d bytes, %v", i, len(v), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncFailureRefusesWrites: once a sync has failed, the store takes
// no write (a later fsync may succeed with the failed pages dropped, and
// a write acknowledged then could rest on one lost), reads go on, and
// reopening the store ends it.
func TestSyncFailureRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	const addr = "eio@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	deliverT(t, db, addr, "", 1)
	inbox := mboxID(t, db, addr, store.Inbox)
	seen := store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}

	db.durable.datasync = func(*os.File) error { return syscall.EIO }
	if _, err := db.StoreFlags(bg, addr, inbox, seen); err == nil || !strings.Contains(err.Error(), syscall.EIO.Error()) {
		t.Fatalf("flag change while the disk fails: %v, want %v", err, syscall.EIO)
	}
	// The disk works again; the store must not believe it.
	db.durable.datasync = datasync
	if _, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: []byte("after the failure")}}); err == nil || !strings.Contains(err.Error(), errSyncFailed.Error()) {
		t.Fatalf("delivery after a failed sync: %v, want %q", err, errSyncFailed)
	}
	msgs, err := db.Messages(bg, addr, inbox, store.ListOptions{})
	if err != nil {
		t.Fatalf("read after a failed sync: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages after the refused delivery, want 1", len(msgs))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	defer db.Close()
	if _, err := db.Deliver(bg, []store.Delivery{{Account: addr, Blob: []byte("after reopening")}}); err != nil {
		t.Fatalf("delivery after reopening: %v", err)
	}
}
