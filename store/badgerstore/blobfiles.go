package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// Large blobs live in files. A blob written through StageBlob (a large
// message, a large queue body) is written with ordinary write calls to
// its own file, blobs/<shard>/<id> under the store's directory, mode
// 0600, named by its staged blob ID (16 hex digits; the shard is the
// ID's low byte, two hex digits). Badger keeps only records about it:
//
//   - p <acct> <blob>: the pending marker (stage.go), written durably
//     before the file is created, so a file never exists without a
//     record naming it. Open removes the files of the markers it finds.
//   - K <acct> <blob> -> size: the file record of a linked blob, written
//     by the transaction that links it (Deliver, UpdateQueue, a copy) and
//     deleted by the one that destroys it. The file is complete and
//     fsync'd, with its directory entry, before that transaction
//     commits.
//   - U <blob> -> acct: a file to unlink, written by the transaction that
//     destroys the blob (or drops a marker). The orphan loop unlinks the
//     files after the commit, syncs their directories and deletes the
//     entries; Open finishes what a crash left. So the store never walks
//     its blob directory: every file it may have to remove is named by
//     one of these records.
//
// A file is never written again once linked: a copy (CopyMessages) is a
// hard link under a new ID, with its own marker until its transaction
// commits. Badger's value log is a shared memory map, so every byte it
// holds counts in the process's resident memory until the kernel
// reclaims it; files written and read with write and read calls keep the
// bytes of large messages in the page cache instead, outside the
// process.
//
// A backup (backup.go) streams each file after its K record. While one
// runs, unlinks wait (blobsMu), so that every file its snapshot names is
// still there.

// Key prefixes of the blob files (keys.go has the others). Persisted.
const (
	pBlobFile = 'K' // K acct blob:8   -> size of a linked blob file
	pUnlink   = 'U' // U blob:8        -> acct: a blob file to unlink
)

// blobDirName is the blob files' directory under the store's.
const blobDirName = "blobs"

func blobFileKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pBlobFile, acct), id)
}

func unlinkKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pUnlink}, id)
}

// blobDir is the directory of the blob files of the store in dir.
func blobDir(dir string) string { return filepath.Join(dir, blobDirName) }

// blobPath is the file of blob id, in the blob directory root.
func blobPath(root string, id uint64) string {
	return filepath.Join(root, fmt.Sprintf("%02x", id&0xff), fmt.Sprintf("%016x", id))
}

// blobPath is the file of blob id of this store.
func (db *DB) blobPath(id uint64) string { return blobPath(db.blobRoot, id) }

// syncDir fsyncs a directory, so that the entries created or removed in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// shardDir makes sure the shard directory of id exists, durably, and
// returns it.
func shardDir(root string, id uint64) (string, error) {
	dir := filepath.Dir(blobPath(root, id))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Dir(root)); err != nil {
		return "", err
	}
	return dir, nil
}

// createBlobFile creates the file of blob id, which must not exist.
func createBlobFile(root string, id uint64) (*os.File, error) {
	if _, err := shardDir(root, id); err != nil {
		return nil, err
	}
	return os.OpenFile(blobPath(root, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// fileBlobError maps a failure to read a blob file that its record
// names: a missing file is corruption (a record without its bytes), or a
// message expunged meanwhile for a reader; anything else is internal.
func fileBlobError(what string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return corrupt(what, errCorrupt)
	}
	return fmt.Errorf("badgerstore: %s: %v", what, err)
}

// readBlobFile returns the whole of a blob file of size bytes (for Blob).
func (db *DB) readBlobFile(id uint64, size int64) ([]byte, error) {
	f, err := os.Open(db.blobPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFound("message blob (expunged?)")
		}
		return nil, fileBlobError("blob file", err)
	}
	defer f.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(f, out); err != nil {
		return nil, corrupt("blob file size", errCorrupt)
	}
	return out, nil
}

// openBlobFile opens a blob file of size bytes for reading.
func (db *DB) openBlobFile(id uint64, size int64) (io.ReadCloser, error) {
	f, err := os.Open(db.blobPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFound("message blob (expunged?)")
		}
		return nil, fileBlobError("blob file", err)
	}
	return &fileReader{f: f, left: size}, nil
}

// fileReader reads exactly the size a blob's record gives, and fails if
// the file holds fewer bytes.
type fileReader struct {
	f    *os.File
	left int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		if r.left > 0 {
			return n, corrupt("blob file size", errCorrupt)
		}
		err = nil
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

// linkFile records, in t, that blob id of acct is a linked file of size
// bytes.
func linkFile(t *tx, acct, id uint64, size int64) error {
	return t.set(blobFileKey(acct, id), putU64(uint64(size)))
}

// destroyFile removes, in t, the record of a linked blob file and
// queues the file for unlinking after the commit (the caller kicks the
// orphan loop, db.orphaned).
func destroyFile(t *tx, acct, id uint64) error {
	if err := t.del(blobFileKey(acct, id)); err != nil {
		return err
	}
	return t.set(unlinkKey(id), putU64(acct))
}

// unlinkNow removes the blob files waiting to be unlinked before it
// returns, unless a backup runs: then it leaves them to the orphan loop,
// which waits for the backup's end. The caller holds closeMu for
// reading.
func (db *DB) unlinkNow() {
	if !db.blobsMu.TryLock() {
		db.orphaned()
		return
	}
	err := db.processUnlinksLocked()
	db.blobsMu.Unlock()
	if err != nil {
		db.log.Warn("badgerstore: remove destroyed blob files; the next Open finishes", "err", err)
	}
}

// unlinkBatch is the most files one pass of processUnlinks removes
// before it deletes their entries.
const unlinkBatch = 1000

// processUnlinks removes the files the unlink entries name, syncs their
// directories and deletes the entries, until none is left. It waits
// while a backup runs (blobsMu). The caller holds closeMu for reading
// (or Open runs it).
func (db *DB) processUnlinks() error {
	db.blobsMu.Lock()
	defer db.blobsMu.Unlock()
	return db.processUnlinksLocked()
}

// processUnlinksLocked is processUnlinks; the caller holds blobsMu.
func (db *DB) processUnlinksLocked() error {
	for {
		var keys [][]byte
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan([]byte{pUnlink}, nil, true, func(k, _ []byte) (bool, error) {
				keys = append(keys, append([]byte(nil), k...))
				return len(keys) < unlinkBatch, nil
			})
		})
		if err != nil {
			return internal("scan blob files to unlink", err)
		}
		if len(keys) == 0 {
			return nil
		}
		ids := make([]uint64, 0, len(keys))
		for _, k := range keys {
			if len(k) == 9 {
				ids = append(ids, binary.BigEndian.Uint64(k[1:]))
			}
		}
		if err := db.removeBlobFiles(ids); err != nil {
			return err
		}
		if err := db.deleteKeys(keys); err != nil {
			return err
		}
	}
}

// removeBlobFiles unlinks the files of ids (those already gone are
// skipped) and syncs the directories they were in.
func (db *DB) removeBlobFiles(ids []uint64) error {
	dirs := map[string]bool{}
	for _, id := range ids {
		p := db.blobPath(id)
		err := os.Remove(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("badgerstore: remove blob file: %v", err)
		}
		dirs[filepath.Dir(p)] = true
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("badgerstore: sync blob directory: %v", err)
		}
	}
	return nil
}

// releaseRows turns every row under prefix (all pending markers, or an
// account's file records) into an unlink entry, in durable transactions outside the writer. It is used
// for rows no live operation reaches (Open, an account's purge); the
// caller then runs or kicks processUnlinks. It returns how many rows it
// released.
func (db *DB) releaseRows(prefix []byte) (int, error) {
	total := 0
	for {
		var keys [][]byte
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan(prefix, nil, true, func(k, _ []byte) (bool, error) {
				keys = append(keys, append([]byte(nil), k...))
				return len(keys) < unlinkBatch, nil
			})
		})
		if err != nil {
			return total, internal("scan blob records", err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		err = db.updateDirect(func(txn *badger.Txn) error {
			for _, k := range keys {
				if len(k) == 17 {
					acct, id := binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17])
					if isStaged(id) {
						if err := txn.Set(unlinkKey(id), putU64(acct)); err != nil {
							return err
						}
					}
				}
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(keys)
	}
}

// migrateChunks moves the large blobs that older versions kept in pieces
// (k <acct> <blob> <seq>) into files: for each, the file is written and
// synced, then one transaction writes its file record and deletes the
// pieces. A crash in between leaves the pieces, and the next Open writes
// the file again. Open runs it after the unlinked markers and the
// destroyed blobs' pieces are gone, so every piece left belongs to a
// linked blob (a message, a vaulted message or a queue body).
func (db *DB) migrateChunks() error {
	type blob struct{ acct, id uint64 }
	var blobs []blob
	err := db.bdb.View(func(txn *badger.Txn) error {
		last := blob{}
		return (&tx{txn: txn}).scan([]byte{pChunk}, nil, true, func(k, _ []byte) (bool, error) {
			if len(k) != 21 {
				return true, nil
			}
			b := blob{binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17])}
			if b != last {
				blobs = append(blobs, b)
				last = b
			}
			return true, nil
		})
	})
	if err != nil {
		return internal("scan blob pieces", err)
	}
	for _, b := range blobs {
		if err := db.migrateChunked(b.acct, b.id); err != nil {
			return fmt.Errorf("badgerstore: open: move a large blob to a file: %w", err)
		}
	}
	if len(blobs) > 0 {
		db.log.Info("badgerstore: moved large blobs from pieces to files", "count", len(blobs))
	}
	return nil
}

// migrateChunked moves one blob's pieces to its file.
func (db *DB) migrateChunked(acct, id uint64) error {
	if _, err := shardDir(db.blobRoot, id); err != nil {
		return err
	}
	p := db.blobPath(id)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var size int64
	var pieces [][]byte
	err = db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan(chunkPrefix(acct, id), nil, false, func(k, v []byte) (bool, error) {
			pieces = append(pieces, append([]byte(nil), k...))
			n, err := f.Write(v)
			size += int64(n)
			return err == nil, err
		})
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		return err
	}
	return db.updateDirect(func(txn *badger.Txn) error {
		if err := txn.Set(blobFileKey(acct, id), putU64(uint64(size))); err != nil {
			return err
		}
		for _, k := range pieces {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// fileCopies are the files CopyMessages linked ahead of its transaction:
// for each large blob among the messages to copy, a hard link under a
// new staged ID, with a pending marker (holding the size) until the
// transaction links it.
type fileCopies struct {
	acct uint64
	ids  map[uint64]uint64 // source blob ID -> new blob ID
}

// of returns the new ID linked for source blob src, or 0.
func (c *fileCopies) of(src uint64) uint64 {
	if c == nil {
		return 0
	}
	return c.ids[src]
}

// prepareCopies links a new file for each large blob among messages uids
// of mailbox src: markers first (one durable transaction that reads the
// account record, so it conflicts with a DeleteAccount), then the links,
// then their directories synced. It returns nil if there is none.
func (db *DB) prepareCopies(ctx context.Context, address string, src uint64, uids []uint32) (*fileCopies, error) {
	type large struct {
		id   uint64
		size int64
	}
	var (
		acct   uint64
		blobs  []large
		sizeOf = map[uint64]int64{}
	)
	err := db.read(ctx, func(t *tx) error {
		blobs = nil
		var err error
		acct, _, err = resolveID(t, address, src)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			md, err := loadMeta(t, acct, src, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if isStaged(md.Blob) {
				blobs = append(blobs, large{md.Blob, md.SealedSize})
			}
		}
		return nil
	})
	if err != nil || len(blobs) == 0 {
		return nil, err
	}
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	defer db.leave()
	c := &fileCopies{acct: acct, ids: map[uint64]uint64{}}
	for _, b := range blobs {
		id, err := db.nextStagedID()
		if err != nil {
			return nil, err
		}
		c.ids[b.id] = id
		sizeOf[id] = b.size
	}
	w := blobWriter{db: db, address: address, acct: acct}
	err = db.updateDirect(func(txn *badger.Txn) error {
		if err := w.checkAccount(txn); err != nil {
			return err
		}
		for _, id := range c.ids {
			if err := txn.Set(pendingKey(acct, id), putU64(uint64(sizeOf[id]))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.hook("copy marked")
	dirs := map[string]bool{}
	for from, id := range c.ids {
		dir, err := shardDir(db.blobRoot, id)
		if err == nil {
			err = os.Link(db.blobPath(from), db.blobPath(id))
		}
		if errors.Is(err, os.ErrNotExist) {
			// Destroyed meanwhile: the copy will not find its message.
			delete(c.ids, from)
			db.dropStaged(acct, id)
			continue
		}
		if err != nil {
			db.dropCopies(c)
			return nil, fmt.Errorf("badgerstore: copy a large blob: %v", err)
		}
		dirs[dir] = true
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil {
			db.dropCopies(c)
			return nil, fmt.Errorf("badgerstore: copy a large blob: %v", err)
		}
	}
	return c, nil
}

// linkCopy is CopyMessages' part for a file prepareCopies linked: the
// marker goes, the file record comes.
func linkCopy(t *tx, acct, id uint64, size int64) error {
	if err := t.del(pendingKey(acct, id)); err != nil {
		return err
	}
	return linkFile(t, acct, id, size)
}

// endCopies removes the files of c that the copy's transaction did not
// link (it failed, or their message was gone); dropStaged leaves the
// linked ones alone.
func (db *DB) endCopies(c *fileCopies) {
	if c == nil {
		return
	}
	if err := db.enter(context.Background()); err != nil {
		return // closing: Open removes what is left
	}
	defer db.leave()
	db.dropCopies(c)
}

// dropCopies is endCopies; the caller holds closeMu for reading.
func (db *DB) dropCopies(c *fileCopies) {
	for _, id := range c.ids {
		if err := db.dropStaged(c.acct, id); err != nil {
			db.log.Warn("badgerstore: remove an unused copy of a blob file; the next Open does", "err", err)
		}
	}
}
