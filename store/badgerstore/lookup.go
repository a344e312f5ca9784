package badgerstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// read runs fn in a read-only transaction.
func (db *DB) read(ctx context.Context, fn func(t *tx) error) error {
	if err := db.enter(ctx); err != nil {
		return err
	}
	defer db.leave()
	gen := db.ids.generation() // before the snapshot: see idCache
	if sn := db.snaps.acquire(); sn != nil {
		defer db.snaps.release(sn)
		return fn(&tx{txn: sn.txn, ids: db.ids, idGen: gen})
	}
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	return fn(&tx{txn: txn, ids: db.ids, idGen: gen})
}

// update runs apply alone in the writer (its own durable transaction).
func (db *DB) update(ctx context.Context, apply func(t *tx) error) error {
	return db.updateBatch(ctx, false, apply)
}

// updateBatch runs apply in the writer; with batch, in a transaction it
// may share with other batchable operations (group commit, writer.go).
func (db *DB) updateBatch(ctx context.Context, batch bool, apply func(t *tx) error) error {
	if err := db.enter(ctx); err != nil {
		return err
	}
	defer db.leave()
	return db.write(ctx, batch, apply)
}

func corrupt(what string, err error) error {
	return fmt.Errorf("badgerstore: %s: %w", what, err)
}

func notFound(what string) error { return fmt.Errorf("store: %s: %w", what, store.ErrNotFound) }

// accountID returns the ID of the account at address.
func accountID(t *tx, address string) (uint64, error) {
	if t.ids != nil {
		if id, ok := t.ids.get(address); ok {
			return id, nil
		}
	}
	var id uint64
	err := t.view(accountKey(address), func(v []byte) error {
		var err error
		if id, err = decodeAccountID(v); err != nil {
			return corrupt("account "+address, err)
		}
		return nil
	})
	if errors.Is(err, errNoKey) {
		return 0, notFound("account " + address)
	}
	if err == nil && t.ids != nil {
		t.ids.put(address, id, t.idGen)
	}
	return id, err
}

// loadAccount returns the account record at address, with its wrapped key
// if withKey.
func loadAccount(t *tx, address string, withKey bool) (accountRec, error) {
	v, err := t.get(accountKey(address))
	if errors.Is(err, errNoKey) {
		return accountRec{}, notFound("account " + address)
	}
	if err != nil {
		return accountRec{}, err
	}
	a, err := decodeAccount(v, withKey)
	if err != nil {
		return a, corrupt("account "+address, err)
	}
	return a, nil
}

func saveAccount(t *tx, address string, a *accountRec) error {
	return t.set(accountKey(address), a.encode())
}

func loadUsage(t *tx, acct uint64) (usage, error) {
	v, err := t.get(usageKey(acct))
	if errors.Is(err, errNoKey) {
		return usage{}, nil
	}
	if err != nil {
		return usage{}, err
	}
	u, err := decodeUsage(v)
	if err != nil {
		return u, corrupt("usage", err)
	}
	return u, nil
}

func saveUsage(t *tx, acct uint64, u *usage) error { return t.set(usageKey(acct), u.encode()) }

// mailboxByName returns the mailbox called name in account acct.
func mailboxByName(t *tx, acct uint64, address, name string) (store.Mailbox, error) {
	v, err := t.get(mboxNameKey(acct, name))
	if errors.Is(err, errNoKey) {
		return store.Mailbox{}, notFound(fmt.Sprintf("mailbox %q of %s", name, address))
	}
	if err != nil {
		return store.Mailbox{}, err
	}
	id, err := decodeU64(v)
	if err != nil {
		return store.Mailbox{}, corrupt("mailbox name", err)
	}
	return mailboxByID(t, acct, id)
}

// mailboxByID returns the mailbox with ID id in account acct, which the
// caller knows to exist (it found the ID in the name index).
func mailboxByID(t *tx, acct, id uint64) (store.Mailbox, error) {
	m, err := loadMailbox(t, acct, id)
	if errors.Is(err, errNoKey) {
		err = corrupt("mailbox", errCorrupt)
	}
	return m, err
}

// loadMailbox returns the mailbox with ID id in account acct, or errNoKey.
func loadMailbox(t *tx, acct, id uint64) (store.Mailbox, error) {
	m, err := loadMailboxRec(t, acct, id)
	if err != nil {
		return store.Mailbox{}, err
	}
	// Subscriptions are kept by name, apart from the record.
	if m.Subscribed, err = t.has(subscriptionKey(acct, m.Name)); err != nil {
		return store.Mailbox{}, err
	}
	return m.Mailbox, nil
}

// loadMailboxRec returns the record of the mailbox with ID id in account
// acct, or errNoKey. Its Subscribed is not set (loadMailbox sets it).
func loadMailboxRec(t *tx, acct, id uint64) (mailboxRec, error) {
	key := mailboxKey(acct, id)
	v, err := t.get(key)
	if err != nil {
		return mailboxRec{}, err
	}
	m, err := decodeMailbox(id, v)
	if err != nil {
		return mailboxRec{}, corrupt("mailbox", err)
	}
	if t.log != nil && !t.fromOverlay(key) {
		t.log.sawMailbox(mboxRef{acct, id}, &m.Mailbox)
	}
	m.Subscribed = false
	return m, nil
}

// saveMailbox writes a mailbox record. Its subscribed flag is not kept
// there any more (see subscriptions.go).
func saveMailbox(t *tx, acct uint64, m *store.Mailbox) error {
	r := mailboxRec{*m}
	r.Subscribed = false
	return t.set(mailboxKey(acct, m.ID), r.encode())
}

// resolve returns the account ID and mailbox for (address, name).
func resolve(t *tx, address, name string) (uint64, store.Mailbox, error) {
	acct, err := accountID(t, address)
	if err != nil {
		return 0, store.Mailbox{}, err
	}
	m, err := mailboxByName(t, acct, address, name)
	return acct, m, err
}

// resolveID returns the account ID and the mailbox with ID id, or an error
// wrapping store.ErrNotFound if either does not exist (any more).
func resolveID(t *tx, address string, id uint64) (uint64, store.Mailbox, error) {
	acct, err := accountID(t, address)
	if err != nil {
		return 0, store.Mailbox{}, err
	}
	m, err := mailboxOf(t, acct, address, id)
	return acct, m, err
}

// resolveRead returns the account ID for a read of mailbox id, or an
// error wrapping store.ErrNotFound if the account or the mailbox does not
// exist (any more). It reads the mailbox record only, not the
// subscription that resolveID looks up too.
func resolveRead(t *tx, address string, id uint64) (uint64, error) {
	acct, _, err := resolveRec(t, address, id)
	return acct, err
}

// resolveRec is resolveRead that returns the mailbox record too.
func resolveRec(t *tx, address string, id uint64) (uint64, mailboxRec, error) {
	acct, err := accountID(t, address)
	if err != nil {
		return 0, mailboxRec{}, err
	}
	rec, err := loadMailboxRec(t, acct, id)
	if err != nil {
		if errors.Is(err, errNoKey) {
			return 0, rec, notFound(fmt.Sprintf("mailbox #%d of %s", id, address))
		}
		return 0, rec, err
	}
	return acct, rec, nil
}

// maxSkip is how many keys readKeyed steps over to reach the next key it
// wants before it seeks instead.
const maxSkip = 16

// readKeyed reads the values of the keys p<acct><ids[i]> (blobs or
// summaries) with one iterator, in key order, and calls fn with each
// index whose key exists and its value, valid only during the call. IDs
// of 0 are skipped. A batch of messages usually has neighbouring blob IDs
// (they were delivered in order), so walking the keys costs much less than
// a lookup each, which in badger's tables checks every level. In a
// transaction with an overlay (a write), it looks each key up instead.
func readKeyed(t *tx, p byte, acct uint64, ids []uint64, fn func(i int, v []byte) error) error {
	order := make([]int, 0, len(ids))
	for i, id := range ids {
		if id != 0 {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return nil
	}
	if t.ov != nil || len(order) == 1 {
		for _, i := range order {
			err := t.view(blobKey(p, acct, ids[i]), func(v []byte) error { return fn(i, v) })
			if err != nil && !errors.Is(err, errNoKey) {
				return err
			}
		}
		return nil
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ids[a], ids[b]) })
	o := badger.DefaultIteratorOptions
	o.Prefix = acctKey(p, acct)
	o.PrefetchValues = false
	it := t.txn.NewIterator(o)
	defer it.Close()
	want := blobKey(p, acct, ids[order[0]])
	it.Seek(want)
	for n, i := range order {
		if n > 0 {
			want = blobKey(p, acct, ids[i])
		}
		for skipped := 0; it.ValidForPrefix(o.Prefix) && bytes.Compare(it.Item().Key(), want) < 0; skipped++ {
			if skipped == maxSkip {
				it.Seek(want)
				break
			}
			it.Next()
		}
		if !it.ValidForPrefix(o.Prefix) {
			return nil
		}
		if !bytes.Equal(it.Item().Key(), want) {
			continue
		}
		var ferr error
		if err := it.Item().Value(func(v []byte) error { ferr = fn(i, v); return nil }); err != nil {
			return internal("read value", err)
		}
		if ferr != nil {
			return ferr
		}
		// A repeated ID is found again: the iterator stays on its key.
	}
	return nil
}

// mailboxOf returns the mailbox with ID id of account acct (whose address
// is address, for errors), or an error wrapping store.ErrNotFound.
func mailboxOf(t *tx, acct uint64, address string, id uint64) (store.Mailbox, error) {
	m, err := loadMailbox(t, acct, id)
	if errors.Is(err, errNoKey) {
		return m, notFound(fmt.Sprintf("mailbox #%d of %s", id, address))
	}
	return m, err
}

// nextMailboxID returns a mailbox ID never handed out before, in any
// account (initMailboxIDs has set the counter above every older ID).
func nextMailboxID(t *tx) (uint64, error) { return nextCounter(t, counterMbox) }

// loadMeta returns a message's meta, or errNoKey.
func loadMeta(t *tx, acct, mbox uint64, uid uint32) (meta, error) {
	v, err := t.get(metaKey(acct, mbox, uid))
	if err != nil {
		return meta{}, err
	}
	m, err := decodeMeta(v, nil)
	if err != nil {
		return m, corrupt(fmt.Sprintf("message %d", uid), err)
	}
	return m, nil
}

// nextCounter increments a global counter and returns its new value.
func nextCounter(t *tx, name string) (uint64, error) {
	var n uint64
	v, err := t.get(counterKey(name))
	switch {
	case err == nil:
		if n, err = decodeU64(v); err != nil {
			return 0, corrupt("counter "+name, err)
		}
	case !errors.Is(err, errNoKey):
		return 0, err
	}
	n++
	return n, t.set(counterKey(name), putU64(n))
}

// nextUIDValidity returns a UIDVALIDITY unique to a new mailbox
// incarnation (RFC 9051 §2.3.1.1): the current Unix time, or one more than
// the last value handed out if that is later, so that a mailbox deleted and
// re-created within a second still gets a new value.
func nextUIDValidity(t *tx) (uint32, error) {
	var last uint64
	v, err := t.get(counterKey(counterUV))
	switch {
	case err == nil:
		if last, err = decodeU64(v); err != nil {
			return 0, corrupt("uidvalidity counter", err)
		}
	case !errors.Is(err, errNoKey):
		return 0, err
	}
	next := max(last+1, uint64(time.Now().Unix()))
	if next > math.MaxUint32 {
		next = 1 // after 2106, or an exhausted counter: start over
	}
	return uint32(next), t.set(counterKey(counterUV), putU64(next))
}

// deleteAll deletes every key under prefix, in chunks of separate
// durable transactions, and calls progress with the number of keys
// deleted after each chunk. It is used only for data no live operation
// can reach any more, so it runs outside the writer.
func (db *DB) deleteAll(prefix []byte, progress func(deleted int)) error {
	const chunk = 4000
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
		if err := db.deleteKeys(keys); err != nil {
			return err
		}
		progress(len(keys))
	}
}

// deleteKeys deletes keys in one durable transaction.
func (db *DB) deleteKeys(keys [][]byte) error {
	for attempt := 0; ; attempt++ {
		err := db.badgerUpdateNeed(syncLog, func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
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
