package imap

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// CONDSTORE (RFC 7162 §3.1). The store keeps a mod-sequence per message
// and mailbox; the session shows them (SELECT's HIGHESTMODSEQ, FETCH
// MODSEQ, unilateral FETCH with MODSEQ once enabled), honours STORE
// UNCHANGEDSINCE (MODIFIED) and the MODSEQ search key. FETCH
// CHANGEDSINCE's filter (RFC 7162 §3.1.4.1) is applied as FETCH lists
// the messages (fetch.go's loadChunk), before any summary is opened.
// This file has the rest: the MODSEQ of a SEARCH or SORT result.
// QRESYNC is qresync.go's.

// condstoreCaps are the capabilities of this file.
var condstoreCaps = []imap.Cap{imap.CapCondStore}

// keyUsesModSeq reports whether a search program has a MODSEQ key.
func keyUsesModSeq(k *wire.SearchKey) bool {
	if k.Op == wire.SearchModSeq {
		return true
	}
	for i := range k.Keys {
		if keyUsesModSeq(&k.Keys[i]) {
			return true
		}
	}
	return false
}

// resultModSeq is the MODSEQ of a SEARCH or SORT result whose program
// used MODSEQ (RFC 7162 §3.1.5): the highest mod-sequence of the messages
// returned, which for ESEARCH's MIN and MAX alone (RFC 4731 §3.2) are
// only those; msgs is the result in its order (ascending for SEARCH,
// sorted for SORT).
func resultModSeq(ret *wire.SearchReturn, msgs []*store.Message) uint64 {
	if len(msgs) == 0 {
		return 0
	}
	var m uint64
	if ret.ESearch && (ret.Min || ret.Max) && !ret.All && !ret.Count && ret.Partial == nil {
		if ret.Min {
			m = msgs[0].ModSeq
		}
		if ret.Max {
			m = max(m, msgs[len(msgs)-1].ModSeq)
		}
		return m
	}
	for _, msg := range msgs {
		m = max(m, msg.ModSeq)
	}
	return m
}

// Compile-time check: the enabling commands without a writer of their
// own announce HIGHESTMODSEQ.
var _ wire.SessionCondStore = (*session)(nil)

// CondStoreEnabling implements wire.SessionCondStore: SEARCH, SORT and
// THREAD with MODSEQ, STATUS and LIST-STATUS with HIGHESTMODSEQ, run
// while a mailbox is selected, announce its HIGHESTMODSEQ as FETCH and
// STORE do (announceModSeq). ENABLE CONDSTORE needs nothing: the wire
// layer refuses ENABLE once a mailbox is selected (RFC 5161 §3.1), and
// SELECT itself says HIGHESTMODSEQ.
func (s *session) CondStoreEnabling(ctx context.Context, w *wire.UpdateWriter) error {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil // nothing selected: nothing to announce
	}
	s.announceModSeq(ctx, a, sel, w)
	return w.Err()
}

// announceModSeq writes "* OK [HIGHESTMODSEQ n]" once per selected
// mailbox, with the first command that enables CONDSTORE while it is
// selected (RFC 7162 §3.1: FETCH MODSEQ or CHANGEDSINCE, STORE
// UNCHANGEDSINCE, SEARCH, SORT or THREAD with MODSEQ, STATUS or
// LIST-STATUS with HIGHESTMODSEQ). The client may keep n as its
// HIGHESTMODSEQ, so n is keptModSeq's (qresync.go): never above a change
// the session has not heard of, nor, since n comes before the command's
// output and the Poll after it, above one its view holds for the client.
func (s *session) announceModSeq(ctx context.Context, a authState, sel *selected, w *wire.UpdateWriter) {
	if sel.modseqTold {
		return
	}
	sel.modseqTold = true
	if n := s.keptModSeq(ctx, a, sel, true); n > 0 {
		w.HighestModSeq(n)
		sel.told(n)
	}
}

// statusModSeq is the HIGHESTMODSEQ of STATUS and LIST-STATUS (RFC 7162
// §3.1.7). For a mailbox not selected it is the store's. For the
// selected one a client may take it as its HIGHESTMODSEQ, as it takes
// SELECT's, so it is keptModSeq's (qresync.go), as for an enabling
// command: never above a change the session has not heard of, nor above
// one its view still holds for the client (STATUS comes before the Poll
// that tells them). Where keptModSeq cannot tell (a failed read, the
// removals since its last value no longer all known), it is that last
// value (or SELECT's), lowered the same way.
func (s *session) statusModSeq(ctx context.Context, a authState, mb *store.Mailbox) uint64 {
	s.mu.Lock()
	sel := s.sel
	s.mu.Unlock()
	if sel == nil || sel.st.key.id != mb.ID {
		return mb.HighestModSeq
	}
	n := s.keptModSeq(ctx, a, sel, true)
	if n == 0 {
		sel.st.mu.Lock()
		from := max(sel.v.kept, sel.v.selModSeq)
		n = sel.v.pendingFloorLocked(from, from)
		sel.st.mu.Unlock()
	}
	n = max(n, 1) // a mailbox with mod-sequences has one of 1 at least
	sel.told(n)
	return n
}

// Removals held back and mod-sequences (RFC 7162 §3.2, and erratum 1810
// of RFC 5162, whose text it took over). While a removal by another
// session is held back (no EXPUNGE or VANISHED during FETCH, STORE and
// SEARCH by number, nor for NOTIFY's SELECTED-DELAYED), the client may
// still be sent FETCH MODSEQ values above the removal's mod-sequence. A
// client that took the highest of them as its HIGHESTMODSEQ and lost the
// connection before the EXPUNGE came would resynchronise from past the
// removal and never learn of it. So, as Dovecot does, a Poll that leaves
// removals held back after the client was told a higher mod-sequence
// ends with "* OK [HIGHESTMODSEQ floor]", floor being below every held
// removal (view.heldFloor: the HIGHESTMODSEQ read before the removal by
// the session that made it, else SELECT's); the client takes the last
// HIGHESTMODSEQ response code it saw over the MODSEQs of the FETCH
// responses before it. The enabling command's own HIGHESTMODSEQ
// (announceModSeq) says no more than floor either.

// told records that the client was sent mod-sequence n (a FETCH MODSEQ,
// a SEARCH result's MODSEQ, a HIGHESTMODSEQ).
func (sel *selected) told(n uint64) {
	sel.toldModSeq = max(sel.toldModSeq, n)
}

// heldFloor returns the floor of the removals the view holds back, if
// it holds any.
func (sel *selected) heldFloor() (uint64, bool) {
	sel.st.mu.Lock()
	defer sel.st.mu.Unlock()
	return sel.v.heldFloor, len(sel.v.expunged) > 0
}

// guardModSeq writes "* OK [HIGHESTMODSEQ floor]" if the view holds
// removals back and the client was told a mod-sequence above their
// floor since it was last corrected (see above).
func guardModSeq(w *wire.UpdateWriter, sel *selected) error {
	floor, held := sel.heldFloor()
	if !held {
		return nil
	}
	floor = max(floor, 1) // a removal's mod-sequence is 2 at least
	if sel.toldModSeq <= floor {
		return nil
	}
	sel.toldModSeq = floor
	return w.HighestModSeq(floor)
}

// correctModSeq ends a Poll, once the client enabled CONDSTORE, with
// "* OK [HIGHESTMODSEQ n]" if the client was told a mod-sequence (a
// FETCH MODSEQ of this Poll or of the command before it) that it may
// not keep: one above a change the session has not heard of (another
// writer committed it and has not told the mailbox's sessions yet, so
// the FETCH of a change told after it went out first) or above one the
// view still holds for the client. n is keptModSeq's, as for an enabling
// command (see qresync.go). Nothing is read when every mod-sequence the
// client was told is at or below the last value keptModSeq gave, SELECT's
// or what the state counts as reached (mailboxState.reachedLocked: every
// change at or below them has reached the state) and the view holds
// nothing below it for the client: the common case, where the changes
// told are flag changes and deliveries the state heard of, in a row.
func (s *session) correctModSeq(ctx context.Context, w *wire.UpdateWriter, sel *selected) error {
	st := sel.st
	st.mu.Lock()
	proven := max(sel.v.kept, sel.v.selModSeq, st.reachedLocked())
	told := sel.toldModSeq
	safe := told <= proven && sel.v.pendingFloorLocked(told, proven) >= told
	st.mu.Unlock()
	if safe {
		return nil
	}
	a, err := s.state()
	if err != nil {
		return nil
	}
	n := s.keptModSeq(ctx, a, sel, true)
	if n == 0 {
		// Cannot tell: the last value known to be safe, lowered below
		// what the view holds.
		st.mu.Lock()
		n = max(sel.v.pendingFloorLocked(min(told, proven), proven), 1)
		st.mu.Unlock()
	}
	if n >= sel.toldModSeq {
		return nil
	}
	sel.toldModSeq = n
	return w.HighestModSeq(n)
}
