package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// CreateAccount implements store.Store.
func (db *DB) CreateAccount(ctx context.Context, a store.Account, mailboxes []store.MailboxSpec) error {
	if err := store.CheckAddress(a.Address); err != nil {
		return err
	}
	if a.QuotaBytes < store.QuotaNone {
		return fmt.Errorf("store: create account %s: bad quota setting %d", a.Address, a.QuotaBytes)
	}
	for _, s := range a.Slots {
		if err := checkSlot(s); err != nil {
			return fmt.Errorf("store: create account %s: %w", a.Address, err)
		}
	}
	seen := make(map[string]bool, len(mailboxes))
	for _, m := range mailboxes {
		if err := checkSpec(m); err != nil {
			return fmt.Errorf("store: create account %s: %w", a.Address, err)
		}
		if seen[m.Name] {
			return fmt.Errorf("store: create account %s: mailbox %q twice: %w", a.Address, m.Name, store.ErrExists)
		}
		seen[m.Name] = true
	}
	now := time.Now().UTC()
	created := a.Created
	if created.IsZero() {
		created = now
	}
	return db.update(ctx, func(t *tx) error {
		ok, err := t.has(accountKey(a.Address))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("store: account %s: %w", a.Address, store.ErrExists)
		}
		id, err := nextCounter(t, counterAcc)
		if err != nil {
			return err
		}
		rec := accountRec{
			ID:             id,
			Created:        created,
			KeyFingerprint: a.KeyFingerprint,
			PublicKey:      bytes.Clone(a.PublicKey),
			WrappedKey:     bytes.Clone(a.WrappedKey),
			PublishWKD:     a.PublishWKD,
			AutocryptOff:   a.AutocryptOff,
			QuotaBytes:     a.QuotaBytes,
		}
		for _, s := range a.Slots {
			rec.NextSlot++
			if s.Created.IsZero() {
				s.Created = now
			}
			if err := t.set(slotKey(id, rec.NextSlot), encodeSlot(s)); err != nil {
				return err
			}
		}
		for _, m := range mailboxes {
			if _, err := createMailbox(t, id, m); err != nil {
				return err
			}
		}
		if err := saveUsage(t, id, &usage{}); err != nil {
			return err
		}
		if err := t.set(acctAddrKey(id), []byte(a.Address)); err != nil {
			return err
		}
		return saveAccount(t, a.Address, &rec)
	})
}

func checkSlot(s store.Slot) error {
	switch s.Kind {
	case store.SlotPassword, store.SlotRecovery, store.SlotAppPassword:
	default:
		return fmt.Errorf("unknown slot kind %d", s.Kind)
	}
	if len(s.Data) == 0 {
		return errors.New("empty slot")
	}
	if len(s.Label) > 256 {
		return errors.New("slot label longer than 256 bytes")
	}
	return nil
}

// Account implements store.Store.
func (db *DB) Account(ctx context.Context, address string) (store.Account, error) {
	var a store.Account
	err := db.read(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, true)
		if err != nil {
			return err
		}
		a, err = db.fillAccount(t, address, rec)
		return err
	})
	return a, err
}

// PublicAccount implements store.Store: the account record and its usage
// counters, without the slots.
func (db *DB) PublicAccount(ctx context.Context, address string) (store.PublicAccount, error) {
	var a store.PublicAccount
	err := db.read(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, false)
		if err != nil {
			return err
		}
		a, err = db.publicAccount(t, address, rec)
		return err
	})
	return a, err
}

// publicAccount turns a record into a store.PublicAccount with its usage.
func (db *DB) publicAccount(t *tx, address string, rec accountRec) (store.PublicAccount, error) {
	a := store.PublicAccount{
		Address:        address,
		Created:        rec.Created,
		KeyFingerprint: rec.KeyFingerprint,
		PublicKey:      rec.PublicKey,
		PublishWKD:     rec.PublishWKD,
		AutocryptOff:   rec.AutocryptOff,
		QuotaBytes:     rec.QuotaBytes,
		QuotaLimit:     quotaLimit(rec.QuotaBytes, db.defaultQuota),
	}
	u, err := loadUsage(t, rec.ID)
	a.UsedBytes = u.Used
	return a, err
}

// fillAccount turns a record into a store.Account with its slots and usage.
func (db *DB) fillAccount(t *tx, address string, rec accountRec) (store.Account, error) {
	a := store.Account{
		Address:        address,
		Created:        rec.Created,
		KeyFingerprint: rec.KeyFingerprint,
		PublicKey:      rec.PublicKey,
		WrappedKey:     rec.WrappedKey,
		PublishWKD:     rec.PublishWKD,
		AutocryptOff:   rec.AutocryptOff,
		QuotaBytes:     rec.QuotaBytes,
		QuotaLimit:     quotaLimit(rec.QuotaBytes, db.defaultQuota),
	}
	u, err := loadUsage(t, rec.ID)
	if err != nil {
		return a, err
	}
	a.UsedBytes = u.Used
	err = t.scan(acctKey(pSlot, rec.ID), nil, false, func(k, v []byte) (bool, error) {
		s, err := decodeSlot(uidOf(k), v)
		if err != nil {
			return false, corrupt("slot", err)
		}
		a.Slots = append(a.Slots, s)
		return true, nil
	})
	return a, err
}

// Accounts implements store.Store.
func (db *DB) Accounts(ctx context.Context) ([]store.Account, error) {
	var out []store.Account
	err := db.read(ctx, func(t *tx) error {
		return scanAccounts(ctx, t, true, func(addr string, rec accountRec) error {
			a, err := db.fillAccount(t, addr, rec)
			out = append(out, a)
			return err
		})
	})
	return out, err
}

// PublicAccounts implements store.Store.
func (db *DB) PublicAccounts(ctx context.Context) ([]store.PublicAccount, error) {
	var out []store.PublicAccount
	err := db.read(ctx, func(t *tx) error {
		return scanAccounts(ctx, t, false, func(addr string, rec accountRec) error {
			a, err := db.publicAccount(t, addr, rec)
			out = append(out, a)
			return err
		})
	})
	return out, err
}

// scanAccounts calls fn for every account in address order, with the
// wrapped key if withKey. The records are gathered first: fn may read
// other keys.
func scanAccounts(ctx context.Context, t *tx, withKey bool, fn func(address string, rec accountRec) error) error {
	type entry struct {
		addr string
		rec  accountRec
	}
	var recs []entry
	err := t.scan([]byte{pAccount}, nil, false, func(k, v []byte) (bool, error) {
		rec, err := decodeAccount(v, withKey)
		if err != nil {
			return false, corrupt("account", err)
		}
		recs = append(recs, entry{string(k[1:]), rec})
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, e := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.addr, e.rec); err != nil {
			return err
		}
	}
	return nil
}

// AddSlot implements store.Store.
func (db *DB) AddSlot(ctx context.Context, address string, s store.Slot) (uint32, error) {
	if err := checkSlot(s); err != nil {
		return 0, fmt.Errorf("store: add slot to %s: %w", address, err)
	}
	if s.Created.IsZero() {
		s.Created = time.Now().UTC()
	}
	var id uint32
	err := db.update(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, true)
		if err != nil {
			return err
		}
		if rec.NextSlot == 1<<32-1 {
			return fmt.Errorf("store: add slot to %s: slot IDs exhausted", address)
		}
		rec.NextSlot++
		id = rec.NextSlot
		if err := t.set(slotKey(rec.ID, id), encodeSlot(s)); err != nil {
			return err
		}
		return saveAccount(t, address, &rec)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// RemoveSlot implements store.Store.
func (db *DB) RemoveSlot(ctx context.Context, address string, id uint32) error {
	return db.update(ctx, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		k := slotKey(acct, id)
		ok, err := t.has(k)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(fmt.Sprintf("slot %d of %s", id, address))
		}
		return t.del(k)
	})
}

// SetPublishWKD implements store.Store.
func (db *DB) SetPublishWKD(ctx context.Context, address string, publish bool) error {
	return db.update(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, true)
		if err != nil {
			return err
		}
		rec.PublishWKD = publish
		return saveAccount(t, address, &rec)
	})
}

// SetAutocrypt implements store.Store.
func (db *DB) SetAutocrypt(ctx context.Context, address string, on bool) error {
	return db.update(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, true)
		if err != nil {
			return err
		}
		rec.AutocryptOff = !on
		return saveAccount(t, address, &rec)
	})
}

// SetQuota implements store.Store.
func (db *DB) SetQuota(ctx context.Context, address string, quota int64) error {
	if quota < store.QuotaNone {
		return fmt.Errorf("store: set quota of %s: bad quota setting %d", address, quota)
	}
	return db.update(ctx, func(t *tx) error {
		rec, err := loadAccount(t, address, true)
		if err != nil {
			return err
		}
		rec.QuotaBytes = quota
		return saveAccount(t, address, &rec)
	})
}
