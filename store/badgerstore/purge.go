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

// DeleteAccount implements store.Store. It crypto-shreds: the first
// transaction, durable before anything else happens, removes the account
// record (with the wrapped private key) and every unlock slot, and leaves
// a purge marker. From then on the sealed mail is unreadable and
// unreachable; later transactions remove the mailboxes, messages and
// counters, and Open finishes the job if the process stops half-way. The
// value-log GC is then triggered; see doc.go for what stays in badger's
// files until compaction.
func (db *DB) DeleteAccount(ctx context.Context, address string) (store.DeleteReport, error) {
	if err := db.enter(ctx); err != nil {
		return store.DeleteReport{}, err
	}
	defer db.leave()
	rep, acct, err := db.shred(ctx, address)
	if err != nil {
		return store.DeleteReport{}, err
	}
	// Rows to remove, roughly: meta, blob and summary per message, name
	// and record per mailbox, the slots gone already.
	total := int64(3*rep.Messages + 2*rep.Mailboxes + 1)
	report := func(rows int) { store.ReportProgress(ctx, min(int64(rows), total), total) }
	if err := db.purgeAccount(acct, address, report); err != nil {
		// The keys are gone already; the rest is removed at the next Open.
		db.log.Warn("badgerstore: purge deleted account", "account", address, "err", err)
	}
	store.ReportProgress(ctx, total, total)
	db.triggerGC()
	return rep, nil
}

// shred is DeleteAccount's first, durable transaction: slots, account
// record (with the wrapped key) gone, purge marker set. It returns the
// report and the account's ID.
func (db *DB) shred(ctx context.Context, address string) (store.DeleteReport, uint64, error) {
	var (
		rep  store.DeleteReport
		acct uint64
	)
	err := db.write(ctx, false, func(t *tx) error {
		rep = store.DeleteReport{}
		var err error
		if acct, err = accountID(t, address); err != nil {
			return err
		}
		var slots [][]byte
		err = t.scan(acctKey(pSlot, acct), nil, true, func(k, _ []byte) (bool, error) {
			slots = append(slots, append([]byte(nil), k...))
			return true, nil
		})
		if err != nil {
			return err
		}
		err = t.scan(acctKey(pMailbox, acct), nil, false, func(k, v []byte) (bool, error) {
			m, err := decodeMailbox(binary.BigEndian.Uint64(k[len(k)-8:]), v)
			if err != nil {
				return false, corrupt("mailbox", err)
			}
			rep.Mailboxes++
			rep.Messages += int(m.Messages)
			rep.Bytes += m.SealedSize
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range slots {
			if err := t.del(k); err != nil {
				return err
			}
		}
		rep.Slots = len(slots)
		if err := t.del(accountKey(address)); err != nil {
			return err
		}
		return t.set(purgeKey(acct, 0), nil)
	})
	return rep, acct, err
}

// purgeProgressEvery is how often a long purge logs how far it is.
const purgeProgressEvery = 5 * time.Second

// purgeAccount removes every row of a deleted account, then its marker.
// A purge of a large account takes a while: it logs its progress every
// purgeProgressEvery, and once at the end, naming the account as who,
// and tells report (may be nil) the rows removed so far.
func (db *DB) purgeAccount(acct uint64, who string, report func(rows int)) error {
	start := time.Now()
	last := start
	rows := 0
	progress := func(n int) {
		rows += n
		if report != nil {
			report(rows)
		}
		if now := time.Now(); now.Sub(last) >= purgeProgressEvery {
			last = now
			db.log.Info("badgerstore: purging deleted account", "account", who, "rows", rows, "duration", now.Sub(start))
		}
	}
	for _, p := range []byte{pSlot, pMboxName, pMailbox, pSubscr, pMeta, pSummary, pBlob, pChunk, pPending, pOrphans, pUsage, pFilterRule, pFilterModel} {
		if err := db.deleteAll(acctKey(p, acct), progress); err != nil {
			return err
		}
	}
	// Mailbox markers of this account, the account marker last.
	var markers [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan(acctKey(pPurge, acct), nil, true, func(k, _ []byte) (bool, error) {
			markers = append(markers, append([]byte(nil), k...))
			return true, nil
		})
	})
	if err != nil {
		return internal("purge scan", err)
	}
	for i := len(markers) - 1; i >= 0; i-- {
		if err := db.deleteKeys(markers[i : i+1]); err != nil {
			return err
		}
	}
	db.log.Info("badgerstore: purged deleted account", "account", who, "rows", rows, "duration", time.Since(start))
	return nil
}

// purgeMailbox removes the messages (metas, blobs, summaries) of a deleted
// mailbox in chunks, then its marker.
func (db *DB) purgeMailbox(acct, mbox uint64) error {
	const chunk = 1000 // messages per transaction: 3 deletes each
	prefix := msgPrefix(pMeta, acct, mbox)
	for {
		var (
			keys    [][]byte
			chunked []uint64
		)
		err := db.bdb.View(func(txn *badger.Txn) error {
			n := 0
			return (&tx{txn: txn}).scan(prefix, nil, false, func(k, v []byte) (bool, error) {
				md, err := decodeMeta(v, nil)
				if err != nil {
					return false, corrupt("message", err)
				}
				keys = append(keys, append([]byte(nil), k...),
					blobKey(pBlob, acct, md.Blob), blobKey(pSummary, acct, md.Blob))
				if isStaged(md.Blob) {
					chunked = append(chunked, md.Blob)
				}
				n++
				return n < chunk, nil
			})
		})
		if err != nil {
			return fmt.Errorf("badgerstore: purge scan: %w", err)
		}
		if len(keys) == 0 {
			return db.deleteKeys([][]byte{purgeKey(acct, mbox)})
		}
		// Pieces first: once the meta is gone, nothing names them.
		if err := db.deleteChunks(acct, chunked); err != nil {
			return err
		}
		if err := db.deleteKeys(keys); err != nil {
			return err
		}
	}
}

// purgeOrphans deletes the blobs and summaries of a large Expunge, whose
// blob IDs (8 bytes each) are recorded under orphansKey(acct, seq), then
// the record.
func (db *DB) purgeOrphans(acct, seq uint64, ids []byte) error {
	const chunk = 2000 // blobs per transaction: two deletes each
	for len(ids) >= 8 {
		n := min(len(ids)/8, chunk)
		keys := make([][]byte, 0, 2*n)
		var chunked []uint64
		for i := 0; i < n; i++ {
			id := binary.BigEndian.Uint64(ids[8*i:])
			keys = append(keys, blobKey(pBlob, acct, id), blobKey(pSummary, acct, id))
			if isStaged(id) {
				chunked = append(chunked, id)
			}
		}
		if err := db.deleteChunks(acct, chunked); err != nil {
			return err
		}
		if err := db.deleteKeys(keys); err != nil {
			return err
		}
		ids = ids[8*n:]
	}
	return db.deleteKeys([][]byte{orphansKey(acct, seq)})
}

// resumePurges finishes deletions interrupted by a crash or a failed purge.
func (db *DB) resumePurges() error {
	type orphans struct {
		acct, seq uint64
		ids       []byte
	}
	var lists []orphans
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan([]byte{pOrphans}, nil, false, func(k, v []byte) (bool, error) {
			if len(k) == 17 {
				lists = append(lists, orphans{binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17]), append([]byte(nil), v...)})
			}
			return true, nil
		})
	})
	if err != nil {
		return internal("resume purges", err)
	}
	for _, o := range lists {
		if err := db.purgeOrphans(o.acct, o.seq, o.ids); err != nil {
			return fmt.Errorf("badgerstore: open: finish expunge: %w", err)
		}
	}
	var markers [][]byte
	err = db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan([]byte{pPurge}, nil, true, func(k, _ []byte) (bool, error) {
			markers = append(markers, append([]byte(nil), k...))
			return true, nil
		})
	})
	if err != nil {
		return internal("resume purges", err)
	}
	for _, k := range markers {
		if len(k) != 17 {
			continue
		}
		acct := binary.BigEndian.Uint64(k[1:9])
		mbox := binary.BigEndian.Uint64(k[9:17])
		if mbox == 0 {
			err = db.purgeAccount(acct, fmt.Sprintf("deleted account #%d", acct), nil)
		} else {
			err = db.purgeMailbox(acct, mbox)
		}
		if err != nil && !errors.Is(err, errNoKey) {
			return fmt.Errorf("badgerstore: open: finish deletion: %w", err)
		}
	}
	return nil
}
