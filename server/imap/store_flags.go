package imap

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// Store implements wire.Session (STORE and UID STORE). Other sessions
// that have the mailbox selected are told of the changes (FETCH FLAGS);
// a new keyword is announced with FLAGS first, in every session.
func (s *session) Store(ctx context.Context, w *wire.UpdateWriter, cmd *wire.Store) (*wire.StoreData, error) {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	if sel.readOnly {
		return nil, errReadOnly
	}
	change := make([]string, 0, len(cmd.Flags.Flags))
	for _, f := range cmd.Flags.Flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue // not settable (RFC 3501 §2.3.2)
		}
		if _, err := store.CanonicalFlag(string(f)); err != nil {
			return nil, errBadFlag
		}
		change = append(change, string(f))
	}
	var op store.FlagOp
	switch cmd.Flags.Op {
	case imap.StoreFlagsSet:
		op = store.FlagsSet
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	default:
		return nil, errBadFlag
	}
	if cmd.HasUnchangedSince {
		s.announceModSeq(ctx, a, sel, w)
	}
	refs := sel.resolve(cmd.Set)
	if len(refs) == 0 {
		return nil, nil
	}
	uids := refUIDs(refs)
	mbox := sel.st.key.id
	u := store.FlagUpdate{UIDs: uids, Op: op, Flags: change}
	if cmd.HasUnchangedSince {
		u.UnchangedSince = max(cmd.UnchangedSince, 1) // 0 would mean "none"
	}
	var res store.FlagResult
	err = inBatches(uids, func(run []uint32) error {
		u.UIDs = run
		r, err := s.srv.st.StoreFlags(ctx, a.account, mbox, u)
		res.Changed = append(res.Changed, r.Changed...)
		res.Modified = append(res.Modified, r.Modified...)
		return err
	})
	// What earlier runs changed is told even when a later one failed.
	sel.st.mu.Lock()
	sel.st.flagsLocked(res.Changed, sel.v)
	sel.st.mu.Unlock()
	s.srv.flagsPublished(a.account, mbox, res.Changed)
	for _, m := range res.Changed {
		sel.markDirty(m.UID)
	}
	if err != nil {
		return nil, s.selectedErr(ctx, a, sel, "store", err)
	}
	s.announceKeywords(sel, w)
	var data *wire.StoreData
	if len(res.Modified) > 0 {
		data = &wire.StoreData{Modified: modifiedSet(res.Modified, refs, cmd.UID)}
	}
	if cmd.Flags.Silent {
		return data, nil
	}
	// A non-silent STORE answers with the new flags of every message of
	// the set (RFC 9051 §6.4.6), changed or not.
	msgs, err := s.srv.st.Messages(ctx, a.account, mbox, store.ListOptions{FromUID: uids[0], ToUID: uids[len(uids)-1]})
	if err != nil {
		return nil, s.selectedErr(ctx, a, sel, "store", err)
	}
	condstore := s.conn.Enabled(imap.CapCondStore)
	rev1 := !s.conn.Enabled(imap.CapIMAP4rev2)
	sel.st.mu.Lock()
	recent := make(map[uint32]bool, len(refs))
	for _, r := range refs {
		_, recent[r.uid] = sel.v.recent[r.uid]
	}
	for _, m := range msgs {
		sel.v.supersedeLocked(m.UID, m.ModSeq)
		// Another writer may have added a keyword since the
		// announcement above.
		sel.st.noteKeywordsLocked(m.Flags)
	}
	sel.st.mu.Unlock()
	s.announceKeywords(sel, w)
	j := 0
	for _, r := range refs {
		for j < len(msgs) && msgs[j].UID < r.uid {
			j++
		}
		if j == len(msgs) || msgs[j].UID != r.uid {
			continue
		}
		fr := w.Fetch(r.seq)
		if cmd.UID || s.conn.Enabled(imap.CapQResync) { // RFC 7162 §3.2.4
			fr.UID(imap.UID(r.uid))
		}
		fr.Flags(fetchFlags(msgs[j].Flags, recent[r.uid] && rev1))
		if condstore {
			fr.ModSeq(msgs[j].ModSeq)
			sel.told(msgs[j].ModSeq)
		}
		if err := fr.Close(); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// modifiedSet is STORE's MODIFIED set in the command's numbering.
func modifiedSet(uids []uint32, refs []msgRef, uid bool) imap.NumSet {
	if uid {
		var set imap.UIDSet
		for _, u := range uids {
			set.AddNum(imap.UID(u))
		}
		return set
	}
	var set imap.SeqSet
	for _, r := range refs {
		if slices.Contains(uids, r.uid) {
			set.AddNum(r.seq)
		}
	}
	return set
}

// Expunge implements wire.Session (EXPUNGE; UID EXPUNGE with uids, RFC
// 4315 §2.1).
func (s *session) Expunge(ctx context.Context, w *wire.UpdateWriter, uids imap.UIDSet) error {
	a, sel, err := s.selectedState()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	gone, err := s.expunge(ctx, a, sel, uids)
	if err != nil {
		return err
	}
	if err := sel.contextsExpunged(w, gone); err != nil {
		return err
	}
	for _, e := range gone {
		if err := w.Expunge(e.seq, imap.UID(e.uid)); err != nil {
			return err
		}
	}
	return nil
}

// expunge removes the \Deleted messages of the selected mailbox (those of
// uids if not nil), tells the other sessions, and returns what this
// session's client must be told, in the order to write it.
func (s *session) expunge(ctx context.Context, a authState, sel *selected, uids imap.UIDSet) ([]expunge, error) {
	var refs []msgRef
	if uids != nil {
		refs = sel.resolve(uids)
	} else {
		refs = sel.resolve(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}})
	}
	if len(refs) == 0 {
		return nil, nil
	}
	mbox := sel.st.key.id
	msgs, err := s.srv.st.Messages(ctx, a.account, mbox, store.ListOptions{FromUID: refs[0].uid, ToUID: refs[len(refs)-1].uid})
	if err != nil {
		return nil, s.selectedErr(ctx, a, sel, "expunge", err)
	}
	want := make(map[uint32]bool, len(refs))
	for _, r := range refs {
		want[r.uid] = true
	}
	var del []uint32
	for _, m := range msgs {
		if want[m.UID] && store.HasFlag(m.Flags, store.FlagDeleted) {
			del = append(del, m.UID)
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	res, err := s.srv.st.Expunge(ctx, a.account, mbox, del)
	if err != nil {
		return nil, s.selectedErr(ctx, a, sel, "expunge", err)
	}
	return s.srv.expungedAt(a.account, mbox, res, sel.v, true), nil
}

// expungedAt removes a removal's UIDs from the views of a mailbox after
// the store removed them: queued for every view but origin, and returned
// for origin (whose client is told now, highest sequence number first,
// so each stays valid as written). The store gave the removal's
// mod-sequence (store.ExpungeResult.ModSeq): the one below it is the
// floor of the removal, and the state hears of it as of a flag change
// told, so that, with the changes before it told, what every change has
// reached (reachedLocked) passes it without a read of the store: a
// CONDSTORE session's EXPUNGE and the other sessions' next Poll check no
// listing for it (qresync.go). ours is expungedBy's.
func (srv *Server) expungedAt(account string, mbox uint64, res store.ExpungeResult, origin *view, ours bool) []expunge {
	if res.ModSeq == 0 {
		return srv.expungedBy(account, mbox, res.UIDs, origin, ours, 0, 0)
	}
	return srv.expungedBy(account, mbox, res.UIDs, origin, ours, res.ModSeq-1, res.ModSeq)
}

// expungedBy is expungedAt's work; ours says the removal was this
// server's, which Options.OnExpunge is then told of; before is a
// mod-sequence below the removal, or 0 (see expungeLocked); modseq, if
// not 0, is the removal's own mod-sequence.
func (srv *Server) expungedBy(account string, mbox uint64, uids []uint32, origin *view, ours bool, before, modseq uint64) []expunge {
	if len(uids) > 0 {
		srv.events.publish(change{kind: changeExpunge, account: account, mailbox: mbox})
	}
	if ours && srv.onExpunge != nil && len(uids) > 0 {
		srv.onExpunge(account, mbox, uids)
	}
	st := srv.reg.lookup(account, mbox)
	if st == nil {
		return nil
	}
	defer srv.reg.release(st)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.expungeLocked(uids, origin, before)
	if modseq > 0 && len(uids) > 0 {
		st.noteHeardLocked(modseq)
	}
	if origin == nil {
		return nil
	}
	gone := make(map[uint32]bool, len(uids))
	for _, u := range uids {
		gone[u] = true
	}
	out := origin.dropLocked(func(u uint32) bool { return gone[u] })
	for _, e := range out {
		delete(origin.expunged, e.uid)
	}
	return out
}

func refUIDs(refs []msgRef) []uint32 {
	uids := make([]uint32, len(refs))
	for i, r := range refs {
		uids[i] = r.uid
	}
	return uids
}
