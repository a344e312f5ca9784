package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The outbound queue. An entry is Q <id> (its record) plus W <next> <id>
// (the due index, empty); a body is B <body> (how many entries name it,
// its size, whether it is staged) plus either C <body> (a small body,
// inline) or the file of a staged blob of the pseudo-account queueAcct
// (K 0 <body>, written by StageQueueBody like any staged blob and
// linked here, so Open removes queue bodies never linked as it removes
// any other). Every change runs in the writer as a batch operation (get,
// set and delete only), so queue changes share group commits with
// deliveries. The counter "queue" is the number of entries.

// queueAcct is the account ID under which queue bodies are staged. No
// account has it: the "account" counter starts at 1.
const queueAcct = 0

// Record versions of the queue's tables.
const (
	vQueueEntry = 1
	vQueueBody  = 1
	vTrace      = 1
)

func queueKey(id string) []byte { return append([]byte{pQueue}, id...) }

func queueDueKey(next time.Time, id string) []byte {
	k := binary.BigEndian.AppendUint64([]byte{pQueueDue}, timeKey(next))
	return append(k, id...)
}

func queueBodyKey(body uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pQueueBody}, body)
}

func queueInlineKey(body uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pQueueInline}, body)
}

// timeKey orders times in keys: Unix nanoseconds, times before 1970 as 0.
func timeKey(t time.Time) uint64 {
	if n := t.UnixNano(); n > 0 {
		return uint64(n)
	}
	return 0
}

// queueRec is a stored entry: version, created, next, attempts, body,
// size, meta.
func encodeQueueEntry(e *store.QueueEntry) []byte {
	b := enc{vQueueEntry}.time(e.Created).time(e.Next).uvarint(uint64(e.Attempts)).
		uvarint(e.Body).varint(e.Size).bytes(e.Meta)
	return b
}

func decodeQueueEntry(id string, b []byte) (store.QueueEntry, error) {
	d := dec{b: b}
	d.version(vQueueEntry)
	e := store.QueueEntry{ID: id}
	e.Created = d.time()
	e.Next = d.time()
	e.Attempts = int(d.uvarint())
	e.Body = d.uvarint()
	e.Size = d.varint()
	e.Meta = d.bytes()
	return e, d.finish()
}

// bodyRec is a stored queue body's record.
type bodyRec struct {
	Refs   uint64 // entries that name it
	Size   int64
	Staged bool
}

func (r *bodyRec) encode() []byte {
	return enc{vQueueBody}.uvarint(r.Refs).varint(r.Size).bool(r.Staged)
}

func decodeBody(b []byte) (bodyRec, error) {
	d := dec{b: b}
	d.version(vQueueBody)
	r := bodyRec{Refs: d.uvarint(), Size: d.varint(), Staged: d.bool()}
	return r, d.finish()
}

// checkQueueID refuses IDs the store cannot key: empty, too long, or
// not printable ASCII.
func checkQueueID(id string) error {
	if id == "" || len(id) > store.MaxQueueIDLen {
		return fmt.Errorf("%w: queue ID length %d", store.ErrBadName, len(id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("%w: queue ID %q", store.ErrBadName, id)
		}
	}
	return nil
}

// StageQueueBody implements store.Queue.
func (db *DB) StageQueueBody(ctx context.Context) (store.BlobWriter, error) {
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	id, err := db.nextStagedID()
	db.leave()
	if err != nil {
		return nil, err
	}
	return &blobWriter{db: db, acct: queueAcct, id: id}, nil
}

// UpdateQueue implements store.Queue. It is a batch operation: changes
// and deliveries that arrive together share one commit.
func (db *DB) UpdateQueue(ctx context.Context, c store.QueueChange) ([]store.Delivered, error) {
	if err := checkQueueChange(&c); err != nil {
		return nil, err
	}
	in, err := prepareDeliveries(c.Deliver)
	if err != nil {
		return nil, err
	}
	discard, err := db.stageLarge(ctx, in)
	defer discard()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for i := range c.Trace {
		if c.Trace[i].Time.IsZero() {
			c.Trace[i].Time = now
		}
	}
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	defer db.leave()
	var body uint64
	if c.Body != nil {
		if c.Body.Staged != nil {
			body = c.Body.Staged.Ref
		} else if body, err = db.nextStagedID(); err != nil {
			return nil, err
		}
	}
	var out []store.Delivered
	var freed bool
	err = db.write(ctx, true, func(t *tx) error {
		out, freed = nil, false
		if len(in) > 0 {
			var err error
			if out, err = deliver(t, in, db.defaultQuota); err != nil {
				return err
			}
		}
		var err error
		freed, err = applyQueueChange(t, &c, body)
		if err != nil {
			return err
		}
		return addTraces(t, c.Trace)
	})
	if err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			return nil, fmt.Errorf("store: queue change: %w", err)
		}
		return nil, err
	}
	if freed {
		db.queueFreed()
	}
	return out, nil
}

// checkQueueChange checks what can be checked without the store.
func checkQueueChange(c *store.QueueChange) error {
	if len(c.Add) > 0 && c.Body == nil {
		return errors.New("store: queue: new entries without a body")
	}
	if c.Body != nil {
		if len(c.Add) == 0 {
			return errors.New("store: queue: a body without entries")
		}
		switch {
		case c.Body.Staged != nil && c.Body.Blob != nil:
			return errors.New("store: queue: both a blob and a staged blob")
		case c.Body.Staged != nil:
			if c.Body.Staged.Account != "" {
				return fmt.Errorf("store: queue: staged blob of account %s: %w", c.Body.Staged.Account, store.ErrNotFound)
			}
		case len(c.Body.Blob) == 0:
			return errors.New("store: queue: empty body")
		}
	}
	seen := make(map[string]bool, len(c.Add)+len(c.Update)+len(c.Remove))
	for _, list := range [][]string{ids(c.Add), updateIDs(c.Update), c.Remove} {
		for _, id := range list {
			if err := checkQueueID(id); err != nil {
				return fmt.Errorf("store: queue: %w", err)
			}
			if seen[id] {
				return fmt.Errorf("store: queue: entry %s named twice in one change", id)
			}
			seen[id] = true
		}
	}
	for _, r := range c.Trace {
		if err := checkTrace(r); err != nil {
			return err
		}
	}
	return nil
}

func ids(es []store.QueueEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func updateIDs(us []store.QueueUpdate) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

// applyQueueChange writes c's queue part in t. body is the ID the new
// body gets. It reports whether it destroyed a body.
func applyQueueChange(t *tx, c *store.QueueChange, body uint64) (freed bool, err error) {
	count, err := queueCount(t)
	if err != nil {
		return false, err
	}
	start := count
	if c.Body != nil {
		rec := bodyRec{Refs: uint64(len(c.Add))}
		if c.Body.Staged != nil {
			if rec.Size, err = linkStaged(t, queueAcct, c.Body.Staged); err != nil {
				return false, fmt.Errorf("store: queue body: %w", err)
			}
			rec.Staged = true
		} else {
			rec.Size = int64(len(c.Body.Blob))
			if err := t.set(queueInlineKey(body), c.Body.Blob); err != nil {
				return false, err
			}
		}
		if err := t.set(queueBodyKey(body), rec.encode()); err != nil {
			return false, err
		}
		for _, e := range c.Add {
			if ok, err := t.has(queueKey(e.ID)); err != nil {
				return false, err
			} else if ok {
				return false, fmt.Errorf("store: queue entry %s: %w", e.ID, store.ErrExists)
			}
			e.Body, e.Size = body, rec.Size
			if err := putQueueEntry(t, &e); err != nil {
				return false, err
			}
			count++
		}
	}
	for _, u := range c.Update {
		e, err := getQueueEntry(t, u.ID)
		if err != nil {
			return false, err
		}
		if err := t.del(queueDueKey(e.Next, e.ID)); err != nil {
			return false, err
		}
		e.Next, e.Attempts = u.Next, u.Attempts
		if u.Meta != nil {
			e.Meta = u.Meta
		}
		if err := putQueueEntry(t, &e); err != nil {
			return false, err
		}
	}
	for _, id := range c.Remove {
		e, err := getQueueEntry(t, id)
		if err != nil {
			return false, err
		}
		for _, k := range [][]byte{queueKey(id), queueDueKey(e.Next, id)} {
			if err := t.del(k); err != nil {
				return false, err
			}
		}
		count--
		gone, err := releaseBody(t, e.Body)
		if err != nil {
			return false, err
		}
		freed = freed || gone
	}
	if count != start {
		return freed, t.set(counterKey(counterQLen), putU64(count))
	}
	return freed, nil
}

func queueCount(t *tx) (uint64, error) {
	v, err := t.get(counterKey(counterQLen))
	if errors.Is(err, errNoKey) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := decodeU64(v)
	if err != nil {
		return 0, corrupt("queue counter", err)
	}
	return n, nil
}

func getQueueEntry(t *tx, id string) (store.QueueEntry, error) {
	v, err := t.get(queueKey(id))
	if errors.Is(err, errNoKey) {
		return store.QueueEntry{}, notFound("queue entry " + id)
	}
	if err != nil {
		return store.QueueEntry{}, err
	}
	e, err := decodeQueueEntry(id, v)
	if err != nil {
		return store.QueueEntry{}, corrupt("queue entry "+id, err)
	}
	return e, nil
}

func putQueueEntry(t *tx, e *store.QueueEntry) error {
	if err := t.set(queueKey(e.ID), encodeQueueEntry(e)); err != nil {
		return err
	}
	return t.set(queueDueKey(e.Next, e.ID), nil)
}

// releaseBody counts one entry fewer naming body and destroys the body
// when none is left: its record, and its inline bytes or its file (which
// the orphan loop unlinks after the commit: queueFreed kicks it).
func releaseBody(t *tx, body uint64) (bool, error) {
	v, err := t.get(queueBodyKey(body))
	if errors.Is(err, errNoKey) {
		return false, corrupt("queue body", errCorrupt)
	}
	if err != nil {
		return false, err
	}
	rec, err := decodeBody(v)
	if err != nil {
		return false, corrupt("queue body", err)
	}
	if rec.Refs > 1 {
		rec.Refs--
		return false, t.set(queueBodyKey(body), rec.encode())
	}
	if err := t.del(queueBodyKey(body)); err != nil {
		return false, err
	}
	if !rec.Staged {
		return true, t.del(queueInlineKey(body))
	}
	return true, destroyFile(t, queueAcct, body)
}

// queueFreedGCEvery bounds how often destroyed queue bodies kick the
// value-log GC: under load bodies go by the hundred per second.
const queueFreedGCEvery = time.Minute

// queueFreed notes that queue bodies were destroyed, and kicks the
// value-log GC at most every queueFreedGCEvery, so their bytes leave the
// value log (see doc.go: deleted is not gone until then).
func (db *DB) queueFreed() {
	db.orphaned()
	now := time.Now().UnixNano()
	last := db.lastQueueGC.Load()
	if now-last < int64(queueFreedGCEvery) || !db.lastQueueGC.CompareAndSwap(last, now) {
		return
	}
	db.triggerGC()
}

// QueueEntry implements store.Queue.
func (db *DB) QueueEntry(ctx context.Context, id string) (store.QueueEntry, error) {
	if err := checkQueueID(id); err != nil {
		return store.QueueEntry{}, fmt.Errorf("store: %w", err)
	}
	var e store.QueueEntry
	err := db.read(ctx, func(t *tx) error {
		var err error
		e, err = getQueueEntry(t, id)
		return err
	})
	return e, err
}

// QueueEntries implements store.Queue.
func (db *DB) QueueEntries(ctx context.Context, prefix, after string, limit int) ([]store.QueueEntry, error) {
	var out []store.QueueEntry
	err := db.read(ctx, func(t *tx) error {
		out = nil
		p := queueKey(prefix)
		var start []byte
		if after != "" {
			start = append(queueKey(after), 0)
		}
		return t.scan(p, start, false, func(k, v []byte) (bool, error) {
			id := string(k[1:])
			e, err := decodeQueueEntry(id, v)
			if err != nil {
				return false, corrupt("queue entry "+id, err)
			}
			out = append(out, e)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	return out, err
}

// QueueDue implements store.Queue.
func (db *DB) QueueDue(ctx context.Context, after store.QueueCursor, until time.Time, limit int) ([]store.QueueEntry, error) {
	var out []store.QueueEntry
	end := timeKey(until)
	err := db.read(ctx, func(t *tx) error {
		out = nil
		var start []byte
		if after != (store.QueueCursor{}) {
			start = append(queueDueKey(after.Next, after.ID), 0)
		}
		return t.scan([]byte{pQueueDue}, start, true, func(k, _ []byte) (bool, error) {
			if len(k) < 10 {
				return false, corrupt("queue due index", errCorrupt)
			}
			if binary.BigEndian.Uint64(k[1:9]) > end {
				return false, nil
			}
			id := string(k[9:])
			e, err := getQueueEntry(t, id)
			if err != nil {
				return false, err
			}
			out = append(out, e)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	return out, err
}

// QueueLen implements store.Queue.
func (db *DB) QueueLen(ctx context.Context) (int, error) {
	var n uint64
	err := db.read(ctx, func(t *tx) error {
		var err error
		n, err = queueCount(t)
		return err
	})
	return int(n), err
}

// OpenQueueBody implements store.Queue.
func (db *DB) OpenQueueBody(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if err := checkQueueID(id); err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	var (
		body uint64
		rec  bodyRec
		b    []byte
	)
	err := db.read(ctx, func(t *tx) error {
		e, err := getQueueEntry(t, id)
		if err != nil {
			return err
		}
		body = e.Body
		v, err := t.get(queueBodyKey(body))
		if errors.Is(err, errNoKey) {
			return corrupt("queue body of "+id, errCorrupt)
		}
		if err != nil {
			return err
		}
		if rec, err = decodeBody(v); err != nil {
			return corrupt("queue body of "+id, err)
		}
		if rec.Staged {
			return nil
		}
		b, err = t.get(queueInlineKey(body))
		if errors.Is(err, errNoKey) {
			return corrupt("queue body of "+id, errCorrupt)
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if !rec.Staged {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
	r, err := db.openBlobFile(body, rec.Size)
	if err != nil {
		return nil, 0, err
	}
	return r, rec.Size, nil
}
