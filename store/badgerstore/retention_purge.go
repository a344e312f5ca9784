package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// migrateRetention gives every message of a store written before
// retention existed a pending retention record (arrival: its internal
// date, the best the store knows) and every account its address row, in
// chunks, once. It runs in Open, with the writer running.
func (db *DB) migrateRetention() error {
	done := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		ok, err := (&tx{txn: txn}).has(counterKey(counterRetention))
		done = ok
		return err
	})
	if err != nil {
		return internal("open: retention migration", err)
	}
	if done {
		return nil
	}
	ctx := context.Background()
	// Account address rows.
	var accts [][2][]byte
	err = db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan([]byte{pAccount}, nil, false, func(k, v []byte) (bool, error) {
			id, err := decodeAccountID(v)
			if err != nil {
				return false, corrupt("account", err)
			}
			accts = append(accts, [2][]byte{acctAddrKey(id), append([]byte(nil), k[1:]...)})
			return true, nil
		})
	})
	if err != nil {
		return internal("open: retention migration", err)
	}
	for len(accts) > 0 {
		n := min(len(accts), 5000)
		chunk := accts[:n]
		accts = accts[n:]
		if err := db.write(ctx, false, func(t *tx) error {
			for _, kv := range chunk {
				if err := t.set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("badgerstore: open: retention migration: %w", err)
		}
	}
	// A pending record for every message that has none.
	var start []byte
	for {
		var keys, vals [][]byte
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan([]byte{pMeta}, start, false, func(k, v []byte) (bool, error) {
				keys = append(keys, append([]byte(nil), k...))
				vals = append(vals, append([]byte(nil), v...))
				return len(keys) < 2000, nil
			})
		})
		if err != nil {
			return internal("open: retention migration", err)
		}
		if len(keys) == 0 {
			break
		}
		start = append(append([]byte(nil), keys[len(keys)-1]...), 0)
		err = db.write(ctx, false, func(t *tx) error {
			for i, k := range keys {
				if len(k) != 21 {
					continue
				}
				acct := binary.BigEndian.Uint64(k[1:9])
				md, err := decodeMeta(vals[i], nil)
				if err != nil {
					return corrupt("message", err)
				}
				if ok, err := t.has(retentionKey(acct, md.Blob)); err != nil || ok {
					if err != nil {
						return err
					}
					continue
				}
				rec := retentionRec{Mbox: binary.BigEndian.Uint64(k[9:17]), UID: uidOf(k), Size: md.SealedSize,
					Ret: store.Retention{Arrival: md.Date, Pending: true}, Ver: 1}
				if err := saveRetention(t, acct, md.Blob, nil, &rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("badgerstore: open: retention migration: %w", err)
		}
	}
	if err := db.write(ctx, false, func(t *tx) error { return t.set(counterKey(counterRetention), putU64(1)) }); err != nil {
		return fmt.Errorf("badgerstore: open: retention migration: %w", err)
	}
	return nil
}

// purgeDiscardRatio makes Purge's value-log GC rewrite every file that
// holds any deleted value (badger refuses 0).
const purgeDiscardRatio = 1e-9

// Purge implements store.Purger: it makes deletions real. Badger never
// overwrites in place: a deleted value stays in its value-log file until
// GC rewrites that file, and a deleted key's older versions stay in LSM
// tables until compaction merges them with the deletion. Purge
//
//  1. reopens badger (under closeMu, so no call runs meanwhile): the
//     memtables are flushed, and the value-log file being written is
//     closed, so that GC may rewrite it (it never touches the newest);
//  2. drops a scratch key with DropPrefix, which compacts level 0 into
//     level 1, merging every deletion with what it deleted (badger blocks
//     writes for it; closeMu keeps our writer idle);
//  3. flattens the LSM tree into one level (writes continue);
//  4. runs value-log GC until no file with deleted values is left.
//
// Before step 3 it unlinks the files of destroyed large blobs that are
// still waiting (blobfiles.go), after the end of a running backup.
//
// Calls wait during steps 1 and 2 (usually well under a second). A Purge
// with no deletion since the last one returns at once.
func (db *DB) Purge(ctx context.Context) (store.PurgeReport, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return store.PurgeReport{}, err
	}
	if db.deletions.Load() == 0 {
		return store.PurgeReport{Duration: time.Since(start)}, nil
	}
	// Lock order: closeMu, then gcMu.
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return store.PurgeReport{}, store.ErrClosed
	}
	db.gcMu.Lock()
	db.deletions.Store(0)
	err := db.reopenLocked()
	if err == nil {
		err = db.flushLocked()
	}
	db.gcMu.Unlock()
	db.closeMu.Unlock()
	if err != nil {
		db.deletions.Add(1)
		return store.PurgeReport{}, err
	}
	if err := db.enter(ctx); err != nil {
		return store.PurgeReport{}, err
	}
	defer db.leave()
	// Destroyed large blobs' files, unless the orphan loop was first
	// (after a running backup, if any).
	if err := db.processUnlinks(); err != nil {
		return store.PurgeReport{}, err
	}
	if err := db.bdb.Flatten(2); err != nil {
		return store.PurgeReport{}, internal("purge: flatten", err)
	}
	rep := store.PurgeReport{}
	for rep.Rewritten < 1<<16 {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		err := db.gcOnce(purgeDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) {
			break
		}
		if err != nil {
			if !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
				err = internal("purge: value-log gc", err)
			}
			return rep, err
		}
		rep.Rewritten++
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// reopenLocked closes and reopens badger. The caller holds closeMu for
// writing and gcMu. If badger cannot be reopened the store is closed.
func (db *DB) reopenLocked() error {
	db.snaps.clear()
	if err := db.bdb.Close(); err != nil {
		db.log.Error("badgerstore: purge: close", "err", err)
	}
	db.durable.close()
	bdb, err := badger.Open(db.bopt)
	var durable *syncer
	if err == nil {
		if durable, err = newSyncer(db.bopt.Dir); err != nil {
			bdb.Close()
		}
	}
	if err != nil {
		db.closed = true
		close(db.stopWriter)
		<-db.writerDone
		close(db.stopGC) // the GC and orphan loops end
		return fmt.Errorf("badgerstore: purge: reopen (the store is closed now): %v", err)
	}
	db.bdb, db.durable = bdb, durable
	return nil
}

// flushLocked writes a scratch key and drops it: DropPrefix flushes the
// memtables and compacts level 0, dropping what deletions shadow. The
// caller holds closeMu for writing.
func (db *DB) flushLocked() error {
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte{pScratch}, []byte{1}) }); err != nil {
		return internal("purge: scratch", err)
	}
	if err := db.bdb.DropPrefix([]byte{pScratch}); err != nil {
		return internal("purge: flush", err)
	}
	return nil
}
