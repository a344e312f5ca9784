package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The delivery trace. A record is T <kind> <time> <seq> → ref, data, and
// R <kind> <len(ref)> <ref> <time> <seq> → empty indexes it by ref. Seq
// comes from the "trace" counter, in the writer, so it grows in commit
// order. Times are Unix nanoseconds (timeKey).

// defaultTraceLimit is TraceQuery's limit when it sets none.
const defaultTraceLimit = 1000

// pruneChunk is how many records one PruneTraces transaction removes.
const pruneChunk = 2000

func traceKey(kind store.TraceKind, when time.Time, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64([]byte{pTrace, byte(kind)}, timeKey(when))
	return binary.BigEndian.AppendUint64(k, seq)
}

func traceRefPrefix(kind store.TraceKind, ref string) []byte {
	return append([]byte{pTraceRef, byte(kind), byte(len(ref))}, ref...)
}

func traceRefKey(kind store.TraceKind, ref string, when time.Time, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64(traceRefPrefix(kind, ref), timeKey(when))
	return binary.BigEndian.AppendUint64(k, seq)
}

func encodeTrace(r *store.TraceRecord) []byte {
	return enc{vTrace}.str(r.Ref).bytes(r.Data)
}

// decodeTrace decodes the record stored under key k.
func decodeTrace(k, v []byte) (store.TraceRecord, error) {
	if len(k) != 18 {
		return store.TraceRecord{}, errCorrupt
	}
	r := store.TraceRecord{
		Kind: store.TraceKind(k[1]),
		Time: time.Unix(0, int64(binary.BigEndian.Uint64(k[2:10]))).UTC(),
		Seq:  binary.BigEndian.Uint64(k[10:18]),
	}
	d := dec{b: v}
	d.version(vTrace)
	r.Ref = d.str()
	r.Data = d.bytes()
	return r, d.finish()
}

// checkTrace refuses records the store cannot key.
func checkTrace(r store.TraceRecord) error {
	if r.Kind == 0 {
		return errors.New("store: trace record without a kind")
	}
	if r.Ref == "" || len(r.Ref) > store.MaxTraceRefLen {
		return fmt.Errorf("store: trace: %w: ref length %d", store.ErrBadName, len(r.Ref))
	}
	for i := 0; i < len(r.Ref); i++ {
		if r.Ref[i] < 0x21 || r.Ref[i] > 0x7e {
			return fmt.Errorf("store: trace: %w: ref %q", store.ErrBadName, r.Ref)
		}
	}
	return nil
}

// addTraces writes recs in t (batch mode: get and set only).
func addTraces(t *tx, recs []store.TraceRecord) error {
	for i := range recs {
		r := &recs[i]
		seq, err := nextCounter(t, counterSeq)
		if err != nil {
			return err
		}
		if err := t.set(traceKey(r.Kind, r.Time, seq), encodeTrace(r)); err != nil {
			return err
		}
		if err := t.set(traceRefKey(r.Kind, r.Ref, r.Time, seq), nil); err != nil {
			return err
		}
	}
	return nil
}

// AddTraces implements store.Tracer. It is a batch operation.
func (db *DB) AddTraces(ctx context.Context, recs []store.TraceRecord) error {
	if len(recs) == 0 {
		return ctx.Err()
	}
	now := time.Now().UTC()
	in := make([]store.TraceRecord, len(recs))
	for i, r := range recs {
		if err := checkTrace(r); err != nil {
			return err
		}
		if r.Time.IsZero() {
			r.Time = now
		}
		in[i] = r
	}
	if err := db.enter(ctx); err != nil {
		return err
	}
	defer db.leave()
	return db.write(ctx, true, func(t *tx) error { return addTraces(t, in) })
}

// Traces implements store.Tracer.
func (db *DB) Traces(ctx context.Context, q store.TraceQuery) ([]store.TraceRecord, error) {
	if q.Kind == 0 {
		return nil, errors.New("store: trace query without a kind")
	}
	if q.Ref != "" {
		if err := checkTrace(store.TraceRecord{Kind: q.Kind, Ref: q.Ref}); err != nil {
			return nil, err
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultTraceLimit
	}
	// The first key to look at: after the cursor, or at Since.
	from, fromSeq := q.Since, uint64(0)
	if q.After != (store.TraceCursor{}) && !q.After.Time.Before(q.Since) {
		from, fromSeq = q.After.Time, q.After.Seq+1
		if fromSeq == 0 { // Seq overflow: nothing can follow at that time
			from, fromSeq = from.Add(time.Nanosecond), 0
		}
	}
	until := uint64(1<<64 - 1)
	if !q.Until.IsZero() {
		until = timeKey(q.Until)
	}
	var out []store.TraceRecord
	err := db.read(ctx, func(t *tx) error {
		out = nil
		var prefix, start []byte
		if q.Ref != "" {
			prefix = traceRefPrefix(q.Kind, q.Ref)
			start = traceRefKey(q.Kind, q.Ref, from, fromSeq)
		} else {
			prefix = []byte{pTrace, byte(q.Kind)}
			start = traceKey(q.Kind, from, fromSeq)
		}
		return t.scan(prefix, start, q.Ref != "", func(k, v []byte) (bool, error) {
			if len(k) < len(prefix)+16 {
				return false, corrupt("trace key", errCorrupt)
			}
			tail := k[len(k)-16:]
			if binary.BigEndian.Uint64(tail[:8]) > until {
				return false, nil
			}
			if q.Ref != "" {
				when := time.Unix(0, int64(binary.BigEndian.Uint64(tail[:8])))
				rk := traceKey(q.Kind, when, binary.BigEndian.Uint64(tail[8:]))
				var err error
				if v, err = t.get(rk); err != nil {
					if errors.Is(err, errNoKey) {
						return true, nil // pruned meanwhile
					}
					return false, err
				}
				k = rk
			}
			r, err := decodeTrace(k, v)
			if err != nil {
				return false, corrupt("trace record", err)
			}
			out = append(out, r)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// PruneTraces implements store.Tracer. It removes records in chunks,
// each its own transaction in the writer, so a large backlog never
// makes one transaction too large.
func (db *DB) PruneTraces(ctx context.Context, kind store.TraceKind, before time.Time) (int, error) {
	if kind == 0 {
		return 0, errors.New("store: prune traces without a kind")
	}
	end := timeKey(before)
	total := 0
	for {
		var keys [][]byte
		err := db.read(ctx, func(t *tx) error {
			keys = nil
			return t.scan([]byte{pTrace, byte(kind)}, nil, false, func(k, v []byte) (bool, error) {
				if len(k) != 18 || binary.BigEndian.Uint64(k[2:10]) >= end {
					return false, nil
				}
				r, err := decodeTrace(k, v)
				if err != nil {
					return false, corrupt("trace record", err)
				}
				keys = append(keys, append([]byte(nil), k...), traceRefKey(kind, r.Ref, r.Time, r.Seq))
				return len(keys) < 2*pruneChunk, nil
			})
		})
		if err != nil || len(keys) == 0 {
			return total, err
		}
		err = db.update(ctx, func(t *tx) error {
			for _, k := range keys {
				if err := t.del(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(keys) / 2
	}
}
