package imap

import (
	"context"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// QRESYNC (RFC 7162 §3.2). The wire layer parses SELECT's QRESYNC
// parameter and FETCH's VANISHED modifier, turns EXPUNGE into VANISHED
// once the client enabled QRESYNC (also for the expunges of other
// sessions that Poll announces), writes [CLOSED] on a re-SELECT, and
// CLOSE writes no expunge responses. This file answers what was removed
// and changed since a mod-sequence: removals from the store's tombstones
// (store.Tombstones, read from the given mod-sequence on, never the
// whole mailbox), changes from the messages' MODSEQ.
//
// Below the store's tombstone floor the removals are no longer all
// known: the answer then names every UID the client may know (its
// known-uids, or 1 up to the last UID) that is not in the mailbox, which
// RFC 7162 §3.2.10 allows (the client ignores UIDs it never had). The
// sequence match data of SELECT narrows that set (§3.2.5.2).
//
// UIDs still in the session's view are never reported vanished here,
// even if the store removed them since SELECT listed the mailbox: the
// client learns of those from Poll, in order, so that sequence numbers
// stay right.

// EXPUNGE and UID EXPUNGE end with "OK [HIGHESTMODSEQ n]" once the
// client enabled CONDSTORE (RFC 7162 §3.2.10 shows it; Dovecot sends
// it), so that a client can keep n and resynchronise from it. n must not
// run ahead of any change the client has not been told: every change at
// or below n must be in the session's SELECT listing or have reached the
// mailbox state (and so the view, whose updates the Poll after the
// command writes before the tagged OK; the code is dropped if that Poll
// fails). A writer commits first and tells the state after, from its own
// goroutine (another session, POP3, retention, a delivery's sync), so
// the mailbox's HIGHESTMODSEQ alone may count a change not yet told.
// keptModSeq checks instead: it reads HIGHESTMODSEQ, then the
// mailbox's messages, and lowers n below every change since the last
// value it gave (or SELECT's) that the state has not heard of: a
// message whose MODSEQ is above what the state recorded for it (flag
// changes in modseqs, new messages in announced), a removal of a message
// the state still has. A change made after the HIGHESTMODSEQ
// read has a higher MODSEQ and is the next resync's.
//
// The same holds for the MODSEQ of a FETCH response, which an RFC 7162
// client may take as its HIGHESTMODSEQ (Dovecot's imap-sync.c assumes
// clients do; our Python clients' modseq_left does): a flag change told
// and written before an earlier one not yet told would let the client
// resynchronise past the earlier one. So a Poll that leaves the client
// with a mod-sequence it may not keep ends with "* OK [HIGHESTMODSEQ n]"
// (condstore.go's correctModSeq), n being keptModSeq's. Reading the
// store for it on every Poll that tells a flag change would cost a
// listing of the mailbox each time (about 1.3 ms and 1.6 MB more per
// Poll in a mailbox of 10,000 messages, against 0.25 ms for the Poll
// itself; BenchmarkPollModSeq's -removal pair measured it when a removal
// still forced the read); instead the mailbox state keeps reached, below
// which every change has reached it, and advances it over the
// mod-sequences it was told of in a row (the store gives every change
// the next one), so the store is read only past a gap: a removal whose
// mod-sequence no one tells (made by another process, POP3 or
// retention; this server's own EXPUNGE has it from the store,
// store.ExpungeResult, and tells it: store_flags.go's expungedAt), or a
// change not yet told, and then once for all the sessions.

// qresyncCaps are the capabilities of this file.
var qresyncCaps = []imap.Cap{imap.CapQResync}

// Compile-time check: QRESYNC is advertised.
var _ wire.SessionQResync = (*session)(nil)

// Resync implements wire.SessionQResync: after SELECT or EXAMINE with
// (QRESYNC (uidvalidity modseq [known-uids [seq-match]])), it writes
// VANISHED (EARLIER) and then the FETCH (UID FLAGS MODSEQ) of every
// message changed since modseq (RFC 7162 §3.2.5). A UIDVALIDITY that
// differs from the mailbox's makes it a plain SELECT.
func (s *session) Resync(ctx context.Context, w *wire.UpdateWriter, cmd *wire.Select) error {
	q := cmd.QResync
	a, sel, err := s.selectedState()
	if err != nil {
		return err
	}
	mb, err := s.srv.st.MailboxByID(ctx, a.account, sel.st.key.id)
	if err != nil {
		return s.selectedErr(ctx, a, sel, "select", err)
	}
	listed := sel.listed
	sel.listed = nil
	if q.UIDValidity != mb.UIDValidity || q.ModSeq >= mb.HighestModSeq {
		return nil
	}
	sel.modseqTold = true // SELECT said HIGHESTMODSEQ
	known := q.KnownUIDs
	if known == nil {
		known = imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	}
	gone, err := s.vanishedSince(ctx, a, sel, q.ModSeq, known, func(limit uint32) uint32 {
		return seqMatchLimitLocked(sel, q.SeqMatchSeqs, q.SeqMatchUIDs, limit)
	})
	if err != nil {
		return s.selectedErr(ctx, a, sel, "select", err)
	}
	if err := w.Vanished(gone, true); err != nil {
		return err
	}
	return s.writeChanged(ctx, a, sel, w, q.ModSeq, listed)
}

// Compile-time check: EXPUNGE's tagged OK carries HIGHESTMODSEQ.
var _ wire.SessionExpungeModSeq = (*session)(nil)

// ExpungeModSeq implements wire.SessionExpungeModSeq: Expunge, then,
// once the client enabled CONDSTORE, the mod-sequence it may keep
// (keptModSeq; 0 if none is known to be safe).
func (s *session) ExpungeModSeq(ctx context.Context, w *wire.UpdateWriter, uids imap.UIDSet) (uint64, error) {
	if err := s.Expunge(ctx, w, uids); err != nil {
		return 0, err
	}
	if !s.conn.Enabled(imap.CapCondStore) {
		return 0, nil
	}
	a, sel, err := s.selectedState()
	if err != nil {
		return 0, nil
	}
	n := s.keptModSeq(ctx, a, sel, false)
	if n > 0 {
		sel.toldModSeq = n // the client keeps it, lower or not
	}
	return n, nil
}

// keptModSeq returns the highest mod-sequence the client may keep once
// its view's pending updates are written (see above): never below
// SELECT's HIGHESTMODSEQ, the value it gave last, or the state's reached
// (what every change has reached, as such a check found in any session
// or mailboxState.reachedLocked counts), which it gives again when a
// change it cannot place keeps it from going further (the client may
// have taken a higher FETCH MODSEQ meanwhile). The store's messages are
// read only when its HIGHESTMODSEQ is above all three. early says the
// value is written before those updates (condstore.go's announceModSeq):
// it then also stays below every change the view holds for the client
// (view.pendingFloorLocked), which a client that lost the connection
// right after the value would not have had, even if that takes it below
// SELECT's. 0 if a read fails.
func (s *session) keptModSeq(ctx context.Context, a authState, sel *selected, early bool) uint64 {
	mbox := sel.st.key.id
	mb, err := s.srv.st.MailboxByID(ctx, a.account, mbox)
	if err != nil {
		return 0
	}
	top := mb.HighestModSeq
	st := sel.st
	st.mu.Lock()
	reached := st.reachedLocked()
	from := max(sel.v.kept, sel.v.selModSeq, reached)
	st.mu.Unlock()
	n := from
	if top > from {
		if n = s.toldModSeqBelow(ctx, a, sel, from, top); n == 0 {
			return 0
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if from == reached {
		// Read from the state's own value: every change up to n has
		// reached the state, for every view.
		st.reached = max(st.reached, n)
	}
	if early {
		n = sel.v.pendingFloorLocked(n, from)
	}
	sel.v.kept = n
	return n
}

// toldModSeqBelow returns top lowered below every change at or below it
// and above from that the mailbox state has not heard of (see above), or
// 0 if the read fails. A removal not heard of is a message the state
// still has that the listing lacks: its own mod-sequence is not known,
// so it holds n at from. (Found so, and not from the store's
// tombstones, it needs no tombstone read and holds below the tombstone
// floor too; a removal made after top, or at or below from and not yet
// told, holds n at from as well, which is safe.)
func (s *session) toldModSeqBelow(ctx context.Context, a authState, sel *selected, from, top uint64) uint64 {
	msgs, err := s.srv.st.Messages(ctx, a.account, sel.st.key.id, store.ListOptions{})
	if err != nil {
		return 0
	}
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := top
	j := 0
	for _, u := range st.uids {
		for j < len(msgs) && msgs[j].UID < u {
			j++
		}
		if j == len(msgs) || msgs[j].UID != u {
			n = min(n, from) // removed, not heard of
			break
		}
	}
	for _, m := range msgs {
		if m.ModSeq > from && m.ModSeq <= top && m.ModSeq > max(st.modseqs[m.UID], st.announced[m.UID]) {
			n = min(n, m.ModSeq-1) // a change the state has not heard of
		}
	}
	return n
}

// ExpungedAbove is Expunged for a removal whose every message got a
// mod-sequence above modseq, the mailbox's HIGHESTMODSEQ read before it
// (0: not known): a session that holds the removal back (RFC 7162 §3.2,
// condstore.go's guardModSeq) then lets its client keep a mod-sequence
// up to modseq, not only up to its SELECT's, so that the client's next
// QRESYNC asks for no more than it missed. Retention's sweeps and
// erasures have it from the store (store.Destroyed.ModSeq, less one);
// POP3's QUIT has the removal's own (ExpungedAt).
func (s *Server) ExpungedAbove(account string, mailbox uint64, uids []uint32, modseq uint64) {
	s.expungedBy(account, mailbox, uids, nil, false, modseq, 0)
}

// vanishedSince returns the UIDs of set (which may hold "*") that left
// the mailbox with a mod-sequence above since, less those still in the
// session's view. Below the store's tombstone floor it is every UID of
// set up to the last UID the session knows that is not in the view, above
// what floorFrom allows to skip (nil: nothing), which is called with the
// mailbox state's lock held.
func (s *session) vanishedSince(ctx context.Context, a authState, sel *selected, since uint64, set imap.UIDSet, floorFrom func(limit uint32) uint32) (imap.UIDSet, error) {
	v, err := s.srv.st.Vanished(ctx, a.account, sel.st.key.id, since)
	if err != nil {
		return nil, err
	}
	sel.st.mu.Lock()
	defer sel.st.mu.Unlock()
	uids := sel.v.uids
	var out imap.UIDSet
	if v.Complete {
		for _, u := range v.UIDs {
			if set.Contains(imap.UID(u)) {
				if _, in := slices.BinarySearch(uids, u); !in {
					out.AddNum(imap.UID(u))
				}
			}
		}
		return out, nil
	}
	// Below the floor: every UID of set that is not in the view, up to
	// the last UID the client can know.
	last := max(sel.uidNext, lastUID(uids)+1) - 1
	for _, n := range sel.v.added {
		last = max(last, n)
	}
	from := uint32(1)
	if floorFrom != nil {
		from = floorFrom(last) + 1
	}
	for _, r := range set {
		lo, hi := uint32(r.Start), uint32(r.Stop)
		staticRange(&lo, &hi, last)
		lo, hi = max(lo, from), min(hi, last)
		if lo > hi {
			continue
		}
		addAbsent(&out, uids, lo, hi)
	}
	return out, nil
}

// lastUID is the last of ascending uids, or 0.
func lastUID(uids []uint32) uint32 {
	if len(uids) == 0 {
		return 0
	}
	return uids[len(uids)-1]
}

// addAbsent adds to out the UIDs from lo to hi that are not in uids
// (ascending), as ranges: the cost is the messages in between, not the
// UIDs.
func addAbsent(out *imap.UIDSet, uids []uint32, lo, hi uint32) {
	i, _ := slices.BinarySearch(uids, lo)
	next := lo
	for ; i < len(uids) && uids[i] <= hi; i++ {
		if uids[i] > next {
			out.AddRange(imap.UID(next), imap.UID(uids[i]-1))
		}
		next = uids[i] + 1
	}
	if next <= hi && next != 0 {
		out.AddRange(imap.UID(next), imap.UID(hi))
	}
}

// seqMatchLimit reads SELECT's sequence match data (RFC 7162 §3.2.5.2):
// pairs of a message number and the UID the client has for it. The
// client's view agrees with the session's up to the highest UID of the
// pairs, taken in ascending order, that all agree; nothing at or below
// it can be missing from the client's side, so the answer starts above
// it. It returns that UID, or 0. The caller holds sel.st.mu.
func seqMatchLimitLocked(sel *selected, seqs imap.SeqSet, uids imap.UIDSet, limit uint32) uint32 {
	if len(seqs) == 0 || len(uids) == 0 {
		return 0
	}
	ss, okS := seqs.Nums()
	us, okU := uids.Nums()
	if !okS || !okU || len(ss) != len(us) {
		return 0 // "*" or a mismatch: no help
	}
	view := sel.v.uids
	var agreed uint32
	for i := range ss {
		seq, uid := ss[i], uint32(us[i])
		// The client's message seq had UID uid: it agrees if the
		// session's view has uid at the same place.
		if seq == 0 || int(seq) > len(view) || view[seq-1] != uid || uid > limit {
			break
		}
		agreed = uid
	}
	return agreed
}

// writeChanged writes FETCH (UID FLAGS MODSEQ) for the messages of the
// view changed since modseq, in sequence order, from msgs (SELECT's
// listing, from which the view was made) or, if nil, a new listing.
func (s *session) writeChanged(ctx context.Context, a authState, sel *selected, w *wire.UpdateWriter, since uint64, msgs []store.Message) error {
	if msgs == nil {
		var err error
		if msgs, err = s.srv.st.Messages(ctx, a.account, sel.st.key.id, store.ListOptions{}); err != nil {
			return s.selectedErr(ctx, a, sel, "select", err)
		}
	}
	rev1 := !s.conn.Enabled(imap.CapIMAP4rev2)
	type change struct {
		seq, uid uint32
		flags    []string
		modseq   uint64
		recent   bool
	}
	var out []change
	sel.st.mu.Lock()
	j := 0
	for i, u := range sel.v.uids {
		for j < len(msgs) && msgs[j].UID < u {
			j++
		}
		if j == len(msgs) {
			break
		}
		m := &msgs[j]
		if m.UID != u || m.ModSeq <= since {
			continue
		}
		sel.st.noteKeywordsLocked(m.Flags)
		sel.v.supersedeLocked(u, m.ModSeq)
		_, rec := sel.v.recent[u]
		out = append(out, change{seq: uint32(i + 1), uid: u, flags: m.Flags, modseq: m.ModSeq, recent: rec})
	}
	sel.st.mu.Unlock()
	s.announceKeywords(sel, w)
	for _, c := range out {
		fr := w.Fetch(c.seq)
		fr.UID(imap.UID(c.uid))
		fr.Flags(fetchFlags(c.flags, c.recent && rev1))
		fr.ModSeq(c.modseq)
		sel.told(c.modseq)
		if err := fr.Close(); err != nil {
			return err
		}
	}
	return w.Err()
}

// fetchVanished writes the VANISHED (EARLIER) of UID FETCH … (CHANGEDSINCE
// n VANISHED) (RFC 7162 §3.2.6): the UIDs of the command's set removed
// since n, before any FETCH response.
func (s *session) fetchVanished(ctx context.Context, a authState, sel *selected, w *wire.UpdateWriter, cmd *wire.Fetch) error {
	set, ok := cmd.Set.(imap.UIDSet)
	if !ok || imap.IsSearchRes(cmd.Set) {
		if !imap.IsSearchRes(cmd.Set) {
			return nil
		}
		set = searchResSet(sel)
	}
	gone, err := s.vanishedSince(ctx, a, sel, cmd.ChangedSince, set, nil)
	if err != nil {
		return s.selectedErr(ctx, a, sel, "fetch", err)
	}
	return w.Vanished(gone, true)
}

// searchResSet is "$" as a UID set.
func searchResSet(sel *selected) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range sel.searchRes {
		set.AddNum(imap.UID(u))
	}
	return set
}
