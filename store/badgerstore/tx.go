package badgerstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// errNoKey is tx.get's "absent"; callers turn it into store.ErrNotFound
// with their own context.
var errNoKey = errors.New("badgerstore: no such key")

// tx is the one view of a badger transaction that the store's operations
// use. It keeps badger's errors from crossing the store API: every error it
// returns is errNoKey, one wrapping store.ErrTooLarge or an opaque internal
// error.
//
// In batch mode (ov non-nil) writes go to an overlay that the writer merges
// into the transaction only if the operation succeeds, so one failing
// operation does not disturb the others sharing its transaction. Reads
// (get, has, scan) see the overlay first, then the transaction's pending
// writes (the earlier operations of the batch), then committed state.
//
// In the writer, log (non-nil) records the writes that join the
// transaction, for the listing cache (listcache.go).
type tx struct {
	txn *badger.Txn
	ov  map[string]ovEntry // may be nil
	log *commitLog         // may be nil
	// In a read transaction (db.read), ids is the account-ID cache and
	// idGen its generation before the transaction began (idcache.go).
	ids   *idCache
	idGen uint64
}

type ovEntry struct {
	val []byte
	del bool
}

func internal(what string, err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("badgerstore: %s: %w", what, store.ErrTooLarge)
	}
	return fmt.Errorf("badgerstore: %s: %v", what, err)
}

// get returns a copy of key's value, or errNoKey.
func (t *tx) get(key []byte) ([]byte, error) {
	if t.ov != nil {
		if e, ok := t.ov[string(key)]; ok {
			if e.del {
				return nil, errNoKey
			}
			return e.val, nil
		}
	}
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, internal("get", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, internal("read value", err)
	}
	return v, nil
}

// fromOverlay reports whether the overlay holds key.
func (t *tx) fromOverlay(key []byte) bool {
	_, ok := t.ov[string(key)]
	return ok
}

// view calls fn with key's value, valid only during the call, or returns
// errNoKey: get without the copy, for a large value of which little is
// read.
func (t *tx) view(key []byte, fn func(v []byte) error) error {
	if t.ov != nil {
		if e, ok := t.ov[string(key)]; ok {
			if e.del {
				return errNoKey
			}
			return fn(e.val)
		}
	}
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errNoKey
	}
	if err != nil {
		return internal("get", err)
	}
	var ferr error
	if err := item.Value(func(v []byte) error {
		ferr = fn(v)
		return nil
	}); err != nil {
		return internal("read value", err)
	}
	return ferr
}

// has reports whether key exists.
func (t *tx) has(key []byte) (bool, error) {
	if t.ov != nil {
		if e, ok := t.ov[string(key)]; ok {
			return !e.del, nil
		}
	}
	_, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("get", err)
	}
	return true, nil
}

// set stores val under key. The transaction keeps val: callers pass slices
// they do not modify afterwards.
func (t *tx) set(key, val []byte) error {
	if t.ov != nil {
		t.ov[string(key)] = ovEntry{val: val}
		return nil
	}
	if err := t.txn.Set(key, val); err != nil {
		return internal("set", err)
	}
	if t.log != nil {
		t.log.note(key, val, false)
	}
	return nil
}

func (t *tx) del(key []byte) error {
	if t.ov != nil {
		t.ov[string(key)] = ovEntry{del: true}
		return nil
	}
	if err := t.txn.Delete(key); err != nil {
		return internal("delete", err)
	}
	if t.log != nil {
		t.log.note(key, nil, true)
	}
	return nil
}

// flush merges the overlay into the transaction.
func (t *tx) flush() error {
	for k, e := range t.ov {
		var err error
		if e.del {
			err = t.txn.Delete([]byte(k))
		} else {
			err = t.txn.Set([]byte(k), e.val)
		}
		if err != nil {
			return internal("merge", err)
		}
		if t.log != nil {
			t.log.note([]byte(k), e.val, e.del)
		}
	}
	return nil
}

// scan calls fn for each key with prefix, from start (a full key, or nil
// for the beginning of prefix), in key order, until fn returns false or an
// error. key and val are valid only during the call. With keysOnly, val is
// nil and values are not read. It sees the transaction's pending writes
// (badger's iterators include them) and, in batch mode, the operation's
// own overlay on top of them.
func (t *tx) scan(prefix, start []byte, keysOnly bool, fn func(key, val []byte) (bool, error)) error {
	if start == nil {
		start = prefix
	}
	// The overlay's keys in range, sorted, merged into the iteration
	// below: an overlay entry hides the transaction's entry for its key.
	var pend []string
	for k := range t.ov {
		if strings.HasPrefix(k, string(prefix)) && k >= string(start) {
			pend = append(pend, k)
		}
	}
	slices.Sort(pend)
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.PrefetchValues = false // scanned values are small and live in the LSM tree
	o.PrefetchSize = 64
	it := t.txn.NewIterator(o)
	defer it.Close()
	for it.Seek(start); ; it.Next() {
		var key []byte
		if it.ValidForPrefix(prefix) {
			key = it.Item().Key()
		}
		hidden := false
		for len(pend) > 0 && (key == nil || pend[0] <= string(key)) {
			k := pend[0]
			pend = pend[1:]
			hidden = hidden || (key != nil && k == string(key))
			e := t.ov[k]
			if e.del {
				continue
			}
			var val []byte
			if !keysOnly {
				val = e.val
			}
			more, err := fn([]byte(k), val)
			if err != nil || !more {
				return err
			}
		}
		if key == nil {
			return nil
		}
		if hidden {
			continue
		}
		item := it.Item()
		var (
			more bool
			err  error
		)
		if keysOnly {
			more, err = fn(key, nil)
		} else {
			verr := item.Value(func(v []byte) error {
				more, err = fn(key, v)
				return nil
			})
			if verr != nil {
				return internal("read value", verr)
			}
		}
		if err != nil || !more {
			return err
		}
	}
}
