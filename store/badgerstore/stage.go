package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// Large blobs. A blob written through StageBlob lives in pieces of at most
// stageChunk bytes under chunkKey(acct, id, seq), seq 0, 1, …, and its ID
// has stagedBit set, so it never meets an ID from the account's own blob
// counter (which counts from 1 and stays far below 2^63). Until a Deliver
// links it, a pending marker pendingKey(acct, id) exists: empty while the
// writer runs, the blob's size once Finish has written the last piece.
// Deliver checks and deletes the marker in the transaction that writes
// the message's meta, so a blob is linked at most once and a linked blob
// has no marker. Whatever has a marker when the store opens was never
// linked (the process stopped first) and is removed by Open; a writer
// that gives up removes its pieces itself (Discard).
//
// Pieces are written outside the writer goroutine, each in its own
// durable transaction, like purges: no other operation reads or writes
// those keys before Deliver, so nothing conflicts, except that each piece
// transaction reads the account record. That read makes a piece commit
// conflict with (and retry after) a concurrent DeleteAccount, so no piece
// can land after the account's keys were shredded: the purge that follows
// finds every piece.

// stageChunk is the most bytes of a large blob in one key, and what a
// BlobWriter holds in memory.
const stageChunk = 1 << 20

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

	buf      []byte // the piece being filled; nil until the first Write
	seq      uint32 // pieces written
	size     int64  // bytes written, buffered included
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
			w.buf = make([]byte, 0, stageChunk)
		}
		k := min(len(p), stageChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		w.size += int64(k)
		if len(w.buf) == stageChunk {
			if err := w.flush(false); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// flush writes the buffered piece (and, if final, the marker with the
// size) in one durable transaction that first checks the account still
// exists under the same ID.
func (w *blobWriter) flush(final bool) error {
	db := w.db
	if err := db.enter(context.Background()); err != nil {
		return err
	}
	defer db.leave()
	piece := w.buf
	err := db.updateDirect(func(txn *badger.Txn) error {
		if err := w.checkAccount(txn); err != nil {
			return err
		}
		if w.seq == 0 || final {
			var marker []byte
			if final {
				marker = putU64(uint64(w.size))
			}
			if err := txn.Set(pendingKey(w.acct, w.id), marker); err != nil {
				return err
			}
		}
		if len(piece) > 0 {
			return txn.Set(chunkKey(w.acct, w.id, w.seq), piece)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(piece) > 0 {
		w.seq++
	}
	// Committed values are in the value log now; the buffer is free.
	w.buf = w.buf[:0]
	return nil
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
	if err := w.flush(true); err != nil {
		w.err = err
		return store.StagedBlob{}, err
	}
	w.finished = true
	w.buf = nil
	return store.StagedBlob{Account: w.address, Size: w.size, Ref: w.id}, nil
}

func (w *blobWriter) Discard() error {
	w.buf = nil
	if w.err == nil {
		w.err = errors.New("store: staged blob: discarded")
	}
	db := w.db
	if err := db.enter(context.Background()); err != nil {
		if errors.Is(err, store.ErrClosed) {
			return nil // the next Open removes it
		}
		return err
	}
	defer db.leave()
	return db.dropStaged(w.acct, w.id)
}

// dropStaged removes a staged blob that is not linked: its marker and
// pieces. A linked blob (no marker) is left alone. The marker goes first,
// in a transaction that reads it, so a concurrent Deliver either linked
// the blob before (and it stays) or finds no marker (and fails).
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
		return txn.Delete(pendingKey(acct, id))
	})
	if err != nil || linked {
		// No marker: linked, or never written (no piece was flushed), or
		// dropped before. Pieces without a marker belong to a linked blob.
		return err
	}
	return db.deleteAll(chunkPrefix(acct, id), func(int) {})
}

// dropAllStaged removes every staged blob that was never linked: Open
// calls it, when no writer can be running.
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
		if err := db.deleteKeys([][]byte{k}); err != nil {
			return err
		}
	}
	if len(keys) > 0 {
		db.log.Info("badgerstore: removed staged blobs never delivered", "count", len(keys))
	}
	return nil
}

// linkStaged is Deliver's part for a staged blob: it checks the marker
// (the blob exists, belongs to acct, is finished and not linked yet),
// deletes it and returns the blob's size.
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
	return int64(size), nil
}

// readStaged returns the whole of a chunked blob (for Blob).
func readStaged(t *tx, acct, id uint64, size int64) ([]byte, error) {
	out := make([]byte, 0, size)
	for seq := uint32(0); int64(len(out)) < size; seq++ {
		v, err := t.get(chunkKey(acct, id, seq))
		if errors.Is(err, errNoKey) {
			return nil, corrupt("blob piece", errCorrupt)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	if int64(len(out)) != size {
		return nil, corrupt("blob size", errCorrupt)
	}
	return out, nil
}

// chunkReader reads a chunked blob one piece at a time, each in its own
// read transaction, so at most one piece is in memory.
type chunkReader struct {
	db        *DB
	acct, id  uint64
	size, off int64
	seq       uint32
	cur       []byte
	closed    bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("store: blob reader closed")
	}
	for len(r.cur) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		err := r.db.read(context.Background(), func(t *tx) error {
			v, err := t.get(chunkKey(r.acct, r.id, r.seq))
			if errors.Is(err, errNoKey) {
				return notFound("blob piece (message expunged?)")
			}
			r.cur = v
			return err
		})
		if err != nil {
			return 0, err
		}
		if len(r.cur) == 0 || r.off+int64(len(r.cur)) > r.size {
			return 0, corrupt("blob piece", errCorrupt)
		}
		r.seq++
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.off += int64(n)
	return n, nil
}

func (r *chunkReader) Close() error {
	r.closed = true
	r.cur = nil
	return nil
}

// deleteChunks deletes the pieces of chunked blobs (for purges).
func (db *DB) deleteChunks(acct uint64, ids []uint64) error {
	for _, id := range ids {
		if err := db.deleteAll(chunkPrefix(acct, id), func(int) {}); err != nil {
			return err
		}
	}
	return nil
}
