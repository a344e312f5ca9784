package imap

import (
	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/store"
)

// systemFlags are the flags every mailbox supports (RFC 9051 §2.3.2);
// \Recent is not kept (IMAP4rev2 removed it).
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// Select implements imapserver.Session for SELECT and EXAMINE.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.unselect()
	account, _, log, err := s.state()
	if err != nil {
		return nil, err
	}
	if name, err = canonicalName(name); err != nil {
		return nil, err
	}
	ctx := s.ctx()
	mb, err := s.srv.st.Mailbox(ctx, account, name)
	if err != nil {
		return nil, protoErr(log, "select", err, "mailbox", name)
	}
	st, err := s.srv.reg.acquire(ctx, s.srv.st, account, mb)
	if err != nil {
		return nil, protoErr(log, "select", err, "mailbox", name)
	}
	if st.isGone() { // deleted since Mailbox answered
		s.srv.reg.release(st)
		return nil, errNoSuchMailbox
	}
	// One listing gives both the reconciliation of the shared view with the
	// store (changes made outside this process) and the first unseen message.
	msgs, err := s.srv.st.Messages(ctx, account, mb.ID, store.ListOptions{})
	if err != nil {
		s.srv.reg.release(st)
		return nil, protoErr(log, "select", err, "mailbox", name)
	}
	uids := make([]uint32, len(msgs))
	unseen := make(map[uint32]bool)
	keywords := map[string]bool{}
	for i, m := range msgs {
		uids[i] = m.UID
		if !store.HasFlag(m.Flags, store.FlagSeen) {
			unseen[m.UID] = true
		}
		for _, f := range m.Flags {
			if len(f) > 0 && f[0] != '\\' {
				keywords[f] = true
			}
		}
	}

	sel := &selected{st: st, readOnly: options != nil && options.ReadOnly}
	st.mu.Lock()
	st.reconcileLocked(uids, log)
	sel.tracker = st.tracker.NewSession()
	n := uint32(len(st.uids))
	var firstUnseen uint32
	for i, u := range st.uids {
		if unseen[u] {
			firstUnseen = uint32(i + 1)
			break
		}
	}
	var last uint32
	if n > 0 {
		last = st.uids[n-1]
	}
	st.mu.Unlock()

	s.mu.Lock()
	s.sel = sel
	s.mu.Unlock()

	flags := append([]imap.Flag(nil), systemFlags...)
	for k := range keywords {
		flags = append(flags, imap.Flag(k))
	}
	perm := []imap.Flag{}
	if !sel.readOnly {
		perm = append(append(perm, systemFlags...), imap.FlagWildcard)
	}
	uidNext := mb.UIDNext
	if uidNext <= last {
		uidNext = last + 1
	}
	data := &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    perm,
		NumMessages:       n,
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(uidNext),
		UIDValidity:       mb.UIDValidity,
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		// RFC 9051 §6.3.2: the server MUST send a LIST response with the
		// mailbox name; imapserver writes it when List is set.
		attrs := []imap.MailboxAttr{}
		if mb.SpecialUse != "" {
			attrs = append(attrs, imap.MailboxAttr(mb.SpecialUse))
		}
		data.List = &imap.ListData{Attrs: attrs, Delim: delim, Mailbox: mb.Name}
	}
	return data, nil
}

// msgRef is one message of a command's set: its sequence number in the
// client's view and its UID.
type msgRef struct {
	seq uint32
	uid uint32
}

// resolve turns a sequence or UID set (with "*" and "$") into the messages
// it names that the client knows of, in ascending order.
func (sel *selected) resolve(numSet imap.NumSet) []msgRef {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return sel.resolveLocked(numSet)
}

func (sel *selected) resolveLocked(numSet imap.NumSet) []msgRef {
	st := sel.st
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	var out []msgRef
	switch set := numSet.(type) {
	case imap.SeqSet:
		// The client's highest sequence number, for "*".
		var max uint32
		for i := len(st.uids); i > 0; i-- {
			if c := sel.tracker.EncodeSeqNum(uint32(i)); c != 0 {
				max = c
				break
			}
		}
		set = staticSeqSet(set, max)
		for i, uid := range st.uids {
			c := sel.tracker.EncodeSeqNum(uint32(i + 1))
			if c != 0 && set.Contains(c) {
				out = append(out, msgRef{seq: c, uid: uid})
			}
		}
	case imap.UIDSet:
		var max uint32
		if n := len(st.uids); n > 0 {
			max = st.uids[n-1]
		}
		set = staticUIDSet(set, max)
		for i, uid := range st.uids {
			if !set.Contains(imap.UID(uid)) {
				continue
			}
			if c := sel.tracker.EncodeSeqNum(uint32(i + 1)); c != 0 {
				out = append(out, msgRef{seq: c, uid: uid})
			}
		}
	}
	return out
}

// staticSeqSet replaces "*" (0) with max; the input is not modified.
func staticSeqSet(set imap.SeqSet, max uint32) imap.SeqSet {
	out := make(imap.SeqSet, len(set))
	for i, r := range set {
		out[i] = r
		staticRange(&out[i].Start, &out[i].Stop, max)
	}
	return out
}

func staticUIDSet(set imap.UIDSet, max uint32) imap.UIDSet {
	out := make(imap.UIDSet, len(set))
	for i, r := range set {
		start, stop := uint32(r.Start), uint32(r.Stop)
		staticRange(&start, &stop, max)
		out[i] = imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)}
	}
	return out
}

func staticRange(start, stop *uint32, max uint32) {
	if *start == 0 {
		*start = max
	}
	if *stop == 0 {
		*stop = max
	}
	if *start > *stop {
		*start, *stop = *stop, *start
	}
}
