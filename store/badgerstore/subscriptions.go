package badgerstore

import (
	"context"
	"encoding/binary"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// Subscriptions are rows of their own (pSubscr), keyed by account and
// name, not a flag of the mailbox record: RFC 9051 §6.3.7 says a server
// must not remove a name from the subscriptions because its mailbox is
// deleted, and a client may subscribe to a name before its mailbox
// exists. DeleteMailbox leaves them; RenameMailbox moves those of the
// mailboxes it renames; DeleteAccount removes them all.

// SetSubscribed implements store.Store.
func (db *DB) SetSubscribed(ctx context.Context, address, name string, subscribed bool) error {
	if err := store.CheckMailboxName(name); err != nil {
		return err
	}
	return db.updateBatch(ctx, true, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		k := subscriptionKey(acct, name)
		if subscribed {
			return t.set(k, nil)
		}
		return t.del(k)
	})
}

// Subscriptions implements store.Store.
func (db *DB) Subscriptions(ctx context.Context, address string) ([]string, error) {
	var out []string
	err := db.read(ctx, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		prefix := acctKey(pSubscr, acct)
		return t.scan(prefix, nil, true, func(k, _ []byte) (bool, error) {
			out = append(out, string(k[len(prefix):]))
			return true, nil
		})
	})
	return out, err
}

// initSubscriptions moves the subscribed flags of mailbox records, as
// stores written before subscriptions had their own table keep them, into
// subscription rows, once, in Open before the writer starts.
func (db *DB) initSubscriptions() error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		t := &tx{txn: txn}
		done, err := t.has(counterKey(counterSubs))
		if err != nil || done {
			return err
		}
		type sub struct {
			acct uint64
			name string
		}
		var subs []sub
		err = t.scan([]byte{pMailbox}, nil, false, func(k, v []byte) (bool, error) {
			if len(k) != 17 {
				return true, nil
			}
			acct := binary.BigEndian.Uint64(k[1:9])
			m, err := decodeMailbox(binary.BigEndian.Uint64(k[9:17]), v)
			if err != nil {
				// Left alone: its lookups fail as they did.
				db.log.Warn("badgerstore: open: mailbox record unreadable", "err", err)
				return true, nil
			}
			if m.Subscribed {
				subs = append(subs, sub{acct, m.Name})
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, s := range subs {
			if err := t.set(subscriptionKey(s.acct, s.name), nil); err != nil {
				return err
			}
		}
		return t.set(counterKey(counterSubs), putU64(1))
	})
	if err != nil {
		return internal("open: subscriptions", err)
	}
	return nil
}
