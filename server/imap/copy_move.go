package imap

import (
	"errors"
	"log/slog"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// Copy implements imapserver.Session (COPY, UID COPY). Summaries and
// session keys travel with the messages (they are bound to the account, not
// to the UID).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	account, keys, sel, log, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	dmb, err := s.destination(account, dest)
	if err != nil {
		return nil, err
	}
	refs := sel.resolve(numSet)
	if len(refs) == 0 {
		return nil, nil
	}
	ctx := s.ctx()
	res, err := s.srv.st.CopyMessages(ctx, account, sel.st.key.id, dmb.ID, refUIDs(refs))
	if err != nil {
		return nil, s.copyErr(sel, log, "copy", err, dmb)
	}
	s.srv.syncMailbox(account, dmb.ID)
	s.train(account, keys, log, sel.st.key.id, dmb, dstUIDs(res), false)
	return copyData(res), nil
}

// Move implements imapserver.SessionMove (MOVE, UID MOVE; RFC 6851).
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	account, keys, sel, log, err := s.selectedState()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	dmb, err := s.destination(account, dest)
	if err != nil {
		return err
	}
	if dmb.ID == sel.st.key.id {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Source and destination are the same mailbox"}
	}
	refs := sel.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	ctx := s.ctx()
	res, err := s.srv.st.MoveMessages(ctx, account, sel.st.key.id, dmb.ID, refUIDs(refs))
	if err != nil {
		return s.copyErr(sel, log, "move", err, dmb)
	}
	moved := make([]uint32, len(res.Pairs))
	for i, p := range res.Pairs {
		moved[i] = p.Src
	}
	// COPYUID first, then the EXPUNGEs: the tracker queues them to every
	// session (this one included) and imapserver writes ours after Move.
	if len(res.Pairs) > 0 {
		if err := w.WriteCopyData(copyData(res)); err != nil {
			return err
		}
	}
	sel.st.mu.Lock()
	sel.st.expungeLocked(moved)
	sel.st.mu.Unlock()
	s.srv.syncMailbox(account, dmb.ID)
	s.train(account, keys, log, sel.st.key.id, dmb, dstUIDs(res), true)
	return nil
}

// destination validates a COPY/MOVE target; a missing one gets TRYCREATE.
func (s *session) destination(account, dest string) (store.Mailbox, error) {
	_, _, log, _ := s.state()
	name, err := canonicalName(dest)
	if err != nil {
		return store.Mailbox{}, err
	}
	mb, err := s.srv.st.Mailbox(s.ctx(), account, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Mailbox{}, errTryCreate
	}
	if err != nil {
		return store.Mailbox{}, protoErr(log, "copy", err, "mailbox", name)
	}
	return mb, nil
}

// copyErr maps a failed COPY or MOVE. ErrNotFound means the selected
// mailbox or the destination is gone: the first ends the session (see
// selectedErr), the second gets TRYCREATE as if it had never existed.
func (s *session) copyErr(sel *selected, log *slog.Logger, op string, err error, dst store.Mailbox) error {
	if !errors.Is(err, store.ErrNotFound) {
		return protoErr(log, op, err, "to", dst.Name)
	}
	if s.selectedGone(sel) {
		return s.byeGone(log)
	}
	return errTryCreate
}

func refUIDs(refs []msgRef) []uint32 {
	uids := make([]uint32, len(refs))
	for i, r := range refs {
		uids[i] = r.uid
	}
	return uids
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
