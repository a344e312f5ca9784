package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/sealmail/sealmail/store"
)

// pointRange is the widest UID range Messages reads by looking up each
// UID rather than with an iterator.
const pointRange = 16

// Messages implements store.Store. A listing of the whole mailbox puts
// its metas in the listing cache (listcache.go); any listing of a mailbox
// the cache holds at the state the read transaction sees comes from it.
func (db *DB) Messages(ctx context.Context, address string, mailbox uint64, opt store.ListOptions) ([]store.Message, error) {
	var out []store.Message
	err := db.read(ctx, func(t *tx) error {
		var err error
		out, err = db.messagesIn(ctx, t, address, mailbox, opt)
		return err
	})
	return out, err
}

// messagesIn is Messages in the read transaction t.
func (db *DB) messagesIn(ctx context.Context, t *tx, address string, mailbox uint64, opt store.ListOptions) ([]store.Message, error) {
	acct, err := accountID(t, address)
	if err != nil {
		return nil, err
	}
	rec, err := loadMailboxRec(t, acct, mailbox)
	if errors.Is(err, errNoKey) {
		return nil, notFound(fmt.Sprintf("mailbox #%d of %s", mailbox, address))
	}
	if err != nil {
		return nil, err
	}
	m := &rec.Mailbox
	if opt.ToUID != 0 && opt.FromUID > opt.ToUID {
		return nil, nil
	}
	ref, tag := mboxRef{acct, m.ID}, tagOf(m)
	out, blobs, ok := db.lists.get(ref, tag, opt.FromUID, opt.ToUID, opt.WithSummary)
	if !ok {
		ls, err := listMetas(ctx, t, acct, m, opt)
		if err != nil {
			return nil, err
		}
		out, blobs = toMessages(ls, opt.WithSummary)
		if opt.FromUID <= 1 && (opt.ToUID == 0 || opt.ToUID >= m.UIDNext-1) {
			db.lists.put(ref, tag, ls) // the whole mailbox
		}
	}
	if !opt.WithSummary {
		return out, nil
	}
	// The summaries, keyed by blob ID, in one walk (readKeyed).
	err = readKeyed(t, pSummary, acct, blobs, func(i int, v []byte) error {
		var err error
		v = bytes.Clone(v) // the summary and session key point into it
		if out[i].Summary, out[i].SessionKey, err = decodeSummary(v); err != nil {
			return corrupt("summary", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listMetas reads the metas of m's messages in opt's range from badger,
// in UID order.
func listMetas(ctx context.Context, t *tx, acct uint64, m *store.Mailbox, opt store.ListOptions) ([]listed, error) {
	// Room for the mailbox, or for the range if that is smaller: a
	// FETCH of one message must not allocate for the whole mailbox.
	n := min(m.Messages, 1<<16)
	if opt.ToUID != 0 {
		n = min(n, opt.ToUID-max(opt.FromUID, 1)+1)
	}
	if opt.FromUID > 0 {
		n = min(n, m.UIDNext-min(opt.FromUID, m.UIDNext))
	}
	out := make([]listed, 0, n)
	intern := make(map[string]string)
	add := func(uid uint32, v []byte) error {
		md, err := decodeMeta(v, intern)
		if err != nil {
			return corrupt(fmt.Sprintf("message %d", uid), err)
		}
		out = append(out, listed{uid: uid, md: md})
		return nil
	}
	if opt.ToUID != 0 && opt.ToUID-max(opt.FromUID, 1) < pointRange {
		// A few UIDs: look each up. An iterator would step over every
		// older version of every meta in the range that badger still
		// keeps (each flag change writes one), which in a busy mailbox
		// costs far more than a few lookups.
		for uid := max(opt.FromUID, 1); ; uid++ {
			v, err := t.get(metaKey(acct, m.ID, uid))
			switch {
			case err == nil:
				err = add(uid, v)
			case errors.Is(err, errNoKey):
				err = nil
			}
			if err != nil {
				return nil, err
			}
			if uid == opt.ToUID {
				break
			}
		}
		return out, nil
	}
	var start []byte
	if opt.FromUID > 0 {
		start = metaKey(acct, m.ID, opt.FromUID)
	}
	seen := 0
	err := t.scan(msgPrefix(pMeta, acct, m.ID), start, false, func(k, v []byte) (bool, error) {
		uid := uidOf(k)
		if opt.ToUID != 0 && uid > opt.ToUID {
			return false, nil
		}
		if seen++; seen%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		return true, add(uid, v)
	})
	return out, err
}

// Blob implements store.Store.
func (db *DB) Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error) {
	var (
		b  []byte
		md meta
	)
	err := db.read(ctx, func(t *tx) error {
		acct, err := resolveRead(t, address, mailbox)
		if err != nil {
			return err
		}
		md, err = loadMeta(t, acct, mailbox, uid)
		if errors.Is(err, errNoKey) {
			return notFound(fmt.Sprintf("message %d in mailbox #%d", uid, mailbox))
		}
		if err != nil {
			return err
		}
		if isStaged(md.Blob) {
			return nil
		}
		b, err = t.get(blobKey(pBlob, acct, md.Blob))
		if errors.Is(err, errNoKey) {
			return corrupt(fmt.Sprintf("blob of message %d", uid), errCorrupt)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if b == nil {
		return db.readBlobFile(md.Blob, md.SealedSize)
	}
	return b, nil
}

// Blobs implements store.Store: one read transaction resolves the mailbox
// once, takes the blob IDs from the listing cache when it holds the
// mailbox at this snapshot's state (else from the metas), and reads the
// blobs with one iterator (readKeyed); large blobs' files are read after
// it ended, as Blob reads them.
func (db *DB) Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error) {
	out := make([][]byte, len(uids))
	var (
		ids   []uint64
		sizes []int64
		files []int // indexes of large blobs, read after the transaction
	)
	err := db.read(ctx, func(t *tx) error {
		acct, rec, err := resolveRec(t, address, mailbox)
		if err != nil {
			return err
		}
		var ok bool
		ids, sizes, ok = db.lists.blobs(mboxRef{acct, mailbox}, tagOf(&rec.Mailbox), uids)
		if !ok {
			if ids, sizes, err = metaBlobs(ctx, t, acct, mailbox, uids); err != nil {
				return err
			}
		}
		small := make([]uint64, len(ids))
		for i, id := range ids {
			if isStaged(id) {
				files = append(files, i)
			} else {
				small[i] = id
			}
		}
		err = readKeyed(t, pBlob, acct, small, func(i int, v []byte) error {
			// Appending to nil does not zero what it then copies over.
			if out[i] = append([]byte(nil), v...); out[i] == nil {
				out[i] = []byte{} // present, if empty
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, id := range small {
			if id != 0 && out[i] == nil {
				return corrupt(fmt.Sprintf("blob of message %d", uids[i]), errCorrupt)
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, i := range files {
		b, err := db.readBlobFile(ids[i], sizes[i])
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Expunged since the transaction: as if it had been before.
		case err != nil:
			return nil, err
		default:
			out[i] = b
		}
	}
	return out, nil
}

// metaBlobs returns the blob IDs and sealed sizes of the messages uids
// of mailbox mbox from their metas (0 for a UID with none).
func metaBlobs(ctx context.Context, t *tx, acct, mbox uint64, uids []uint32) ([]uint64, []int64, error) {
	ids := make([]uint64, len(uids))
	sizes := make([]int64, len(uids))
	intern := make(map[string]string)
	for i, uid := range uids {
		if i%64 == 63 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		err := t.view(metaKey(acct, mbox, uid), func(v []byte) error {
			md, err := decodeMeta(v, intern)
			if err != nil {
				return corrupt(fmt.Sprintf("message %d", uid), err)
			}
			ids[i], sizes[i] = md.Blob, md.SealedSize
			return nil
		})
		if err != nil && !errors.Is(err, errNoKey) {
			return nil, nil, err
		}
	}
	return ids, sizes, nil
}

// OpenBlob implements store.Store. A small blob is read whole (it is one
// value); a large one from its file, with read calls, after the read
// transaction ended.
func (db *DB) OpenBlob(ctx context.Context, address string, mailbox uint64, uid uint32) (io.ReadCloser, int64, error) {
	var (
		acct uint64
		md   meta
		b    []byte
	)
	err := db.read(ctx, func(t *tx) error {
		var err error
		acct, err = resolveRead(t, address, mailbox)
		if err != nil {
			return err
		}
		md, err = loadMeta(t, acct, mailbox, uid)
		if errors.Is(err, errNoKey) {
			return notFound(fmt.Sprintf("message %d in mailbox #%d", uid, mailbox))
		}
		if err != nil || isStaged(md.Blob) {
			return err
		}
		b, err = t.get(blobKey(pBlob, acct, md.Blob))
		if errors.Is(err, errNoKey) {
			return corrupt(fmt.Sprintf("blob of message %d", uid), errCorrupt)
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if !isStaged(md.Blob) {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
	r, err := db.openBlobFile(md.Blob, md.SealedSize)
	if err != nil {
		return nil, 0, err
	}
	return r, md.SealedSize, nil
}

// SetSummaries implements store.Store.
func (db *DB) SetSummaries(ctx context.Context, address string, mailbox uint64, us []store.SummaryUpdate) error {
	recs := make([][]byte, len(us))
	for i, u := range us {
		recs[i] = encodeSummary(u.Summary, u.SessionKey) // copies
	}
	return db.updateBatch(ctx, true, func(t *tx) error {
		acct, m, err := resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		for i, u := range us {
			md, err := loadMeta(t, acct, m.ID, u.UID)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if err := t.set(blobKey(pSummary, acct, md.Blob), recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// uniqueSorted returns uids sorted ascending without duplicates or zero.
func uniqueSorted(uids []uint32) []uint32 {
	s := slices.Clone(uids)
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) > 0 && s[0] == 0 {
		s = s[1:]
	}
	return s
}

// StoreFlags implements store.Store. Messages whose ModSeq is above
// UnchangedSince are left alone and listed in FlagResult.Modified; the call
// still succeeds for the others (RFC 7162 §3.1.3).
func (db *DB) StoreFlags(ctx context.Context, address string, mailbox uint64, u store.FlagUpdate) (store.FlagResult, error) {
	if u.Op > store.FlagsRemove {
		return store.FlagResult{}, fmt.Errorf("store: store flags: unknown operation %d", u.Op)
	}
	if _, err := store.CanonicalFlags(u.Flags); err != nil {
		return store.FlagResult{}, err
	}
	uids := uniqueSorted(u.UIDs)
	var res store.FlagResult
	err := db.updateBatch(ctx, true, func(t *tx) error {
		res = store.FlagResult{}
		acct, m, err := resolveID(t, address, mailbox)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			md, err := loadMeta(t, acct, m.ID, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if u.UnchangedSince != 0 && md.ModSeq > u.UnchangedSince {
				res.Modified = append(res.Modified, uid)
				continue
			}
			flags, err := store.ApplyFlags(md.Flags, u.Op, u.Flags)
			if err != nil {
				return err
			}
			if store.SameFlags(flags, md.Flags) {
				continue
			}
			removeMessage(&m, &md)
			md.Flags = flags
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
			if err := t.set(metaKey(acct, m.ID, uid), md.encode()); err != nil {
				return err
			}
			res.Changed = append(res.Changed, store.Message{
				UID: uid, InternalDate: md.Date, Flags: slices.Clone(flags), ModSeq: md.ModSeq, SealedSize: md.SealedSize,
				SaveDate: md.Saved, EmailID: md.emailID(),
			})
		}
		if len(res.Changed) == 0 {
			return nil
		}
		return saveMailbox(t, acct, &m)
	})
	return res, err
}

// inlineExpunge is the most messages Expunge vaults or destroys in its
// own transaction (up to six writes each). Above it, the transaction
// removes only the metas and writes disposal lists; later transactions
// vault or destroy the messages, as for a deleted mailbox.
const inlineExpunge = 2000

// Expunge implements store.Store: ExpungeReport without the report.
// It gives the mailbox a new HIGHESTMODSEQ when it removes anything (RFC
// 7162 §3.2.10 needs expunges to be visible as a change).
func (db *DB) Expunge(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, error) {
	removed, _, err := db.ExpungeReport(ctx, address, mailbox, uids)
	return removed, err
}

// CopyMessages implements store.Store.
func (db *DB) CopyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	return db.copyMessages(ctx, address, src, dst, uids, false)
}

// MoveMessages implements store.Store. A moved message keeps its blob and
// summary (they are keyed by blob ID, not by mailbox), so a move rewrites
// only metadata.
func (db *DB) MoveMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	return db.copyMessages(ctx, address, src, dst, uids, true)
}

func (db *DB) copyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32, move bool) (store.CopyResult, error) {
	want := uniqueSorted(uids)
	var res store.CopyResult
	var files *fileCopies
	if !move {
		var err error
		if files, err = db.prepareCopies(ctx, address, src, want); err != nil {
			return store.CopyResult{}, err
		}
		defer db.endCopies(files)
	}
	err := db.updateBatch(ctx, true, func(t *tx) error {
		res = store.CopyResult{}
		acct, sm, err := resolveID(t, address, src)
		if err != nil {
			return err
		}
		from := &sm
		to := from
		if dst != src {
			dm, err := mailboxOf(t, acct, address, dst)
			if err != nil {
				return err
			}
			to = &dm
		}
		res.DstUIDValidity = to.UIDValidity
		rec, err := loadAccount(t, address, false)
		if err != nil {
			return err
		}
		u, err := loadUsage(t, acct)
		if err != nil {
			return err
		}
		var added int64
		saved := time.Now().UTC() // the copies' save date (SAVEDATE)
		for _, uid := range want {
			md, err := loadMeta(t, acct, from.ID, uid)
			if errors.Is(err, errNoKey) {
				continue
			}
			if err != nil {
				return err
			}
			if to.UIDNext == 1<<32-1 {
				return fmt.Errorf("store: copy to mailbox #%d: UIDs exhausted", dst)
			}
			src := md.Blob
			if !move && isStaged(src) && files.of(src) == 0 {
				continue // arrived after prepareCopies looked: not there then
			}
			md.Email = md.emailID() // the copy keeps the original's
			md.Saved = saved
			if move {
				if err := t.del(metaKey(acct, from.ID, uid)); err != nil {
					return err
				}
				removeMessage(from, &md)
			} else {
				if err := copyBlob(t, acct, &u, &md, files); err != nil {
					return err
				}
				added += md.SealedSize
			}
			newUID := addMessage(to, &md)
			if err := t.set(metaKey(acct, to.ID, newUID), md.encode()); err != nil {
				return err
			}
			if move {
				err = moveRecord(t, acct, md.Blob, to, newUID)
			} else {
				err = copyRecord(t, acct, src, md.Blob, to, newUID, md.SealedSize)
			}
			if err != nil {
				return err
			}
			res.Pairs = append(res.Pairs, store.UIDPair{Src: uid, Dst: newUID})
		}
		if len(res.Pairs) == 0 {
			return nil
		}
		if q := quotaLimit(rec.QuotaBytes, db.defaultQuota); q > 0 && added > 0 && u.Used > q {
			return fmt.Errorf("store: copy for %s: %d bytes more would exceed the quota of %d: %w",
				address, added, q, store.ErrOverQuota)
		}
		if move {
			from.HighestModSeq++
			res.SrcModSeq = from.HighestModSeq
			// Into the same mailbox too: the old UIDs are gone.
			src := make([]uint32, len(res.Pairs))
			for i, p := range res.Pairs {
				src[i] = p.Src
			}
			if err := db.addTombstones(t, acct, from, src); err != nil {
				return err
			}
		}
		if err := saveUsage(t, acct, &u); err != nil {
			return err
		}
		if err := saveMailbox(t, acct, from); err != nil {
			return err
		}
		if to != from {
			return saveMailbox(t, acct, to)
		}
		return nil
	})
	if err != nil {
		return store.CopyResult{}, err
	}
	return res, nil
}

// copyBlob gives md a fresh blob ID holding a copy of its blob and summary,
// and counts the bytes in u. A large blob's copy is the file that
// prepareCopies linked for it.
func copyBlob(t *tx, acct uint64, u *usage, md *meta, files *fileCopies) error {
	var blob []byte
	id := uint64(0)
	if isStaged(md.Blob) {
		id = files.of(md.Blob)
		if err := linkCopy(t, acct, id, md.SealedSize); err != nil {
			return err
		}
	} else {
		var err error
		blob, err = t.get(blobKey(pBlob, acct, md.Blob))
		if err != nil {
			if errors.Is(err, errNoKey) {
				err = corrupt("blob", errCorrupt)
			}
			return err
		}
	}
	sum, err := t.get(blobKey(pSummary, acct, md.Blob))
	if err != nil && !errors.Is(err, errNoKey) {
		return err
	}
	if id == 0 {
		u.LastBlob++
		id = u.LastBlob
		if err := t.set(blobKey(pBlob, acct, id), blob); err != nil {
			return err
		}
	}
	md.Blob = id
	u.Used += md.SealedSize
	if sum != nil {
		return t.set(blobKey(pSummary, acct, md.Blob), sum)
	}
	return nil
}
