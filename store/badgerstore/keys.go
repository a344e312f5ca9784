package badgerstore

import "encoding/binary"

// Key prefixes. Each table is one prefix byte followed by big-endian
// integers (so keys sort numerically) and, last, at most one string. The
// layout maps one to one onto SQL tables with the same primary keys; see
// doc.go. Persisted: never reuse a prefix.
const (
	pCounter  = 'c' // c name                  -> uint64 (global counters)
	pAccount  = 'a' // a address               -> account record
	pUsage    = 'u' // u acct                  -> usage (bytes in use, last blob ID)
	pSlot     = 's' // s acct slot             -> slot record
	pMboxName = 'n' // n acct name             -> mailbox id
	pMailbox  = 'm' // m acct mbox             -> mailbox record
	pMeta     = 'i' // i acct mbox uid         -> message meta (names its blob ID)
	pBlob     = 'b' // b acct blob             -> sealed message
	pSummary  = 'y' // y acct blob             -> sealed summary + session key
	pPurge    = 'g' // g acct mbox             -> pending purge marker (mbox 0: whole account)
	pOrphans  = 'o' // o acct seq              -> blob IDs whose blobs and summaries are to be deleted
	pChunk    = 'k' // k acct blob seq:4       -> one piece of a staged (large) blob
	pPending  = 'p' // p acct blob             -> staged blob not yet delivered: "" while written, then its size
	pSubscr   = 'r' // r acct name             -> (empty) a subscription, kept by name (RFC 9051 §6.3.7)
	// The inbound filter (filter.go); acct 0 is the organisation.
	pFilterRule  = 'F' // F acct id             -> filter rule
	pFilterModel = 'Y' // Y acct                -> spam classifier model: generation, key, data
	pGreylist    = 'G' // G key                 -> greylist entry

	// The outbound queue (queue.go) and the delivery trace (trace.go).
	// Upper case: the lower-case letters are the mailbox tables'.
	pQueue       = 'Q' // Q id                    -> queue entry
	pQueueDue    = 'W' // W next:8 id             -> (empty) due index
	pQueueBody   = 'B' // B body:8                -> queue body: entries naming it, size, staged
	pQueueInline = 'C' // C body:8                -> a small sealed queue body
	pTrace       = 'T' // T kind:1 time:8 seq:8   -> trace record: ref, data
	pTraceRef    = 'R' // R kind:1 len:1 ref time:8 seq:8 -> (empty) index by ref

	// The audit log and the escrow keys (audit.go).
	pAudit    = 'l' // l seq                   -> audit record
	pAuditTop = 'h' // h                       -> audit log head: seq, hash, time (one row)
	pEscrow   = 'e' // e id                    -> escrow public key record
)

// Names of the global counters (pCounter). Persisted.
const (
	counterAcc  = "account"     // account IDs
	counterMbox = "mailbox"     // mailbox IDs, never handed out twice
	counterUV   = "uidvalidity" // last UIDVALIDITY handed out
	// counterSubs marks that subscriptions have their own table (pSubscr)
	// instead of a flag in each mailbox record.
	counterSubs = "subscriptions"
	counterRule = "filterrule" // filter rule IDs
	counterQLen = "queue"      // entries in the outbound queue
	counterSeq  = "trace"      // last trace record Seq handed out
	counterEsc  = "escrow"     // escrow key IDs
)

func counterKey(name string) []byte { return append([]byte{pCounter}, name...) }

func accountKey(address string) []byte { return append([]byte{pAccount}, address...) }

func acctKey(p byte, acct uint64) []byte {
	k := make([]byte, 9, 9+8+4)
	k[0] = p
	binary.BigEndian.PutUint64(k[1:], acct)
	return k
}

func usageKey(acct uint64) []byte { return acctKey(pUsage, acct) }

// blobKey is the key of a blob or summary (p is pBlob or pSummary).
func blobKey(p byte, acct, blob uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(p, acct), blob)
}

func slotKey(acct uint64, id uint32) []byte {
	return binary.BigEndian.AppendUint32(acctKey(pSlot, acct), id)
}

func mboxNameKey(acct uint64, name string) []byte {
	return append(acctKey(pMboxName, acct), name...)
}

func subscriptionKey(acct uint64, name string) []byte {
	return append(acctKey(pSubscr, acct), name...)
}

func mailboxKey(acct, mbox uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pMailbox, acct), mbox)
}

// msgPrefix is the prefix of one mailbox's rows in a per-message table.
func msgPrefix(p byte, acct, mbox uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(p, acct), mbox)
}

func metaKey(acct, mbox uint64, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(msgPrefix(pMeta, acct, mbox), uid)
}

// uidOf returns the UID at the end of a per-message key.
func uidOf(key []byte) uint32 { return binary.BigEndian.Uint32(key[len(key)-4:]) }

func purgeKey(acct, mbox uint64) []byte { return msgPrefix(pPurge, acct, mbox) }

func orphansKey(acct, seq uint64) []byte { return msgPrefix(pOrphans, acct, seq) }

func putU64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func auditKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{pAudit}, seq) }

func auditHeadKey() []byte { return []byte{pAuditTop} }

func escrowKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{pEscrow}, id) }
