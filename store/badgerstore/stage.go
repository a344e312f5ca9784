package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// Staged blobs. A blob written through StageBlob goes to its own file
// (blobfiles.go); its ID has stagedBit set, so it never meets an ID from
// the account's own blob counter (which counts from 1 and stays far below
// 2^63). Until a Deliver links it, a pending marker pendingKey(acct, id)
// exists: written durably before the file is created, empty while the
// writer runs, the blob's size once Finish has synced the file and its
// directory. Deliver checks and deletes the marker in the transaction
// that writes the message's meta and the blob's file record, so a blob
// is linked at most once and a linked blob has no marker. Whatever has a
// marker when the store opens was never linked (the process stopped
// first) and its file is removed by Open; a writer that gives up removes
// its file itself (Discard).
//
// The markers are written outside the writer goroutine, each in its own
// durable transaction: no other operation reads or writes those keys
// before Deliver, so nothing conflicts, except that each marker
// transaction reads the account record. That read makes it conflict with
// (and retry after) a concurrent DeleteAccount, so no marker can land
// after the account's keys were shredded.
//
// A marker is removed only by its holder (Deliver linking it, Discard,
// the end of a copy) or by Open, never by the purge of a deleted
// account: a writer whose marker is durable may create its file after
// the purge has run, and only the marker names that file. Had the purge
// removed the marker, a crash before the writer's Discard would leave a
// file nothing names, never removed. So the purge leaves the markers;
// the holder's next marker transaction, or its Deliver, fails for want
// of the account, and its Discard removes the file and then the marker.
// Until then the file is sealed mail whose key is shredded.
//
// Older versions kept large blobs in pieces of at most stageChunk bytes
// under chunkKey(acct, id, seq); Open moves them to files
// (migrateChunks).

// stageChunk is the most bytes of a large blob in one key, in the
// pieces of older versions.
const stageChunk = 1 << 20

// stageBuffer is what a BlobWriter holds in memory before it writes to
// its file.
const stageBuffer = 256 << 10

// stagedBit marks blob IDs of staged (chunked) blobs.
const stagedBit = 1 << 63

// stagedIDBlock is how many staged blob IDs one durable counter update
// reserves.
const stagedIDBlock = 4096

// counterStaged is the global counter of staged blob IDs (pCounter).
// Persisted.
const counterStaged = "staged"

func chunkPrefix(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pChunk, acct), id)
}

func chunkKey(acct, id uint64, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(chunkPrefix(acct, id), seq)
}

func pendingKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pPending, acct), id)
}

// hook calls the test hook at point, if one is set (DB.stageHook).
func (db *DB) hook(point string) {
	if db.stageHook != nil {
		db.stageHook(point)
	}
}

// isStaged reports whether a blob ID names a chunked blob.
func isStaged(id uint64) bool { return id&stagedBit != 0 }

// stagedIDs hands out staged blob IDs, reserving them in blocks with one
// durable counter update per block: an ID is never handed out twice,
// also not after a crash (the rest of a block is skipped).
type stagedIDs struct {
	mu        sync.Mutex
	next, end uint64 // guarded by mu; IDs next … end-1 are reserved
}

func (db *DB) nextStagedID() (uint64, error) {
	s := &db.staged
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next < s.end {
		id := s.next
		s.next++
		return id | stagedBit, nil
	}
	var start uint64
	err := db.updateDirect(func(txn *badger.Txn) error {
		start = 0
		item, err := txn.Get(counterKey(counterStaged))
		switch {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if start, err = decodeU64(v); err != nil {
				return corrupt("staged counter", err)
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return txn.Set(counterKey(counterStaged), putU64(start+stagedIDBlock))
	})
	if err != nil {
		return 0, err
	}
	s.next, s.end = start+2, start+stagedIDBlock+1 // IDs from 1
	return (start + 1) | stagedBit, nil
}

// updateDirect runs fn in its own durable transaction outside the writer
// goroutine, retrying conflicts; it commits while no value-log GC runs
// (gcMu).
func (db *DB) updateDirect(fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := db.badgerUpdate(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			continue
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, errCorrupt) {
				return err
			}
			return internal("staged blob", err)
		}
		return nil
	}
}

// StageBlob implements store.Store.
func (db *DB) StageBlob(ctx context.Context, address string) (store.BlobWriter, error) {
	var acct uint64
	err := db.read(ctx, func(t *tx) error {
		var err error
		acct, err = accountID(t, address)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	id, err := db.nextStagedID()
	db.leave()
	if err != nil {
		return nil, err
	}
	return &blobWriter{db: db, address: address, acct: acct, id: id}, nil
}

// blobWriter implements store.BlobWriter.
type blobWriter struct {
	db      *DB    // immutable
	address string // immutable; "" for a queue body
	acct    uint64 // immutable; queueAcct for a queue body
	id      uint64 // immutable; stagedBit set

	buf      []byte   // what is not written to the file yet; nil until the first Write
	f        *os.File // the blob's file; nil until the first flush and after Finish
	marked   bool     // the pending marker is written
	size     int64    // bytes written, buffered included
	finished bool
	err      error // sticky
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.finished {
		return 0, errors.New("store: staged blob: write after Finish")
	}
	n := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, stageBuffer)
		}
		k := min(len(p), stageBuffer-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		w.size += int64(k)
		if len(w.buf) == stageBuffer {
			if err := w.flush(); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// flush writes the buffer to the blob's file, first writing the pending
// marker and creating the file if this is the first flush.
func (w *blobWriter) flush() error {
	if w.f == nil {
		if err := w.mark(nil); err != nil {
			return err
		}
		w.marked = true
		w.db.hook("marked")
		f, err := createBlobFile(w.db.blobRoot, w.id)
		if err != nil {
			return fmt.Errorf("badgerstore: staged blob: %v", err)
		}
		w.f = f
	}
	if len(w.buf) > 0 {
		if _, err := w.f.Write(w.buf); err != nil {
			return fmt.Errorf("badgerstore: staged blob: %v", err)
		}
	}
	w.buf = w.buf[:0]
	return nil
}

// mark writes the pending marker (value: nil while writing, the size
// once finished) in one durable transaction that first checks the
// account still exists under the same ID. A second marker is written
// only over the writer's own first one: if it is gone meanwhile, so is
// the blob.
func (w *blobWriter) mark(value []byte) error {
	db := w.db
	if err := db.enter(context.Background()); err != nil {
		return err
	}
	defer db.leave()
	return db.updateDirect(func(txn *badger.Txn) error {
		if err := w.checkAccount(txn); err != nil {
			return err
		}
		if w.marked {
			if _, err := txn.Get(pendingKey(w.acct, w.id)); errors.Is(err, badger.ErrKeyNotFound) {
				return notFound("staged blob")
			} else if err != nil {
				return err
			}
		}
		return txn.Set(pendingKey(w.acct, w.id), value)
	})
}

// checkAccount makes txn read the account record and fails if the
// account is gone or was re-created. A queue body (acct 0) belongs to no
// account.
func (w *blobWriter) checkAccount(txn *badger.Txn) error {
	if w.acct == queueAcct {
		return nil
	}
	item, err := txn.Get(accountKey(w.address))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return notFound("account " + w.address)
	}
	if err != nil {
		return err
	}
	var id uint64
	err = item.Value(func(v []byte) error {
		var derr error
		id, derr = decodeAccountID(v)
		return derr
	})
	if err != nil {
		return err
	}
	if id != w.acct {
		return notFound("account " + w.address)
	}
	return nil
}

// Finish writes the rest, syncs the file and its directory, and then
// writes the marker with the size: the blob is complete on disk before
// any Deliver can link it.
func (w *blobWriter) Finish(ctx context.Context) (store.StagedBlob, error) {
	if w.err != nil {
		return store.StagedBlob{}, w.err
	}
	if w.finished {
		return store.StagedBlob{}, errors.New("store: staged blob: Finish twice")
	}
	if w.size == 0 {
		return store.StagedBlob{}, fmt.Errorf("store: staged blob for %q: empty", w.address)
	}
	if err := ctx.Err(); err != nil {
		return store.StagedBlob{}, err
	}
	fail := func(err error) (store.StagedBlob, error) {
		w.err = err
		return store.StagedBlob{}, err
	}
	if err := w.flush(); err != nil {
		return fail(err)
	}
	if err := w.syncFile(); err != nil {
		return fail(err)
	}
	if err := w.mark(putU64(uint64(w.size))); err != nil {
		return fail(err)
	}
	w.finished = true
	w.buf = nil
	return store.StagedBlob{Account: w.address, Size: w.size, Ref: w.id}, nil
}

// syncFile syncs and closes the blob's file and syncs its directory.
func (w *blobWriter) syncFile() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err == nil {
		err = syncDir(filepath.Dir(w.db.blobPath(w.id)))
	}
	if err != nil {
		return fmt.Errorf("badgerstore: staged blob: %v", err)
	}
	return nil
}

// writeAll is Write and Finish for a blob that is whole in memory (a
// large blob handed to Deliver), with one marker transaction instead of
// two: the marker holds the size from the start, before the file is
// written. That claims a complete file too early, which is safe only
// because nobody but the caller knows the blob's ID and the caller links
// it only after writeAll returned; a crash before that leaves the marker,
// and Open removes the file. w must be fresh from StageBlob.
func (w *blobWriter) writeAll(ctx context.Context, b []byte) (store.StagedBlob, error) {
	fail := func(err error) (store.StagedBlob, error) {
		w.err = err
		return store.StagedBlob{}, err
	}
	if len(b) == 0 {
		return fail(fmt.Errorf("store: staged blob for %q: empty", w.address))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := w.mark(putU64(uint64(len(b)))); err != nil {
		return fail(err)
	}
	w.marked = true
	w.db.hook("marked")
	f, err := createBlobFile(w.db.blobRoot, w.id)
	if err != nil {
		return fail(fmt.Errorf("badgerstore: staged blob: %v", err))
	}
	w.f = f
	if _, err := f.Write(b); err != nil {
		return fail(fmt.Errorf("badgerstore: staged blob: %v", err))
	}
	if err := w.syncFile(); err != nil {
		return fail(err)
	}
	w.size = int64(len(b))
	w.finished = true
	return store.StagedBlob{Account: w.address, Size: w.size, Ref: w.id}, nil
}

// Discard removes the blob unless a Deliver linked it. Before Finish
// succeeded, nothing can have linked it: the writer removes its file and
// then its marker (a crash in between leaves the marker, and Open the
// rest). After Finish, dropStaged decides by the marker.
func (w *blobWriter) Discard() error {
	w.buf = nil
	if w.err == nil && !w.finished {
		w.err = errors.New("store: staged blob: discarded")
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	db := w.db
	if err := db.enter(context.Background()); err != nil {
		if errors.Is(err, store.ErrClosed) {
			return nil // the next Open removes it
		}
		return err
	}
	defer db.leave()
	if w.finished {
		return db.dropStaged(w.acct, w.id)
	}
	if !w.marked {
		return nil
	}
	w.marked = false
	if err := db.removeBlobFiles([]uint64{w.id}); err != nil {
		return err
	}
	return db.deleteKeys([][]byte{pendingKey(w.acct, w.id)})
}

// dropStaged removes a finished staged blob that is not linked: its
// marker and file. A linked blob (no marker) is left alone. The marker
// goes first, in a transaction that reads it and queues the file for
// unlinking, so a concurrent Deliver either linked the blob before (and
// it stays) or finds no marker (and fails).
func (db *DB) dropStaged(acct, id uint64) error {
	linked := false
	err := db.updateDirect(func(txn *badger.Txn) error {
		_, err := txn.Get(pendingKey(acct, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			linked = true
			return nil
		}
		if err != nil {
			return err
		}
		linked = false
		if err := txn.Delete(pendingKey(acct, id)); err != nil {
			return err
		}
		return txn.Set(unlinkKey(id), putU64(acct))
	})
	if err != nil || linked {
		// No marker: linked, or dropped before.
		return err
	}
	// The file was never linked, so no backup's snapshot names it: it
	// goes now, without waiting for the orphan loop.
	if err := db.removeBlobFiles([]uint64{id}); err != nil {
		return err
	}
	return db.deleteKeys([][]byte{unlinkKey(id)})
}

// dropAllStaged removes every staged blob that was never linked: Open
// calls it, when no writer can be running. The markers become unlink
// entries (processUnlinks removes the files); pieces that older versions
// wrote go at once.
func (db *DB) dropAllStaged() error {
	var keys [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan([]byte{pPending}, nil, true, func(k, _ []byte) (bool, error) {
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		})
	})
	if err != nil {
		return internal("scan staged blobs", err)
	}
	for _, k := range keys {
		if len(k) != 17 {
			continue
		}
		acct, id := binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17])
		if err := db.deleteAll(chunkPrefix(acct, id), func(int) {}); err != nil {
			return err
		}
	}
	if _, err := db.releaseRows([]byte{pPending}); err != nil {
		return err
	}
	if len(keys) > 0 {
		db.log.Info("badgerstore: removed staged blobs never delivered", "count", len(keys))
	}
	return nil
}

// linkStaged is Deliver's part for a staged blob: it checks the marker
// (the blob exists, belongs to acct, is finished and not linked yet),
// replaces it with the blob's file record and returns the blob's size.
func linkStaged(t *tx, acct uint64, sb *store.StagedBlob) (int64, error) {
	if !isStaged(sb.Ref) {
		return 0, notFound("staged blob")
	}
	v, err := t.get(pendingKey(acct, sb.Ref))
	if errors.Is(err, errNoKey) {
		return 0, notFound("staged blob")
	}
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, errors.New("store: staged blob not finished")
	}
	size, err := decodeU64(v)
	if err != nil {
		return 0, corrupt("staged blob marker", err)
	}
	if err := t.del(pendingKey(acct, sb.Ref)); err != nil {
		return 0, err
	}
	if err := linkFile(t, acct, sb.Ref, int64(size)); err != nil {
		return 0, err
	}
	return int64(size), nil
}

// deleteChunks deletes the pieces of large blobs that older versions
// wrote (for orphan lists they left).
func (db *DB) deleteChunks(acct uint64, ids []uint64) error {
	for _, id := range ids {
		if err := db.deleteAll(chunkPrefix(acct, id), func(int) {}); err != nil {
			return err
		}
	}
	return nil
}
