package pop3

import (
	"context"
	"errors"
	"io"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// errAbort ends the connection without a word: a response was already
// under way (a message partly sent), so the client must see it cut off,
// never completed by a terminator.
var errAbort = &Error{Close: true}

// retr implements RETR (RFC 1939 §5). The message is decrypted and
// verified (server/mailbox) before "+OK" is written, so a message that
// fails its integrity check gets -ERR and none of its bytes. A large
// message is streamed from a second decryption whose sealed pieces are
// checked against the first; if that check fails mid-way the connection
// is closed without the terminating ".".
func (s *session) retr(cmd *command) *Error {
	if len(cmd.args) != 1 {
		return errSyntax
	}
	i, e := s.msgArg(cmd.args[0])
	if e == errDeleted {
		e = errNoSuchMessage
	}
	if e != nil {
		return e
	}
	b, done, e := s.openBody(i)
	if e != nil {
		return e
	}
	defer done()
	m := &s.drop.msgs[i]
	s.c.ok(itoa64(m.size) + " octets")
	dw := newDotWriter(s.c.bw)
	if e := s.copyBody(dw, b, 0, b.Size()); e != nil {
		return e
	}
	dw.end()
	m.retrieved = true
	return nil
}

// top implements TOP (RFC 1939 §7): the header, the blank line, and the
// first n lines of the body. With n = 0 the header comes from the
// message's sealed summary (built from the verified message) and nothing
// is decrypted.
func (s *session) top(cmd *command) *Error {
	if len(cmd.args) != 2 {
		return errSyntax
	}
	i, e := s.msgArg(cmd.args[0])
	if e == errDeleted {
		e = errNoSuchMessage
	}
	if e != nil {
		return e
	}
	lines, ok := parseNumber(cmd.args[1], 0)
	if !ok {
		return errSyntax
	}
	ctx := s.cctx
	m := &s.drop.msgs[i]
	acct := s.drop.rd.Account()
	ms, err := s.srv.st.Messages(ctx, acct, s.drop.id, store.ListOptions{FromUID: m.m.UID, ToUID: m.m.UID, WithSummary: true})
	if err != nil {
		return internal(s.alog, "top", err, "uid", m.m.UID)
	}
	if len(ms) == 0 {
		return s.goneNow(i)
	}
	sums, errs, err := s.drop.rd.Summaries(ctx, s.drop.id, ms)
	if err != nil {
		return internal(s.alog, "top", err, "uid", m.m.UID)
	}
	if sums[0] == nil {
		if errors.Is(errs[0], store.ErrNotFound) {
			return s.goneNow(i)
		}
		return errCorrupt
	}
	header := sums[0].Header
	dw := newDotWriter(s.c.bw)
	if lines == 0 {
		s.c.ok("Top of message follows")
		dw.Write(header)
		dw.end()
		return nil
	}
	m.m.SessionKey = ms[0].SessionKey
	b, err := s.drop.rd.Open(ctx, s.drop.id, &m.m, m.size)
	if e := s.bodyErr(i, err); e != nil {
		return e
	}
	defer b.Close()
	s.c.ok("Top of message follows")
	hl := min(int64(len(header)), b.Size())
	if e := s.copyBody(dw, b, 0, hl); e != nil {
		return e
	}
	dw.setLimit(lines)
	if e := s.copyBody(dw, b, hl, b.Size()-hl); e != nil {
		return e
	}
	dw.end()
	return nil
}

// copyBody writes n bytes of b from off through dw. A failure after
// "+OK" was written aborts the connection.
func (s *session) copyBody(dw *dotWriter, b *mailbox.Body, off, n int64) *Error {
	if p := b.Bytes(); p != nil {
		dw.Write(p[off : off+n])
		return nil
	}
	r, err := b.Range(s.cctx, off, n)
	if err == nil {
		_, err = io.Copy(dw, r)
	}
	if err == nil || errors.Is(err, errLinesDone) {
		return nil
	}
	if errors.Is(err, mailbox.ErrIntegrity) || errors.Is(err, crypto.ErrIntegrity) {
		s.alog.Error("message changed while it was sent; connection closed before its end", "err", err)
	} else if !errors.Is(err, context.Canceled) {
		s.alog.Error("reading a message; connection closed before its end", "err", err)
	}
	return errAbort
}

// openBody returns the verified body of message i and the func that
// releases it, from the readahead when the client reads in order.
func (s *session) openBody(i int) (*mailbox.Body, func(), *Error) {
	b, done, err := s.readAhead(i)
	if b == nil && err == nil {
		m := &s.drop.msgs[i]
		b, err = s.drop.rd.Open(s.cctx, s.drop.id, &m.m, m.size)
		done = func() {
			if b != nil {
				b.Close()
			}
		}
	}
	if e := s.bodyErr(i, err); e != nil {
		done()
		return nil, nil, e
	}
	return b, done, nil
}

// bodyErr maps the failure to open message i.
func (s *session) bodyErr(i int, err error) *Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return s.goneNow(i)
	case errors.Is(err, mailbox.ErrIntegrity):
		return errCorrupt // logged by server/mailbox
	}
	return internal(s.alog, "open message", err, "uid", s.drop.msgs[i].m.UID)
}

// goneNow records that message i was removed by someone else.
func (s *session) goneNow(i int) *Error {
	s.removed(s.drop.rd.Account(), s.drop.id, []uint32{s.drop.msgs[i].m.UID})
	return errGone
}

// readahead decrypts the messages after the one being retrieved on the
// server's workers (mailbox.Prefetcher), while the client reads, when a
// client retrieves messages in order (as fetchmail and most clients do:
// RETR, DELE, RETR …). It holds at most the prefetcher's window of
// verified messages, within the server's memory budget.
type readahead struct {
	pf   *mailbox.Prefetcher
	idx  []int // item → message index, ascending
	next int   // the item expected next
}

// skipAhead is how many messages a client may skip and keep the
// readahead; skipping more restarts it (the skipped ones would be
// decrypted for nothing).
const skipAhead = 4

func (r *readahead) stop() { r.pf.Stop() }

// readAhead returns message i's body from the readahead, starting one
// when the client retrieves the message after its last one. nil and no
// error: open it directly.
func (s *session) readAhead(i int) (*mailbox.Body, func(), error) {
	last := s.lastRetr
	s.lastRetr = i
	if r := s.ahead; r != nil {
		k := r.next
		for k < len(r.idx) && r.idx[k] < i && k-r.next <= skipAhead {
			k++
		}
		if k < len(r.idx) && r.idx[k] == i {
			for j := r.next; j < k; j++ {
				r.pf.Release(j)
			}
			r.next = k + 1
			b, err := r.pf.Get(k)
			return b, func() { r.pf.Release(k) }, err
		}
		r.stop()
		s.ahead = nil
	}
	if last < 0 || i <= last || i-last > skipAhead {
		return nil, func() {}, nil
	}
	gone := s.goneSet()
	var idx []int
	var items []mailbox.PrefetchItem
	for j := i; j < len(s.drop.msgs); j++ {
		if s.present(j, gone) {
			idx = append(idx, j)
			items = append(items, mailbox.PrefetchItem{Msg: &s.drop.msgs[j].m, Size: s.drop.msgs[j].size})
		}
	}
	r := &readahead{pf: s.drop.rd.Prefetch(s.cctx, s.drop.id, items), idx: idx, next: 1}
	s.ahead = r
	b, err := r.pf.Get(0)
	return b, func() { r.pf.Release(0) }, err
}
