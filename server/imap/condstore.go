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

// announceModSeq writes "* OK [HIGHESTMODSEQ n]" once per selected
// mailbox, with the first command that enables CONDSTORE while it is
// selected (RFC 7162 §3.1: FETCH MODSEQ or CHANGEDSINCE, STORE
// UNCHANGEDSINCE).
func (s *session) announceModSeq(ctx context.Context, a authState, sel *selected, w *wire.UpdateWriter) {
	if sel.modseqTold {
		return
	}
	sel.modseqTold = true
	mb, err := s.srv.st.MailboxByID(ctx, a.account, sel.st.key.id)
	if err != nil {
		return // the command itself will meet the failure
	}
	if mb.HighestModSeq > 0 {
		w.HighestModSeq(mb.HighestModSeq)
	}
}
