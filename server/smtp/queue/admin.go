package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// What the operator sees and does (`sealmail queue list|show|retry|drop`),
// on the running server's queue or, with the server stopped, on one
// built over the store by the CLI.

// EntryInfo is one queue entry as the operator sees it.
type EntryInfo struct {
	ID       string    `json:"id"`
	Msg      string    `json:"msg"`
	Account  string    `json:"account,omitempty"`
	From     string    `json:"from"`
	Domain   string    `json:"domain"`
	Rcpts    []string  `json:"rcpts"`
	Created  time.Time `json:"created"`
	Next     time.Time `json:"next"`
	Attempts int       `json:"attempts"`
	Size     int64     `json:"size"`
	Last     string    `json:"last_error,omitempty"`
	Running  bool      `json:"running,omitempty"`
	// Error says why the entry cannot be read (another server key,
	// damage); the other fields but ID and the times are then empty.
	Error string `json:"error,omitempty"`
}

// Detail is a message's or an entry's entries and trace.
type Detail struct {
	Entries []EntryInfo    `json:"entries"`
	Trace   []trace.Record `json:"trace"`
}

// ErrNotFound: no entry (and no trace) has that ID.
var ErrNotFound = errors.New("queue: no such entry or message")

// Len returns the number of entries.
func (q *Queue) Len(ctx context.Context) (int, error) { return q.st.QueueLen(ctx) }

func (q *Queue) info(e store.QueueEntry) EntryInfo {
	in := EntryInfo{ID: e.ID, Created: e.Created, Next: e.Next, Attempts: e.Attempts}
	env, err := q.seal.decodeEnvelope(e.ID, e.Meta)
	if err != nil {
		in.Error = err.Error()
		return in
	}
	in.Msg, in.Account, in.From, in.Domain, in.Rcpts = env.Msg, env.Account, env.From, env.Domain, addrs(env.Rcpts)
	in.Size, in.Last = env.Size, env.Last
	q.mu.Lock()
	if it := q.active[e.ID]; it != nil && it.running {
		in.Running = true
	}
	q.mu.Unlock()
	return in
}

// List returns entries in ID order after the ID after, at most limit
// (≤ 0: all).
func (q *Queue) List(ctx context.Context, after string, limit int) ([]EntryInfo, error) {
	es, err := q.st.QueueEntries(ctx, "", after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]EntryInfo, len(es))
	for i, e := range es {
		out[i] = q.info(e)
	}
	return out, nil
}

// isEntryID tells an entry ID ("msg-1") from a message ID ("msg").
func isEntryID(id string) bool { return strings.Contains(id, "-") }

// msgOf returns the message ID of an entry or message ID.
func msgOf(id string) string {
	m, _, _ := strings.Cut(id, "-")
	return m
}

// entries returns the entries id names: one entry, or all of a message.
func (q *Queue) entries(ctx context.Context, id string) ([]store.QueueEntry, error) {
	if id == "" || len(id) > store.MaxQueueIDLen {
		return nil, ErrNotFound
	}
	if isEntryID(id) {
		e, err := q.st.QueueEntry(ctx, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrBadName) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []store.QueueEntry{e}, nil
	}
	return q.st.QueueEntries(ctx, id+"-", "", 0)
}

// Show returns the entries of a message (or one entry) and the
// message's trace, which outlives its entries (TraceRetention).
func (q *Queue) Show(ctx context.Context, id string) (Detail, error) {
	es, err := q.entries(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	var d Detail
	for _, e := range es {
		d.Entries = append(d.Entries, q.info(e))
	}
	ref := msgOf(id)
	var cur store.TraceCursor
	for {
		recs, err := q.st.Traces(ctx, store.TraceQuery{Kind: store.TraceOutbound, Ref: ref, After: cur})
		if errors.Is(err, store.ErrBadName) {
			break
		}
		if err != nil {
			return Detail{}, err
		}
		for _, r := range recs {
			tr, err := q.codec.Decode(r)
			if err != nil {
				tr.Out = &trace.Outbound{Error: "record does not open: " + err.Error()}
			}
			if isEntryID(id) && tr.Out != nil && tr.Out.Entry != "" && tr.Out.Entry != id {
				continue
			}
			d.Trace = append(d.Trace, tr)
		}
		if len(recs) == 0 {
			break
		}
		last := recs[len(recs)-1]
		cur = store.TraceCursor{Time: last.Time, Seq: last.Seq}
	}
	if len(d.Entries) == 0 && len(d.Trace) == 0 {
		return Detail{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return d, nil
}

// Retry makes a message's entries (or one entry, or with id "" every
// entry) due now and returns how many it changed. Entries being
// delivered are left alone.
func (q *Queue) Retry(ctx context.Context, id string) (int, error) {
	now := q.now()
	n := 0
	retry := func(es []store.QueueEntry) error {
		var c store.QueueChange
		for _, e := range es {
			q.mu.Lock()
			_, active := q.active[e.ID]
			q.mu.Unlock()
			if active || !e.Next.After(now) {
				continue
			}
			c.Update = append(c.Update, store.QueueUpdate{ID: e.ID, Next: now, Attempts: e.Attempts})
			ref := msgOf(e.ID)
			q.addTraces(&c, ref, now, &trace.Outbound{Event: trace.EventRetried, Entry: e.ID})
		}
		if len(c.Update) == 0 {
			return nil
		}
		if _, err := q.st.UpdateQueue(ctx, c); err != nil {
			return err
		}
		n += len(c.Update)
		return nil
	}
	if id != "" {
		es, err := q.entries(ctx, id)
		if err != nil {
			return 0, err
		}
		if len(es) == 0 {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err := retry(es); err != nil {
			return n, err
		}
	} else {
		after := ""
		for {
			es, err := q.st.QueueEntries(ctx, "", after, 500)
			if err != nil {
				return n, err
			}
			if len(es) == 0 {
				break
			}
			if err := retry(es); err != nil {
				return n, err
			}
			after = es[len(es)-1].ID
		}
	}
	if n > 0 {
		q.poke()
	}
	return n, nil
}

// Drop destroys a message's entries (or one entry) without notice to
// the sender, stopping deliveries in progress first, and returns how
// many it destroyed. The trace keeps a record of it.
func (q *Queue) Drop(ctx context.Context, id string) (int, error) {
	es, err := q.entries(ctx, id)
	if err != nil {
		return 0, err
	}
	if len(es) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	n := 0
	for _, e := range es {
		if err := q.stopEntry(ctx, e.ID); err != nil {
			return n, err
		}
		now := q.now()
		c := store.QueueChange{Remove: []string{e.ID}}
		q.addTraces(&c, msgOf(e.ID), now, &trace.Outbound{Event: trace.EventDropped, Entry: e.ID})
		if _, err := q.st.UpdateQueue(ctx, c); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // delivered or dropped meanwhile
			}
			return n, err
		}
		n++
		q.log.Info("queue entry dropped by the operator", "entry", e.ID)
	}
	return n, nil
}

// stopEntry takes an entry out of the scheduler: a waiting one at once,
// a running one once its delivery has ended (it is cut off, and records
// nothing: the caller removes the entry).
func (q *Queue) stopEntry(ctx context.Context, id string) error {
	q.mu.Lock()
	// Keep the scheduler from loading it again until it is gone.
	q.held[id] = q.now().Add(idleWait)
	it := q.active[id]
	if it == nil {
		q.mu.Unlock()
		return nil
	}
	if !it.running {
		d := it.dest
		if i := slices.Index(d.waiting, it); i >= 0 {
			d.waiting = slices.Delete(d.waiting, i, i+1)
		}
		delete(q.active, id)
		q.mu.Unlock()
		return nil
	}
	it.dropped = true
	it.cancel()
	done := it.done
	q.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
