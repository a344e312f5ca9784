package badgerstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// The inbound filter's state (store.FilterStore). Rules and models are
// keyed by account ID (0 for the organisation), so that deleting an
// account purges them with the rest; greylist entries by their hashed
// key.

const (
	vFilterRule  = 1
	vFilterModel = 1
	vGreylist    = 1
	// maxGreylistKey bounds a greylist key (a hash, in practice).
	maxGreylistKey = 64
	// maxRuleText bounds a rule's value and note.
	maxRuleText = 1024
)

// ownerID returns the account ID of owner, 0 for the organisation ("").
func ownerID(t *tx, owner string) (uint64, error) {
	if owner == "" {
		return 0, nil
	}
	return accountID(t, owner)
}

func ruleKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pFilterRule, acct), id)
}

func encodeRule(r store.FilterRule) []byte {
	return enc{vFilterRule}.str(r.Owner).uvarint(uint64(r.Action)).uvarint(uint64(r.Kind)).
		str(r.Value).str(r.Note).time(r.Created)
}

func decodeRule(id uint64, b []byte) (store.FilterRule, error) {
	d := dec{b: b}
	d.version(vFilterRule)
	r := store.FilterRule{ID: id, Owner: d.str()}
	r.Action = store.FilterAction(d.uvarint())
	r.Kind = store.FilterKind(d.uvarint())
	r.Value = d.str()
	r.Note = d.str()
	r.Created = d.time()
	return r, d.finish()
}

// AddFilterRule implements store.FilterStore.
func (db *DB) AddFilterRule(ctx context.Context, r store.FilterRule) (store.FilterRule, error) {
	if r.Value == "" || len(r.Value) > maxRuleText || len(r.Note) > maxRuleText {
		return store.FilterRule{}, fmt.Errorf("%w: filter rule value or note", store.ErrBadName)
	}
	if r.Action != store.FilterAllow && r.Action != store.FilterDeny ||
		r.Kind < store.FilterCIDR || r.Kind > store.FilterAddress {
		return store.FilterRule{}, fmt.Errorf("badgerstore: filter rule: unknown action %d or kind %d", r.Action, r.Kind)
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	r.Created = r.Created.UTC()
	err := db.update(ctx, func(t *tx) error {
		acct, err := ownerID(t, r.Owner)
		if err != nil {
			return err
		}
		n := 0
		err = t.scan(acctKey(pFilterRule, acct), nil, false, func(k, v []byte) (bool, error) {
			old, err := decodeRule(binary.BigEndian.Uint64(k[len(k)-8:]), v)
			if err != nil {
				return false, corrupt("filter rule", err)
			}
			if old.Action == r.Action && old.Kind == r.Kind && old.Value == r.Value {
				return false, fmt.Errorf("store: filter rule %s %s %s: %w", r.Action, r.Kind, r.Value, store.ErrExists)
			}
			n++
			return true, nil
		})
		if err != nil {
			return err
		}
		if n >= store.MaxFilterRules {
			return fmt.Errorf("store: more than %d filter rules: %w", store.MaxFilterRules, store.ErrTooLarge)
		}
		if r.ID, err = nextCounter(t, counterRule); err != nil {
			return err
		}
		return t.set(ruleKey(acct, r.ID), encodeRule(r))
	})
	if err != nil {
		return store.FilterRule{}, err
	}
	return r, nil
}

// FilterRules implements store.FilterStore.
func (db *DB) FilterRules(ctx context.Context) ([]store.FilterRule, error) {
	var rules []store.FilterRule
	err := db.read(ctx, func(t *tx) error {
		rules = rules[:0]
		return t.scan([]byte{pFilterRule}, nil, false, func(k, v []byte) (bool, error) {
			r, err := decodeRule(binary.BigEndian.Uint64(k[len(k)-8:]), v)
			if err != nil {
				return false, corrupt("filter rule", err)
			}
			rules = append(rules, r)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortRules(rules)
	return rules, nil
}

func sortRules(rs []store.FilterRule) {
	slices.SortFunc(rs, func(a, b store.FilterRule) int { return cmp.Compare(a.ID, b.ID) })
}

// RemoveFilterRule implements store.FilterStore.
func (db *DB) RemoveFilterRule(ctx context.Context, id uint64) error {
	return db.update(ctx, func(t *tx) error {
		var key []byte
		err := t.scan([]byte{pFilterRule}, nil, true, func(k, _ []byte) (bool, error) {
			if binary.BigEndian.Uint64(k[len(k)-8:]) == id {
				key = append([]byte(nil), k...)
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if key == nil {
			return notFound(fmt.Sprintf("filter rule %d", id))
		}
		return t.del(key)
	})
}

func greylistKey(key []byte) []byte { return append([]byte{pGreylist}, key...) }

func encodeGreylist(e store.GreylistEntry) []byte {
	return enc{vGreylist}.time(e.First).time(e.Last).uvarint(uint64(e.Passes))
}

func decodeGreylist(b []byte) (store.GreylistEntry, error) {
	d := dec{b: b}
	d.version(vGreylist)
	e := store.GreylistEntry{First: d.time(), Last: d.time(), Passes: uint32(min(d.uvarint(), 1<<32-1))}
	return e, d.finish()
}

func checkGreylistKey(key []byte) error {
	if len(key) == 0 || len(key) > maxGreylistKey {
		return fmt.Errorf("%w: greylist key of %d bytes", store.ErrBadName, len(key))
	}
	return nil
}

// Greylist implements store.FilterStore.
func (db *DB) Greylist(ctx context.Context, key []byte) (store.GreylistEntry, error) {
	if err := checkGreylistKey(key); err != nil {
		return store.GreylistEntry{}, err
	}
	var e store.GreylistEntry
	err := db.read(ctx, func(t *tx) error {
		v, err := t.get(greylistKey(key))
		if errors.Is(err, errNoKey) {
			return notFound("greylist entry")
		}
		if err != nil {
			return err
		}
		if e, err = decodeGreylist(v); err != nil {
			return corrupt("greylist entry", err)
		}
		return nil
	})
	return e, err
}

// SetGreylist implements store.FilterStore.
func (db *DB) SetGreylist(ctx context.Context, key []byte, e store.GreylistEntry) error {
	if err := checkGreylistKey(key); err != nil {
		return err
	}
	k, v := greylistKey(key), encodeGreylist(e)
	return db.update(ctx, func(t *tx) error { return t.set(k, v) })
}

// ExpireGreylist implements store.FilterStore.
func (db *DB) ExpireGreylist(ctx context.Context, before time.Time) (int, error) {
	return db.expire(ctx, []byte{pGreylist}, func(_, v []byte) (bool, error) {
		e, err := decodeGreylist(v)
		if err != nil {
			return true, nil // unreadable: remove it
		}
		return e.Last.Before(before), nil
	})
}

// expire deletes the rows under prefix that old reports, in chunks of
// their own durable transactions, and returns how many it deleted.
func (db *DB) expire(ctx context.Context, prefix []byte, old func(k, v []byte) (bool, error)) (int, error) {
	if err := db.enter(ctx); err != nil {
		return 0, err
	}
	defer db.leave()
	const chunk = 2000
	total := 0
	start := prefix
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var (
			keys [][]byte
			next []byte
		)
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan(prefix, start, false, func(k, v []byte) (bool, error) {
				if len(keys) >= chunk {
					next = append([]byte(nil), k...)
					return false, nil
				}
				gone, err := old(k, v)
				if err != nil {
					return false, err
				}
				if gone {
					keys = append(keys, append([]byte(nil), k...))
				}
				return true, nil
			})
		})
		if err != nil {
			return total, internal("expire scan", err)
		}
		if len(keys) > 0 {
			if err := db.deleteKeys(keys); err != nil {
				return total, err
			}
			total += len(keys)
		}
		if next == nil {
			return total, nil
		}
		start = next
	}
}

func modelKey(acct uint64) []byte { return acctKey(pFilterModel, acct) }

func encodeModel(m store.FilterModel) []byte {
	b := enc{vFilterModel}.uvarint(m.Gen).bytes(m.Key)
	return append(b.uvarint(uint64(len(m.Data))), m.Data...)
}

func decodeModel(b []byte) (store.FilterModel, error) {
	d := dec{b: b}
	d.version(vFilterModel)
	m := store.FilterModel{Gen: d.uvarint(), Key: d.bytes(), Data: d.bytes()}
	return m, d.finish()
}

// FilterModel implements store.FilterStore.
func (db *DB) FilterModel(ctx context.Context, owner string) (store.FilterModel, error) {
	var m store.FilterModel
	err := db.read(ctx, func(t *tx) error {
		acct, err := ownerID(t, owner)
		if err != nil {
			return err
		}
		v, err := t.get(modelKey(acct))
		if errors.Is(err, errNoKey) {
			return notFound("filter model")
		}
		if err != nil {
			return err
		}
		if m, err = decodeModel(v); err != nil {
			return corrupt("filter model", err)
		}
		return nil
	})
	return m, err
}

// maxModelBytes bounds one model (key and data): a badger value.
const maxModelBytes = 64 << 20

// PutFilterModel implements store.FilterStore.
func (db *DB) PutFilterModel(ctx context.Context, owner string, m store.FilterModel, gen uint64) (uint64, error) {
	if len(m.Key)+len(m.Data) > maxModelBytes {
		return 0, fmt.Errorf("store: filter model of %d bytes: %w", len(m.Key)+len(m.Data), store.ErrTooLarge)
	}
	var next uint64
	err := db.update(ctx, func(t *tx) error {
		acct, err := ownerID(t, owner)
		if err != nil {
			return err
		}
		var cur uint64
		v, err := t.get(modelKey(acct))
		switch {
		case err == nil:
			old, err := decodeModel(v)
			if err != nil {
				return corrupt("filter model", err)
			}
			cur = old.Gen
		case !errors.Is(err, errNoKey):
			return err
		}
		if cur != gen {
			return fmt.Errorf("store: filter model at generation %d, not %d: %w", cur, gen, store.ErrConflict)
		}
		next = cur + 1
		m.Gen = next
		return t.set(modelKey(acct), encodeModel(m))
	})
	return next, err
}
