package badgerstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/sealmail/sealmail/store"
)

func checkSpec(m store.MailboxSpec) error {
	if err := store.CheckMailboxName(m.Name); err != nil {
		return err
	}
	if m.SpecialUse != "" {
		if len(m.SpecialUse) > 32 || m.SpecialUse[0] != '\\' {
			return fmt.Errorf("%w: special use %q", store.ErrBadName, m.SpecialUse)
		}
		for _, c := range []byte(m.SpecialUse[1:]) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return fmt.Errorf("%w: special use %q", store.ErrBadName, m.SpecialUse)
			}
		}
	}
	return nil
}

// createMailbox adds a mailbox to account acct. ErrExists if the name is
// taken.
func createMailbox(t *tx, acct uint64, spec store.MailboxSpec) (store.Mailbox, error) {
	nk := mboxNameKey(acct, spec.Name)
	ok, err := t.has(nk)
	if err != nil {
		return store.Mailbox{}, err
	}
	if ok {
		return store.Mailbox{}, fmt.Errorf("store: mailbox %q: %w", spec.Name, store.ErrExists)
	}
	uidv, err := nextUIDValidity(t)
	if err != nil {
		return store.Mailbox{}, err
	}
	id, err := nextMailboxID(t)
	if err != nil {
		return store.Mailbox{}, err
	}
	m := store.Mailbox{
		ID:            id,
		Name:          spec.Name,
		SpecialUse:    spec.SpecialUse,
		Subscribed:    spec.Subscribed,
		UIDValidity:   uidv,
		UIDNext:       1,
		HighestModSeq: 1, // store.Mailbox: 0 would say "no mod-sequences"
	}
	if err := t.set(nk, putU64(m.ID)); err != nil {
		return m, err
	}
	if spec.Subscribed {
		if err := t.set(subscriptionKey(acct, spec.Name), nil); err != nil {
			return m, err
		}
	}
	return m, saveMailbox(t, acct, &m)
}

// CreateMailbox implements store.Store.
func (db *DB) CreateMailbox(ctx context.Context, address string, spec store.MailboxSpec) (store.Mailbox, error) {
	if err := checkSpec(spec); err != nil {
		return store.Mailbox{}, err
	}
	var m store.Mailbox
	err := db.update(ctx, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		m, err = createMailbox(t, acct, spec)
		return err
	})
	return m, err
}

// Mailbox implements store.Store.
func (db *DB) Mailbox(ctx context.Context, address, name string) (store.Mailbox, error) {
	var m store.Mailbox
	err := db.read(ctx, func(t *tx) (err error) {
		_, m, err = resolve(t, address, name)
		return err
	})
	return m, err
}

// MailboxByID implements store.Store.
func (db *DB) MailboxByID(ctx context.Context, address string, id uint64) (store.Mailbox, error) {
	var m store.Mailbox
	err := db.read(ctx, func(t *tx) (err error) {
		_, m, err = resolveID(t, address, id)
		return err
	})
	return m, err
}

// Mailboxes implements store.Store.
func (db *DB) Mailboxes(ctx context.Context, address string) ([]store.Mailbox, error) {
	var out []store.Mailbox
	err := db.read(ctx, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		var ids []uint64
		err = t.scan(acctKey(pMboxName, acct), nil, false, func(_, v []byte) (bool, error) {
			id, err := decodeU64(v)
			if err != nil {
				return false, corrupt("mailbox name", err)
			}
			ids = append(ids, id)
			return true, nil
		})
		if err != nil {
			return err
		}
		out = make([]store.Mailbox, 0, len(ids))
		for _, id := range ids {
			m, err := mailboxByID(t, acct, id)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// DeleteMailbox implements store.Store. The mailbox and its counters go in
// one durable transaction, after which its messages are unreachable; their
// rows are then removed in further transactions (resumed by Open after a
// crash).
func (db *DB) DeleteMailbox(ctx context.Context, address string, id uint64) error {
	if err := db.enter(ctx); err != nil {
		return err
	}
	defer db.leave()
	acct, err := db.unlinkMailbox(ctx, address, id)
	if err != nil {
		return err
	}
	db.deletions.Add(1)
	if err := db.purgeMailbox(acct, id); err != nil {
		// The mailbox is gone; its rows are removed at the next Open.
		db.log.Warn("badgerstore: purge deleted mailbox", "account", address, "mailbox", id, "err", err)
	}
	return nil
}

// unlinkMailbox is DeleteMailbox's first, durable transaction: the name,
// record and counted bytes gone, purge marker set.
func (db *DB) unlinkMailbox(ctx context.Context, address string, id uint64) (acct uint64, err error) {
	err = db.write(ctx, false, func(t *tx) error {
		var (
			m   store.Mailbox
			err error
		)
		acct, m, err = resolveID(t, address, id)
		if err != nil {
			return err
		}
		u, err := loadUsage(t, acct)
		if err != nil {
			return err
		}
		u.Used -= m.SealedSize
		if err := saveUsage(t, acct, &u); err != nil {
			return err
		}
		if err := t.del(mboxNameKey(acct, m.Name)); err != nil {
			return err
		}
		if err := t.del(mailboxKey(acct, m.ID)); err != nil {
			return err
		}
		return t.set(purgeKey(acct, m.ID), encodeMarker(m.Name))
	})
	return acct, err
}

// RenameMailbox implements store.Store.
func (db *DB) RenameMailbox(ctx context.Context, address string, id uint64, newName string) error {
	if err := store.CheckMailboxName(newName); err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		acct, m, err := resolveID(t, address, id)
		if err != nil {
			return err
		}
		oldName := m.Name
		if oldName == newName {
			return fmt.Errorf("store: rename %q to itself: %w", oldName, store.ErrExists)
		}
		if strings.HasPrefix(newName, oldName+store.Delimiter) {
			return fmt.Errorf("store: rename %q below itself: %w", oldName, store.ErrBadName)
		}
		type move struct {
			id       uint64
			from, to string
		}
		moves := []move{{m.ID, oldName, newName}}
		prefix := mboxNameKey(acct, oldName+store.Delimiter)
		base := len(mboxNameKey(acct, ""))
		err = t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
			id, err := decodeU64(v)
			if err != nil {
				return false, corrupt("mailbox name", err)
			}
			from := string(k[base:])
			to := newName + from[len(oldName):]
			if len(to) > store.MaxMailboxNameLen {
				return false, fmt.Errorf("store: rename %q: %w: %q too long", oldName, store.ErrBadName, from)
			}
			moves = append(moves, move{id, from, to})
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, mv := range moves {
			ok, err := t.has(mboxNameKey(acct, mv.to))
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("store: rename to %q: %w", mv.to, store.ErrExists)
			}
		}
		for _, mv := range moves {
			mb, err := mailboxByID(t, acct, mv.id)
			if err != nil {
				return err
			}
			mb.Name = mv.to
			if err := t.del(mboxNameKey(acct, mv.from)); err != nil {
				return err
			}
			// A subscription follows its mailbox, as in Dovecot; one of a
			// name that no mailbox has stays where it is.
			if sub, err := t.has(subscriptionKey(acct, mv.from)); err != nil {
				return err
			} else if sub {
				if err := t.del(subscriptionKey(acct, mv.from)); err != nil {
					return err
				}
				if err := t.set(subscriptionKey(acct, mv.to), nil); err != nil {
					return err
				}
			}
			if err := t.set(mboxNameKey(acct, mv.to), putU64(mv.id)); err != nil {
				return err
			}
			if err := saveMailbox(t, acct, &mb); err != nil {
				return err
			}
		}
		return nil
	})
}
