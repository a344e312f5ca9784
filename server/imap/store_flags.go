package imap

import (
	"reflect"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// Store implements imapserver.Session (STORE and UID STORE).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	account, _, sel, log, err := s.selectedState()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	var change []string
	for _, f := range flags.Flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue // not settable (RFC 3501 §2.3.2)
		}
		if _, err := store.CanonicalFlag(string(f)); err != nil {
			return errBadFlag
		}
		change = append(change, string(f))
	}
	var op store.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = store.FlagsSet
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	default:
		return errBadFlag
	}
	refs := sel.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	uids := make([]uint32, len(refs))
	for i, r := range refs {
		uids[i] = r.uid
	}
	ctx := s.ctx()
	mbox := sel.st.key.id
	res, err := s.srv.st.StoreFlags(ctx, account, mbox, store.FlagUpdate{UIDs: uids, Op: op, Flags: change})
	if err != nil {
		return s.selectedErr(sel, log, "store", err)
	}
	sel.flagsChanged(res.Changed)
	if flags.Silent {
		return nil
	}
	// A non-silent STORE answers with the new flags of every message of the
	// set (RFC 9051 §6.4.6), changed or not.
	msgs, err := s.srv.st.Messages(ctx, account, mbox, store.ListOptions{FromUID: uids[0], ToUID: uids[len(uids)-1]})
	if err != nil {
		return s.selectedErr(sel, log, "store", err)
	}
	_, isUID := numSet.(imap.UIDSet)
	j := 0
	for _, r := range refs {
		for j < len(msgs) && msgs[j].UID < r.uid {
			j++
		}
		if j == len(msgs) || msgs[j].UID != r.uid {
			continue
		}
		rw := w.CreateMessage(r.seq)
		if isUID {
			rw.WriteUID(imap.UID(r.uid))
		}
		rw.WriteFlags(imapFlags(msgs[j].Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Expunge implements imapserver.Session (EXPUNGE, UID EXPUNGE and the
// implicit expunge of CLOSE).
func (s *session) Expunge(w *imapserver.ExpungeWriter, uidSet *imap.UIDSet) error {
	account, _, sel, log, err := s.selectedState()
	if err != nil {
		return err
	}
	if sel.readOnly {
		if isCloseExpunge(w) {
			return nil // CLOSE of an EXAMINEd mailbox removes nothing
		}
		return errReadOnly
	}
	refs := sel.resolve(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}})
	if uidSet != nil {
		refs = sel.resolve(*uidSet)
	}
	if len(refs) == 0 {
		return nil
	}
	ctx := s.ctx()
	mbox := sel.st.key.id
	msgs, err := s.srv.st.Messages(ctx, account, mbox, store.ListOptions{FromUID: refs[0].uid, ToUID: refs[len(refs)-1].uid})
	if err != nil {
		return s.selectedErr(sel, log, "expunge", err)
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
		return nil
	}
	removed, err := s.srv.st.Expunge(ctx, account, mbox, del)
	if err != nil {
		return s.selectedErr(sel, log, "expunge", err)
	}
	// The tracker queues the EXPUNGE responses to every session, this one
	// included; imapserver writes ours when the command completes.
	sel.st.mu.Lock()
	sel.st.expungeLocked(removed)
	sel.st.mu.Unlock()
	return nil
}

// isCloseExpunge reports whether w is the writer imapserver passes for
// CLOSE, which has no connection (it must not send EXPUNGE responses).
// imapserver gives no other way to tell CLOSE from EXPUNGE, and CLOSE of a
// read-only mailbox must succeed without removing anything.
func isCloseExpunge(w *imapserver.ExpungeWriter) bool {
	if w == nil {
		return true
	}
	f := reflect.ValueOf(w).Elem().FieldByName("conn")
	return f.IsValid() && f.Kind() == reflect.Pointer && f.IsNil()
}

// expunged removes uids from the view of a mailbox after a change made
// outside its sessions (RENAME INBOX).
func (s *Server) expunged(account string, mailbox uint64, uids []uint32) {
	st := s.reg.lookup(account, mailbox)
	if st == nil {
		return
	}
	defer s.reg.release(st)
	st.mu.Lock()
	st.expungeLocked(uids)
	st.mu.Unlock()
}
