package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Record format versions of the audit log and escrow keys.
const (
	vAudit     = 1
	vAuditHead = 1
	vEscrow    = 1
)

// Bounds on what one stored audit record may hold. The auditor's own
// limits are far below; these keep a corrupt caller from filling a
// transaction with one record.
const (
	maxAuditField   = 64 << 10
	maxAuditDetails = 256
)

// maxAuditRead bounds one AuditRecords call.
const maxAuditRead = 10_000

// AppendAudit implements store.Store. It runs in the writer, so the head
// it checks against is the committed one and no other write interleaves.
func (db *DB) AppendAudit(ctx context.Context, rs []store.AuditRecord) error {
	if len(rs) == 0 {
		return nil
	}
	if len(rs) > store.MaxAuditBatch {
		return fmt.Errorf("store: append %d audit records: more than %d: %w", len(rs), store.MaxAuditBatch, store.ErrTooLarge)
	}
	vals := make([][]byte, len(rs))
	for i, r := range rs {
		if err := checkAuditRecord(r); err != nil {
			return fmt.Errorf("store: audit record %d: %w", r.Seq, err)
		}
		if i > 0 && (r.Seq != rs[i-1].Seq+1 || !bytes.Equal(r.Prev, rs[i-1].Hash)) {
			return fmt.Errorf("store: audit record %d does not follow record %d: %w", r.Seq, rs[i-1].Seq, store.ErrConflict)
		}
		vals[i] = encodeAudit(r)
	}
	last := rs[len(rs)-1]
	head := encodeAuditHead(store.AuditHead{Seq: last.Seq, Hash: last.Hash, Time: last.Time})
	return db.update(ctx, func(t *tx) error {
		h, err := loadAuditHead(t)
		if err != nil {
			return err
		}
		first := rs[0]
		if first.Seq != h.Seq+1 || (h.Seq > 0 && !bytes.Equal(first.Prev, h.Hash)) {
			return &store.AuditConflict{Seq: first.Seq, Head: h}
		}
		for i, r := range rs {
			// A record beyond the head would mean a broken head row;
			// never overwrite one.
			if ok, err := t.has(auditKey(r.Seq)); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("store: audit record %d exists beyond head %d: %w", r.Seq, h.Seq, store.ErrConflict)
			}
			if err := t.set(auditKey(r.Seq), vals[i]); err != nil {
				return err
			}
		}
		return t.set(auditHeadKey(), head)
	})
}

func checkAuditRecord(r store.AuditRecord) error {
	if r.Seq == 0 {
		return errors.New("seq 0")
	}
	for _, s := range []string{r.Actor, r.Action, r.Scope, r.Reason} {
		if len(s) > maxAuditField {
			return fmt.Errorf("field of %d bytes", len(s))
		}
	}
	if len(r.Detail) > maxAuditDetails {
		return fmt.Errorf("%d details", len(r.Detail))
	}
	for k, v := range r.Detail {
		if len(k) > maxAuditField || len(v) > maxAuditField {
			return fmt.Errorf("detail of %d bytes", len(k)+len(v))
		}
	}
	if len(r.Hash) == 0 || len(r.Hash) > 64 || len(r.Prev) > 64 {
		return fmt.Errorf("hash of %d bytes after %d", len(r.Hash), len(r.Prev))
	}
	return nil
}

// AuditHead implements store.Store.
func (db *DB) AuditHead(ctx context.Context) (store.AuditHead, error) {
	var h store.AuditHead
	err := db.read(ctx, func(t *tx) error {
		var err error
		h, err = loadAuditHead(t)
		return err
	})
	return h, err
}

func loadAuditHead(t *tx) (store.AuditHead, error) {
	v, err := t.get(auditHeadKey())
	if errors.Is(err, errNoKey) {
		return store.AuditHead{}, nil
	}
	if err != nil {
		return store.AuditHead{}, err
	}
	h, err := decodeAuditHead(v)
	if err != nil {
		return store.AuditHead{}, corrupt("audit head", err)
	}
	return h, nil
}

// AuditRecords implements store.Store.
func (db *DB) AuditRecords(ctx context.Context, from uint64, limit int) ([]store.AuditRecord, error) {
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, maxAuditRead)
	var out []store.AuditRecord
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pAudit}, auditKey(from), false, func(key, val []byte) (bool, error) {
			if len(key) != 9 {
				return false, corrupt("audit key", errCorrupt)
			}
			r, err := decodeAudit(val)
			if err != nil {
				return false, corrupt(fmt.Sprintf("audit record %x", key[1:]), err)
			}
			r.Seq = decodeSeq(key)
			out = append(out, r)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// decodeSeq returns the integer after a key's prefix byte.
func decodeSeq(key []byte) uint64 { return binary.BigEndian.Uint64(key[1:9]) }

// Audit record, version 1: version byte, time, actor, action, scope,
// reason, number of details, then key and value of each (sorted by key,
// so equal records encode equally), prev, hash. The seq is the key.
func encodeAudit(r store.AuditRecord) []byte {
	e := enc{vAudit}.time(r.Time).str(r.Actor).str(r.Action).str(r.Scope).str(r.Reason)
	e = e.uvarint(uint64(len(r.Detail)))
	for _, k := range slices.Sorted(maps.Keys(r.Detail)) {
		e = e.str(k).str(r.Detail[k])
	}
	return e.bytes(r.Prev).bytes(r.Hash)
}

func decodeAudit(b []byte) (store.AuditRecord, error) {
	d := dec{b: b}
	d.version(vAudit)
	r := store.AuditRecord{Time: d.time(), Actor: d.str(), Action: d.str(), Scope: d.str(), Reason: d.str()}
	n := d.uvarint()
	if n > maxAuditDetails {
		d.fail()
	}
	if n > 0 && d.err == nil {
		r.Detail = make(map[string]string, n)
		for range n {
			k := d.str()
			r.Detail[k] = d.str()
		}
	}
	r.Prev, r.Hash = d.bytes(), d.bytes()
	return r, d.finish()
}

// Audit head, version 1: version byte, seq, time, hash.
func encodeAuditHead(h store.AuditHead) []byte {
	return enc{vAuditHead}.uvarint(h.Seq).time(h.Time).bytes(h.Hash)
}

func decodeAuditHead(b []byte) (store.AuditHead, error) {
	d := dec{b: b}
	d.version(vAuditHead)
	h := store.AuditHead{Seq: d.uvarint(), Time: d.time(), Hash: d.bytes()}
	return h, d.finish()
}

// AddEscrowKey implements store.Store.
func (db *DB) AddEscrowKey(ctx context.Context, k store.EscrowKey) (store.EscrowKey, error) {
	if k.Fingerprint == "" || len(k.Fingerprint) > 128 || len(k.PublicKey) == 0 || len(k.PublicKey) > 1<<20 {
		return store.EscrowKey{}, fmt.Errorf("store: escrow key: bad fingerprint or public key")
	}
	if k.Created.IsZero() {
		k.Created = time.Now()
	}
	k.Created = k.Created.UTC()
	k.Retired = time.Time{}
	k.PublicKey = bytes.Clone(k.PublicKey)
	err := db.update(ctx, func(t *tx) error {
		keys, err := loadEscrowKeys(t)
		if err != nil {
			return err
		}
		for _, old := range keys {
			if old.Fingerprint == k.Fingerprint {
				return fmt.Errorf("store: escrow key %s: %w", k.Fingerprint, store.ErrExists)
			}
		}
		for _, old := range keys {
			if old.Retired.IsZero() {
				old.Retired = k.Created
				if err := t.set(escrowKey(old.ID), encodeEscrow(old)); err != nil {
					return err
				}
			}
		}
		if k.ID, err = nextCounter(t, counterEsc); err != nil {
			return err
		}
		return t.set(escrowKey(k.ID), encodeEscrow(k))
	})
	if err != nil {
		return store.EscrowKey{}, err
	}
	k.PublicKey = bytes.Clone(k.PublicKey)
	return k, nil
}

// EscrowKeys implements store.Store.
func (db *DB) EscrowKeys(ctx context.Context) ([]store.EscrowKey, error) {
	var keys []store.EscrowKey
	err := db.read(ctx, func(t *tx) error {
		var err error
		keys, err = loadEscrowKeys(t)
		return err
	})
	return keys, err
}

func loadEscrowKeys(t *tx) ([]store.EscrowKey, error) {
	var keys []store.EscrowKey
	err := t.scan([]byte{pEscrow}, nil, false, func(key, val []byte) (bool, error) {
		if len(key) != 9 {
			return false, corrupt("escrow key", errCorrupt)
		}
		k, err := decodeEscrow(val)
		if err != nil {
			return false, corrupt("escrow key", err)
		}
		k.ID = decodeSeq(key)
		keys = append(keys, k)
		return true, nil
	})
	return keys, err
}

// Escrow key, version 1: version byte, created, retired (zero time:
// in use), fingerprint, public key. The ID is the key.
func encodeEscrow(k store.EscrowKey) []byte {
	e := enc{vEscrow}.time(k.Created).bool(!k.Retired.IsZero())
	if !k.Retired.IsZero() {
		e = e.time(k.Retired)
	}
	return e.str(k.Fingerprint).bytes(k.PublicKey)
}

func decodeEscrow(b []byte) (store.EscrowKey, error) {
	d := dec{b: b}
	d.version(vEscrow)
	k := store.EscrowKey{Created: d.time()}
	if d.bool() {
		k.Retired = d.time()
	}
	k.Fingerprint = d.str()
	k.PublicKey = d.bytes()
	return k, d.finish()
}
