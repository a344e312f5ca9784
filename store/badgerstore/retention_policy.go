package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The policy data: imported presets, assignments, holds and events. Every
// change increments the policy generation in the same transaction, so
// that a state computed under the policy before it can be told apart.

// maxPolicyText bounds the free-text fields of policy rows.
const maxPolicyText = 4096

func bumpPolicyGen(t *tx) (uint64, error) { return nextCounter(t, counterPolicyGen) }

// addInForce changes the count of assignments and active holds by n.
func addInForce(t *tx, n int64) error {
	var c int64
	v, err := t.get(counterKey(counterInForce))
	switch {
	case err == nil:
		u, err := decodeU64(v)
		if err != nil {
			return corrupt("counter "+counterInForce, err)
		}
		c = int64(u)
	case !errors.Is(err, errNoKey):
		return err
	}
	c = max(c+n, 0)
	return t.set(counterKey(counterInForce), putU64(uint64(c)))
}

// policyInForce reports whether any assignment or active hold exists:
// only then is a message whose state is not computed yet protected.
func policyInForce(t *tx) (bool, error) {
	v, err := t.get(counterKey(counterInForce))
	if errors.Is(err, errNoKey) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	n, err := decodeU64(v)
	if err != nil {
		return false, corrupt("counter "+counterInForce, err)
	}
	return n > 0, nil
}

// PolicyGen implements store.RetentionStore.
func (db *DB) PolicyGen(ctx context.Context) (uint64, error) {
	var gen uint64
	err := db.read(ctx, func(t *tx) (err error) {
		gen, err = policyGen(t)
		return err
	})
	return gen, err
}

func policyGen(t *tx) (uint64, error) {
	v, err := t.get(counterKey(counterPolicyGen))
	if errors.Is(err, errNoKey) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := decodeU64(v)
	if err != nil {
		return 0, corrupt("policy generation", err)
	}
	return n, nil
}

func checkText(what string, ss ...string) error {
	for _, s := range ss {
		if len(s) > maxPolicyText {
			return fmt.Errorf("store: %s: text longer than %d bytes", what, maxPolicyText)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("store: %s: NUL in text", what)
		}
	}
	return nil
}

// PutPreset implements store.RetentionStore.
func (db *DB) PutPreset(ctx context.Context, p store.Preset) error {
	if p.ID == "" || len(p.ID) > 64 || len(p.Source) > 1<<20 {
		return fmt.Errorf("store: put preset %q: bad ID or too large", p.ID)
	}
	if err := checkText("put preset", p.ID, p.By); err != nil {
		return err
	}
	rec := enc{vPolicyRec}.uvarint(uint64(p.Version)).bytes(p.Source).time(p.Imported).str(p.By)
	return db.update(ctx, func(t *tx) error {
		if err := t.set(append([]byte{pPreset}, p.ID...), rec); err != nil {
			return err
		}
		_, err := bumpPolicyGen(t)
		return err
	})
}

// Presets implements store.RetentionStore.
func (db *DB) Presets(ctx context.Context) ([]store.Preset, error) {
	var out []store.Preset
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pPreset}, nil, false, func(k, v []byte) (bool, error) {
			d := dec{b: v}
			d.version(vPolicyRec)
			p := store.Preset{ID: string(k[1:]), Version: int(d.uvarint()), Source: d.bytes(), Imported: d.time(), By: d.str()}
			if err := d.finish(); err != nil {
				return false, corrupt("preset", err)
			}
			out = append(out, p)
			return true, nil
		})
	})
	return out, err
}

func assignKey(scope, preset string) []byte {
	k := append([]byte{pAssign}, scope...)
	k = append(k, 0)
	return append(k, preset...)
}

// PutAssignment implements store.RetentionStore.
func (db *DB) PutAssignment(ctx context.Context, a store.Assignment) error {
	if a.Preset == "" || a.Scope == "" {
		return errors.New("store: put assignment: preset and scope are required")
	}
	if err := checkText("put assignment", a.Preset, a.Scope, a.Class, a.Zone, a.FiscalYearStart, a.By, a.Reason); err != nil {
		return err
	}
	rec := enc{vPolicyRec}.str(a.Class).str(a.Zone).str(a.FiscalYearStart).time(a.Created).str(a.By).str(a.Reason)
	return db.update(ctx, func(t *tx) error {
		k := assignKey(a.Scope, a.Preset)
		existed, err := t.has(k)
		if err != nil {
			return err
		}
		if !existed {
			if err := addInForce(t, 1); err != nil {
				return err
			}
		}
		if err := t.set(k, rec); err != nil {
			return err
		}
		_, err = bumpPolicyGen(t)
		return err
	})
}

// DeleteAssignment implements store.RetentionStore.
func (db *DB) DeleteAssignment(ctx context.Context, preset, scope string) error {
	return db.update(ctx, func(t *tx) error {
		k := assignKey(scope, preset)
		ok, err := t.has(k)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(fmt.Sprintf("assignment of %s to %s", preset, scope))
		}
		if err := t.del(k); err != nil {
			return err
		}
		if err := addInForce(t, -1); err != nil {
			return err
		}
		_, err = bumpPolicyGen(t)
		return err
	})
}

// Assignments implements store.RetentionStore.
func (db *DB) Assignments(ctx context.Context) ([]store.Assignment, error) {
	var out []store.Assignment
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pAssign}, nil, false, func(k, v []byte) (bool, error) {
			scope, preset, ok := bytes.Cut(k[1:], []byte{0})
			if !ok {
				return false, corrupt("assignment key", errCorrupt)
			}
			d := dec{b: v}
			d.version(vPolicyRec)
			a := store.Assignment{Preset: string(preset), Scope: string(scope), Class: d.str(), Zone: d.str(),
				FiscalYearStart: d.str(), Created: d.time(), By: d.str(), Reason: d.str()}
			if err := d.finish(); err != nil {
				return false, corrupt("assignment", err)
			}
			out = append(out, a)
			return true, nil
		})
	})
	return out, err
}

func holdKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{pHold}, id) }

func encodeHold(h store.Hold) []byte {
	return enc{vPolicyRec}.str(h.Matter).str(h.Reason).str(h.Scope).time(h.From).time(h.To).
		time(h.Placed).str(h.PlacedBy).time(h.Released).str(h.ReleasedBy).str(h.ReleaseReason)
}

func decodeHold(id uint64, b []byte) (store.Hold, error) {
	d := dec{b: b}
	d.version(vPolicyRec)
	h := store.Hold{ID: id, Matter: d.str(), Reason: d.str(), Scope: d.str(), From: d.time(), To: d.time(),
		Placed: d.time(), PlacedBy: d.str(), Released: d.time(), ReleasedBy: d.str(), ReleaseReason: d.str()}
	return h, d.finish()
}

// AddHold implements store.RetentionStore.
func (db *DB) AddHold(ctx context.Context, h store.Hold) (store.Hold, error) {
	if h.Scope == "" || h.Matter == "" {
		return store.Hold{}, errors.New("store: add hold: scope and matter are required")
	}
	if err := checkText("add hold", h.Matter, h.Reason, h.Scope, h.PlacedBy); err != nil {
		return store.Hold{}, err
	}
	h.Released, h.ReleasedBy, h.ReleaseReason = time.Time{}, "", ""
	err := db.update(ctx, func(t *tx) error {
		id, err := nextCounter(t, counterHold)
		if err != nil {
			return err
		}
		h.ID = id
		if err := t.set(holdKey(id), encodeHold(h)); err != nil {
			return err
		}
		if err := addInForce(t, 1); err != nil {
			return err
		}
		_, err = bumpPolicyGen(t)
		return err
	})
	if err != nil {
		return store.Hold{}, err
	}
	return h, nil
}

// ReleaseHold implements store.RetentionStore.
func (db *DB) ReleaseHold(ctx context.Context, id uint64, at time.Time, by, reason string) (store.Hold, error) {
	if err := checkText("release hold", by, reason); err != nil {
		return store.Hold{}, err
	}
	if at.IsZero() {
		at = time.Now().UTC()
	}
	var h store.Hold
	err := db.update(ctx, func(t *tx) error {
		v, err := t.get(holdKey(id))
		if errors.Is(err, errNoKey) {
			return notFound(fmt.Sprintf("hold %d", id))
		}
		if err != nil {
			return err
		}
		if h, err = decodeHold(id, v); err != nil {
			return corrupt("hold", err)
		}
		if !h.Active() {
			return fmt.Errorf("store: hold %d was released on %s: %w", id, h.Released.Format(time.RFC3339), store.ErrExists)
		}
		h.Released, h.ReleasedBy, h.ReleaseReason = at.UTC(), by, reason
		if err := t.set(holdKey(id), encodeHold(h)); err != nil {
			return err
		}
		if err := addInForce(t, -1); err != nil {
			return err
		}
		_, err = bumpPolicyGen(t)
		return err
	})
	return h, err
}

// Holds implements store.RetentionStore.
func (db *DB) Holds(ctx context.Context) ([]store.Hold, error) {
	var out []store.Hold
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pHold}, nil, false, func(k, v []byte) (bool, error) {
			if len(k) != 9 {
				return false, corrupt("hold key", errCorrupt)
			}
			h, err := decodeHold(binary.BigEndian.Uint64(k[1:]), v)
			if err != nil {
				return false, corrupt("hold", err)
			}
			out = append(out, h)
			return true, nil
		})
	})
	return out, err
}

func eventKey(scope, name string) []byte {
	k := append([]byte{pEvent}, scope...)
	k = append(k, 0)
	return append(k, name...)
}

// PutRetentionEvent implements store.RetentionStore.
func (db *DB) PutRetentionEvent(ctx context.Context, e store.RetentionEvent) error {
	if e.Name == "" || e.Scope == "" {
		return errors.New("store: put event: name and scope are required")
	}
	if err := checkText("put event", e.Name, e.Scope, e.By); err != nil {
		return err
	}
	rec := enc{vPolicyRec}.time(e.At).str(e.By)
	return db.update(ctx, func(t *tx) error {
		if err := t.set(eventKey(e.Scope, e.Name), rec); err != nil {
			return err
		}
		_, err := bumpPolicyGen(t)
		return err
	})
}

// RetentionEvents implements store.RetentionStore.
func (db *DB) RetentionEvents(ctx context.Context) ([]store.RetentionEvent, error) {
	var out []store.RetentionEvent
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pEvent}, nil, false, func(k, v []byte) (bool, error) {
			scope, name, ok := bytes.Cut(k[1:], []byte{0})
			if !ok {
				return false, corrupt("event key", errCorrupt)
			}
			d := dec{b: v}
			d.version(vPolicyRec)
			e := store.RetentionEvent{Name: string(name), Scope: string(scope), At: d.time(), By: d.str()}
			if err := d.finish(); err != nil {
				return false, corrupt("event", err)
			}
			out = append(out, e)
			return true, nil
		})
	})
	slices.SortStableFunc(out, func(a, b store.RetentionEvent) int { return strings.Compare(a.Scope, b.Scope) })
	return out, err
}
