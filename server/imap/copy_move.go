package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// Copy implements wire.Session (COPY, UID COPY). Summaries and session
// keys travel with the messages and are bound to the copies.
func (s *session) Copy(ctx context.Context, cmd *wire.Copy) (*imap.CopyData, error) {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	dmb, err := s.destination(ctx, a, cmd.Mailbox)
	if err != nil {
		return nil, err
	}
	refs := sel.resolve(cmd.Set)
	if len(refs) == 0 {
		return nil, nil
	}
	src := sel.st.key.id
	res, err := s.copyMessages(ctx, a, src, dmb.ID, refUIDs(refs))
	if err != nil {
		return nil, s.copyErr(ctx, a, sel, "copy", err, dmb)
	}
	s.added(ctx, a, src, dmb.ID, res.Pairs)
	s.train(ctx, a, src, dmb, dstUIDs(res), false)
	return copyData(res), nil
}

// copyMessages copies messages in as many store transactions as it takes
// (inBatches). COPY is all or nothing (RFC 9051 §6.4.7): when a run
// fails, the copies of the runs before it are expunged again, and the
// destination is as before but for its UIDNEXT.
func (s *session) copyMessages(ctx context.Context, a authState, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	var res store.CopyResult
	err := inBatches(uids, func(run []uint32) error {
		r, err := s.srv.st.CopyMessages(ctx, a.account, src, dst, run)
		res.DstUIDValidity = r.DstUIDValidity
		res.Pairs = append(res.Pairs, r.Pairs...)
		return err
	})
	if err != nil && len(res.Pairs) > 0 {
		copies := dstUIDs(res)
		if uerr := inBatches(copies, func(run []uint32) error {
			_, err := s.srv.st.Expunge(ctx, a.account, dst, run)
			return err
		}); uerr != nil {
			a.log.Error("copy failed; its first copies could not be removed", "mailbox", dst, "err", uerr)
		}
		return store.CopyResult{}, err
	}
	return res, err
}

// added binds the summaries of copied messages to their copies, makes
// them \Recent for the next session to see them, and announces them.
func (s *session) added(ctx context.Context, a authState, src, dst uint64, pairs []store.UIDPair) {
	if len(pairs) == 0 {
		return
	}
	a.rd.Copied(ctx, src, dst, pairs)
	s.srv.recent.noteNew(stateKey{a.account, dst}, pairs[0].Dst)
	s.srv.syncMailbox(ctx, a.account, dst)
}

// moveMessages moves messages between two mailboxes of the account, in
// as many store transactions as it takes (inBatches), and binds their
// summaries to their new UIDs. Into the source mailbox itself, each run
// is copied, then its originals expunged, as Dovecot does. A move may
// stop part way (RFC 6851 §3.3: each message is moved or unaffected):
// what was moved before the failing run is returned with the error.
// removals are the runs' removals from src, in order, each with its
// mod-sequence (for expungedAt).
func (s *session) moveMessages(ctx context.Context, a authState, src, dst uint64, uids []uint32) (res store.CopyResult, removals []store.ExpungeResult, err error) {
	err = inBatches(uids, func(run []uint32) error {
		var r store.CopyResult
		var gone store.ExpungeResult
		var err error
		if dst == src {
			r, err = s.srv.st.CopyMessages(ctx, a.account, src, src, run)
			if err == nil && len(r.Pairs) > 0 {
				if gone, err = s.srv.st.Expunge(ctx, a.account, src, movedSources(r)); err != nil {
					// The copies stay: the originals are still there.
					if _, uerr := s.srv.st.Expunge(ctx, a.account, src, dstUIDs(r)); uerr != nil {
						a.log.Error("move failed; its copies could not be removed", "err", uerr)
					}
					return err
				}
			}
		} else {
			r, err = s.srv.st.MoveMessages(ctx, a.account, src, dst, run)
			gone = store.ExpungeResult{UIDs: movedSources(r), ModSeq: r.SrcModSeq}
		}
		if err == nil {
			res.DstUIDValidity = r.DstUIDValidity
			res.Pairs = append(res.Pairs, r.Pairs...)
			if len(gone.UIDs) > 0 {
				removals = append(removals, gone)
			}
		}
		return err
	})
	s.added(ctx, a, src, dst, res.Pairs)
	return res, removals, err
}

// Move implements wire.Session (MOVE, UID MOVE; RFC 6851): COPYUID first,
// then the EXPUNGE responses. A MOVE into the selected mailbox itself
// gives the messages new UIDs, as Dovecot does (a copy, then an expunge
// of the originals).
func (s *session) Move(ctx context.Context, w *wire.UpdateWriter, cmd *wire.Copy) error {
	a, sel, err := s.selectedState()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	dmb, err := s.destination(ctx, a, cmd.Mailbox)
	if err != nil {
		return err
	}
	refs := sel.resolve(cmd.Set)
	if len(refs) == 0 {
		return nil
	}
	src := sel.st.key.id
	res, removals, err := s.moveMessages(ctx, a, src, dmb.ID, refUIDs(refs))
	if err != nil && len(res.Pairs) == 0 {
		return s.copyErr(ctx, a, sel, "move", err, dmb)
	}
	// Whatever moved is told, also when a later run failed.
	if d := copyData(res); d != nil {
		if err := w.CopyUID(d); err != nil {
			return err
		}
	}
	// Each run's removal is told with its own mod-sequence, as EXPUNGE
	// tells one: its sequence numbers hold once the earlier runs' are
	// applied.
	var gone []expunge
	for _, r := range removals {
		gone = append(gone, s.srv.expungedAt(a.account, src, r, sel.v, true)...)
	}
	if err := sel.contextsExpunged(w, gone); err != nil {
		return err
	}
	for _, e := range gone {
		if err := w.Expunge(e.seq, imap.UID(e.uid)); err != nil {
			return err
		}
	}
	s.train(ctx, a, src, dmb, dstUIDs(res), true)
	if err != nil {
		return s.copyErr(ctx, a, sel, "move", err, dmb)
	}
	return nil
}

// movedSources returns the source UIDs of a move.
func movedSources(res store.CopyResult) []uint32 {
	out := make([]uint32, len(res.Pairs))
	for i, p := range res.Pairs {
		out[i] = p.Src
	}
	return out
}

// destination validates a COPY/MOVE target; a missing one gets TRYCREATE.
func (s *session) destination(ctx context.Context, a authState, dest string) (store.Mailbox, error) {
	name, err := canonicalName(dest)
	if err != nil {
		return store.Mailbox{}, err
	}
	mb, err := s.srv.st.Mailbox(ctx, a.account, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Mailbox{}, errTryCreate
	}
	if err != nil {
		return store.Mailbox{}, protoErr(a.log, "copy", err, "mailbox", name)
	}
	return mb, nil
}

// copyErr maps a failed COPY or MOVE. ErrNotFound means the selected
// mailbox or the destination is gone: the first ends the session (see
// selectedErr), the second gets TRYCREATE as if it had never existed.
func (s *session) copyErr(ctx context.Context, a authState, sel *selected, op string, err error, dst store.Mailbox) error {
	if !errors.Is(err, store.ErrNotFound) {
		return protoErr(a.log, op, err, "to", dst.Name)
	}
	if s.selectedGone(ctx, a, sel) {
		return s.mailboxGone(a.log)
	}
	return errTryCreate
}

func copyData(res store.CopyResult) *imap.CopyData {
	if len(res.Pairs) == 0 {
		return nil
	}
	var src, dst imap.UIDSet
	for _, p := range res.Pairs {
		src.AddNum(imap.UID(p.Src))
		dst.AddNum(imap.UID(p.Dst))
	}
	return &imap.CopyData{UIDValidity: res.DstUIDValidity, SourceUIDs: src, DestUIDs: dst}
}
