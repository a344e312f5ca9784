package badgerstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// initMailboxIDs creates the global mailbox ID counter if the store has
// none. Stores written before mailbox IDs were global counted them per
// account (the account record's "nextMailbox"), so the same ID could come
// back in a re-created account. The global counter starts above every ID
// any account or mailbox row still shows, so no ID is ever handed out
// again. It runs in Open before the writer starts, in one transaction.
func (db *DB) initMailboxIDs() error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		t := &tx{txn: txn}
		ok, err := t.has(counterKey(counterMbox))
		if err != nil || ok {
			return err
		}
		var last uint64
		err = t.scan([]byte{pAccount}, nil, false, func(_, v []byte) (bool, error) {
			var legacy struct {
				NextMailbox uint64 `json:"nextMailbox"`
			}
			if len(v) > 9 && json.Unmarshal(v[9:], &legacy) == nil {
				last = max(last, legacy.NextMailbox)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		err = t.scan([]byte{pMailbox}, nil, true, func(k, _ []byte) (bool, error) {
			if len(k) == 17 {
				last = max(last, binary.BigEndian.Uint64(k[9:]))
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		return t.set(counterKey(counterMbox), putU64(last))
	})
	if err != nil {
		return internal("open: mailbox ID counter", err)
	}
	return nil
}

// upgradeAccounts rewrites version 1 (JSON) account records as version 2
// (binary), in transactions of at most upgradeChunk records. It runs in
// Open after initMailboxIDs, which needs the old records' "nextMailbox".
// A crash half-way leaves records of both versions, which both decode;
// the next Open finishes. A record that does not decode is left alone
// (and logged): its lookups fail as they did. Then it raises the
// mailboxes that still say HIGHESTMODSEQ 0 (raiseModSeqs).
func (db *DB) upgradeAccounts() error {
	if err := db.upgradeAccountRecs(); err != nil {
		return err
	}
	return db.raiseModSeqs()
}

// upgradeAccountRecs is upgradeAccounts' rewrite of the account records.
func (db *DB) upgradeAccountRecs() error {
	const upgradeChunk = 1000
	for {
		var (
			keys [][]byte
			recs []accountRec
		)
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan([]byte{pAccount}, nil, false, func(k, v []byte) (bool, error) {
				if len(v) == 0 || v[0] != vAccountJSON {
					return true, nil
				}
				rec, err := decodeAccount(v, true)
				if err != nil {
					// Left as it is: its lookups keep failing as corrupt.
					db.log.Warn("badgerstore: open: account record unreadable", "account", string(k[1:]), "err", err)
					return true, nil
				}
				keys = append(keys, append([]byte(nil), k...))
				recs = append(recs, rec)
				return len(keys) < upgradeChunk, nil
			})
		})
		if err != nil {
			return internal("open: upgrade accounts", err)
		}
		if len(keys) == 0 {
			return nil
		}
		err = db.bdb.Update(func(txn *badger.Txn) error {
			for i, k := range keys {
				if err := txn.Set(k, recs[i].encode()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return internal("open: upgrade accounts", err)
		}
	}
}

// counterModSeq marks that no mailbox record says HighestModSeq 0 any
// more (raiseModSeqs): stores written since carry it from their first
// Open, when they have no mailbox yet.
const counterModSeq = "modseq1"

// raiseModSeqs raises to 1 the HighestModSeq of every mailbox that still
// has 0, once. Mailboxes created before new ones started at 1 keep 0
// until their first change, and IMAP reports 0 as NOMODSEQ (RFC 7162
// §3.1.2.2), which makes a CONDSTORE client stop using mod-sequences
// there. Raising is safe because 0 means nothing ever changed in the
// mailbox: every change (a delivery, a copy or move in, a flag change, a
// removal, retention's vaulting or erasure) raises HighestModSeq by one
// in the transaction that makes it and gives its messages or tombstones
// that value, so a mailbox with a message or a tombstone is at 1 or
// more, and its first change after the raise gets 2, above anything a
// client could have kept (it was told NOMODSEQ). A record found at 0
// with a message or a tombstone after all is logged and left alone. A
// mailbox old enough to have no tombstone state (created before
// tombstones began) gets one with floor 0, so that its floor, which
// loadTombState otherwise takes from HighestModSeq, stays 0: it has
// never removed anything.
//
// It runs in Open with upgradeAccounts, before the writer starts, in
// transactions of at most raiseChunk mailboxes, logging its progress
// every purgeProgressEvery and once at the end. A crash half-way leaves
// some mailboxes raised and the marker unset; the next Open raises the
// rest. Open syncs what it wrote before it returns.
func (db *DB) raiseModSeqs() error {
	const raiseChunk = 1000
	done := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		ok, err := (&tx{txn: txn}).has(counterKey(counterModSeq))
		done = ok
		return err
	})
	if err != nil {
		return internal("open: raise mod-sequences", err)
	}
	if done {
		return nil
	}
	type ref struct{ acct, mbox uint64 }
	begun := time.Now()
	last := begun
	raised, seen := 0, 0
	var start []byte
	for {
		var refs []ref
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan([]byte{pMailbox}, start, false, func(k, v []byte) (bool, error) {
				start = append(append(start[:0], k...), 0)
				seen++
				if len(k) != 17 {
					return true, nil
				}
				m, err := decodeMailbox(binary.BigEndian.Uint64(k[9:]), v)
				if err != nil {
					// Left alone: its lookups fail as they did.
					db.log.Warn("badgerstore: open: mailbox record unreadable", "err", err)
					return true, nil
				}
				if m.HighestModSeq == 0 {
					refs = append(refs, ref{binary.BigEndian.Uint64(k[1:9]), m.ID})
				}
				return len(refs) < raiseChunk, nil
			})
		})
		if err != nil {
			return internal("open: raise mod-sequences", err)
		}
		n := 0
		err = db.bdb.Update(func(txn *badger.Txn) error {
			t := &tx{txn: txn}
			n = 0
			for _, r := range refs {
				ok, err := db.raiseModSeq(t, r.acct, r.mbox)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			if len(refs) == 0 {
				return t.set(counterKey(counterModSeq), putU64(1))
			}
			return nil
		})
		if err != nil {
			return internal("open: raise mod-sequences", err)
		}
		raised += n
		if len(refs) == 0 {
			break
		}
		if now := time.Now(); now.Sub(last) >= purgeProgressEvery {
			last = now
			db.log.Info("badgerstore: raising mod-sequences of old empty mailboxes", "count", raised, "mailboxes", seen, "duration", now.Sub(begun))
		}
	}
	if raised > 0 {
		db.log.Info("badgerstore: raised mod-sequences of old empty mailboxes to 1", "count", raised, "duration", time.Since(begun))
	}
	return nil
}

// raiseModSeq raises mailbox mbox of account acct from HighestModSeq 0
// to 1 (see raiseModSeqs), reporting whether it did.
func (db *DB) raiseModSeq(t *tx, acct, mbox uint64) (bool, error) {
	m, err := loadMailboxRec(t, acct, mbox)
	if errors.Is(err, errNoKey) {
		return false, nil // deleted meanwhile
	}
	if err != nil || m.HighestModSeq != 0 {
		return false, err
	}
	var used bool
	for _, p := range [][]byte{msgPrefix(pMeta, acct, mbox), tombPrefix(acct, mbox)} {
		err := t.scan(p, nil, true, func([]byte, []byte) (bool, error) {
			used = true
			return false, nil
		})
		if err != nil {
			return false, err
		}
	}
	if used {
		db.log.Warn("badgerstore: open: mailbox at mod-sequence 0 has messages or removals; left at 0", "mailbox", m.Name)
		return false, nil
	}
	if mbox <= db.tombSince {
		ok, err := t.has(tombStateKey(acct, mbox))
		if err != nil {
			return false, err
		}
		if !ok {
			s := tombState{}
			if err := t.set(tombStateKey(acct, mbox), s.encode()); err != nil {
				return false, err
			}
		}
	}
	m.HighestModSeq = 1
	return true, t.set(mailboxKey(acct, mbox), m.encode())
}
