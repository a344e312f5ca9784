package imap

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/sortthread"
	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/server/mailbox/structure"
	"github.com/sealmail/sealmail/store"
)

// Compile-time checks: SORT (and so ESORT) and THREAD are implemented.
var (
	_ wire.SessionSort   = (*session)(nil)
	_ wire.SessionThread = (*session)(nil)
)

// sortCaps are the capabilities of this file.
var sortCaps = []imap.Cap{
	imap.CapSort, imap.CapSortDisplay, imap.CapESort,
	"THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
}

var sortKeys = map[wire.SortKey]sortthread.By{
	wire.SortArrival:     sortthread.ByArrival,
	wire.SortCc:          sortthread.ByCc,
	wire.SortDate:        sortthread.ByDate,
	wire.SortFrom:        sortthread.ByFrom,
	wire.SortSize:        sortthread.BySize,
	wire.SortSubject:     sortthread.BySubject,
	wire.SortTo:          sortthread.ByTo,
	wire.SortDisplayFrom: sortthread.ByDisplayFrom,
	wire.SortDisplayTo:   sortthread.ByDisplayTo,
}

var errSortKey = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown sort criterion"}

// Sort implements wire.SessionSort: SORT (RFC 5256) and its RETURN
// options (ESORT, RFC 5267, which the wire layer writes). The search runs
// as SEARCH's does, with its bounds and deadline; the keys come from the
// sealed summaries (sortthread has the rules).
func (s *session) Sort(ctx context.Context, cmd *wire.Sort) (*wire.SearchData, error) {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	crit := make([]sortthread.Criterion, len(cmd.Criteria))
	for i, c := range cmd.Criteria {
		by, ok := sortKeys[c.Key]
		if !ok {
			return nil, errSortKey
		}
		crit[i] = sortthread.Criterion{By: by, Reverse: c.Reverse}
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.search.Timeout)
	defer cancel()
	need := sortthread.Needs(crit)
	items, hits, key, err := s.searchHits(ctx, a, sel, &cmd.Key, need&^sortthread.FieldArrival != 0)
	if err != nil {
		return nil, err
	}
	msgs := sortFacts(items, hits, cmd.UID, need)
	if cmd.Return.Save {
		sel.searchRes = hitUIDs(items, hits)
	}
	if cmd.Return.Update {
		// The result kept current holds UIDs (stable under expunges)
		// in sort order; the UID order is the sequence order.
		kept := sortFacts(items, hits, true, need)
		for i := range kept {
			kept[i].Seq = kept[i].Num
		}
		slices.SortFunc(kept, func(a, b sortthread.Message) int { return sortthread.Compare(&a, &b, crit) })
		c := &searchContext{tag: cmd.Tag, uid: cmd.UID, sorted: true, crit: crit, need: need, msgs: kept}
		if err := sel.addContext(c, key, items); err != nil {
			return nil, err
		}
	}
	d := &wire.SearchData{Nums: sortthread.Sort(msgs, crit)}
	if keyUsesModSeq(&cmd.Key) {
		d.ModSeq = resultModSeq(&cmd.Return, sortedMessages(items, hits, cmd.UID, d.Nums))
		sel.told(d.ModSeq)
	}
	return d, nil
}

// sortedMessages returns the metadata of a SORT result, in its order.
func sortedMessages(items []fetchItem, hits []bool, uid bool, nums []uint32) []*store.Message {
	by := make(map[uint32]*store.Message, len(nums))
	for i := range items {
		if hits[i] {
			n := items[i].ref.seq
			if uid {
				n = items[i].ref.uid
			}
			by[n] = items[i].msg
		}
	}
	out := make([]*store.Message, len(nums))
	for i, n := range nums {
		out[i] = by[n]
	}
	return out
}

// ThreadAlgorithms implements wire.SessionThread.
func (s *session) ThreadAlgorithms() []imap.ThreadAlgorithm {
	return []imap.ThreadAlgorithm{imap.ThreadOrderedSubject, imap.ThreadReferences}
}

// Thread implements wire.SessionThread: THREAD=ORDEREDSUBJECT and
// THREAD=REFERENCES (RFC 5256 §3) over the messages the search matches,
// from their sealed summaries, within SEARCH's bounds and deadline.
func (s *session) Thread(ctx context.Context, cmd *wire.Thread) ([]wire.ThreadNode, error) {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.search.Timeout)
	defer cancel()
	need := sortthread.FieldSent | sortthread.FieldSubject
	if cmd.Algorithm == imap.ThreadReferences {
		need |= sortthread.FieldThread
	}
	items, hits, _, err := s.searchHits(ctx, a, sel, &cmd.Key, true)
	if err != nil {
		return nil, err
	}
	msgs := sortFacts(items, hits, cmd.UID, need)
	var nodes []sortthread.Node
	switch cmd.Algorithm {
	case imap.ThreadOrderedSubject:
		nodes = sortthread.ThreadOrderedSubject(msgs)
	case imap.ThreadReferences:
		if nodes, err = sortthread.ThreadReferences(ctx, msgs); err != nil {
			return nil, s.searchErr(ctx, a, sel, err)
		}
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown threading algorithm"}
	}
	return threadNodes(nodes), nil
}

func threadNodes(ns []sortthread.Node) []wire.ThreadNode {
	if len(ns) == 0 {
		return nil
	}
	out := make([]wire.ThreadNode, len(ns))
	for i := range ns {
		out[i] = wire.ThreadNode{Num: ns[i].Num, Children: threadNodes(ns[i].Children)}
	}
	return out
}

// hitUIDs returns the UIDs of the matching items (a SAVE result).
func hitUIDs(items []fetchItem, hits []bool) []uint32 {
	var uids []uint32
	for i := range items {
		if hits[i] {
			uids = append(uids, items[i].ref.uid)
		}
	}
	return uids
}

// sortFacts returns what SORT and THREAD read of the matching items:
// the fields of need, from the metadata and the sealed summary. A message
// whose summary cannot be read sorts with empty strings, size 0 and its
// internal date.
func sortFacts(items []fetchItem, hits []bool, uid bool, need sortthread.Field) []sortthread.Message {
	n := 0
	for _, h := range hits {
		if h {
			n++
		}
	}
	msgs := make([]sortthread.Message, 0, n)
	for i := range items {
		if !hits[i] {
			continue
		}
		it := &items[i]
		m := sortthread.Message{Num: it.ref.seq, Seq: it.ref.seq, Arrival: it.msg.InternalDate, Sent: it.msg.InternalDate}
		if uid {
			m.Num = it.ref.uid
		}
		if sum := it.sum; sum != nil {
			fillFacts(&m, sum, need)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func fillFacts(m *sortthread.Message, sum *mailbox.Summary, need sortthread.Field) {
	env := sum.Envelope
	m.Size = sum.Size
	if need&sortthread.FieldSent != 0 {
		m.Sent = sortthread.SentDate(env.Date, m.Arrival)
	}
	if need&(sortthread.FieldSubject|sortthread.FieldThread) != 0 {
		m.Subject, m.ReplyOrFwd = sortthread.SubjectKey(env.Subject)
	}
	if need&sortthread.FieldFrom != 0 {
		m.From = firstMailbox(env.From)
	}
	if need&sortthread.FieldTo != 0 {
		m.To = firstMailbox(env.To)
	}
	if need&sortthread.FieldCc != 0 {
		m.Cc = firstMailbox(env.Cc)
	}
	if need&sortthread.FieldDisplayFrom != 0 {
		m.DisplayFrom = firstDisplay(env.From)
	}
	if need&sortthread.FieldDisplayTo != 0 {
		m.DisplayTo = firstDisplay(env.To)
	}
	if need&sortthread.FieldThread != 0 {
		m.MessageID = sortthread.FirstMessageID(env.MessageID)
		m.References = sortthread.ThreadRefs(headerField(sum.Header, "References"), env.InReplyTo)
	}
}

// firstMailbox is the key of SORT FROM, TO and CC: the first address's
// mailbox (a group's name for a group).
func firstMailbox(l []structure.Address) string {
	if len(l) == 0 {
		return ""
	}
	return sortthread.AddressKey(l[0].Mailbox)
}

// firstDisplay is the key of SORT DISPLAYFROM and DISPLAYTO.
func firstDisplay(l []structure.Address) string {
	if len(l) == 0 {
		return ""
	}
	return sortthread.DisplayKey(l[0].Name, l[0].Mailbox, l[0].Host)
}

// headerField returns the unfolded value of the first field called name
// in a header block, or "".
func headerField(block []byte, name string) string {
	for _, f := range mailbox.ParseHeader(block) {
		if strings.EqualFold(f.Name, name) {
			return mailbox.Unfold(f.Value)
		}
	}
	return ""
}
