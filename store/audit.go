package store

import (
	"context"
	"fmt"
	"time"
)

// AuditLog is the audit log, append-only and kept linear by the store,
// and the escrow public keys.
type AuditLog interface {
	// AppendAudit appends records to the audit log in one durable
	// transaction. rs[0].Seq must be the head's Seq+1 (1 on an empty log)
	// and, on a non-empty log, rs[0].Prev the head's Hash; each further
	// record must have the next Seq and the Hash of the one before as its
	// Prev. Otherwise it fails with ErrConflict and stores nothing, so
	// concurrent writers, in this process or others, keep one linear
	// chain; when rs[0] does not follow the head, the error is an
	// *AuditConflict naming the head, for the caller to chain onto
	// without reading it again. At most MaxAuditBatch records per call.
	AppendAudit(ctx context.Context, rs []AuditRecord) error
	// AuditHead returns the last record's Seq, Hash and Time, kept in its
	// own row, updated with every append; Seq 0 if the log is empty.
	AuditHead(ctx context.Context) (AuditHead, error)
	// AuditRecords returns up to limit records from Seq from on, in Seq
	// order (limit ≤ 0 means 1000; at most 10,000).
	AuditRecords(ctx context.Context, from uint64, limit int) ([]AuditRecord, error)

	// AddEscrowKey stores an escrow public key as the key in use, with a
	// new ID, and retires (Retired = k.Created) the key in use before, in
	// one transaction. ErrExists if a key with this fingerprint is known.
	AddEscrowKey(ctx context.Context, k EscrowKey) (EscrowKey, error)
	// EscrowKeys lists every escrow key ever added, oldest first; the one
	// in use, if any, is the last and has a zero Retired.
	EscrowKeys(ctx context.Context) ([]EscrowKey, error)
}

// AuditRecord is one entry of the audit log: who did what, when, to what
// and why. It never holds message content. The store keeps records in
// Seq order and keeps the log linear (AppendAudit); it neither computes
// nor checks Hash, which package crypto defines over the other fields
// and Prev.
type AuditRecord struct {
	Seq    uint64 // 1, 2, 3, … without gaps
	Time   time.Time
	Actor  string
	Action string
	Scope  string
	Reason string
	Detail map[string]string
	Prev   []byte // Hash of record Seq-1; the chain's genesis value for record 1
	Hash   []byte // hash of this record's fields and Prev
}

// AuditHead names the last record of the audit log. Seq 0 (and nil
// Hash) means the log is empty.
type AuditHead struct {
	Seq  uint64
	Hash []byte
	Time time.Time
}

// AuditConflict is AppendAudit's error when the first record does not
// follow the head: Head is the head it found. It is an ErrConflict
// (errors.Is).
type AuditConflict struct {
	Seq  uint64 // the first record's
	Head AuditHead
}

func (e *AuditConflict) Error() string {
	return fmt.Sprintf("store: audit record %d after head %d: %v", e.Seq, e.Head.Seq, ErrConflict)
}

func (e *AuditConflict) Unwrap() error { return ErrConflict }

// MaxAuditBatch is the most records one AppendAudit call may carry.
const MaxAuditBatch = 1000

// EscrowKey is an organisation escrow key: only its public half, which
// mail of producible classes is sealed to in addition to the recipient's
// key. The private half never reaches the store.
type EscrowKey struct {
	ID          uint64 // assigned by AddEscrowKey; never reused
	Fingerprint string // hex OpenPGP fingerprint of PublicKey
	PublicKey   []byte // binary transferable OpenPGP public key
	Created     time.Time
	// Retired is when a newer key replaced this one; zero for the key in
	// use. Mail sealed while it was in use stays sealed to it.
	Retired time.Time
}
