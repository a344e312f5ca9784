package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Deliver implements store.Store. Concurrent Deliver calls are gathered by
// the writer into one transaction (group commit); each call's deliveries
// succeed or fail together. Inline blobs are handed to the transaction as
// they are (no copy): badger reads them until the commit, which happens
// before Deliver returns; those above fileThreshold are written to files
// first, as if staged. Staged blobs are linked: their pending markers
// go in the same transaction.
func (db *DB) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	if len(ds) == 0 {
		return nil, ctx.Err()
	}
	in, err := prepareDeliveries(ds)
	if err != nil {
		return nil, err
	}
	discard, err := db.stageLarge(ctx, in)
	defer discard()
	if err != nil {
		return nil, err
	}
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	defer db.leave()
	var out []store.Delivered
	err = db.write(ctx, true, func(t *tx) error {
		var err error
		out, err = deliver(t, in, db.defaultQuota)
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			return nil, fmt.Errorf("store: deliver %d messages: %w", len(in), err)
		}
		return nil, err
	}
	return out, nil
}

// fileThreshold is the largest blob Deliver keeps in badger: a larger
// one, even handed over in memory, is written to a file (blobfiles.go)
// before the transaction, so that badger's value log, a shared memory
// map, never holds a large message. IMAP's APPEND stages messages above
// the same size.
const fileThreshold = 1 << 20

// stageLarge writes the inline blobs of ds above fileThreshold to files,
// as if staged, and makes their deliveries name them (Deliver,
// UpdateQueue). The caller defers discard, which removes the files its
// transaction did not link.
func (db *DB) stageLarge(ctx context.Context, ds []store.Delivery) (discard func(), err error) {
	var ws []store.BlobWriter
	discard = func() {
		for _, w := range ws {
			w.Discard() // after the commit, it does nothing
		}
	}
	for i := range ds {
		if len(ds[i].Blob) <= fileThreshold {
			continue
		}
		w, err := db.StageBlob(ctx, ds[i].Account)
		if err != nil {
			return discard, fmt.Errorf("store: deliver: %w", err)
		}
		ws = append(ws, w)
		sb, err := w.(*blobWriter).writeAll(ctx, ds[i].Blob)
		if err != nil {
			return discard, err
		}
		ds[i].Blob, ds[i].Staged = nil, &sb
	}
	return discard, nil
}

// prepareDeliveries checks deliveries and returns copies with canonical
// flags and the internal date filled in (Deliver, UpdateQueue).
func prepareDeliveries(ds []store.Delivery) ([]store.Delivery, error) {
	now := time.Now().UTC()
	in := make([]store.Delivery, len(ds))
	for i, d := range ds {
		if err := store.CheckAddress(d.Account); err != nil {
			return nil, fmt.Errorf("store: deliver: %w", err)
		}
		switch {
		case d.Staged != nil && d.Blob != nil:
			return nil, fmt.Errorf("store: deliver to %s: both a blob and a staged blob", d.Account)
		case d.Staged != nil:
			if d.Staged.Account != d.Account {
				return nil, fmt.Errorf("store: deliver to %s: staged blob of another account: %w", d.Account, store.ErrNotFound)
			}
		case len(d.Blob) == 0:
			return nil, fmt.Errorf("store: deliver to %s: empty message", d.Account)
		}
		flags, err := store.CanonicalFlags(d.Flags)
		if err != nil {
			return nil, fmt.Errorf("store: deliver to %s: %w", d.Account, err)
		}
		d.Flags = flags
		if d.InternalDate.IsZero() {
			d.InternalDate = now
		}
		ret := deliveryRetention(d.Retention, now)
		d.Retention = &ret
		in[i] = d
	}
	return in, nil
}

// deliveryAccount is what one Deliver call keeps per account.
type deliveryAccount struct {
	id    uint64
	quota int64
	usage usage
	added int64
	inbox uint64 // ID of INBOX, once looked up
	boxes map[uint64]*store.Mailbox
}

func deliver(t *tx, ds []store.Delivery, defQuota int64) ([]store.Delivered, error) {
	out := make([]store.Delivered, len(ds))
	accts := make(map[string]*deliveryAccount)
	saved := time.Now().UTC() // the save date (SAVEDATE)
	gen, err := policyGen(t)
	if err != nil {
		return nil, err
	}
	for i, d := range ds {
		a := accts[d.Account]
		if a == nil {
			rec, err := loadAccount(t, d.Account, false)
			if err != nil {
				return nil, fmt.Errorf("store: deliver: %w", err)
			}
			u, err := loadUsage(t, rec.ID)
			if err != nil {
				return nil, err
			}
			a = &deliveryAccount{id: rec.ID, quota: quotaLimit(rec.QuotaBytes, defQuota), usage: u, boxes: map[uint64]*store.Mailbox{}}
			accts[d.Account] = a
		}
		id := d.MailboxID
		if id == 0 {
			if a.inbox == 0 {
				v, err := t.get(mboxNameKey(a.id, store.Inbox))
				if err != nil {
					if errors.Is(err, errNoKey) {
						err = notFound("INBOX of " + d.Account)
					}
					return nil, fmt.Errorf("store: deliver: %w", err)
				}
				if a.inbox, err = decodeU64(v); err != nil {
					return nil, corrupt("mailbox name", err)
				}
			}
			id = a.inbox
		}
		m := a.boxes[id]
		if m == nil {
			mb, err := mailboxOf(t, a.id, d.Account, id)
			if err != nil {
				return nil, fmt.Errorf("store: deliver: %w", err)
			}
			m = &mb
			a.boxes[id] = m
		}
		if m.UIDNext == math.MaxUint32 {
			return nil, fmt.Errorf("store: deliver to %s %q: UIDs exhausted", d.Account, m.Name)
		}
		var (
			size   int64
			blobID uint64
		)
		if d.Staged != nil {
			var err error
			if size, err = linkStaged(t, a.id, d.Staged); err != nil {
				return nil, fmt.Errorf("store: deliver to %s: %w", d.Account, err)
			}
			blobID = d.Staged.Ref
		} else {
			size = int64(len(d.Blob))
			a.usage.LastBlob++
			blobID = a.usage.LastBlob
			if err := t.set(blobKey(pBlob, a.id, blobID), d.Blob); err != nil {
				return nil, err
			}
		}
		a.usage.Used += size
		a.added += size
		md := meta{Date: d.InternalDate, SealedSize: size, Blob: blobID, Flags: d.Flags, Saved: saved, Email: blobID}
		uid := addMessage(m, &md)
		if err := t.set(metaKey(a.id, m.ID, uid), md.encode()); err != nil {
			return nil, err
		}
		if err := newRecord(t, a.id, md.Blob, m, uid, size, *d.Retention, gen); err != nil {
			return nil, err
		}
		out[i] = store.Delivered{Account: d.Account, MailboxID: m.ID, Mailbox: m.Name, UIDValidity: m.UIDValidity, UID: uid}
	}
	for addr, a := range accts {
		if a.quota > 0 && a.usage.Used > a.quota {
			return nil, fmt.Errorf("store: deliver to %s: %d bytes more would exceed the quota of %d: %w",
				addr, a.added, a.quota, store.ErrOverQuota)
		}
		if err := saveUsage(t, a.id, &a.usage); err != nil {
			return nil, err
		}
		for _, m := range a.boxes {
			if err := saveMailbox(t, a.id, m); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// addMessage gives md the next UID and ModSeq of m and counts it in m's
// counters. The caller has checked that m.UIDNext is not exhausted.
func addMessage(m *store.Mailbox, md *meta) uint32 {
	uid := m.UIDNext
	m.UIDNext++
	m.HighestModSeq++
	md.ModSeq = m.HighestModSeq
	m.Messages++
	if !md.seen() {
		m.Unseen++
	}
	if md.deleted() {
		m.Deleted++
	}
	m.SealedSize += md.SealedSize
	return uid
}

// removeMessage takes md out of m's counters.
func removeMessage(m *store.Mailbox, md *meta) {
	m.Messages--
	if !md.seen() {
		m.Unseen--
	}
	if md.deleted() {
		m.Deleted--
	}
	m.SealedSize -= md.SealedSize
}

// quotaLimit returns the limit in force for a quota setting (see
// store.Account.QuotaBytes): the setting if positive, none for
// store.QuotaNone, the default otherwise. 0 means no limit.
func quotaLimit(setting, def int64) int64 {
	switch {
	case setting > 0:
		return setting
	case setting == store.QuotaDefault && def > 0:
		return def
	}
	return 0
}
