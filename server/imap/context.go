package imap

import (
	"context"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/sortthread"
	"github.com/sealmail/sealmail/server/imap/wire"
)

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): a SEARCH or SORT with
// RETURN (UPDATE) keeps its result current while the mailbox stays
// selected. Whatever changes a result (flags, new messages, expunges, by
// this session or any other, or a delivery) reaches the session as it
// reaches its view: its own STORE marks the messages it changed, Poll the
// flag changes and new messages of others, and EXPUNGE (its own or
// announced) removes messages before the EXPUNGE responses are written,
// so that REMOVEFROM's sequence numbers are the ones the client knows.
// The changed messages are then searched again, with SEARCH's bounds,
// and the differences written as ESEARCH ADDTO and REMOVEFROM.
//
// Everything here runs on the session's goroutine (commands and Poll are
// never concurrent), so the contexts need no lock.

// Compile-time check: CANCELUPDATE is implemented.
var _ wire.SessionSearchContext = (*session)(nil)

// contextCaps are the capabilities of this file.
var contextCaps = []imap.Cap{"CONTEXT=SEARCH", "CONTEXT=SORT"}

// maxContexts bounds the results one session keeps current: each holds
// the numbers (and for SORT the sort keys) of its messages.
const maxContexts = 4

var (
	errTooManyContexts = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
		Text: "Too many searches kept updated: CANCELUPDATE one first"}
	errUnknownContext = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
		Text: "No search with that tag is kept updated"}
)

// searchContext is one result kept current.
type searchContext struct {
	tag string
	uid bool           // numbers are UIDs
	key wire.SearchKey // static, sequence sets turned into UID sets

	// SEARCH: the matching UIDs, ascending.
	uids []uint32
	// SORT: the matching messages in sort order; Num and Seq are UIDs
	// (the UID order is the sequence order).
	sorted bool
	crit   []sortthread.Criterion
	need   sortthread.Field
	msgs   []sortthread.Message
}

// needsSummary reports whether re-evaluating c reads summaries.
func (c *searchContext) needsSummary() bool {
	return needsSummaryKey(&c.key) || c.sorted && c.need&^sortthread.FieldArrival != 0
}

// addContext starts keeping a SEARCH or SORT result current. items are
// every message of the mailbox (searchHits'), key the program as
// evaluated. A context with the same tag is replaced.
func (sel *selected) addContext(c *searchContext, key *wire.SearchKey, items []fetchItem) error {
	sel.contexts = slices.DeleteFunc(sel.contexts, func(o *searchContext) bool { return o.tag == c.tag })
	if len(sel.contexts) >= maxContexts {
		return errTooManyContexts
	}
	seqs := make(map[uint32]uint32, len(items))
	for _, it := range items {
		seqs[it.ref.seq] = it.ref.uid
	}
	c.key = uidKey(key, seqs)
	sel.contexts = append(sel.contexts, c)
	return nil
}

// uidKey returns k with its sequence sets as the UID sets they named
// (seqs maps sequence numbers to UIDs), so that the program still means
// the same messages after expunges renumber them.
func uidKey(k *wire.SearchKey, seqs map[uint32]uint32) wire.SearchKey {
	out := *k
	if k.Op == wire.SearchSeqSet {
		set := imap.UIDSet{}
		ss := k.Set.(imap.SeqSet)
		for seq, uid := range seqs {
			if ss.Contains(seq) {
				set.AddNum(imap.UID(uid))
			}
		}
		out.Op, out.Set = wire.SearchUID, set
	}
	if len(k.Keys) > 0 {
		out.Keys = make([]wire.SearchKey, len(k.Keys))
		for i := range k.Keys {
			out.Keys[i] = uidKey(&k.Keys[i], seqs)
		}
	}
	return out
}

// CancelUpdate implements wire.SessionSearchContext (CANCELUPDATE, RFC
// 5267 §4.2).
func (s *session) CancelUpdate(ctx context.Context, tags []string) error {
	_, sel, err := s.selectedState()
	if err != nil {
		return err
	}
	for _, tag := range tags {
		i := slices.IndexFunc(sel.contexts, func(c *searchContext) bool { return c.tag == tag })
		if i < 0 {
			return errUnknownContext
		}
		sel.contexts = slices.Delete(sel.contexts, i, i+1)
	}
	if len(sel.contexts) == 0 {
		sel.dirty = nil
	}
	return nil
}

// markDirty records messages whose flags this session changed (or that
// appeared), to be searched again at the next Poll.
func (sel *selected) markDirty(uids ...uint32) {
	if len(sel.contexts) == 0 {
		return
	}
	if sel.dirty == nil {
		sel.dirty = make(map[uint32]struct{})
	}
	for _, u := range uids {
		sel.dirty[u] = struct{}{}
	}
}

// contextsExpunged writes REMOVEFROM for the messages of gone (in the
// order of the EXPUNGE responses to follow, their sequence numbers as the
// client knows them) that were in a result.
func (sel *selected) contextsExpunged(w *wire.UpdateWriter, gone []expunge) error {
	if len(sel.contexts) == 0 || len(gone) == 0 {
		return nil
	}
	for _, e := range gone {
		delete(sel.dirty, e.uid)
	}
	for _, c := range sel.contexts {
		u := &wire.SearchUpdate{Tag: c.tag, UID: c.uid}
		var nums []uint32
		for _, e := range gone {
			num := e.seq
			if c.uid {
				num = e.uid
			}
			if c.sorted {
				i := slices.IndexFunc(c.msgs, func(m sortthread.Message) bool { return m.Num == e.uid })
				if i >= 0 {
					c.msgs = slices.Delete(c.msgs, i, i+1)
					u.RemoveFrom = append(u.RemoveFrom, wire.ContextChange{Position: uint32(i + 1), Nums: []uint32{num}})
				}
				continue
			}
			if i, ok := slices.BinarySearch(c.uids, e.uid); ok {
				c.uids = slices.Delete(c.uids, i, i+1)
				nums = append(nums, num)
			}
		}
		if len(nums) > 0 {
			slices.Sort(nums)
			u.RemoveFrom = []wire.ContextChange{{Nums: nums}}
		}
		if len(u.RemoveFrom) > 0 {
			if err := w.SearchUpdate(u); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateContexts searches the messages marked dirty again and writes
// what entered or left each result. A failure (the deadline) is logged;
// the results stay as they were.
func (s *session) updateContexts(ctx context.Context, w *wire.UpdateWriter, sel *selected) error {
	if len(sel.contexts) == 0 || len(sel.dirty) == 0 {
		sel.dirty = nil
		return nil
	}
	a, err := s.state()
	if err != nil {
		return nil
	}
	var set imap.UIDSet
	for u := range sel.dirty {
		set.AddNum(imap.UID(u))
	}
	sel.dirty = nil
	refs := sel.resolve(set)
	if len(refs) == 0 {
		return nil
	}
	needSum := false
	for _, c := range sel.contexts {
		needSum = needSum || c.needsSummary()
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.search.Timeout)
	defer cancel()
	items, _, err := s.loadItems(ctx, a, sel, refs, needSum)
	if err != nil {
		a.log.Warn("search update: messages unreadable", "err", err)
		return nil
	}
	for _, c := range sel.contexts {
		hits, err := s.matchItems(ctx, a, sel, &c.key, items)
		if err != nil {
			a.log.Warn("search update failed", "err", err)
			return nil
		}
		if u := c.apply(items, hits); u != nil {
			for _, part := range u {
				if err := w.SearchUpdate(part); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// apply updates the result with the new verdicts on items and returns
// the responses that say so: REMOVEFROM first, then ADDTO.
func (c *searchContext) apply(items []fetchItem, hits []bool) []*wire.SearchUpdate {
	rem := &wire.SearchUpdate{Tag: c.tag, UID: c.uid}
	add := &wire.SearchUpdate{Tag: c.tag, UID: c.uid}
	num := func(it *fetchItem) uint32 {
		if c.uid {
			return it.ref.uid
		}
		return it.ref.seq
	}
	if c.sorted {
		for i := range items {
			it := &items[i]
			j := slices.IndexFunc(c.msgs, func(m sortthread.Message) bool { return m.Num == it.ref.uid })
			if !hits[i] && j >= 0 {
				c.msgs = slices.Delete(c.msgs, j, j+1)
				rem.RemoveFrom = append(rem.RemoveFrom, wire.ContextChange{Position: uint32(j + 1), Nums: []uint32{num(it)}})
			}
		}
		for i := range items {
			it := &items[i]
			if !hits[i] || slices.ContainsFunc(c.msgs, func(m sortthread.Message) bool { return m.Num == it.ref.uid }) {
				continue
			}
			m := sortFacts(items[i:i+1], []bool{true}, true, c.need)[0]
			m.Seq = m.Num
			j := sort.Search(len(c.msgs), func(k int) bool { return sortthread.Compare(&m, &c.msgs[k], c.crit) < 0 })
			c.msgs = slices.Insert(c.msgs, j, m)
			add.AddTo = append(add.AddTo, wire.ContextChange{Position: uint32(j + 1), Nums: []uint32{num(it)}})
		}
	} else {
		var added, removed []uint32
		for i := range items {
			it := &items[i]
			j, in := slices.BinarySearch(c.uids, it.ref.uid)
			switch {
			case hits[i] && !in:
				c.uids = slices.Insert(c.uids, j, it.ref.uid)
				added = append(added, num(it))
			case !hits[i] && in:
				c.uids = slices.Delete(c.uids, j, j+1)
				removed = append(removed, num(it))
			}
		}
		if len(removed) > 0 {
			rem.RemoveFrom = []wire.ContextChange{{Nums: removed}}
		}
		if len(added) > 0 {
			add.AddTo = []wire.ContextChange{{Nums: added}}
		}
	}
	var out []*wire.SearchUpdate
	if len(rem.RemoveFrom) > 0 {
		out = append(out, rem)
	}
	if len(add.AddTo) > 0 {
		out = append(out, add)
	}
	return out
}
