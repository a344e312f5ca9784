package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// Expunge tombstones (store.Tombstones). One row per removed message,
// keyed by mailbox and mod-sequence so that Vanished seeks to its
// mod-sequence and reads only what follows, and one state row per mailbox
// with the floor and the number of rows kept. Persisted: never reuse the
// prefixes.
const (
	pTomb      = 'V' // V acct mbox modseq:8 uid:4 -> (empty) a removal
	pTombState = 'X' // X acct mbox               -> tombstone state: floor, count
)

// counterTomb holds the last mailbox ID handed out when this store began
// keeping tombstones: a mailbox with a higher ID has had them since it was
// created. Persisted.
const counterTomb = "tombstones"

// vTombState is the version of the state row.
const vTombState = 1

func tombPrefix(acct, mbox uint64) []byte { return msgPrefix(pTomb, acct, mbox) }

func tombKey(acct, mbox, modseq uint64, uid uint32) []byte {
	k := binary.BigEndian.AppendUint64(tombPrefix(acct, mbox), modseq)
	return binary.BigEndian.AppendUint32(k, uid)
}

func tombStateKey(acct, mbox uint64) []byte { return msgPrefix(pTombState, acct, mbox) }

// tombModSeq returns the mod-sequence of a tombstone key.
func tombModSeq(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-12:]) }

// tombState is a mailbox's tombstone bookkeeping.
type tombState struct {
	Floor uint64 // removals at or below it may be forgotten
	Count uint64 // tombstone rows kept
}

func (s *tombState) encode() []byte {
	return enc{vTombState}.uvarint(s.Floor).uvarint(s.Count)
}

func decodeTombState(b []byte) (tombState, error) {
	d := dec{b: b}
	d.version(vTombState)
	s := tombState{Floor: d.uvarint(), Count: d.uvarint()}
	return s, d.finish()
}

// initTombstones records, once, from which mailbox ID on mailboxes have
// kept tombstones since their creation, and loads it.
func (db *DB) initTombstones() error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		t := &tx{txn: txn}
		v, err := t.get(counterKey(counterTomb))
		if err == nil {
			db.tombSince, err = decodeU64(v)
			return err
		}
		if !errors.Is(err, errNoKey) {
			return err
		}
		v, err = t.get(counterKey(counterMbox))
		if err != nil {
			return err
		}
		if db.tombSince, err = decodeU64(v); err != nil {
			return err
		}
		return t.set(counterKey(counterTomb), putU64(db.tombSince))
	})
	if err != nil {
		return internal("open: tombstones", err)
	}
	return nil
}

// loadTombState returns mailbox m's tombstone state. A mailbox without
// one has recorded no removal since tombstones began: its floor is 0 if
// it was created since then, else before (its HighestModSeq now, less
// the removal being recorded, which raised it: pending).
func (db *DB) loadTombState(t *tx, acct uint64, m *store.Mailbox, pending bool) (tombState, error) {
	v, err := t.get(tombStateKey(acct, m.ID))
	if err == nil {
		s, err := decodeTombState(v)
		if err != nil {
			return s, corrupt("tombstone state", err)
		}
		return s, nil
	}
	if !errors.Is(err, errNoKey) {
		return tombState{}, err
	}
	if m.ID > db.tombSince {
		return tombState{}, nil
	}
	floor := m.HighestModSeq
	if pending && floor > 0 {
		floor--
	}
	return tombState{Floor: floor}, nil
}

// addTombstones records that uids left mailbox m at m.HighestModSeq,
// which the caller has just raised, in the transaction that removes them,
// and keeps the mailbox's tombstones within store.TombstoneWindow by
// dropping the oldest (pruneTombstones). uids may be unsorted.
func (db *DB) addTombstones(t *tx, acct uint64, m *store.Mailbox, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	s, err := db.loadTombState(t, acct, m, true)
	if err != nil {
		return err
	}
	if len(uids) > store.TombstoneBulk {
		// Too many to record: nothing at or below this removal is
		// known for sure any more.
		s.Floor = m.HighestModSeq
	} else {
		for _, uid := range uids {
			if err := t.set(tombKey(acct, m.ID, m.HighestModSeq, uid), nil); err != nil {
				return err
			}
		}
		s.Count += uint64(len(uids))
	}
	if s.Count > store.TombstoneWindow {
		if err := pruneTombstones(t, acct, m.ID, &s); err != nil {
			return err
		}
	}
	return t.set(tombStateKey(acct, m.ID), s.encode())
}

// pruneTombstones drops a mailbox's oldest removals, whole (all the
// UIDs of one mod-sequence or none), as long as at least
// store.TombstoneWindow tombstones stay, and raises the floor to the
// newest one dropped. Each removal adds at most store.TombstoneBulk, so
// the count stays below the window plus that.
func pruneTombstones(t *tx, acct, mbox uint64, s *tombState) error {
	var (
		drop  [][]byte // whole removals to drop
		group [][]byte // the removal being read
		seq   uint64   // its mod-sequence
	)
	kept := s.Count
	err := t.scan(tombPrefix(acct, mbox), nil, true, func(k, _ []byte) (bool, error) {
		if ms := tombModSeq(k); ms != seq && len(group) > 0 {
			if kept-uint64(len(group)) < store.TombstoneWindow {
				return false, nil
			}
			kept -= uint64(len(group))
			drop = append(drop, group...)
			s.Floor = max(s.Floor, seq)
			group = nil
		}
		seq = tombModSeq(k)
		group = append(group, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := t.del(k); err != nil {
			return err
		}
	}
	s.Count -= uint64(len(drop))
	return nil
}

// dropTombstones removes a deleted mailbox's tombstones and state. The
// caller holds closeMu for reading (or Open runs it).
func (db *DB) dropTombstones(acct, mbox uint64) error {
	if err := db.deleteAll(tombPrefix(acct, mbox), func(int) {}); err != nil {
		return err
	}
	return db.deleteKeys([][]byte{tombStateKey(acct, mbox)})
}

// Vanished implements store.Tombstones.
func (db *DB) Vanished(ctx context.Context, address string, mailbox uint64, since uint64) (store.VanishedSince, error) {
	var out store.VanishedSince
	err := db.read(ctx, func(t *tx) error {
		out = store.VanishedSince{}
		acct, m, err := resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		s, err := db.loadTombState(t, acct, &m, false)
		if err != nil {
			return err
		}
		out.Floor = s.Floor
		out.Complete = since >= s.Floor
		if since >= m.HighestModSeq {
			return nil
		}
		from := max(since, s.Floor) + 1
		n := 0
		return t.scan(tombPrefix(acct, m.ID), tombKey(acct, m.ID, from, 0), true, func(k, _ []byte) (bool, error) {
			if len(k) != 1+8+8+8+4 {
				return true, nil
			}
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			out.UIDs = append(out.UIDs, uidOf(k))
			return true, nil
		})
	})
	if err != nil {
		return store.VanishedSince{}, err
	}
	slices.Sort(out.UIDs)
	out.UIDs = slices.Compact(out.UIDs)
	return out, nil
}
