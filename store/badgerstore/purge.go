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
	db.deletions.Add(1)
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
// Its messages are vaulted or destroyed first, each by its retention
// record (dispose): if any is kept, the vault outlives the account under
// a former-account record, and so do the retention records and sealed
// blobs of the vaulted messages (their summaries go: nobody can open
// them). A purge of a large account takes a while: it logs its progress
// every purgeProgressEvery, and once at the end, naming the account as
// who, and tells report (may be nil) the rows removed so far. The caller holds closeMu for reading (or Open runs it).
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
	if err := db.resumeDisposals(acct); err != nil {
		return err
	}
	names, err := db.mailboxNames(acct)
	if err != nil {
		return err
	}
	if err := db.disposeMetas(acct, acctKey(pMeta, acct), names, "account deleted", progress); err != nil {
		return err
	}
	// Destroyed large blobs left their pieces to orphan lists: finish
	// them before the lists go.
	if err := db.resumeOrphans(acct); err != nil {
		return err
	}
	kept := false
	var addr []byte
	err = db.bdb.View(func(txn *badger.Txn) error {
		t := &tx{txn: txn}
		if err := t.scan(acctKey(pVault, acct), nil, true, func(_, _ []byte) (bool, error) {
			kept = true
			return false, nil
		}); err != nil {
			return err
		}
		v, err := t.get(acctAddrKey(acct))
		if err == nil {
			addr = v
		} else if !errors.Is(err, errNoKey) {
			return err
		}
		return nil
	})
	if err != nil {
		return internal("purge scan", err)
	}
	if kept && addr != nil {
		f := formerRec{Address: string(addr), Deleted: time.Now().UTC()}
		if err := db.setKeys([][2][]byte{{formerKey(acct), f.encode()}}); err != nil {
			return err
		}
	}
	// What the vault keeps (sealed blobs, their files and pieces,
	// retention records) stays with the former account; the rest goes.
	// Blob files go by unlink entries: without a vault, any file record
	// left. Pending markers stay: each belongs to a blob writer or a copy
	// still at work, which may create its file after this purge, and
	// which removes the file and then the marker when its Finish or its
	// transaction fails for want of the account; after a crash, Open
	// does (stage.go).
	if !kept {
		n, err := db.releaseRows(acctKey(pBlobFile, acct))
		if err != nil {
			return err
		}
		progress(n)
	}
	db.unlinkNow()
	prefixes := []byte{pSlot, pMboxName, pMailbox, pSubscr, pMeta, pSummary, pOrphans, pUsage, pFilterRule, pFilterModel, pAcctAddr, pTomb, pTombState}
	if !kept {
		prefixes = append(prefixes, pBlob, pChunk, pRetention, pRecompute, pVault)
	}
	for _, p := range prefixes {
		if err := db.deleteAll(acctKey(p, acct), progress); err != nil {
			return err
		}
	}
	// Mailbox markers of this account, the account marker last.
	var markers [][]byte
	err = db.bdb.View(func(txn *badger.Txn) error {
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
	db.log.Info("badgerstore: purged deleted account", "account", who, "rows", rows, "kept_in_vault", kept, "duration", time.Since(start))
	return nil
}

// mailboxNames returns the names of an account's mailboxes, those being
// deleted included (their purge markers keep the name), by ID.
func (db *DB) mailboxNames(acct uint64) (map[uint64]string, error) {
	names := map[uint64]string{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		t := &tx{txn: txn}
		if err := t.scan(acctKey(pPurge, acct), nil, false, func(k, v []byte) (bool, error) {
			if mbox := binary.BigEndian.Uint64(k[9:17]); mbox != 0 {
				names[mbox] = markerName(v)
			}
			return true, nil
		}); err != nil {
			return err
		}
		return t.scan(acctKey(pMailbox, acct), nil, false, func(k, v []byte) (bool, error) {
			id := binary.BigEndian.Uint64(k[len(k)-8:])
			m, err := decodeMailbox(id, v)
			if err != nil {
				return false, corrupt("mailbox", err)
			}
			names[id] = m.Name
			return true, nil
		})
	})
	if err != nil {
		return nil, internal("purge scan", err)
	}
	return names, nil
}

// markerName returns the mailbox name a purge marker keeps ("" for
// markers written before it kept one).
func markerName(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	d := dec{b: v}
	d.version(vPolicyRec)
	n := d.str()
	if d.finish() != nil {
		return ""
	}
	return n
}

func encodeMarker(name string) []byte { return enc{vPolicyRec}.str(name) }

// disposeMetas vaults or destroys every message whose meta is under
// prefix (a mailbox's or a whole account's), in chunks, each in its own
// transaction through the writer: a message under retention goes to the
// vault with reason, the rest is destroyed. names gives the mailboxes'
// names for the vault.
func (db *DB) disposeMetas(acct uint64, prefix []byte, names map[uint64]string, reason string, progress func(int)) error {
	const chunk = maxDisposalRow
	for {
		var keys [][]byte
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan(prefix, nil, true, func(k, _ []byte) (bool, error) {
				keys = append(keys, append([]byte(nil), k...))
				return len(keys) < chunk, nil
			})
		})
		if err != nil {
			return internal("purge scan", err)
		}
		if len(keys) == 0 {
			return nil
		}
		err = db.write(context.Background(), false, func(t *tx) error {
			now := time.Now()
			for _, k := range keys {
				v, err := t.get(k)
				if errors.Is(err, errNoKey) {
					continue
				}
				if err != nil {
					return err
				}
				md, err := decodeMeta(v, nil)
				if err != nil {
					return corrupt("message", err)
				}
				mbox := binary.BigEndian.Uint64(k[9:17])
				if err := t.del(k); err != nil {
					return err
				}
				if _, err := dispose(t, acct, disposal{Mbox: mbox, Name: names[mbox], UID: uidOf(k), Meta: md}, reason, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("badgerstore: purge: %w", err)
		}
		progress(len(keys))
	}
}

// purgeMailbox vaults or destroys the messages of a deleted mailbox in
// chunks, then removes its marker.
func (db *DB) purgeMailbox(acct, mbox uint64) error {
	var name string
	err := db.bdb.View(func(txn *badger.Txn) error {
		v, err := (&tx{txn: txn}).get(purgeKey(acct, mbox))
		if err == nil {
			name = markerName(v)
			return nil
		}
		if errors.Is(err, errNoKey) {
			return nil
		}
		return err
	})
	if err != nil {
		return internal("purge scan", err)
	}
	names := map[uint64]string{mbox: name}
	if err := db.disposeMetas(acct, msgPrefix(pMeta, acct, mbox), names, "mailbox deleted", func(int) {}); err != nil {
		return err
	}
	if err := db.resumeOrphans(acct); err != nil {
		return err
	}
	db.unlinkNow()
	if err := db.dropTombstones(acct, mbox); err != nil {
		return err
	}
	return db.deleteKeys([][]byte{purgeKey(acct, mbox)})
}

// resumeDisposals finishes the disposal lists of an account (or of every
// account, acct 0) that a large Expunge left.
func (db *DB) resumeDisposals(acct uint64) error {
	prefix := []byte{pDisposal}
	if acct != 0 {
		prefix = acctKey(pDisposal, acct)
	}
	lists := map[uint64][]uint64{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan(prefix, nil, true, func(k, _ []byte) (bool, error) {
			if len(k) == 17 {
				a := binary.BigEndian.Uint64(k[1:9])
				lists[a] = append(lists[a], binary.BigEndian.Uint64(k[9:17]))
			}
			return true, nil
		})
	})
	if err != nil {
		return internal("resume disposals", err)
	}
	for a, seqs := range lists {
		if _, err := db.processDisposals(a, seqs); err != nil {
			return err
		}
	}
	return nil
}

// setKeys sets key-value pairs in one durable transaction, outside the
// writer (for rows no live operation reaches).
func (db *DB) setKeys(kvs [][2][]byte) error {
	need := syncNothing
	for _, kv := range kvs {
		need = max(need, needOf(kv[1]))
	}
	for attempt := 0; ; attempt++ {
		err := db.badgerUpdateNeed(need, func(txn *badger.Txn) error {
			for _, kv := range kvs {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			continue
		}
		if err != nil {
			return internal("purge", err)
		}
		return nil
	}
}

// purgeOrphans deletes the blobs and summaries of a large Expunge, whose
// blob IDs (8 bytes each) are recorded under orphansKey(acct, seq), then
// the record.
func (db *DB) purgeOrphans(acct, seq uint64, ids []byte) error {
	const chunk = 1000 // blobs per transaction: up to five deletes each
	for len(ids) >= 8 {
		n := min(len(ids)/8, chunk)
		var chunked []uint64
		err := db.write(context.Background(), false, func(t *tx) error {
			chunked = nil
			for i := 0; i < n; i++ {
				id := binary.BigEndian.Uint64(ids[8*i:])
				if rec, err := loadRetention(t, acct, id); err == nil {
					if err := deleteRetention(t, acct, id, &rec); err != nil {
						return err
					}
				} else if !errors.Is(err, errNoKey) {
					return err
				}
				if err := t.del(blobKey(pBlob, acct, id)); err != nil {
					return err
				}
				if err := t.del(blobKey(pSummary, acct, id)); err != nil {
					return err
				}
				if isStaged(id) {
					// An older version's list: the blob's pieces, or
					// the file they were moved to.
					chunked = append(chunked, id)
					if err := destroyFile(t, acct, id); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err == nil {
			// The pieces last: the list still names them until it goes.
			err = db.deleteChunks(acct, chunked)
		}
		if err != nil {
			return err
		}
		ids = ids[8*n:]
	}
	return db.deleteKeys([][]byte{orphansKey(acct, seq)})
}

// resumeOrphans works through the orphan lists of an account (acct 0:
// of every account): blobs, summaries and large blobs' pieces still to be
// deleted. The caller holds closeMu for reading (or Open runs it).
func (db *DB) resumeOrphans(acct uint64) error {
	type orphans struct {
		acct, seq uint64
		ids       []byte
	}
	prefix := []byte{pOrphans}
	if acct != 0 {
		prefix = acctKey(pOrphans, acct)
	}
	var lists []orphans
	err := db.bdb.View(func(txn *badger.Txn) error {
		return (&tx{txn: txn}).scan(prefix, nil, false, func(k, v []byte) (bool, error) {
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
			return err
		}
	}
	return nil
}

// resumePurges finishes deletions interrupted by a crash or a failed purge.
func (db *DB) resumePurges() error {
	if err := db.resumeOrphans(0); err != nil {
		return fmt.Errorf("badgerstore: open: finish expunge: %w", err)
	}
	if err := db.resumeDisposals(0); err != nil {
		return fmt.Errorf("badgerstore: open: finish expunge: %w", err)
	}
	// Disposals may leave orphan lists (large blobs' pieces).
	if err := db.resumeOrphans(0); err != nil {
		return fmt.Errorf("badgerstore: open: finish expunge: %w", err)
	}
	var markers [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
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
			err = db.purgeAccount(acct, db.addressOf(acct), nil)
		} else {
			err = db.purgeMailbox(acct, mbox)
		}
		if err != nil && !errors.Is(err, errNoKey) {
			return fmt.Errorf("badgerstore: open: finish deletion: %w", err)
		}
	}
	return nil
}

// addressOf names account acct for logs: its address, or its number.
func (db *DB) addressOf(acct uint64) string {
	var addr string
	db.bdb.View(func(txn *badger.Txn) error {
		if v, err := (&tx{txn: txn}).get(acctAddrKey(acct)); err == nil {
			addr = string(v)
		}
		return nil
	})
	if addr == "" {
		return fmt.Sprintf("deleted account #%d", acct)
	}
	return addr
}
