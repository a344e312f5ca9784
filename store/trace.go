package store

import (
	"context"
	"time"
)

// The delivery trace: what happened to each message on its way in
// (inbound verdicts) and out (delivery attempts), kept for the operator
// for a configured time. The store keeps each record's Data opaque: its
// producer encodes, and seals what a sender wrote (addresses, remote
// replies that quote them). In the clear are the record's kind, time and
// Ref, which index it.

// TraceKind says which path a record belongs to. Persisted: only grow at
// the end.
type TraceKind uint8

const (
	TraceInbound  TraceKind = 1 // the MX's verdicts on arriving mail
	TraceOutbound TraceKind = 2 // the outbound queue's attempts, bounces, drops
)

// MaxTraceRefLen bounds TraceRecord.Ref.
const MaxTraceRefLen = 128

// TraceRecord is one entry of the delivery trace.
type TraceRecord struct {
	Kind TraceKind
	Time time.Time // when it happened; zero means the time of the commit
	// Ref names what the record is about, for lookups: a message's
	// transaction id (in its Received field, the logs and queue IDs). 1
	// to MaxTraceRefLen printable ASCII bytes.
	Ref  string
	Data []byte // opaque
	// Seq is set by the store: unique, increasing in commit order, with
	// Time it orders records of the same time.
	Seq uint64
}

// TraceQuery selects trace records of one kind.
type TraceQuery struct {
	Kind TraceKind // required
	// Ref, if not empty, selects that Ref's records only.
	Ref string
	// Since and Until bound Time (inclusive); zero: unbounded.
	Since, Until time.Time
	// After continues a listing: records after this one in (Time, Seq)
	// order. The zero value starts at the beginning.
	After TraceCursor
	// Limit bounds the records returned; ≤ 0: 1000.
	Limit int
}

// TraceCursor is a position in a trace listing: the last record seen.
type TraceCursor struct {
	Time time.Time
	Seq  uint64
}

// Tracer is the store's part of the delivery trace. Every Store has it.
type Tracer interface {
	// AddTraces appends records in one durable transaction (see also
	// QueueChange.Trace).
	AddTraces(ctx context.Context, recs []TraceRecord) error
	// Traces lists records in (Time, Seq) order.
	Traces(ctx context.Context, q TraceQuery) ([]TraceRecord, error)
	// PruneTraces removes the records of kind older than before and
	// returns how many went.
	PruneTraces(ctx context.Context, kind TraceKind, before time.Time) (int, error)
}
