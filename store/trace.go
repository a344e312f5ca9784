package store

import (
	"context"
	"time"
)

// The delivery trace: one record per inbound transaction outcome and per
// outbound delivery attempt, kept for a configured time, so that an
// operator can tell why a message was accepted, filed, refused, deferred
// or bounced. A record never holds message content: no subject, no body,
// no header but the addresses of the envelope. Inbound (server/smtp)
// and outbound (the queue) records share this one schema and table.

// TraceDirection says which way a traced message travelled. Persisted:
// only grow at the end.
type TraceDirection uint8

const (
	TraceInbound  TraceDirection = 1 // received by the MX
	TraceOutbound TraceDirection = 2 // a delivery attempt to a remote server
)

func (d TraceDirection) String() string {
	switch d {
	case TraceInbound:
		return "inbound"
	case TraceOutbound:
		return "outbound"
	}
	return "unknown"
}

// TraceRecord is one entry of the delivery trace.
type TraceRecord struct {
	// ID is assigned by AddTraces: increasing, never reused.
	ID        uint64
	Time      time.Time
	Direction TraceDirection
	// Message names the transaction (inbound: the id in the Received
	// field and the 250 reply) or the queue entry (outbound).
	Message string
	// RemoteIP is the other server's address: the client (inbound) or
	// the MX connected to (outbound). May be empty.
	RemoteIP string
	// Remote is the other server's name: the HELO name (inbound) or the
	// MX host (outbound). May be empty.
	Remote string
	// From is the envelope sender, "" for the null path <>.
	From string
	// To are the envelope recipients this record is about.
	To []string
	// Result is the outcome, one word: for inbound "delivered", "junk",
	// "refused", "deferred"; for outbound "delivered", "deferred",
	// "bounced", "expired".
	Result string
	// Reply is the SMTP reply that ended it: the one sent (inbound) or
	// received (outbound), e.g. "554 5.7.1 …". May be empty.
	Reply string
	// Reasons are the checks and facts behind Result, in the order they
	// were made.
	Reasons []TraceReason
}

// TraceReason is one check or fact of a TraceRecord: an SPF result, a
// block list hit, a spam score, the TLS of an attempt.
type TraceReason struct {
	// Check names it, e.g. "spf", "dkim", "dmarc", "dnsbl", "country",
	// "allow", "deny", "greylist", "spam", "mx", "tls".
	Check string
	// Result is its outcome, e.g. "pass", "fail", "listed", "none".
	Result string
	// Detail says more without content: domains, zone names, list entry
	// IDs, weights. May be empty.
	Detail string
	// Score is what it added to the spam score, 0 if nothing.
	Score float64
}

// TraceQuery selects trace records. Zero fields select everything.
type TraceQuery struct {
	Direction TraceDirection // 0: both
	// From and To match the envelope sender or any recipient: an
	// address (compared without regard to case), or a domain, written
	// "example.org" or "@example.org", matching every address at it.
	From, To string
	// IP matches RemoteIP: an address, or a CIDR prefix containing it.
	IP string
	// Since and Until bound Time (Since inclusive, Until exclusive).
	Since, Until time.Time
	// Limit bounds the records returned, newest first. 0 means
	// DefaultTraceLimit; at most MaxTraceLimit.
	Limit int
}

// Limits of SearchTraces and AddTraces.
const (
	DefaultTraceLimit = 100
	MaxTraceLimit     = 10000
	// MaxTraceBatch is the most records one AddTraces call may carry.
	MaxTraceBatch = 1000
)

// TraceStore keeps the delivery trace.
type TraceStore interface {
	// AddTraces stores records in one durable transaction, assigning
	// their IDs (the caller's ID fields are ignored). At most
	// MaxTraceBatch records.
	AddTraces(ctx context.Context, rs []TraceRecord) error
	// SearchTraces returns the records q selects, newest first.
	SearchTraces(ctx context.Context, q TraceQuery) ([]TraceRecord, error)
	// ExpireTraces removes records older than before and returns how
	// many it removed.
	ExpireTraces(ctx context.Context, before time.Time) (int, error)
}
