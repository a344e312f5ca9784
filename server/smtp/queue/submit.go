package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// inlineMax is the largest sealed body handed to the store in memory;
// a larger one is staged in pieces, so that queueing a message never
// holds a second whole copy of it.
const inlineMax = 256 << 10

// Prepared is a message sealed for the queue and not yet committed.
// Change holds the queue's part of the transaction (the body, an entry
// per destination, the trace, and the copies of success notices for a
// local sender); the caller adds its own local copies to
// Change.Deliver, commits it with store.Queue.UpdateQueue and then calls
// Committed, or Discard if it does not commit.
type Prepared struct {
	Change store.QueueChange
	staged store.BlobWriter // may be nil
	q      *Queue
}

// Discard frees what Prepare wrote, if the change was not committed.
// It is safe to call after a commit (it then does nothing) and more than
// once.
func (p *Prepared) Discard() {
	if p.staged != nil {
		if err := p.staged.Discard(); err != nil {
			p.q.log.Warn("queue: discard staged body", "err", err)
		}
	}
}

// Prepare seals m for the queue: body (read to the end; m.Size bytes)
// goes into one sealed body shared by an entry per destination domain of
// m's remote recipients. Local recipients that asked for a success
// notice get one, sealed to the sender's account, in the same change.
// A message without remote recipients gets no body and no entries.
func (q *Queue) Prepare(ctx context.Context, m *Message, body io.Reader) (*Prepared, error) {
	if m.ID == "" {
		return nil, errors.New("queue: message without an ID")
	}
	now := q.now()
	p := &Prepared{q: q}
	// Group remote recipients by domain, in order of appearance.
	var domains []string
	byDomain := map[string][]*rcpt{}
	var remote, local []string
	for _, r := range m.Rcpts {
		if r.Local {
			local = append(local, r.Addr)
			continue
		}
		remote = append(remote, r.Addr)
		d := domainOf(r.Addr)
		if d == "" {
			return nil, fmt.Errorf("queue: recipient %q without a domain", r.Addr)
		}
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], &rcpt{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	if m.Account != "" {
		q.addTraces(&p.Change, m.ID, now, &trace.Outbound{Event: trace.EventSubmitted, Account: m.Account,
			From: m.From, Rcpts: remote, Local: local, Size: m.Size})
	}
	// The header, for success notices of local recipients.
	var hdr bytes.Buffer
	var notices []notice
	if m.From != "" {
		for _, r := range m.Rcpts {
			if r.Local && wantsNotice(r.Notify, "SUCCESS") {
				notices = append(notices, notice{action: "delivered", rcpt: &rcpt{Addr: r.Addr, ORcpt: r.ORcpt},
					res: result{status: "2.0.0"}})
			}
		}
	}
	if len(notices) > 0 {
		body = io.TeeReader(body, &headerTap{w: &hdr})
	}
	if len(domains) > 0 {
		if err := q.sealBody(ctx, p, m.Size, body); err != nil {
			p.Discard()
			return nil, err
		}
		for i, d := range domains {
			id := entryID(m.ID, i+1)
			env := &envelope{Msg: m.ID, Account: m.Account, From: m.From, Domain: d, Rcpts: byDomain[d], Size: m.Size,
				UTF8: m.UTF8, RequireTLS: m.RequireTLS, TLSOptional: m.TLSOptional, Ret: m.Ret, EnvID: m.EnvID}
			meta, err := q.seal.encodeEnvelope(id, env)
			if err != nil {
				p.Discard()
				return nil, err
			}
			p.Change.Add = append(p.Change.Add, store.QueueEntry{ID: id, Created: now, Next: now, Meta: meta})
			q.addTraces(&p.Change, m.ID, now, &trace.Outbound{Event: trace.EventQueued, Entry: id, Domain: d,
				Rcpts: addrs(byDomain[d]), Size: m.Size})
		}
	} else if len(notices) > 0 {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, err
		}
	}
	if len(notices) > 0 {
		q.successNotice(ctx, p, m, hdr.Bytes(), notices, now)
	}
	return p, nil
}

// sealBody seals body into p's change: in memory when small, else
// staged in the store piece by piece.
func (q *Queue) sealBody(ctx context.Context, p *Prepared, size int64, body io.Reader) error {
	if sealedSize(size) <= inlineMax {
		var b bytes.Buffer
		b.Grow(int(sealedSize(size)))
		if err := q.sealInto(&b, body, size); err != nil {
			return err
		}
		p.Change.Body = &store.QueueBody{Blob: b.Bytes()}
		return nil
	}
	w, err := q.st.StageQueueBody(ctx)
	if err != nil {
		return fmt.Errorf("queue: stage body: %w", err)
	}
	p.staged = w
	if err := q.sealInto(ctxWriter{ctx, w}, body, size); err != nil {
		return err
	}
	sb, err := w.Finish(ctx)
	if err != nil {
		return fmt.Errorf("queue: stage body: %w", err)
	}
	p.Change.Body = &store.QueueBody{Staged: &sb}
	return nil
}

// sealInto seals body, which must be size bytes, to w.
func (q *Queue) sealInto(w io.Writer, body io.Reader, size int64) error {
	bw, err := q.seal.newBodyWriter(w)
	if err != nil {
		return err
	}
	n, err := io.Copy(bw, body)
	if err != nil {
		return fmt.Errorf("queue: seal body: %w", err)
	}
	if n != size {
		return fmt.Errorf("queue: seal body: %d bytes, announced %d", n, size)
	}
	return bw.Close()
}

// ctxWriter stops a long write once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// headerTap keeps the header section of what passes through, at most
// headerReturnMax bytes.
type headerTap struct {
	w    *bytes.Buffer
	done bool
}

func (h *headerTap) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	room := headerReturnMax - h.w.Len()
	chunk := p[:min(len(p), max(room, 0))]
	h.w.Write(chunk)
	if i := bytes.Index(h.w.Bytes(), []byte("\r\n\r\n")); i >= 0 {
		h.w.Truncate(i + 2)
		h.done = true
	} else if h.w.Len() >= headerReturnMax {
		h.done = true
	}
	return len(p), nil
}

// successNotice adds to p the notice that local recipients got the
// message (NOTIFY=SUCCESS), sealed for the sender's account.
func (q *Queue) successNotice(ctx context.Context, p *Prepared, m *Message, header []byte, ns []notice, now time.Time) {
	accounts, err := q.rcpts.Resolve(ctx, q.st, m.From)
	if err != nil {
		q.log.Warn("queue: success notice has no local recipient", "domain", domainOf(m.From), "err", err)
		return
	}
	id := NewID()
	env := &envelope{Msg: m.ID, From: m.From, UTF8: m.UTF8, EnvID: m.EnvID}
	msg, err := q.noticeMessage(id, env, now, now, ns, func(b *bytes.Buffer, full bool) error {
		b.Write(header)
		return nil
	})
	if err != nil {
		q.log.Error("queue: build notice", "err", err)
		return
	}
	defer clear(msg)
	for _, a := range accounts {
		sealed, err := q.sealNotice(ctx, a, msg)
		if err != nil {
			q.log.Error("queue: seal notice", "account", a.Address, "err", err)
			continue
		}
		p.Change.Deliver = append(p.Change.Deliver, store.Delivery{Account: a.Address, InternalDate: now, Blob: sealed})
	}
	rcpts := make([]string, len(ns))
	for i, n := range ns {
		rcpts[i] = n.rcpt.Addr
	}
	q.addTraces(&p.Change, m.ID, now, &trace.Outbound{Event: "notified", Rcpts: rcpts, DSN: id, To: m.From})
}

// Committed tells the queue that p's change is durable: its entries are
// due now.
func (q *Queue) Committed(p *Prepared) {
	if len(p.Change.Add) > 0 {
		q.poke()
	}
}
