package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// errBrokenLiteral means a literal could not be completed; the connection
// is closed because the client can no longer parse the stream.
var errBrokenLiteral = errors.New("imap: literal cut short")

// fetchItem is one message of a FETCH: its reference, metadata and summary.
type fetchItem struct {
	ref     msgRef
	msg     *store.Message
	sum     *summary
	flagsUp bool // \Seen was just set: include FLAGS
}

// Fetch implements imapserver.Session.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	account, keys, sel, log, err := s.selectedState()
	if err != nil {
		return err
	}
	refs := sel.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	ctx := s.ctx()
	mbox := sel.st.key.id
	needSum := options.Envelope || options.BodyStructure != nil || options.RFC822Size ||
		len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0

	items, err := s.loadItems(ctx, account, mbox, keys, log, refs, needSum)
	if err != nil {
		return s.selectedErr(sel, log, "fetch", err)
	}

	markSeen := false
	for _, bs := range options.BodySection {
		markSeen = markSeen || !bs.Peek
	}
	for _, bs := range options.BinarySection {
		markSeen = markSeen || !bs.Peek
	}
	if markSeen && !sel.readOnly {
		if err := s.setSeen(ctx, account, sel, items); err != nil {
			return s.selectedErr(sel, log, "fetch", err)
		}
	}

	var pf *prefetcher
	if len(items) > 1 && fetchNeedsBody(options) {
		pf = s.startPrefetch(ctx, account, mbox, keys, items)
		defer pf.stop()
	}
	for i, it := range items {
		if needSum && it.sum == nil {
			continue // could not be opened; logged by summaries
		}
		var pre []byte
		if pf != nil {
			pre = pf.get(i)
		}
		err := s.writeFetch(ctx, w, account, mbox, keys, it, options, pre)
		if pf != nil {
			pf.release(i)
		}
		if err != nil {
			if errors.Is(err, errBrokenLiteral) {
				log.Error("fetch", "uid", it.ref.uid, "err", err)
				if nc := s.conn.NetConn(); nc != nil {
					nc.Close()
				}
			}
			return s.selectedErr(sel, log, "fetch", err, "uid", it.ref.uid)
		}
	}
	return nil
}

// loadItems lists the metadata (and summaries if needSum) of refs. Messages
// expunged meanwhile are left out.
func (s *session) loadItems(ctx context.Context, account string, mbox uint64, keys keyring, log *slog.Logger, refs []msgRef, needSum bool) ([]fetchItem, error) {
	msgs, err := s.srv.st.Messages(ctx, account, mbox, store.ListOptions{
		FromUID: refs[0].uid, ToUID: refs[len(refs)-1].uid, WithSummary: needSum,
	})
	if err != nil {
		return nil, err
	}
	// Both are in ascending UID order: merge.
	items := make([]fetchItem, 0, len(refs))
	picked := make([]store.Message, 0, len(refs))
	j := 0
	for _, r := range refs {
		for j < len(msgs) && msgs[j].UID < r.uid {
			j++
		}
		if j < len(msgs) && msgs[j].UID == r.uid {
			items = append(items, fetchItem{ref: r})
			picked = append(picked, msgs[j])
		}
	}
	for i := range items {
		items[i].msg = &picked[i]
	}
	if needSum {
		sums := s.summaries(ctx, account, mbox, keys, log, picked)
		for i := range items {
			items[i].sum = sums[i]
		}
	}
	return items, ctx.Err()
}

// setSeen sets \Seen on the items that lack it (implicit \Seen of a non-PEEK
// body fetch, RFC 9051 §6.4.5) and tells the other sessions.
func (s *session) setSeen(ctx context.Context, account string, sel *selected, items []fetchItem) error {
	var uids []uint32
	for _, it := range items {
		if !store.HasFlag(it.msg.Flags, store.FlagSeen) {
			uids = append(uids, it.ref.uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	res, err := s.srv.st.StoreFlags(ctx, account, sel.st.key.id, store.FlagUpdate{UIDs: uids, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
	if err != nil {
		return err
	}
	changed := make(map[uint32][]string, len(res.Changed))
	for _, m := range res.Changed {
		changed[m.UID] = m.Flags
	}
	for i := range items {
		if f, ok := changed[items[i].ref.uid]; ok {
			items[i].msg.Flags = f
			items[i].flagsUp = true
		}
	}
	sel.flagsChanged(res.Changed)
	return nil
}

// flagsChanged queues FETCH FLAGS to every other session of the mailbox.
func (sel *selected) flagsChanged(changed []store.Message) {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, m := range changed {
		if i := st.indexLocked(m.UID); i >= 0 {
			st.tracker.QueueMessageFlags(uint32(i+1), imap.UID(m.UID), imapFlags(m.Flags), sel.tracker)
		}
	}
}

func imapFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}

// writeFetch writes one message's FETCH response. pre is its whole
// plaintext if it was decrypted ahead, else nil.
func (s *session) writeFetch(ctx context.Context, w *imapserver.FetchWriter, account string, mbox uint64, keys keyring, it fetchItem, o *imap.FetchOptions, pre []byte) error {
	// The response writer holds the connection's write lock until closed, so
	// it is closed on every path.
	rw := w.CreateMessage(it.ref.seq)
	err := s.writeFetchItems(ctx, rw, account, mbox, keys, it, o, pre)
	if cerr := rw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%w: %w", errBrokenLiteral, cerr)
	}
	return err
}

func (s *session) writeFetchItems(ctx context.Context, rw *imapserver.FetchResponseWriter, account string, mbox uint64, keys keyring, it fetchItem, o *imap.FetchOptions, pre []byte) error {
	if o.UID {
		rw.WriteUID(imap.UID(it.ref.uid))
	}
	if o.Flags || it.flagsUp {
		rw.WriteFlags(imapFlags(it.msg.Flags))
	}
	if o.InternalDate {
		rw.WriteInternalDate(it.msg.InternalDate)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(it.sum.Size)
	}
	if o.Envelope {
		rw.WriteEnvelope(it.sum.Envelope)
	}
	if o.BodyStructure != nil && it.sum.Structure != nil {
		rw.WriteBodyStructure(it.sum.Structure)
	}
	var full []byte // whole plaintext, decrypted at most once per message
	plainAll := func() ([]byte, error) {
		if pre != nil {
			return pre, nil
		}
		if full != nil {
			return full, nil
		}
		r, err := s.openBody(ctx, account, mbox, keys, it.msg)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(r, it.sum.Size+1))
		if err != nil {
			return nil, err
		}
		full = b
		return b, nil
	}
	defer func() { wipeBytes(full) }()

	for _, bs := range o.BodySection {
		if err := s.writeBodySection(ctx, rw, account, mbox, keys, it, bs, pre, plainAll); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySection {
		b, err := plainAll()
		if err != nil {
			return err
		}
		out := imapserver.ExtractBinarySection(bytes.NewReader(b), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(out))), out); err != nil {
			return err
		}
	}
	for _, bss := range o.BinarySectionSize {
		b, err := plainAll()
		if err != nil {
			return err
		}
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(b), bss))
	}
	return nil
}

func writeLiteral(wc io.WriteCloser, b []byte) error {
	if _, err := wc.Write(b); err != nil {
		return fmt.Errorf("%w: %w", errBrokenLiteral, err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("%w: %w", errBrokenLiteral, err)
	}
	return nil
}

// writeBodySection writes one BODY[...] item. The whole message, its header
// and its text are streamed (the header from the summary); other sections
// are cut from the decrypted message.
func (s *session) writeBodySection(ctx context.Context, rw *imapserver.FetchResponseWriter, account string, mbox uint64, keys keyring, it fetchItem, bs *imap.FetchItemBodySection, pre []byte, plainAll func() ([]byte, error)) error {
	sum := it.sum
	hdr := int64(len(sum.Header))
	if len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		switch bs.Specifier {
		case imap.PartSpecifierHeader:
			out := partial(sum.Header, bs.Partial)
			return writeLiteral(rw.WriteBodySection(bs, int64(len(out))), out)
		case imap.PartSpecifierNone, imap.PartSpecifierText:
			start, size := int64(0), sum.Size
			if bs.Specifier == imap.PartSpecifierText {
				start, size = hdr, sum.Size-hdr
			}
			off, n := partialRange(size, bs.Partial)
			if pre != nil && int64(len(pre)) == sum.Size {
				return writeLiteral(rw.WriteBodySection(bs, n), pre[start+off:start+off+n])
			}
			r, err := s.openBody(ctx, account, mbox, keys, it.msg)
			if err != nil {
				return err
			}
			wc := rw.WriteBodySection(bs, n)
			return streamLiteral(wc, r, start+off, n)
		}
	}
	if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
		out := imapserver.ExtractBodySection(bytes.NewReader(sum.Header), bs)
		return writeLiteral(rw.WriteBodySection(bs, int64(len(out))), out)
	}
	b, err := plainAll()
	if err != nil {
		return err
	}
	out := imapserver.ExtractBodySection(bytes.NewReader(b), bs)
	return writeLiteral(rw.WriteBodySection(bs, int64(len(out))), out)
}

// partialRange returns the offset and length of <partial> within size bytes.
func partialRange(size int64, p *imap.SectionPartial) (off, n int64) {
	if p == nil {
		return 0, size
	}
	off = min(max(p.Offset, 0), size)
	n = min(max(p.Size, 0), size-off)
	return off, n
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	off, n := partialRange(int64(len(b)), p)
	return b[off : off+n]
}

// streamLiteral copies n bytes of r after skip into the literal wc, then
// reads r to its end so that an integrity failure is noticed (and logged:
// the bytes are already sent, so the connection is closed).
func streamLiteral(wc io.WriteCloser, r io.Reader, skip, n int64) error {
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, r, skip); err != nil {
			return fmt.Errorf("%w: %w", errBrokenLiteral, err)
		}
	}
	if _, err := io.CopyN(wc, r, n); err != nil {
		return fmt.Errorf("%w: %w", errBrokenLiteral, err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("%w: %w", errBrokenLiteral, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%w: %w", errBrokenLiteral, err)
	}
	return nil
}
