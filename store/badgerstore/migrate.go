package badgerstore

import (
	"encoding/binary"
	"encoding/json"

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
// (and logged): its lookups fail as they did.
func (db *DB) upgradeAccounts() error {
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
