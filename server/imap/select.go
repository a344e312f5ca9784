package imap

import (
	"context"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// systemFlags are the flags every mailbox supports (RFC 9051 §2.3.2).
var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// mailboxFlags returns the system flags and keywords, for FLAGS.
func mailboxFlags(keywords []string) []imap.Flag {
	out := append([]imap.Flag(nil), systemFlags...)
	for _, k := range keywords {
		out = append(out, imap.Flag(k))
	}
	return out
}

// fetchFlags returns a message's flags for FETCH FLAGS, with \Recent for
// IMAP4rev1 clients when recent.
func fetchFlags(flags []string, recent bool) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags)+1)
	if recent {
		out = append(out, `\Recent`)
	}
	for _, f := range flags {
		out = append(out, imap.Flag(f))
	}
	return out
}

// Select implements wire.Session for SELECT and EXAMINE. The wire layer
// has unselected a previous mailbox (and said so) already; whatever
// happens here, nothing is selected unless it succeeds.
func (s *session) Select(ctx context.Context, cmd *wire.Select) (*wire.SelectData, error) {
	s.unselect()
	a, err := s.state()
	if err != nil {
		return nil, err
	}
	name, err := canonicalName(cmd.Mailbox)
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.st.Mailbox(ctx, a.account, name)
	if err != nil {
		return nil, protoErr(a.log, "select", err, "mailbox", name)
	}
	st := s.srv.reg.acquire(a.account, mb)
	// One listing, under the state's lock, reconciles the shared view
	// with the store (changes made outside this process) and gives the
	// new view, the first unseen message and the keywords.
	st.mu.Lock()
	msgs, err := s.srv.st.Messages(ctx, a.account, mb.ID, store.ListOptions{})
	if err != nil || st.isGone() {
		st.mu.Unlock()
		s.srv.reg.release(st)
		if err == nil {
			return nil, errNoSuchMailbox // deleted since Mailbox answered
		}
		return nil, protoErr(a.log, "select", err, "mailbox", name)
	}
	readOnly := cmd.ReadOnly
	// HIGHESTMODSEQ was read before the listing, so a change committed
	// in between (a delivery, a flag change by another process) is in
	// the listing with a higher MODSEQ, and nothing told the state of
	// it: keptModSeq (qresync.go) would hold every later HIGHESTMODSEQ
	// of the session below it until the message changed again. The
	// listing shows the mailbox as it was when it was made, and every
	// change up to its highest MODSEQ was committed before it, so the
	// view holds each of them (a removal by the message's absence):
	// SELECT tells that value if it is higher.
	highest := mb.HighestModSeq
	for i := range msgs {
		highest = max(highest, msgs[i].ModSeq)
	}
	if !st.loaded {
		st.reached = highest // the state is this listing
	}
	v := st.openLocked(msgs, readOnly, s.wake)
	v.selModSeq = highest
	var firstUnseen uint32
	for i, m := range msgs {
		if !store.HasFlag(m.Flags, store.FlagSeen) {
			firstUnseen = uint32(i + 1)
			break
		}
	}
	var last uint32
	if n := len(msgs); n > 0 {
		last = msgs[n-1].UID
	}
	uidNext := max(mb.UIDNext, last+1)
	recent := s.srv.recent.claim(st.key, v.uids, uidNext, !readOnly)
	for _, u := range recent {
		v.setRecent(u)
	}
	keywords := make([]string, 0, len(v.keywords))
	for k := range v.keywords {
		keywords = append(keywords, k)
	}
	st.mu.Unlock()
	slices.Sort(keywords)

	sel := &selected{st: st, v: v, readOnly: readOnly, uidNext: uidNext}
	if cmd.QResync != nil {
		sel.listed = msgs // the view's own listing, for Resync
	}
	s.mu.Lock()
	s.sel = sel
	s.mu.Unlock()

	flags := mailboxFlags(keywords)
	var perm []imap.Flag
	if !readOnly {
		perm = append(append([]imap.Flag(nil), flags...), imap.FlagWildcard)
	}
	return &wire.SelectData{
		Flags:          flags,
		PermanentFlags: perm,
		Exists:         uint32(len(msgs)),
		Recent:         uint32(len(recent)),
		FirstUnseen:    firstUnseen,
		UIDNext:        imap.UID(uidNext),
		UIDValidity:    mb.UIDValidity,
		HighestModSeq:  highest,
		MailboxID:      mailboxID(mb),
		ReadOnly:       readOnly,
		List:           s.selectList(mb),
	}, nil
}

// mailboxID is a mailbox's OBJECTID (RFC 8474): its store ID, which is
// never reused.
func mailboxID(mb store.Mailbox) string { return "M" + strconv.FormatUint(mb.ID, 10) }

// selectList is the LIST response IMAP4rev2 clients get with SELECT (RFC
// 9051 §6.3.2).
func (s *session) selectList(mb store.Mailbox) *wire.ListData {
	attrs := []imap.MailboxAttr{}
	if mb.SpecialUse != "" {
		attrs = append(attrs, imap.MailboxAttr(mb.SpecialUse))
	}
	return &wire.ListData{Mailbox: mb.Name, Delim: delim, Attrs: attrs}
}

// Unselect implements wire.Session: CLOSE (expunge: remove \Deleted
// messages silently, unless read-only) and UNSELECT.
func (s *session) Unselect(ctx context.Context, expunge bool) error {
	if expunge {
		a, sel, err := s.selectedState()
		if err == nil && !sel.readOnly {
			if _, err := s.expunge(ctx, a, sel, nil); err != nil {
				s.unselect()
				return err
			}
		}
	}
	s.unselect()
	return nil
}

// msgRef is one message of a command's set: its sequence number in the
// client's view and its UID.
type msgRef struct {
	seq uint32
	uid uint32
}

// resolve turns a sequence or UID set (with "*" and "$") into the
// messages it names that the client knows of, in ascending order.
func (sel *selected) resolve(set imap.NumSet) []msgRef {
	sel.st.mu.Lock()
	defer sel.st.mu.Unlock()
	return sel.resolveLocked(set)
}

func (sel *selected) resolveLocked(set imap.NumSet) []msgRef {
	uids := sel.v.uids
	if imap.IsSearchRes(set) {
		var out []msgRef
		for _, u := range sel.searchRes {
			if i, ok := slices.BinarySearch(uids, u); ok {
				out = append(out, msgRef{seq: uint32(i + 1), uid: u})
			}
		}
		return out
	}
	n := len(uids)
	if n == 0 {
		return nil
	}
	// Mark the ranges on a difference array over positions: the cost is
	// ranges + messages, however the ranges overlap.
	diff := make([]int32, n+1)
	mark := func(lo, hi int) { // positions [lo, hi)
		if lo < hi {
			diff[lo]++
			diff[hi]--
		}
	}
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			staticRange(&start, &stop, uint32(n))
			if start > uint32(n) {
				continue
			}
			mark(int(start)-1, int(min(stop, uint32(n))))
		}
	case imap.UIDSet:
		maxUID := uids[n-1]
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			staticRange(&start, &stop, maxUID)
			lo, _ := slices.BinarySearch(uids, start)
			hi, found := slices.BinarySearch(uids, stop)
			if found {
				hi++
			}
			mark(lo, hi)
		}
	}
	var out []msgRef
	var depth int32
	for i := 0; i < n; i++ {
		depth += diff[i]
		if depth > 0 {
			out = append(out, msgRef{seq: uint32(i + 1), uid: uids[i]})
		}
	}
	return out
}

// staticRange replaces "*" (0) with max and orders the range.
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
