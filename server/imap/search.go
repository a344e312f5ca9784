package imap

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/sealmail/sealmail/store"
)

// Search implements imapserver.Session: every SEARCH key of RFC 9051, with
// ESEARCH results and SEARCHRES (RFC 5182). HEADER, FROM, SUBJECT… read the
// header block of the summary; TEXT and BODY decrypt the message with its
// stored session key and scan it streaming (textsearch.go).
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	account, keys, sel, log, err := s.selectedState()
	if err != nil {
		return nil, err
	}
	ctx := s.ctx()
	refs := sel.resolve(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}})
	c := *criteria
	sel.staticCriteria(&c, refs)
	need := criteriaNeeds(&c)

	var items []fetchItem
	if len(refs) > 0 {
		items, err = s.loadItems(ctx, account, sel.st.key.id, keys, log, refs, need.summary)
		if err != nil {
			return nil, s.selectedErr(sel, log, "search", err)
		}
	}
	var textPats, bodyPats []string
	collectPatterns(&c, &textPats, &bodyPats)

	hits := make([]bool, len(items))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.srv.workers, max(len(items), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc *bodyScanner
			if len(textPats)+len(bodyPats) > 0 {
				sc = newBodyScanner(append(slices.Clip(textPats), bodyPats...))
			}
			for i := range next {
				m := &searchMsg{s: s, ctx: ctx, account: account, mailbox: sel.st.key.id, keys: keys, it: &items[i], textPats: textPats, bodyPats: bodyPats, sc: sc}
				hits[i] = m.match(&c)
				if m.err != nil {
					log.Warn("search: message unreadable", "uid", items[i].ref.uid, "err", m.err)
				}
			}
		}()
	}
	for i := range items {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, protoErr(log, "search", err)
	}

	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for i, it := range items {
		if !hits[i] {
			continue
		}
		uids.AddNum(imap.UID(it.ref.uid))
		seqs.AddNum(it.ref.seq)
		n := it.ref.seq
		if kind == imapserver.NumKindUID {
			n = it.ref.uid
		}
		if data.Min == 0 || n < data.Min {
			data.Min = n
		}
		if n > data.Max {
			data.Max = n
		}
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	if options.ReturnSave {
		sel.searchRes = uids
	}
	return data, nil
}

// staticCriteria resolves "*" and "$" in c (recursively) against the view.
func (sel *selected) staticCriteria(c *imap.SearchCriteria, refs []msgRef) {
	var maxSeq, maxUID uint32
	if n := len(refs); n > 0 {
		maxSeq, maxUID = refs[n-1].seq, refs[n-1].uid
	}
	var walk func(c *imap.SearchCriteria)
	walk = func(c *imap.SearchCriteria) {
		seqs := make([]imap.SeqSet, 0, len(c.SeqNum))
		uidsets := make([]imap.UIDSet, 0, len(c.UID))
		for _, set := range c.SeqNum {
			seqs = append(seqs, staticSeqSet(set, maxSeq))
		}
		for _, set := range c.UID {
			if imap.IsSearchRes(set) {
				res := sel.searchRes
				if res == nil {
					res = imap.UIDSet{}
				}
				uidsets = append(uidsets, res)
				continue
			}
			uidsets = append(uidsets, staticUIDSet(set, maxUID))
		}
		c.SeqNum, c.UID = seqs, uidsets
		c.Not = append([]imap.SearchCriteria(nil), c.Not...)
		for i := range c.Not {
			walk(&c.Not[i])
		}
		c.Or = append([][2]imap.SearchCriteria(nil), c.Or...)
		for i := range c.Or {
			walk(&c.Or[i][0])
			walk(&c.Or[i][1])
		}
	}
	walk(c)
}

type needs struct{ summary bool }

func criteriaNeeds(c *imap.SearchCriteria) needs {
	n := needs{summary: len(c.Header) > 0 || len(c.Text) > 0 || len(c.Body) > 0 ||
		c.Larger != 0 || c.Smaller != 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero()}
	for i := range c.Not {
		n.summary = n.summary || criteriaNeeds(&c.Not[i]).summary
	}
	for i := range c.Or {
		n.summary = n.summary || criteriaNeeds(&c.Or[i][0]).summary || criteriaNeeds(&c.Or[i][1]).summary
	}
	return n
}

func collectPatterns(c *imap.SearchCriteria, text, body *[]string) {
	*text = append(*text, c.Text...)
	*body = append(*body, c.Body...)
	for i := range c.Not {
		collectPatterns(&c.Not[i], text, body)
	}
	for i := range c.Or {
		collectPatterns(&c.Or[i][0], text, body)
		collectPatterns(&c.Or[i][1], text, body)
	}
}

// searchMsg evaluates criteria against one message, loading what it needs
// lazily: the parsed header block, then the body scan (once, for every
// TEXT and BODY pattern of the whole criteria).
type searchMsg struct {
	s        *session
	ctx      context.Context
	account  string
	mailbox  uint64
	keys     keyring
	it       *fetchItem
	textPats []string
	bodyPats []string
	sc       *bodyScanner // scans for textPats then bodyPats

	hdr     *mail.Header
	scanned bool
	textHit []bool
	bodyHit []bool
	err     error
}

func (m *searchMsg) header() *mail.Header {
	if m.hdr == nil {
		h, _ := textproto.ReadHeader(headerReader(m.it.sum.Header))
		m.hdr = &mail.Header{Header: messageHeader(h)}
	}
	return m.hdr
}

func (m *searchMsg) match(c *imap.SearchCriteria) bool {
	it := m.it
	for _, set := range c.SeqNum {
		if !set.Contains(it.ref.seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(it.ref.uid)) {
			return false
		}
	}
	if !matchDate(it.msg.InternalDate, c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if strings.EqualFold(string(f), `\Recent`) || !store.HasFlag(it.msg.Flags, string(f)) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if !strings.EqualFold(string(f), `\Recent`) && store.HasFlag(it.msg.Flags, string(f)) {
			return false
		}
	}
	needSum := c.Larger != 0 || c.Smaller != 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() ||
		len(c.Header) > 0 || len(c.Text) > 0 || len(c.Body) > 0
	if needSum && it.sum == nil {
		return false // unreadable message: matches no content key
	}
	if c.Larger != 0 && it.sum.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && it.sum.Size >= c.Smaller {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if it.sum.Envelope == nil || it.sum.Envelope.Date.IsZero() || !matchDate(it.sum.Envelope.Date, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, hf := range c.Header {
		if !matchHeaderField(m.header(), hf.Key, hf.Value) {
			return false
		}
	}
	if len(c.Text) > 0 || len(c.Body) > 0 {
		m.scan()
		for _, p := range c.Text {
			if !m.textHit[indexOf(m.textPats, p)] {
				return false
			}
		}
		for _, p := range c.Body {
			if !m.bodyHit[indexOf(m.bodyPats, p)] {
				return false
			}
		}
	}
	for i := range c.Not {
		if m.match(&c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !m.match(&c.Or[i][0]) && !m.match(&c.Or[i][1]) {
			return false
		}
	}
	return true
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return 0
}

// scan decides every TEXT and BODY pattern for the message, decrypting at
// most once. TEXT patterns found in the header need no decryption.
func (m *searchMsg) scan() {
	if m.scanned {
		return
	}
	m.scanned = true
	m.textHit = make([]bool, len(m.textPats))
	m.bodyHit = make([]bool, len(m.bodyPats))
	all := true
	for i, p := range m.textPats {
		m.textHit[i] = headerContains(m.header(), p)
		all = all && m.textHit[i]
	}
	if all && len(m.bodyPats) == 0 {
		return
	}
	r, err := m.s.openBody(m.ctx, m.account, m.mailbox, m.keys, m.it.msg)
	if err != nil {
		m.err = err
		return
	}
	found, err := m.sc.scan(r, m.it.sum)
	if err != nil {
		m.err = err
	}
	for i := range m.textPats {
		m.textHit[i] = m.textHit[i] || found[i]
	}
	for i := range m.bodyPats {
		m.bodyHit[i] = found[len(m.textPats)+i]
	}
}

// matchDate compares dates only, disregarding time and time zone
// (RFC 9051 §6.4.4).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(since) {
		return false
	}
	if !before.IsZero() && !d.Before(before) {
		return false
	}
	return true
}

func matchHeaderField(h *mail.Header, key, value string) bool {
	fields := h.FieldsByKey(key)
	if value == "" {
		return fields.Len() > 0
	}
	pat := strings.ToLower(value)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pat) {
			return true
		}
	}
	return false
}

func headerContains(h *mail.Header, pat string) bool {
	pat = strings.ToLower(pat)
	for f := h.Fields(); f.Next(); {
		v, err := f.Text()
		if err != nil {
			v = f.Value()
		}
		if strings.Contains(strings.ToLower(v), pat) {
			return true
		}
	}
	return false
}

// headerReader reads a header block held in memory, with a buffer no larger
// than it needs.
func headerReader(h []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(h), min(len(h)+1, 4096))
}
