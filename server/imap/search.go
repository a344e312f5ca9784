package imap

import (
	"context"
	"errors"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Errors of SEARCH's bounds (issue 9 item 8).
var (
	errSearchKeys = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many search strings in one command"}
	errSearchWork = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Search too expensive: use fewer TEXT/BODY strings or a smaller set"}
	errSearchTime = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Search took too long"}
)

// Search implements wire.Session: every SEARCH key of RFC 9051 over the
// sealed summaries; TEXT and BODY decrypt messages with their stored
// session keys and scan them streaming (mailbox.Reader.Scan). Its cost is
// bounded before any work (strings per command, strings × bytes to scan)
// and by a deadline; ctx ends it when the client goes away.
func (s *session) Search(ctx context.Context, cmd *wire.Search) (*wire.SearchData, error) {
	a, sel, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.search.Timeout)
	defer cancel()
	items, hits, key, err := s.searchHits(ctx, a, sel, &cmd.Key, false)
	if err != nil {
		return nil, err
	}
	d := &wire.SearchData{}
	var uids []uint32
	var msgs []*store.Message
	for i, it := range items {
		if !hits[i] {
			continue
		}
		uids = append(uids, it.ref.uid)
		msgs = append(msgs, it.msg)
		if cmd.UID {
			d.Nums = append(d.Nums, it.ref.uid)
		} else {
			d.Nums = append(d.Nums, it.ref.seq)
		}
	}
	if keyUsesModSeq(&cmd.Key) {
		d.ModSeq = resultModSeq(&cmd.Return, msgs)
		sel.told(d.ModSeq)
	}
	if cmd.Return.Save {
		sel.searchRes = uids
	}
	if cmd.Return.Update {
		if err := sel.addContext(&searchContext{tag: cmd.Tag, uid: cmd.UID, uids: uids}, key, items); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// searchHits evaluates a search program over every message of the
// selected mailbox, as SEARCH, SORT and THREAD do: it returns the
// messages (with their summaries if the program reads them or needSum)
// and which of them match, and the program as evaluated ("*" and "$"
// resolved, staticKey). The caller sets the deadline (ctx); the bounds
// on strings and scanned bytes are checked here before any decryption.
func (s *session) searchHits(ctx context.Context, a authState, sel *selected, k *wire.SearchKey, needSum bool) ([]fetchItem, []bool, *wire.SearchKey, error) {
	var c keyCount
	c.count(k)
	if c.strings > s.srv.search.MaxPatterns {
		return nil, nil, nil, errSearchKeys
	}
	refs := sel.resolve(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}})
	key := sel.staticKey(k, refs)
	var items []fetchItem
	var err error
	if len(refs) > 0 {
		items, _, err = s.loadItems(ctx, a, sel, refs, needSum || needsSummaryKey(&key))
		if err != nil {
			return nil, nil, nil, s.searchErr(ctx, a, sel, err)
		}
	}
	hits, err := s.matchItems(ctx, a, sel, &key, items)
	if err != nil {
		return nil, nil, nil, err
	}
	return items, hits, &key, nil
}

// matchItems evaluates a static search program (staticKey) over items,
// on the server's workers, within the bound on scanned bytes.
func (s *session) matchItems(ctx context.Context, a authState, sel *selected, key *wire.SearchKey, items []fetchItem) ([]bool, error) {
	lim := s.srv.search
	var textPats, bodyPats []string
	collectPatterns(key, &textPats, &bodyPats)
	if n := int64(len(textPats) + len(bodyPats)); n > 0 {
		var bytes int64
		for _, it := range items {
			if it.sum != nil {
				bytes += it.sum.Size
			}
		}
		if n*bytes > lim.MaxWork {
			return nil, errSearchWork
		}
	}

	hits := make([]bool, len(items))
	var wg sync.WaitGroup
	// Runs of messages go to the workers, so that the sealed bytes of a
	// run's messages are read from the store together (scanRun) when
	// the first of them is scanned.
	next := make(chan int)
	pats := append(slices.Clip(textPats), bodyPats...)
	for range min(s.srv.mbx.Workers(), max((len(items)+scanRunLen-1)/scanRunLen, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc *mailbox.Scanner
			if len(pats) > 0 {
				sc = mailbox.NewScanner(pats)
			}
			now := time.Now()
			for lo := range next {
				run := &scanRun{ctx: ctx, rd: a.rd, mailbox: sel.st.key.id, items: items[lo:min(lo+scanRunLen, len(items))]}
				for k := range run.items {
					if ctx.Err() != nil {
						break
					}
					i := lo + k
					m := &searchMsg{ctx: ctx, rd: a.rd, mailbox: sel.st.key.id, it: &items[i],
						textPats: textPats, bodyPats: bodyPats, sc: sc, now: now, run: run, inRun: k}
					a.rd.Run(ctx, func() { hits[i] = m.match(key) })
					if m.err != nil && !errors.Is(m.err, mailbox.ErrIntegrity) && ctx.Err() == nil {
						a.log.Warn("search: message unreadable", "uid", items[i].ref.uid, "err", m.err)
					}
				}
			}
		}()
	}
	for lo := 0; lo < len(items); lo += scanRunLen {
		if ctx.Err() != nil {
			break
		}
		next <- lo
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, s.searchErr(ctx, a, sel, err)
	}
	return hits, nil
}

// searchErr maps the failure of a SEARCH: its own deadline is LIMIT.
func (s *session) searchErr(ctx context.Context, a authState, sel *selected, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.Info("search stopped at its deadline")
		return errSearchTime
	}
	return s.selectedErr(ctx, a, sel, "search", err)
}

// keyCount counts the string keys of a search program.
type keyCount struct{ strings int }

func (c *keyCount) count(k *wire.SearchKey) {
	switch k.Op {
	case wire.SearchBcc, wire.SearchCc, wire.SearchFrom, wire.SearchTo, wire.SearchSubject,
		wire.SearchBody, wire.SearchText, wire.SearchHeader:
		c.strings++
	}
	for i := range k.Keys {
		c.count(&k.Keys[i])
	}
}

// staticKey returns a copy of k with "*" and "$" resolved against the
// view (refs: every message, ascending).
func (sel *selected) staticKey(k *wire.SearchKey, refs []msgRef) wire.SearchKey {
	var maxSeq, maxUID uint32
	if n := len(refs); n > 0 {
		maxSeq, maxUID = refs[n-1].seq, refs[n-1].uid
	}
	out := *k
	switch k.Op {
	case wire.SearchSeqSet, wire.SearchUID:
		switch {
		case imap.IsSearchRes(k.Set):
			var set imap.UIDSet
			for _, u := range sel.searchRes {
				set.AddNum(imap.UID(u))
			}
			if set == nil {
				set = imap.UIDSet{}
			}
			out.Op = wire.SearchUID
			out.Set = set
		case k.Op == wire.SearchSeqSet:
			set := k.Set.(imap.SeqSet)
			st := make(imap.SeqSet, len(set))
			for i, r := range set {
				start, stop := r.Start, r.Stop
				staticRange(&start, &stop, maxSeq)
				st[i] = imap.SeqRange{Start: start, Stop: stop}
			}
			out.Set = st
		default:
			set := k.Set.(imap.UIDSet)
			st := make(imap.UIDSet, len(set))
			for i, r := range set {
				start, stop := uint32(r.Start), uint32(r.Stop)
				staticRange(&start, &stop, maxUID)
				st[i] = imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)}
			}
			out.Set = st
		}
	}
	if len(k.Keys) > 0 {
		out.Keys = make([]wire.SearchKey, len(k.Keys))
		for i := range k.Keys {
			out.Keys[i] = sel.staticKey(&k.Keys[i], refs)
		}
	}
	return out
}

// needsSummaryKey reports whether a search program reads summaries.
func needsSummaryKey(k *wire.SearchKey) bool {
	switch k.Op {
	case wire.SearchBcc, wire.SearchCc, wire.SearchFrom, wire.SearchTo, wire.SearchSubject,
		wire.SearchBody, wire.SearchText, wire.SearchHeader, wire.SearchLarger, wire.SearchSmaller,
		wire.SearchSentBefore, wire.SearchSentOn, wire.SearchSentSince, wire.SearchThreadID:
		return true
	}
	for i := range k.Keys {
		if needsSummaryKey(&k.Keys[i]) {
			return true
		}
	}
	return false
}

func collectPatterns(k *wire.SearchKey, text, body *[]string) {
	switch k.Op {
	case wire.SearchText:
		if !slices.Contains(*text, k.Value) {
			*text = append(*text, k.Value)
		}
	case wire.SearchBody:
		if !slices.Contains(*body, k.Value) {
			*body = append(*body, k.Value)
		}
	}
	for i := range k.Keys {
		collectPatterns(&k.Keys[i], text, body)
	}
}

// searchMsg evaluates a program against one message, scanning its body
// at most once, only if a TEXT or BODY key is reached.
type searchMsg struct {
	ctx      context.Context
	rd       *mailbox.Reader
	mailbox  uint64
	it       *fetchItem
	textPats []string
	bodyPats []string
	sc       *mailbox.Scanner // scans for textPats then bodyPats
	now      time.Time
	run      *scanRun // the run of messages it.msg belongs to
	inRun    int      // its index in run.items

	scanned bool
	textHit []bool
	bodyHit []bool
	sent    *time.Time // the Date field, parsed once
	err     error
}

func (m *searchMsg) match(k *wire.SearchKey) bool {
	it := m.it
	switch k.Op {
	case wire.SearchAll:
		return true
	case wire.SearchAnd:
		// Cheap keys first: a body scan only if the rest still matches.
		for i := range k.Keys {
			if !scans(&k.Keys[i]) && !m.match(&k.Keys[i]) {
				return false
			}
		}
		for i := range k.Keys {
			if scans(&k.Keys[i]) && !m.match(&k.Keys[i]) {
				return false
			}
		}
		return true
	case wire.SearchOr:
		return m.match(&k.Keys[0]) || m.match(&k.Keys[1])
	case wire.SearchNot:
		return !m.match(&k.Keys[0])
	case wire.SearchSeqSet:
		set := k.Set.(imap.SeqSet)
		return set.Contains(it.ref.seq)
	case wire.SearchUID:
		set := k.Set.(imap.UIDSet)
		return set.Contains(imap.UID(it.ref.uid))
	case wire.SearchFlag, wire.SearchNotFlag:
		has := it.recent
		if !strings.EqualFold(k.Value, `\Recent`) {
			has = store.HasFlag(it.msg.Flags, k.Value)
		}
		return has == (k.Op == wire.SearchFlag)
	case wire.SearchBefore:
		return dateOf(it.msg.InternalDate).Before(k.Date)
	case wire.SearchOn:
		return dateOf(it.msg.InternalDate).Equal(k.Date)
	case wire.SearchSince:
		return !dateOf(it.msg.InternalDate).Before(k.Date)
	case wire.SearchOlder:
		return m.now.Sub(it.msg.InternalDate) >= time.Duration(k.Num)*time.Second
	case wire.SearchYounger:
		return m.now.Sub(it.msg.InternalDate) < time.Duration(k.Num)*time.Second
	case wire.SearchModSeq:
		return it.msg.ModSeq >= k.Num
	}
	if match, ok := matchObjectKey(it, k); ok {
		return match
	}
	sum := it.sum
	if sum == nil {
		return false // unreadable: matches no content key
	}
	switch k.Op {
	case wire.SearchLarger:
		return uint64(sum.Size) > k.Num
	case wire.SearchSmaller:
		return uint64(sum.Size) < k.Num
	case wire.SearchSentBefore, wire.SearchSentOn, wire.SearchSentSince:
		d, ok := m.sentDate()
		if !ok {
			return false
		}
		switch k.Op {
		case wire.SearchSentBefore:
			return d.Before(k.Date)
		case wire.SearchSentOn:
			return d.Equal(k.Date)
		}
		return !d.Before(k.Date)
	case wire.SearchFrom:
		return mailbox.AddressContains(sum.Envelope.From, k.Value)
	case wire.SearchTo:
		return mailbox.AddressContains(sum.Envelope.To, k.Value)
	case wire.SearchCc:
		return mailbox.AddressContains(sum.Envelope.Cc, k.Value)
	case wire.SearchBcc:
		return mailbox.AddressContains(sum.Envelope.Bcc, k.Value)
	case wire.SearchSubject:
		return mailbox.FieldContains(sum, "Subject", k.Value)
	case wire.SearchHeader:
		return mailbox.FieldContains(sum, k.Field, k.Value)
	case wire.SearchText:
		if mailbox.HeaderContains(sum, k.Value) {
			return true
		}
		m.scan()
		return m.err == nil && m.textHit[slices.Index(m.textPats, k.Value)]
	case wire.SearchBody:
		m.scan()
		return m.err == nil && m.bodyHit[slices.Index(m.bodyPats, k.Value)]
	}
	return false // keys of extensions not offered
}

// scans reports whether evaluating k may scan the body.
func scans(k *wire.SearchKey) bool {
	if k.Op == wire.SearchText || k.Op == wire.SearchBody {
		return true
	}
	for i := range k.Keys {
		if scans(&k.Keys[i]) {
			return true
		}
	}
	return false
}

// dateOf is the day of t in its own zone, as midnight UTC: SEARCH
// compares dates only, disregarding time and time zone (RFC 9051 §6.4.4).
func dateOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func (m *searchMsg) sentDate() (time.Time, bool) {
	if m.sent == nil {
		var d time.Time
		if t, err := mail.ParseDate(m.it.sum.Envelope.Date); err == nil {
			d = dateOf(t)
		}
		m.sent = &d
	}
	return *m.sent, !m.sent.IsZero()
}

// scan decides every TEXT and BODY pattern for the message, decrypting at
// most once.
func (m *searchMsg) scan() {
	if m.scanned {
		return
	}
	m.scanned = true
	var pre []byte
	if m.run != nil {
		pre = m.run.sealed(m.inRun)
	}
	found, err := m.rd.Scan(m.ctx, m.mailbox, m.it.msg, pre, m.it.sum, m.sc)
	if err != nil {
		m.err = err
		return
	}
	m.textHit = found[:len(m.textPats)]
	m.bodyHit = found[len(m.textPats):]
}

// scanRunLen is how many messages a search worker takes at once; their
// sealed bytes are read together, in as few reads as ReadSealed's bound
// allows.
const scanRunLen = 16

// scanRun is a run of a search's messages, one worker's: the sealed
// bytes of those that have a summary are read from the store together
// (mailbox.Reader.ReadSealed) when the first of them is scanned, from
// there on. A program that scans no body reads nothing.
type scanRun struct {
	ctx     context.Context
	rd      *mailbox.Reader
	mailbox uint64
	items   []fetchItem
	pre     [][]byte // read ahead, from index from on
	from    int
}

// sealed returns the sealed bytes of the run's message k, read ahead
// (nil: Scan reads them itself). Messages are asked for in order.
func (r *scanRun) sealed(k int) []byte {
	if k < r.from || k >= r.from+len(r.pre) {
		msgs := make([]*store.Message, len(r.items)-k)
		for j := range msgs {
			if it := &r.items[k+j]; it.sum != nil {
				msgs[j] = it.msg
			}
		}
		r.pre, _ = r.rd.ReadSealed(r.ctx, r.mailbox, msgs)
		r.from = k
	}
	b := r.pre[k-r.from]
	r.pre[k-r.from] = nil
	return b
}
