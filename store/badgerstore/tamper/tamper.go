// Package tamper damages the audit log of a closed badger store on
// purpose, the way someone with write access to the data directory
// could, so that tests can prove that verification notices (or, where
// docs say it cannot, that it does not). Nothing but tests imports it.
//
// It works on the raw rows that store/badgerstore's doc.go lays out:
// "l" + 8-byte big-endian seq for records, "h" for the head row.
package tamper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

func recordKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'l'}, seq) }

var headKey = []byte{'h'}

// update opens the store in dir (which no one else may hold), runs fn in
// one transaction and closes it.
func update(dir string, fn func(txn *badger.Txn) error) error {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(4 << 20).WithNumMemtables(1).WithValueThreshold(1 << 10).
		WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20))
	if err != nil {
		return fmt.Errorf("tamper: open %s: %w", dir, err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

func get(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, fmt.Errorf("tamper: row %q: %w", key, err)
	}
	return item.ValueCopy(nil)
}

// Replace replaces old with new (of the same length, so the record still
// decodes) inside record seq's stored bytes, leaving its hash alone.
func Replace(dir string, seq uint64, old, new string) error {
	if len(old) != len(new) {
		return errors.New("tamper: Replace keeps the length")
	}
	return update(dir, func(txn *badger.Txn) error {
		v, err := get(txn, recordKey(seq))
		if err != nil {
			return err
		}
		if !bytes.Contains(v, []byte(old)) {
			return fmt.Errorf("tamper: record %d holds no %q", seq, old)
		}
		return txn.Set(recordKey(seq), bytes.Replace(v, []byte(old), []byte(new), 1))
	})
}

// Delete removes record seq.
func Delete(dir string, seq uint64) error {
	return update(dir, func(txn *badger.Txn) error { return txn.Delete(recordKey(seq)) })
}

// Swap exchanges the stored bytes of records a and b: the two records
// trade places in the log.
func Swap(dir string, a, b uint64) error {
	return update(dir, func(txn *badger.Txn) error {
		va, err := get(txn, recordKey(a))
		if err != nil {
			return err
		}
		vb, err := get(txn, recordKey(b))
		if err != nil {
			return err
		}
		if err := txn.Set(recordKey(a), vb); err != nil {
			return err
		}
		return txn.Set(recordKey(b), va)
	})
}

// Truncate removes every record after seq. With moveHead, it also
// rewrites the head row to name record seq, as someone who knows the
// layout would; the head row keeps no secret, so nothing but an anchor
// kept elsewhere can tell.
func Truncate(dir string, seq uint64, moveHead bool) error {
	return update(dir, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'l'}})
		var doomed [][]byte
		for it.Seek(recordKey(seq + 1)); it.ValidForPrefix([]byte{'l'}); it.Next() {
			doomed = append(doomed, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range doomed {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if !moveHead {
			return nil
		}
		v, err := get(txn, recordKey(seq))
		if err != nil {
			return err
		}
		head, err := headOf(seq, v)
		if err != nil {
			return err
		}
		return txn.Set(headKey, head)
	})
}

// headOf builds a head row (version 1: version byte, uvarint seq, the
// record's time as varint seconds and uvarint nanoseconds, then its hash
// with a uvarint length) from record seq's stored bytes (version 1:
// version byte, time, four length-prefixed strings, the number of
// details and their length-prefixed keys and values, prev, hash).
func headOf(seq uint64, rec []byte) ([]byte, error) {
	r := bytes.NewReader(rec[1:])
	sec, err := binary.ReadVarint(r)
	if err != nil {
		return nil, err
	}
	ns, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	skip := func() error {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		_, err = r.Seek(int64(n), 1)
		return err
	}
	for range 4 { // actor, action, scope, reason
		if err := skip(); err != nil {
			return nil, err
		}
	}
	details, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	for range 2*details + 1 { // keys and values, prev
		if err := skip(); err != nil {
			return nil, err
		}
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	hash := make([]byte, n)
	if _, err := r.Read(hash); err != nil {
		return nil, err
	}
	h := []byte{1}
	h = binary.AppendUvarint(h, seq)
	h = binary.AppendVarint(h, sec)
	h = binary.AppendUvarint(h, ns)
	h = binary.AppendUvarint(h, uint64(len(hash)))
	return append(h, hash...), nil
}
