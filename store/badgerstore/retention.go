package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Per-message retention: records, the sweeper's index, the vault, and
// the rule that a message under retention is vaulted, not destroyed. See
// store/retention.go for the contract and doc.go for the layout.

// pAcctAddr maps an account ID to its address, so that the sweeper's
// index (keyed by account ID) can name owners.
const pAcctAddr = 'w' // w acct -> address

func acctAddrKey(acct uint64) []byte { return acctKey(pAcctAddr, acct) }

// ownerAcct returns the account ID of o, and whether it is a live account.
func ownerAcct(t *tx, o store.Owner) (uint64, bool, error) {
	if o.Former == 0 {
		acct, err := accountID(t, o.Address)
		return acct, true, err
	}
	acct := o.Former
	if v, err := t.get(acctAddrKey(acct)); err == nil {
		if id, err := accountID(t, string(v)); err == nil && id == acct {
			return 0, false, notFound(fmt.Sprintf("former account #%d (it is live)", acct))
		}
		return acct, false, nil // being purged
	} else if !errors.Is(err, errNoKey) {
		return 0, false, err
	}
	ok, err := t.has(formerKey(acct))
	if err != nil {
		return 0, false, err
	}
	if !ok {
		return 0, false, notFound(fmt.Sprintf("former account #%d", acct))
	}
	return acct, false, nil
}

// ownerOf names the owner of account ID acct: the live account, or the
// vault of a deleted one.
func ownerOf(t *tx, acct uint64) (store.Owner, error) {
	v, err := t.get(acctAddrKey(acct))
	if err == nil {
		addr := string(v)
		if id, err := accountID(t, addr); err == nil && id == acct {
			return store.Owner{Address: addr}, nil
		}
		return store.Owner{Address: addr, Former: acct}, nil
	}
	if !errors.Is(err, errNoKey) {
		return store.Owner{}, err
	}
	fv, err := t.get(formerKey(acct))
	if errors.Is(err, errNoKey) {
		return store.Owner{Former: acct}, nil
	}
	if err != nil {
		return store.Owner{}, err
	}
	f, err := decodeFormer(fv)
	if err != nil {
		return store.Owner{}, corrupt("former account", err)
	}
	return store.Owner{Address: f.Address, Former: acct}, nil
}

// deliveryRetention is the state Deliver stores for d: its own, with the
// arrival at the commit if it has none, or a pending one.
func deliveryRetention(r *store.Retention, now time.Time) store.Retention {
	if r == nil {
		return store.Retention{Arrival: now, Pending: true}
	}
	out := *r
	if out.Arrival.IsZero() {
		out.Arrival = now
	}
	out.Arrival = out.Arrival.UTC()
	if len(out.Rule) > store.MaxRuleLen {
		out.Rule = out.Rule[:store.MaxRuleLen]
	}
	return out
}

// newRecord stores the retention record of a message just added to
// mailbox m under uid with blob ID id; a state computed under an older
// generation than gen is stored as pending.
func newRecord(t *tx, acct, id uint64, m *store.Mailbox, uid uint32, size int64, ret store.Retention, gen uint64) error {
	if ret.Gen < gen {
		ret.Pending = true
	}
	rec := retentionRec{Mbox: m.ID, UID: uid, Size: size, Ret: ret, Ver: 1}
	return saveRetention(t, acct, id, nil, &rec)
}

// destroyData deletes a message's sealed bytes and summary. Every path
// that destroys a message ends here. A large blob's file record goes,
// and its file is queued for unlinking after the commit (blobfiles.go):
// the caller kicks the orphan loop (db.orphaned), or Open does it after
// a crash.
func destroyData(t *tx, acct, blob uint64) error {
	if err := t.del(blobKey(pSummary, acct, blob)); err != nil {
		return err
	}
	if isStaged(blob) {
		return destroyFile(t, acct, blob)
	}
	return t.del(blobKey(pBlob, acct, blob))
}

// dispose vaults or destroys a message already taken out of its mailbox
// (its meta deleted and counted by the caller): vaulted if its record
// says it is protected at now, destroyed otherwise. A message without a
// record (none can exist after the migration) is destroyed.
func dispose(t *tx, acct uint64, x disposal, reason string, now time.Time) (bool, error) {
	rec, err := loadRetention(t, acct, x.Meta.Blob)
	if errors.Is(err, errNoKey) {
		return false, destroyData(t, acct, x.Meta.Blob)
	}
	if err != nil {
		return false, err
	}
	inForce, err := policyInForce(t)
	if err != nil {
		return false, err
	}
	if !protected(&rec, now, inForce) {
		if err := deleteRetention(t, acct, x.Meta.Blob, &rec); err != nil {
			return false, err
		}
		return false, destroyData(t, acct, x.Meta.Blob)
	}
	return true, vaultOne(t, acct, x, &rec, reason, now)
}

// vaultOne writes x's vault entry and marks its record vaulted.
func vaultOne(t *tx, acct uint64, x disposal, rec *retentionRec, reason string, now time.Time) error {
	v := vaultRec{Mbox: x.Mbox, Name: x.Name, UID: x.UID, Meta: x.Meta, Vaulted: now.UTC(), Reason: reason}
	if err := t.set(vaultKey(acct, x.Meta.Blob), v.encode()); err != nil {
		return err
	}
	old := *rec
	rec.Vaulted, rec.Mbox, rec.UID = true, x.Mbox, x.UID
	rec.Ver++
	return saveRetention(t, acct, x.Meta.Blob, &old, rec)
}

// maxDisposalRow is how many messages one row of a disposal list holds
// (and one transaction of processDisposals handles).
const maxDisposalRow = 500

// processDisposals vaults or destroys the messages of an account's
// disposal list rows (written by a large Expunge), one row per
// transaction, and returns the UIDs it vaulted. The caller holds
// closeMu for reading (or Open runs it).
func (db *DB) processDisposals(acct uint64, seqs []uint64) ([]uint32, error) {
	var vaulted []uint32
	for _, seq := range seqs {
		var v []uint32
		err := db.write(context.Background(), false, func(t *tx) error {
			v = nil
			row, err := t.get(disposalKey(acct, seq))
			if errors.Is(err, errNoKey) {
				return nil
			}
			if err != nil {
				return err
			}
			reason, ds, err := decodeDisposals(row)
			if err != nil {
				return corrupt("disposal list", err)
			}
			now := time.Now()
			for _, x := range ds {
				ok, err := dispose(t, acct, x, reason, now)
				if err != nil {
					return err
				}
				if ok {
					v = append(v, x.UID)
				}
			}
			return t.del(disposalKey(acct, seq))
		})
		if err != nil {
			return vaulted, err
		}
		vaulted = append(vaulted, v...)
	}
	return vaulted, nil
}

// ExpungeReport implements store.RetentionStore. Up to inlineExpunge
// messages are vaulted or destroyed in the one transaction that removes
// them; above it the transaction removes the metas and writes disposal
// lists, which later transactions work through (Open resumes them after
// a crash): meanwhile the messages are gone for the user and neither
// listed in the vault nor destroyable.
func (db *DB) ExpungeReport(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, []uint32, error) {
	want := uniqueSorted(uids)
	if err := db.enter(ctx); err != nil {
		return store.ExpungeResult{}, nil, err
	}
	defer db.leave()
	var (
		removed, vaulted []uint32
		acct             uint64
		seqs             []uint64
		modseq           uint64 // the removal's
	)
	now := time.Now()
	// The one-transaction form shares the group commit; a large one
	// (deferred disposals) runs alone.
	err := db.write(ctx, len(want) <= inlineExpunge, func(t *tx) error {
		removed, vaulted, seqs, modseq = nil, nil, nil, 0
		var (
			m   store.Mailbox
			err error
		)
		acct, m, err = resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		u, err := loadUsage(t, acct)
		if err != nil {
			return err
		}
		deferred := len(want) > inlineExpunge
		var row []disposal
		flush := func() error {
			u.LastBlob++ // a fresh number for the list row
			seqs = append(seqs, u.LastBlob)
			err := t.set(disposalKey(acct, u.LastBlob), encodeDisposals("expunge", row))
			row = nil
			return err
		}
		for _, uid := range want {
			md, err := loadMeta(t, acct, m.ID, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if err := t.del(metaKey(acct, m.ID, uid)); err != nil {
				return err
			}
			removeMessage(&m, &md)
			u.Used -= md.SealedSize
			removed = append(removed, uid)
			x := disposal{Mbox: m.ID, Name: m.Name, UID: uid, Meta: md}
			if deferred {
				if row = append(row, x); len(row) == maxDisposalRow {
					if err := flush(); err != nil {
						return err
					}
				}
				continue
			}
			ok, err := dispose(t, acct, x, "expunge", now)
			if err != nil {
				return err
			}
			if ok {
				vaulted = append(vaulted, uid)
			}
		}
		if len(removed) == 0 {
			return nil
		}
		if len(row) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		m.HighestModSeq++
		modseq = m.HighestModSeq
		if err := db.addTombstones(t, acct, &m, removed); err != nil {
			return err
		}
		if err := saveUsage(t, acct, &u); err != nil {
			return err
		}
		return saveMailbox(t, acct, &m)
	})
	if err != nil {
		return store.ExpungeResult{}, nil, err
	}
	if len(removed) > 0 {
		db.deletions.Add(1)
	}
	if len(seqs) > 0 {
		v, err := db.processDisposals(acct, seqs)
		vaulted = append(vaulted, v...)
		if err != nil {
			// The messages are removed; the rest is done at the next Open.
			db.log.Warn("badgerstore: dispose of expunged messages", "account", address, "mailbox", mailbox, "err", err)
		}
	}
	if len(removed) > 0 {
		// Large blobs' files, before returning, as for small blobs
		// (unless a backup runs: then the orphan loop does it after).
		if err := db.resumeOrphans(acct); err != nil {
			db.log.Warn("badgerstore: delete expunged blobs; the next Open finishes", "account", address, "err", err)
		}
		db.unlinkNow()
	}
	return store.ExpungeResult{UIDs: removed, ModSeq: modseq}, uniqueSorted(vaulted), nil
}

// moveRecord follows a message moved to mailbox m under uid: the record
// points there and is pending, since the new mailbox may give it another
// class.
func moveRecord(t *tx, acct, id uint64, m *store.Mailbox, uid uint32) error {
	rec, err := loadRetention(t, acct, id)
	if errors.Is(err, errNoKey) {
		return nil
	}
	if err != nil {
		return err
	}
	old := rec
	rec.Mbox, rec.UID = m.ID, uid
	rec.Ret.Pending = true
	rec.Ver++
	return saveRetention(t, acct, id, &old, &rec)
}

// copyRecord gives the copy (blob ID to) of message from a record of its
// own: the same arrival and state, pending, in mailbox m under uid.
func copyRecord(t *tx, acct, from, to uint64, m *store.Mailbox, uid uint32, size int64) error {
	rec, err := loadRetention(t, acct, from)
	if errors.Is(err, errNoKey) {
		rec = retentionRec{Ret: store.Retention{Arrival: time.Now().UTC()}}
	} else if err != nil {
		return err
	}
	rec.Mbox, rec.UID, rec.Size, rec.Vaulted = m.ID, uid, size, false
	rec.Ret.Pending = true
	rec.Ver = 1
	return saveRetention(t, acct, to, nil, &rec)
}

// Retained implements store.RetentionStore.
func (db *DB) Retained(ctx context.Context, owner store.Owner, after uint64, limit int) ([]store.RetainedMessage, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []store.RetainedMessage
	err := db.read(ctx, func(t *tx) error {
		acct, _, err := ownerAcct(t, owner)
		if err != nil {
			return err
		}
		prefix := acctKey(pRetention, acct)
		start := retentionKey(acct, after+1)
		if after == ^uint64(0) {
			return nil
		}
		return t.scan(prefix, start, false, func(k, v []byte) (bool, error) {
			r, err := decodeRetention(v)
			if err != nil {
				return false, corrupt("retention record", err)
			}
			out = append(out, retained(binary.BigEndian.Uint64(k[len(k)-8:]), &r))
			return len(out) < limit, nil
		})
	})
	return out, err
}

func retained(id uint64, r *retentionRec) store.RetainedMessage {
	return store.RetainedMessage{ID: id, MailboxID: r.Mbox, UID: r.UID, Vaulted: r.Vaulted, SealedSize: r.Size, Retention: r.Ret, Version: r.Ver}
}

// RetainedByUID implements store.RetentionStore.
func (db *DB) RetainedByUID(ctx context.Context, address string, mailbox uint64, uids []uint32) ([]store.RetainedMessage, error) {
	var out []store.RetainedMessage
	err := db.read(ctx, func(t *tx) error {
		acct, m, err := resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		for _, uid := range uniqueSorted(uids) {
			md, err := loadMeta(t, acct, m.ID, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			r, err := loadRetention(t, acct, md.Blob)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, retained(md.Blob, &r))
		}
		return nil
	})
	return out, err
}

// SetRetention implements store.RetentionStore. It is a batchable write:
// a walk over a million messages after a policy change shares the
// deliveries' group commits instead of keeping them waiting.
func (db *DB) SetRetention(ctx context.Context, owner store.Owner, us []store.RetentionUpdate) (int, error) {
	if err := db.enter(ctx); err != nil {
		return 0, err
	}
	defer db.leave()
	n := 0
	err := db.write(ctx, true, func(t *tx) error {
		n = 0
		acct, _, err := ownerAcct(t, owner)
		if err != nil {
			return err
		}
		gen, err := policyGen(t)
		if err != nil {
			return err
		}
		for _, u := range us {
			rec, err := loadRetention(t, acct, u.ID)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if rec.Ver != u.Version || u.Retention.Gen < gen {
				continue
			}
			old := rec
			nr := u.Retention
			nr.Arrival, nr.Origin, nr.Pending = rec.Ret.Arrival, rec.Ret.Origin, false
			if len(nr.Rule) > store.MaxRuleLen {
				nr.Rule = nr.Rule[:store.MaxRuleLen]
			}
			if rec.Ret.Locked && rec.Ret.KeepUntil.After(nr.KeepUntil) {
				nr.KeepUntil, nr.Locked = rec.Ret.KeepUntil, true
				if !nr.DeleteAfter.IsZero() && nr.DeleteAfter.Before(nr.KeepUntil) {
					nr.DeleteAfter = nr.KeepUntil
				}
			}
			if nr.DeleteAfter.Equal(store.Forever) {
				nr.DeleteAfter = time.Time{}
			}
			rec.Ret = nr
			rec.Ver++
			if err := saveRetention(t, acct, u.ID, &old, &rec); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// PendingRetention implements store.RetentionStore.
func (db *DB) PendingRetention(ctx context.Context, limit int) ([]store.DueMessage, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []store.DueMessage
	err := db.read(ctx, func(t *tx) error {
		var keys [][2]uint64
		err := t.scan([]byte{pRecompute}, nil, true, func(k, _ []byte) (bool, error) {
			if len(k) != 17 {
				return true, nil
			}
			keys = append(keys, [2]uint64{binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:17])})
			return len(keys) < limit, nil
		})
		if err != nil {
			return err
		}
		owners := map[uint64]store.Owner{}
		for _, k := range keys {
			o, ok := owners[k[0]]
			if !ok {
				if o, err = ownerOf(t, k[0]); err != nil {
					return err
				}
				owners[k[0]] = o
			}
			out = append(out, store.DueMessage{Owner: o, ID: k[1]})
		}
		return nil
	})
	return out, err
}

// DueMessages implements store.RetentionStore.
func (db *DB) DueMessages(ctx context.Context, now time.Time, after store.DueMessage, limit int) ([]store.DueMessage, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []store.DueMessage
	err := db.read(ctx, func(t *tx) error {
		start := []byte{pDue}
		if after.ID != 0 {
			kind := byte(dueLive)
			if after.Vaulted {
				kind = dueVault
			}
			var acct uint64
			if after.Owner.Former != 0 {
				acct = after.Owner.Former
			} else if id, err := accountID(t, after.Owner.Address); err == nil {
				acct = id
			}
			if acct != 0 {
				start = append(dueKey(after.Due, kind, acct, after.ID), 0)
			} else {
				start = dueKey(after.Due.Add(time.Second), 0, 0, 0)
			}
		}
		limitKey := dueKey(now.Add(time.Second), 0, 0, 0) // due ≤ now, at second precision
		type ent struct {
			due      time.Time
			kind     byte
			acct, id uint64
		}
		var ents []ent
		err := t.scan([]byte{pDue}, start, true, func(k, _ []byte) (bool, error) {
			if string(k) >= string(limitKey) {
				return false, nil
			}
			due, kind, acct, id, ok := parseDueKey(k)
			if !ok {
				return true, nil
			}
			ents = append(ents, ent{due, kind, acct, id})
			return len(ents) < limit, nil
		})
		if err != nil {
			return err
		}
		owners := map[uint64]store.Owner{}
		for _, e := range ents {
			o, ok := owners[e.acct]
			if !ok {
				if o, err = ownerOf(t, e.acct); err != nil {
					return err
				}
				owners[e.acct] = o
			}
			out = append(out, store.DueMessage{Owner: o, ID: e.id, Due: e.due, Vaulted: e.kind == dueVault})
		}
		return nil
	})
	return out, err
}

// DestroyMessages implements store.RetentionStore. Live messages of an
// account being purged after its deletion are left to the purge.
func (db *DB) DestroyMessages(ctx context.Context, refs []store.MessageRef, opt store.DestroyOptions) ([]store.Destroyed, error) {
	if len(refs) > store.MaxDestroyBatch {
		return nil, fmt.Errorf("store: destroy %d messages: at most %d per call", len(refs), store.MaxDestroyBatch)
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	type ownerState struct {
		acct      uint64
		live, ok  bool
		u         usage
		boxes     map[uint64]*store.Mailbox
		gone      map[uint64][]uint32 // UIDs removed per mailbox
		vaultGone bool
	}
	// A batchable operation: it shares the group commit (and fsync) of
	// deliveries and sessions' writes, so a sweep does not keep them
	// waiting.
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	defer db.leave()
	var out []store.Destroyed
	err := db.write(ctx, true, func(t *tx) error {
		out = nil
		owners := map[store.Owner]*ownerState{}
		var order []*ownerState
		for _, ref := range refs {
			os := owners[ref.Owner]
			if os == nil {
				os = &ownerState{boxes: map[uint64]*store.Mailbox{}, gone: map[uint64][]uint32{}}
				owners[ref.Owner] = os
				acct, live, err := ownerAcct(t, ref.Owner)
				switch {
				case errors.Is(err, store.ErrNotFound):
					continue // gone: nothing of it to destroy
				case err != nil:
					return err
				}
				os.acct, os.live, os.ok = acct, live, true
				if live {
					if os.u, err = loadUsage(t, acct); err != nil {
						return err
					}
				}
				order = append(order, os)
			}
			if !os.ok {
				continue
			}
			d, err := destroyOne(t, os.acct, os.live, &os.u, os.boxes, ref.ID, now, opt.Due)
			if err != nil {
				return err
			}
			if d == nil {
				continue
			}
			d.Owner = ref.Owner
			if d.MailboxID == 0 {
				os.vaultGone = true
			} else {
				os.gone[d.MailboxID] = append(os.gone[d.MailboxID], d.UID)
			}
			out = append(out, *d)
		}
		for _, os := range order {
			for _, m := range os.boxes {
				m.HighestModSeq++
				if err := db.addTombstones(t, os.acct, m, os.gone[m.ID]); err != nil {
					return err
				}
				if err := saveMailbox(t, os.acct, m); err != nil {
					return err
				}
			}
			if os.live && len(os.boxes) > 0 {
				if err := saveUsage(t, os.acct, &os.u); err != nil {
					return err
				}
			}
			if !os.live && os.vaultGone {
				if err := dropFormerIfEmpty(t, os.acct); err != nil {
					return err
				}
			}
		}
		for i := range out {
			if d := &out[i]; d.MailboxID != 0 {
				d.ModSeq = owners[d.Owner].boxes[d.MailboxID].HighestModSeq
			}
		}
		return nil
	})
	if len(out) > 0 {
		db.deletions.Add(1)
		db.orphaned()
	}
	return out, err
}

// destroyOne destroys message id of account acct if nothing protects it,
// counting a live one out of its mailbox (boxes caches the mailboxes
// touched) and u. It returns nil if it left the message alone.
func destroyOne(t *tx, acct uint64, live bool, u *usage, boxes map[uint64]*store.Mailbox, id uint64, now time.Time, due bool) (*store.Destroyed, error) {
	rec, err := loadRetention(t, acct, id)
	if errors.Is(err, errNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rec.Ret.Pending || protected(&rec, now, true) {
		return nil, nil
	}
	d := &store.Destroyed{ID: id, Class: rec.Ret.Class, Rule: rec.Ret.Rule, SealedSize: rec.Size}
	if rec.Vaulted {
		if err := t.del(vaultKey(acct, id)); err != nil {
			return nil, err
		}
	} else {
		if !live {
			return nil, nil
		}
		if due && (rec.Ret.DeleteAfter.IsZero() || rec.Ret.DeleteAfter.After(now)) {
			return nil, nil
		}
		m := boxes[rec.Mbox]
		if m == nil {
			mb, err := loadMailbox(t, acct, rec.Mbox)
			if errors.Is(err, errNoKey) {
				return nil, nil // the mailbox is being deleted: its purge decides
			}
			if err != nil {
				return nil, err
			}
			m = &mb
			boxes[rec.Mbox] = m
		}
		md, err := loadMeta(t, acct, m.ID, rec.UID)
		if errors.Is(err, errNoKey) || err == nil && md.Blob != id {
			return nil, nil // being expunged: the expunge decides
		}
		if err != nil {
			return nil, err
		}
		if err := t.del(metaKey(acct, m.ID, rec.UID)); err != nil {
			return nil, err
		}
		removeMessage(m, &md)
		u.Used -= md.SealedSize
		d.MailboxID, d.UID = m.ID, rec.UID
	}
	if err := deleteRetention(t, acct, id, &rec); err != nil {
		return nil, err
	}
	if err := destroyData(t, acct, id); err != nil {
		return nil, err
	}
	return d, nil
}

// dropFormerIfEmpty removes a deleted account's last rows once its vault
// is empty.
func dropFormerIfEmpty(t *tx, acct uint64) error {
	empty := true
	err := t.scan(acctKey(pVault, acct), nil, true, func(_, _ []byte) (bool, error) {
		empty = false
		return false, nil
	})
	if err != nil || !empty {
		return err
	}
	ok, err := t.has(formerKey(acct))
	if err != nil || !ok {
		return err // still being purged: the purge ends it
	}
	var rest [][]byte
	err = t.scan(acctKey(pRetention, acct), nil, true, func(k, _ []byte) (bool, error) {
		rest = append(rest, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range rest {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return t.del(formerKey(acct))
}

// VaultMessages implements store.RetentionStore.
func (db *DB) VaultMessages(ctx context.Context, address string, mailbox uint64, uids []uint32, reason string) ([]uint32, error) {
	want := uniqueSorted(uids)
	if len(want) > store.MaxDestroyBatch {
		return nil, fmt.Errorf("store: vault %d messages: at most %d per call", len(want), store.MaxDestroyBatch)
	}
	if err := checkText("vault", reason); err != nil {
		return nil, err
	}
	now := time.Now()
	var moved []uint32
	err := db.update(ctx, func(t *tx) error {
		moved = nil
		acct, m, err := resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		u, err := loadUsage(t, acct)
		if err != nil {
			return err
		}
		for _, uid := range want {
			md, err := loadMeta(t, acct, m.ID, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			rec, err := loadRetention(t, acct, md.Blob)
			if errors.Is(err, errNoKey) {
				rec = retentionRec{Mbox: m.ID, UID: uid, Size: md.SealedSize, Ret: store.Retention{Arrival: md.Date, Pending: true}, Ver: 1}
				if err := saveRetention(t, acct, md.Blob, nil, &rec); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if err := t.del(metaKey(acct, m.ID, uid)); err != nil {
				return err
			}
			removeMessage(&m, &md)
			u.Used -= md.SealedSize
			if err := vaultOne(t, acct, disposal{Mbox: m.ID, Name: m.Name, UID: uid, Meta: md}, &rec, reason, now); err != nil {
				return err
			}
			moved = append(moved, uid)
		}
		if len(moved) == 0 {
			return nil
		}
		m.HighestModSeq++
		if err := db.addTombstones(t, acct, &m, moved); err != nil {
			return err
		}
		if err := saveUsage(t, acct, &u); err != nil {
			return err
		}
		return saveMailbox(t, acct, &m)
	})
	return moved, err
}

// SetVaultReason implements store.RetentionStore.
func (db *DB) SetVaultReason(ctx context.Context, owner store.Owner, ids []uint64, reason string) error {
	if err := checkText("vault reason", reason); err != nil {
		return err
	}
	if len(ids) > store.MaxDestroyBatch {
		return fmt.Errorf("store: vault reason of %d messages: at most %d per call", len(ids), store.MaxDestroyBatch)
	}
	return db.update(ctx, func(t *tx) error {
		acct, _, err := ownerAcct(t, owner)
		if err != nil {
			return err
		}
		for _, id := range ids {
			b, err := t.get(vaultKey(acct, id))
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			v, err := decodeVault(b)
			if err != nil {
				return corrupt("vault entry", err)
			}
			v.Reason = reason
			if err := t.set(vaultKey(acct, id), v.encode()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Vault implements store.RetentionStore.
func (db *DB) Vault(ctx context.Context, owner store.Owner) ([]store.VaultEntry, error) {
	var out []store.VaultEntry
	err := db.read(ctx, func(t *tx) error {
		acct, _, err := ownerAcct(t, owner)
		if err != nil {
			return err
		}
		return t.scan(acctKey(pVault, acct), nil, false, func(k, v []byte) (bool, error) {
			id := binary.BigEndian.Uint64(k[len(k)-8:])
			vr, err := decodeVault(v)
			if err != nil {
				return false, corrupt("vault entry", err)
			}
			e := store.VaultEntry{ID: id, MailboxID: vr.Mbox, Mailbox: vr.Name, UID: vr.UID, InternalDate: vr.Meta.Date,
				Flags: vr.Meta.Flags, SealedSize: vr.Meta.SealedSize, Vaulted: vr.Vaulted, Reason: vr.Reason}
			rb, err := t.get(retentionKey(acct, id))
			if err == nil {
				r, derr := decodeRetention(rb)
				if derr != nil {
					return false, corrupt("retention record", derr)
				}
				e.Retention = r.Ret
			} else if !errors.Is(err, errNoKey) {
				return false, err
			}
			out = append(out, e)
			return true, nil
		})
	})
	return out, err
}

// VaultBlob implements store.RetentionStore. A large blob is read from
// its file after the read transaction ended, as Blob does.
func (db *DB) VaultBlob(ctx context.Context, owner store.Owner, id uint64) ([]byte, error) {
	var (
		b  []byte
		vr vaultRec
	)
	err := db.read(ctx, func(t *tx) error {
		acct, _, err := ownerAcct(t, owner)
		if err != nil {
			return err
		}
		v, err := t.get(vaultKey(acct, id))
		if errors.Is(err, errNoKey) {
			return notFound(fmt.Sprintf("vault entry %d", id))
		}
		if err != nil {
			return err
		}
		if vr, err = decodeVault(v); err != nil {
			return corrupt("vault entry", err)
		}
		if isStaged(vr.Meta.Blob) {
			return nil
		}
		b, err = t.get(blobKey(pBlob, acct, vr.Meta.Blob))
		if errors.Is(err, errNoKey) {
			return corrupt(fmt.Sprintf("blob of vault entry %d", id), errCorrupt)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if b == nil {
		return db.readBlobFile(vr.Meta.Blob, vr.Meta.SealedSize)
	}
	return b, nil
}

// RestoreFromVault implements store.RetentionStore. The restored message
// counts against the quota again, but an officer's restore is not
// refused for it.
func (db *DB) RestoreFromVault(ctx context.Context, address string, id, mailbox uint64) (store.Delivered, error) {
	var out store.Delivered
	err := db.update(ctx, func(t *tx) error {
		acct, err := accountID(t, address)
		if err != nil {
			return err
		}
		b, err := t.get(vaultKey(acct, id))
		if errors.Is(err, errNoKey) {
			return notFound(fmt.Sprintf("vault entry %d of %s", id, address))
		}
		if err != nil {
			return err
		}
		v, err := decodeVault(b)
		if err != nil {
			return corrupt("vault entry", err)
		}
		target := mailbox
		if target == 0 {
			if _, err := loadMailbox(t, acct, v.Mbox); err == nil {
				target = v.Mbox
			}
		}
		if target == 0 {
			iv, err := t.get(mboxNameKey(acct, store.Inbox))
			if err != nil {
				return fmt.Errorf("store: restore: INBOX of %s: %w", address, err)
			}
			if target, err = decodeU64(iv); err != nil {
				return corrupt("mailbox name", err)
			}
		}
		m, err := mailboxOf(t, acct, address, target)
		if err != nil {
			return err
		}
		if m.UIDNext == 1<<32-1 {
			return fmt.Errorf("store: restore to mailbox #%d: UIDs exhausted", m.ID)
		}
		u, err := loadUsage(t, acct)
		if err != nil {
			return err
		}
		md := v.Meta
		md.Email = md.emailID()
		md.Saved = time.Now().UTC() // saved into this mailbox now (SAVEDATE)
		uid := addMessage(&m, &md)
		if err := t.set(metaKey(acct, m.ID, uid), md.encode()); err != nil {
			return err
		}
		if err := t.del(vaultKey(acct, id)); err != nil {
			return err
		}
		rec, err := loadRetention(t, acct, id)
		if err != nil {
			if errors.Is(err, errNoKey) {
				err = corrupt("retention record of vault entry", errCorrupt)
			}
			return err
		}
		old := rec
		rec.Vaulted, rec.Mbox, rec.UID = false, m.ID, uid
		rec.Ret.Pending = true // back in a mailbox, maybe another class
		rec.Ver++
		if err := saveRetention(t, acct, id, &old, &rec); err != nil {
			return err
		}
		u.Used += md.SealedSize
		if err := saveUsage(t, acct, &u); err != nil {
			return err
		}
		out = store.Delivered{Account: address, MailboxID: m.ID, Mailbox: m.Name, UIDValidity: m.UIDValidity, UID: uid}
		return saveMailbox(t, acct, &m)
	})
	return out, err
}

// FormerAccounts implements store.RetentionStore.
func (db *DB) FormerAccounts(ctx context.Context) ([]store.FormerAccount, error) {
	var out []store.FormerAccount
	err := db.read(ctx, func(t *tx) error {
		return t.scan([]byte{pFormer}, nil, false, func(k, v []byte) (bool, error) {
			if len(k) != 9 {
				return true, nil
			}
			f, err := decodeFormer(v)
			if err != nil {
				return false, corrupt("former account", err)
			}
			out = append(out, store.FormerAccount{Owner: store.Owner{Address: f.Address, Former: binary.BigEndian.Uint64(k[1:])}, Deleted: f.Deleted})
			return true, nil
		})
	})
	return out, err
}
