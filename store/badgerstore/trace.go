package badgerstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// The delivery trace (store.TraceStore): rows keyed by time, so that a
// search walks back from its Until and expiry deletes from the front.

const (
	vTrace = 1
	// maxTraceText bounds each text field of a record; longer text is
	// cut (a trace is for people, and a reply line is at most 512 bytes).
	maxTraceText = 1024
	// maxTraceList bounds a record's recipients and reasons.
	maxTraceList = 1000
	// maxTraceScan bounds the rows one search reads.
	maxTraceScan = 1_000_000
)

func traceKey(t time.Time, id uint64) []byte {
	k := make([]byte, 1, 17)
	k[0] = pTrace
	k = binary.BigEndian.AppendUint64(k, timeKey(t))
	return binary.BigEndian.AppendUint64(k, id)
}

// timeKey orders times in keys; times before 1970 sort first.
func timeKey(t time.Time) uint64 {
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

func cut(s string) string {
	if len(s) > maxTraceText {
		return s[:maxTraceText]
	}
	return s
}

func encodeTrace(r store.TraceRecord) []byte {
	e := enc{vTrace}.time(r.Time).uvarint(uint64(r.Direction)).str(cut(r.Message)).str(cut(r.RemoteIP)).
		str(cut(r.Remote)).str(cut(r.From)).uvarint(uint64(min(len(r.To), maxTraceList)))
	for _, to := range r.To[:min(len(r.To), maxTraceList)] {
		e = e.str(cut(to))
	}
	e = e.str(cut(r.Result)).str(cut(r.Reply)).uvarint(uint64(min(len(r.Reasons), maxTraceList)))
	for _, rs := range r.Reasons[:min(len(r.Reasons), maxTraceList)] {
		e = e.str(cut(rs.Check)).str(cut(rs.Result)).str(cut(rs.Detail)).varint(int64(math.Round(rs.Score * 1000)))
	}
	return e
}

func decodeTrace(id uint64, b []byte) (store.TraceRecord, error) {
	d := dec{b: b}
	d.version(vTrace)
	r := store.TraceRecord{ID: id, Time: d.time(), Direction: store.TraceDirection(d.uvarint()),
		Message: d.str(), RemoteIP: d.str(), Remote: d.str(), From: d.str()}
	n := min(d.uvarint(), maxTraceList)
	for range n {
		r.To = append(r.To, d.str())
	}
	r.Result = d.str()
	r.Reply = d.str()
	n = min(d.uvarint(), maxTraceList)
	for range n {
		rs := store.TraceReason{Check: d.str(), Result: d.str(), Detail: d.str()}
		rs.Score = float64(d.varint()) / 1000
		r.Reasons = append(r.Reasons, rs)
	}
	return r, d.finish()
}

// AddTraces implements store.TraceStore.
func (db *DB) AddTraces(ctx context.Context, rs []store.TraceRecord) error {
	if len(rs) == 0 {
		return nil
	}
	if len(rs) > store.MaxTraceBatch {
		return fmt.Errorf("store: %d trace records in one call: %w", len(rs), store.ErrTooLarge)
	}
	return db.update(ctx, func(t *tx) error {
		for _, r := range rs {
			id, err := nextCounter(t, counterTrc)
			if err != nil {
				return err
			}
			if r.Time.IsZero() {
				r.Time = time.Now()
			}
			if err := t.set(traceKey(r.Time, id), encodeTrace(r)); err != nil {
				return err
			}
		}
		return nil
	})
}

// traceFilter is a compiled store.TraceQuery.
type traceFilter struct {
	dir      store.TraceDirection
	from, to addrMatch
	ip       netip.Prefix // invalid: any
	anyIP    bool
}

// addrMatch matches an address, or every address at a domain.
type addrMatch struct {
	addr, domain string // lower case; both "": any
}

func newAddrMatch(s string) addrMatch {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return addrMatch{}
	case strings.HasPrefix(s, "@"):
		return addrMatch{domain: s[1:]}
	case !strings.Contains(s, "@"):
		return addrMatch{domain: s}
	}
	return addrMatch{addr: s}
}

func (m addrMatch) any() bool { return m.addr == "" && m.domain == "" }

func (m addrMatch) match(a string) bool {
	a = strings.ToLower(a)
	if m.addr != "" {
		return a == m.addr
	}
	return strings.HasSuffix(a, "@"+m.domain)
}

func compileTraceQuery(q store.TraceQuery) (traceFilter, error) {
	f := traceFilter{dir: q.Direction, from: newAddrMatch(q.From), to: newAddrMatch(q.To), anyIP: q.IP == ""}
	if !f.anyIP {
		if p, err := netip.ParsePrefix(q.IP); err == nil {
			f.ip = p.Masked()
		} else if a, err := netip.ParseAddr(q.IP); err == nil {
			f.ip = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		} else {
			return f, fmt.Errorf("store: trace query: %q is not an IP address or CIDR prefix", q.IP)
		}
	}
	return f, nil
}

func (f *traceFilter) match(r *store.TraceRecord) bool {
	if f.dir != 0 && r.Direction != f.dir {
		return false
	}
	if !f.from.any() && !f.from.match(r.From) {
		return false
	}
	if !f.to.any() {
		ok := false
		for _, to := range r.To {
			if f.to.match(to) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !f.anyIP {
		a, err := netip.ParseAddr(r.RemoteIP)
		if err != nil || !f.ip.Contains(a.Unmap()) {
			return false
		}
	}
	return true
}

// SearchTraces implements store.TraceStore.
func (db *DB) SearchTraces(ctx context.Context, q store.TraceQuery) ([]store.TraceRecord, error) {
	f, err := compileTraceQuery(q)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultTraceLimit
	}
	limit = min(limit, store.MaxTraceLimit)
	if err := db.enter(ctx); err != nil {
		return nil, err
	}
	defer db.leave()
	var out []store.TraceRecord
	err = db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte{pTrace}
		it := txn.NewIterator(o)
		defer it.Close()
		seek := []byte{pTrace, 0xff}
		if !q.Until.IsZero() {
			seek = binary.BigEndian.AppendUint64([]byte{pTrace}, timeKey(q.Until)) // exclusive: every key of Until sorts after it
		}
		since := uint64(0)
		if !q.Since.IsZero() {
			since = timeKey(q.Since)
		}
		scanned := 0
		for it.Seek(seek); it.ValidForPrefix(o.Prefix); it.Next() {
			if scanned++; scanned > maxTraceScan || len(out) >= limit {
				break
			}
			if scanned%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			k := it.Item().Key()
			if len(k) != 17 {
				continue
			}
			if binary.BigEndian.Uint64(k[1:9]) < since {
				break
			}
			if !q.Until.IsZero() && binary.BigEndian.Uint64(k[1:9]) >= timeKey(q.Until) {
				continue
			}
			id := binary.BigEndian.Uint64(k[9:])
			var r store.TraceRecord
			err := it.Item().Value(func(v []byte) error {
				var err error
				r, err = decodeTrace(id, v)
				return err
			})
			if err != nil {
				return corrupt("trace record", err)
			}
			if f.match(&r) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExpireTraces implements store.TraceStore.
func (db *DB) ExpireTraces(ctx context.Context, before time.Time) (int, error) {
	end := timeKey(before)
	if err := db.enter(ctx); err != nil {
		return 0, err
	}
	defer db.leave()
	const chunk = 2000
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var keys [][]byte
		err := db.bdb.View(func(txn *badger.Txn) error {
			return (&tx{txn: txn}).scan([]byte{pTrace}, nil, true, func(k, _ []byte) (bool, error) {
				if len(k) >= 9 && binary.BigEndian.Uint64(k[1:9]) >= end {
					return false, nil
				}
				keys = append(keys, append([]byte(nil), k...))
				return len(keys) < chunk, nil
			})
		})
		if err != nil {
			return total, internal("expire scan", err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		if err := db.deleteKeys(keys); err != nil {
			return total, err
		}
		total += len(keys)
	}
}
