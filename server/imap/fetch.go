package imap

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Errors of FETCH.
var (
	// errExpungeIssued: some messages of the set were expunged by another
	// session meanwhile (RFC 2180 §4.1.3, RFC 5530 EXPUNGEISSUED); the
	// others were sent.
	errExpungeIssued = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: "EXPUNGEISSUED", // RFC 5530 §3
		Text: "Some of the requested messages no longer exist",
	}
	// errCorrupt: a message fails its integrity check (changed or cut at
	// rest); none of its bytes was sent, the others were.
	errCorrupt = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeCorruption,
		Text: "A message cannot be read: it was changed at rest; the cause has been logged",
	}
	errUnknownCTE = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnknownCTE,
		Text: "Unknown Content-Transfer-Encoding",
	}
)

// fetchItem is one message of a command: its reference, metadata and
// summary.
type fetchItem struct {
	ref     msgRef
	msg     *store.Message
	sum     *mailbox.Summary
	recent  bool
	flagsUp bool // \Seen was just set: include FLAGS
}

// needsSummary reports whether items need the messages' summaries.
func needsSummary(it *wire.FetchItems) bool {
	return it.Envelope || it.Body || it.BodyStructure || it.RFC822Size || it.Preview || it.PreviewLazy || it.ThreadID ||
		len(it.Sections) > 0 || len(it.BinarySize) > 0
}

// needsBody reports whether items need the messages' plaintext beyond
// the header kept in the summary.
func needsBody(it *wire.FetchItems) bool {
	for _, s := range it.Sections {
		if mailbox.NeedsBody(toSection(s)) {
			return true
		}
	}
	return false
}

// toSection converts a parsed section to the reader's terms.
func toSection(s *wire.BodySection) *mailbox.Section {
	return &mailbox.Section{
		Part: s.Part, Specifier: string(s.Specifier), Fields: s.HeaderFields,
		NotFields: s.HeaderFieldsNot, Binary: s.Binary,
	}
}

// Chunks of a FETCH (fetchChunks): the first is small so that the
// client has responses to read at once; later ones double up to
// fetchChunkMax. Each is loaded (listed, summaries opened or built) while
// the one before it is written.
const (
	fetchChunkFirst = 64
	fetchChunkMax   = 1024
	// fetchChunkMeta is the chunk of a FETCH that needs no summaries
	// (FLAGS, UID, MODSEQ…): listing metadata is cheap, a chunk costs a
	// store call and a hand-over.
	fetchChunkMeta = 16 << 10
)

// fetchChunks splits refs (ascending) into runs to list from the store
// at a time: first refs, then twice as many each time up to most. A run
// also ends where the UIDs it spans would be mostly ones not asked for,
// so that a FETCH of a few messages lists those, not the mailbox between
// them.
func fetchChunks(refs []msgRef, first, most int) [][]msgRef {
	var out [][]msgRef
	n := first
	for len(refs) > 0 {
		k := 1
		for k < len(refs) && k < n && denseRun(refs[0].uid, refs[k].uid, k+1) {
			k++
		}
		out = append(out, refs[:k:k])
		refs = refs[k:]
		n = min(2*n, most)
	}
	return out
}

// denseRun reports whether listing UIDs lo to hi for count messages
// lists at most about twice as many as asked for.
func denseRun(lo, hi uint32, count int) bool {
	return uint64(hi-lo)+1 <= 2*uint64(count)+32
}

// fetchBatch is one chunk of a FETCH, loaded.
type fetchBatch struct {
	items   []fetchItem
	missing bool // some of the chunk's messages were expunged meanwhile
	err     error
}

// Fetch implements wire.Session. Each message's response is written
// whole or not at all: its body, if asked for, is decrypted and verified
// before any item of it is written, so a message that fails its
// integrity check is left out (and the command answered NO [CORRUPTION])
// instead of being cut short. The messages are loaded in chunks
// (fetchChunks), the next while one is written, so the first responses
// go out at once and a large FETCH holds one chunk's summaries, not the
// mailbox's.
func (s *session) Fetch(ctx context.Context, w *wire.UpdateWriter, cmd *wire.Fetch) error {
	a, sel, err := s.selectedState()
	if err != nil {
		return err
	}
	if cmd.Vanished {
		// Before any FETCH response (RFC 7162 §3.2.6).
		if err := s.fetchVanished(ctx, a, sel, w, cmd); err != nil {
			return err
		}
	}
	refs := sel.resolve(cmd.Set)
	if len(refs) == 0 {
		return nil
	}
	o := &cmd.Items
	if o.ModSeq || cmd.ChangedSince != 0 {
		s.announceModSeq(ctx, a, sel, w)
	}

	first, most := fetchChunkFirst, fetchChunkMax
	if !needsSummary(o) {
		first, most = fetchChunkMeta, fetchChunkMeta
	}
	lctx, cancel := context.WithCancel(ctx)
	batches := make(chan fetchBatch, 1)
	go s.loadBatches(lctx, a, sel, fetchChunks(refs, first, most), needsSummary(o), cmd.ChangedSince, batches)
	defer func() {
		cancel()
		for range batches { // the loader has stopped once it closes them
		}
	}()

	condstore := s.conn.Enabled(imap.CapCondStore)
	rev1 := !s.conn.Enabled(imap.CapIMAP4rev2)
	missing, corrupt := false, false
	for b := range batches {
		if b.err != nil {
			return s.selectedErr(ctx, a, sel, "fetch", b.err)
		}
		missing = missing || b.missing
		items := b.items
		if len(items) == 0 {
			continue
		}
		if o.SetsSeen() && !sel.readOnly {
			if err := s.setSeen(ctx, a, sel, items); err != nil {
				return s.selectedErr(ctx, a, sel, "fetch", err)
			}
		}
		s.announceKeywords(sel, w)
		if o.Flags || o.ModSeq || o.SetsSeen() {
			sel.st.mu.Lock()
			for i := range items {
				if o.Flags || items[i].flagsUp {
					sel.v.supersedeLocked(items[i].ref.uid, items[i].msg.ModSeq)
				}
			}
			sel.st.mu.Unlock()
		}
		st, err := s.writeItems(ctx, a, sel, w, items, o, fetchEnv{condstore: condstore, rev1: rev1})
		missing = missing || st.missing
		corrupt = corrupt || st.corrupt
		if err != nil {
			return err
		}
	}
	switch {
	case corrupt:
		return errCorrupt
	case missing:
		return errExpungeIssued
	}
	return nil
}

// loadBatches loads chunks in order into out, and closes it when done,
// after an error, or when ctx ends.
func (s *session) loadBatches(ctx context.Context, a authState, sel *selected, chunks [][]msgRef, needSum bool, since uint64, out chan<- fetchBatch) {
	defer close(out)
	for _, c := range chunks {
		items, missing, err := s.loadChunk(ctx, a, sel, c, needSum, since)
		select {
		case out <- fetchBatch{items: items, missing: missing, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// fetchEnv is what a FETCH's responses depend on besides its items.
type fetchEnv struct {
	condstore bool // CONDSTORE is enabled
	rev1      bool // the client speaks IMAP4rev1 (\Recent)
}

// fetchState is what writing a chunk found.
type fetchState struct {
	missing bool // a message was expunged meanwhile
	corrupt bool // a message failed its integrity check
}

// writeItems writes the responses of one chunk of a FETCH, decrypting
// bodies ahead when the items need them.
func (s *session) writeItems(ctx context.Context, a authState, sel *selected, w *wire.UpdateWriter, items []fetchItem, o *wire.FetchItems, ff fetchEnv) (fetchState, error) {
	var st fetchState
	var pf *mailbox.Prefetcher
	body := needsBody(o)
	if body && len(items) > 1 {
		pre := make([]mailbox.PrefetchItem, len(items))
		for i, it := range items {
			pre[i] = mailbox.PrefetchItem{Msg: it.msg, Size: -1}
			if it.sum != nil {
				pre[i].Size = it.sum.Size
			}
		}
		pf = a.rd.Prefetch(ctx, sel.st.key.id, pre)
		defer pf.Stop()
	}
	needSum := needsSummary(o)
	for i := range items {
		it := &items[i]
		if needSum && it.sum == nil {
			st.corrupt = true // cannot be opened; logged by Summaries
			continue
		}
		var b, own *mailbox.Body
		var err error
		if body {
			if pf != nil {
				b, err = pf.Get(i)
			}
			if b == nil && err == nil {
				b, err = a.rd.Open(ctx, sel.st.key.id, it.msg, it.sum.Size)
				own = b
			}
			switch {
			case errors.Is(err, store.ErrNotFound):
				st.missing = true
				err = nil
			case errors.Is(err, mailbox.ErrIntegrity):
				st.corrupt = true
				err = nil
			}
			if err != nil {
				return st, s.selectedErr(ctx, a, sel, "fetch", err, "uid", it.ref.uid)
			}
			if b == nil {
				if pf != nil {
					pf.Release(i)
				}
				continue
			}
		}
		if o.ModSeq || (ff.condstore && it.flagsUp) {
			sel.told(it.msg.ModSeq)
		}
		err = s.writeFetch(ctx, w, it, o, b, ff.condstore, ff.rev1)
		if own != nil {
			own.Close()
		}
		if pf != nil {
			pf.Release(i)
		}
		if err == nil {
			err = w.Err() // the client is gone: decrypt no more
		}
		if err != nil {
			if errors.Is(err, mailbox.ErrUnknownEncoding) {
				return st, errUnknownCTE
			}
			if werr := w.Err(); werr != nil {
				return st, werr // the connection is broken: nothing more to say
			}
			return st, protoErr(a.log, "fetch", err, "uid", it.ref.uid)
		}
	}
	return st, nil
}

// loadItems lists the metadata (and summaries if needSum) of refs, in
// chunks (fetchChunks). Messages expunged meanwhile are left out;
// missing reports any.
func (s *session) loadItems(ctx context.Context, a authState, sel *selected, refs []msgRef, needSum bool) ([]fetchItem, bool, error) {
	items := make([]fetchItem, 0, len(refs))
	missing := false
	for _, c := range fetchChunks(refs, fetchChunkMax, fetchChunkMax) {
		got, miss, err := s.loadChunk(ctx, a, sel, c, needSum, 0)
		if err != nil {
			return nil, false, err
		}
		items = append(items, got...)
		missing = missing || miss
	}
	return items, missing, nil
}

// loadChunk lists the metadata of refs, keeps those changed after
// modseq since (all if 0), and opens their summaries if needSum.
// Messages expunged meanwhile are left out; missing reports any.
func (s *session) loadChunk(ctx context.Context, a authState, sel *selected, refs []msgRef, needSum bool, since uint64) ([]fetchItem, bool, error) {
	mbox := sel.st.key.id
	msgs, err := s.srv.st.Messages(ctx, a.account, mbox, store.ListOptions{
		FromUID: refs[0].uid, ToUID: refs[len(refs)-1].uid, WithSummary: needSum,
	})
	if err != nil {
		return nil, false, err
	}
	// Both are in ascending UID order: merge.
	items := make([]fetchItem, 0, len(refs))
	picked := make([]store.Message, 0, len(refs))
	j, found := 0, 0
	sel.st.mu.Lock()
	for _, r := range refs {
		for j < len(msgs) && msgs[j].UID < r.uid {
			j++
		}
		if j < len(msgs) && msgs[j].UID == r.uid {
			found++
			sel.st.noteKeywordsLocked(msgs[j].Flags)
			if msgs[j].ModSeq > since {
				items = append(items, fetchItem{ref: r})
				picked = append(picked, msgs[j])
			}
		}
	}
	missing := found < len(refs)
	for i := range items {
		items[i].msg = &picked[i]
		_, items[i].recent = sel.v.recent[items[i].ref.uid]
	}
	sel.st.mu.Unlock()
	if needSum && len(picked) > 0 {
		sums, errs, err := a.rd.Summaries(ctx, mbox, picked)
		if err != nil {
			return nil, false, err
		}
		kept := items[:0]
		for i := range items {
			if errors.Is(errs[i], store.ErrNotFound) {
				missing = true // expunged while its summary was built
				continue
			}
			items[i].sum = sums[i]
			kept = append(kept, items[i])
		}
		items = kept
	}
	return items, missing, nil
}

// announceKeywords writes FLAGS (and PERMANENTFLAGS) if the mailbox uses
// keywords the client has not been told of, before a response uses them.
func (s *session) announceKeywords(sel *selected, w *wire.UpdateWriter) {
	sel.st.mu.Lock()
	kw := sel.v.newKeywordsLocked()
	sel.st.mu.Unlock()
	if kw == nil {
		return
	}
	fl := mailboxFlags(kw)
	w.Flags(fl)
	if !sel.readOnly {
		w.PermanentFlags(append(fl, imap.FlagWildcard))
	}
}

// setSeen sets \Seen on the items that lack it (implicit \Seen of a
// non-PEEK body fetch, RFC 9051 §6.4.5) and tells the other sessions.
func (s *session) setSeen(ctx context.Context, a authState, sel *selected, items []fetchItem) error {
	var uids []uint32
	for _, it := range items {
		if !store.HasFlag(it.msg.Flags, store.FlagSeen) {
			uids = append(uids, it.ref.uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	var res store.FlagResult
	err := inBatches(uids, func(run []uint32) error {
		r, err := s.srv.st.StoreFlags(ctx, a.account, sel.st.key.id, store.FlagUpdate{UIDs: run, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		res.Changed = append(res.Changed, r.Changed...)
		return err
	})
	if err != nil {
		sel.st.mu.Lock()
		sel.st.flagsLocked(res.Changed, sel.v)
		sel.st.mu.Unlock()
		s.srv.flagsPublished(a.account, sel.st.key.id, res.Changed)
		return err
	}
	changed := make(map[uint32]store.Message, len(res.Changed))
	for _, m := range res.Changed {
		changed[m.UID] = m
	}
	for i := range items {
		if m, ok := changed[items[i].ref.uid]; ok {
			items[i].msg.Flags = m.Flags
			items[i].msg.ModSeq = m.ModSeq
			items[i].flagsUp = true
		}
	}
	sel.st.mu.Lock()
	sel.st.flagsLocked(res.Changed, sel.v)
	sel.st.mu.Unlock()
	s.srv.flagsPublished(a.account, sel.st.key.id, res.Changed)
	return nil
}

// writeFetch writes one message's FETCH response; b is its verified body
// if the items need it.
func (s *session) writeFetch(ctx context.Context, w *wire.UpdateWriter, it *fetchItem, o *wire.FetchItems, b *mailbox.Body, condstore, rev1 bool) error {
	// Sections are located before anything is written, so that an
	// unknown transfer encoding fails the command without a half-written
	// response.
	extracts := make([]*mailbox.Extract, len(o.Sections))
	for i, sec := range o.Sections {
		ex, err := mailbox.Locate(it.sum, toSection(sec))
		if err != nil {
			return err
		}
		extracts[i] = ex
	}
	binSizes := make([]int64, len(o.BinarySize))
	binOK := make([]bool, len(o.BinarySize))
	for i, part := range o.BinarySize {
		n, ok, err := mailbox.BinarySize(it.sum, part)
		if err != nil {
			return err
		}
		binSizes[i], binOK[i] = n, ok
	}

	fr := w.Fetch(it.ref.seq)
	defer fr.Close()
	if o.UID || s.conn.Enabled(imap.CapQResync) { // RFC 7162 §3.2.4
		fr.UID(imap.UID(it.ref.uid))
	}
	if o.Flags || it.flagsUp {
		fr.Flags(fetchFlags(it.msg.Flags, it.recent && rev1))
	}
	if o.InternalDate {
		fr.InternalDate(it.msg.InternalDate)
	}
	if o.RFC822Size {
		fr.RFC822Size(it.sum.Size)
	}
	if o.Envelope {
		fr.Envelope(it.sum.Envelope)
	}
	if o.Body {
		fr.BodyStructure(it.sum.Structure, false)
	}
	if o.BodyStructure {
		fr.BodyStructure(it.sum.Structure, true)
	}
	if o.ModSeq || (condstore && it.flagsUp) {
		fr.ModSeq(it.msg.ModSeq)
	}
	writeObjectItems(fr, o, it)
	if o.Preview || o.PreviewLazy {
		fr.Preview(it.sum.Preview, true)
	}
	for i, sec := range o.Sections {
		ex := extracts[i]
		if ex.Nil {
			fr.SectionNil(sec)
			continue
		}
		r, size, err := sectionContent(ctx, ex, sec, b)
		if err != nil {
			return err
		}
		off, n := partialRange(size, sec.Partial)
		if off > 0 {
			if _, err := io.CopyN(io.Discard, r, off); err != nil {
				return fmt.Errorf("imap: section %d: %w", i, err)
			}
		}
		if err := fr.Section(sec, n, io.LimitReader(r, n)); err != nil {
			return err
		}
	}
	for i, part := range o.BinarySize {
		if binOK[i] {
			fr.BinarySize(part, binSizes[i])
		}
	}
	return w.Err()
}

// sectionContent returns a reader of a section's content and its size.
func sectionContent(ctx context.Context, ex *mailbox.Extract, sec *wire.BodySection, b *mailbox.Body) (io.Reader, int64, error) {
	var src io.Reader
	if ex.Header == nil || ex.Size < 0 {
		if b == nil {
			return nil, 0, errors.New("imap: section needs the body, which was not opened")
		}
		r, err := b.Range(ctx, ex.Start, ex.Len)
		if err != nil {
			return nil, 0, err
		}
		src = r
	}
	return ex.Content(src, sec.HeaderFields, sec.HeaderFieldsNot)
}

// partialRange returns the offset and length of <partial> within size
// bytes (RFC 9051 §6.4.5: an origin beyond the end gives an empty
// string).
func partialRange(size int64, p *imap.SectionPartial) (off, n int64) {
	if p == nil {
		return 0, size
	}
	off = min(max(p.Offset, 0), size)
	n = min(max(p.Size, 0), size-off)
	return off, n
}
