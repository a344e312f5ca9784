package crypto

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// The audit chain. Each record of the audit log carries the SHA-256 of its
// own content and of the record before it, so that changing, removing or
// reordering any record breaks every hash after it. The input of one hash
// is a length-prefixed byte string that a short script in any language can
// rebuild from an exported record (docs/audit.md has one in Python):
//
//	"sealmail audit v1\n"                 domain separation
//	prev                                   32 bytes: the previous record's hash,
//	                                       32 zero bytes for record 1
//	seq                                    8 bytes, big-endian
//	str(time) str(actor) str(action) str(scope) str(reason)
//	count                                  4 bytes, big-endian: detail entries
//	str(key) str(value) …                  per entry, keys in byte order
//
// where str(s) is the 4-byte big-endian length of s's bytes followed by
// them, and time is AuditTimeLayout in UTC. Strings are hashed as the
// bytes they are; the auditor keeps them valid UTF-8 so that they survive
// JSON unchanged.

// AuditHashSize is the size of an audit chain hash: 32, SHA-256.
const AuditHashSize = sha256.Size

// AuditTimeLayout is the one form of a record's time that the chain
// hashes and exports print: UTC, nanoseconds always written, so that a
// time has exactly one spelling.
const AuditTimeLayout = "2006-01-02T15:04:05.000000000Z"

// auditDomain separates audit chain hashes from every other SHA-256 use.
const auditDomain = "sealmail audit v1\n"

// AuditEntry is what the chain hashes of one record.
type AuditEntry struct {
	Seq    uint64
	Time   time.Time
	Actor  string
	Action string
	Scope  string
	Reason string
	Detail map[string]string
}

// AuditGenesis returns the "previous hash" of the first record: 32 zero
// bytes.
func AuditGenesis() []byte { return make([]byte, AuditHashSize) }

// FormatAuditTime returns t in AuditTimeLayout.
func FormatAuditTime(t time.Time) string { return t.UTC().Format(AuditTimeLayout) }

// AuditHash returns the chain hash of e following the record whose hash
// is prev (AuditGenesis for the first).
func AuditHash(prev []byte, e AuditEntry) ([]byte, error) {
	if len(prev) != AuditHashSize {
		return nil, fmt.Errorf("crypto: audit hash: previous hash is %d bytes, want %d", len(prev), AuditHashSize)
	}
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(auditDomain))
	h.Write(prev)
	binary.BigEndian.PutUint64(n[:], e.Seq)
	h.Write(n[:])
	str := func(s string) {
		binary.BigEndian.PutUint32(n[:4], uint32(len(s)))
		h.Write(n[:4])
		h.Write([]byte(s))
	}
	for _, s := range []string{FormatAuditTime(e.Time), e.Actor, e.Action, e.Scope, e.Reason} {
		if uint64(len(s)) > 1<<32-1 {
			return nil, fmt.Errorf("crypto: audit hash: field of %d bytes", len(s))
		}
		str(s)
	}
	keys := make([]string, 0, len(e.Detail))
	for k, v := range e.Detail {
		if uint64(len(k)) > 1<<32-1 || uint64(len(v)) > 1<<32-1 {
			return nil, fmt.Errorf("crypto: audit hash: detail of %d bytes", len(k)+len(v))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte order
	binary.BigEndian.PutUint32(n[:4], uint32(len(keys)))
	h.Write(n[:4])
	for _, k := range keys {
		str(k)
		str(e.Detail[k])
	}
	return h.Sum(nil), nil
}
