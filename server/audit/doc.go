// Package audit is sealmail's audit log: an append-only, hash-chained
// record of every act that changes who may read mail or how long it is
// kept — policy changes and assignments, legal holds, vault moves,
// destruction, erasure decisions, escrow use, account lifecycle changes —
// saying who, when, what and why, never what a message said.
//
// It is a shared service (like server/account): cmd/sealmail builds one
// Service per process and hands it, through small consumer interfaces of
// their own, to the packages whose acts are audited. Record(ctx, Event)
// is all they call.
//
// # The chain
//
// Records are numbered 1, 2, 3, … without gaps. Each carries the SHA-256
// (crypto.AuditHash) of its own fields and of the hash of the record
// before it, so that a record that is changed, removed or moved breaks
// the chain at that point, and every hash depends on all records before
// it. The store keeps the log linear: an append names the head it
// follows and fails with store.ErrConflict if another writer appended
// first (store.Store.AppendAudit); the Service chains its events onto
// the head the store names in that error (store.AuditConflict) and tries
// again, after a short random wait, until the append's time runs out
// (audit.go, conflictWait). Within one process there is one append at a time (group
// commit: the caller that finds none running appends, in one
// transaction, the events of every caller that queued meanwhile, each
// call's events consecutive, then hands the lead to the next waiting
// caller), so conflicts come only from other processes or nodes sharing
// the store. Each append is one durable transaction, so a crash leaves a
// prefix of the chain, never a fork or a half record. Record
// times never go backwards: a record gets its event's time or the head's,
// whichever is later.
//
// Verification (Verifier) recomputes every hash and link from the first
// record given; VerifyStore also compares the end of the chain with the
// store's separate head row. An export (WriteJSON, docs/audit.md) is
// JSON lines that a short script in any language can check with the
// same construction.
//
// # What verification can and cannot detect
//
// A hash chain has no secret: whoever can write the store can rewrite
// the whole log and compute fresh hashes. What the chain gives is that
// any change to a record that was seen before — a hash written down, a
// log line shipped elsewhere, an exported file kept by the officer —
// is detected, because that hash can no longer be reached. So the head
// is published: every append logs the record's sequence number and hash
// (ship the log off the machine), `sealmail audit head` prints it, and
// `sealmail audit verify --anchor SEQ:HASH` or `--file EXPORT` checks
// the store against hashes kept elsewhere.
//
//   - Detected always: a record changed without fixing its hash; a
//     record removed from the middle, or two records swapped (sequence
//     numbers and links break); a record changed with its hash
//     recomputed but not the records after it.
//   - Detected against the head row: records removed from the end while
//     the head row was left alone.
//   - Detected only against an anchor kept elsewhere: records removed
//     from the end together with the head row (truncation), or the log
//     rewritten from some record on with every hash recomputed.
//   - Not detected: any rewrite after the newest anchor that left the
//     machine, by someone who can write the data directory.
//
// Implementation notes:
//
//   - Lock order: qmu (the queue; never held across a store call), mu (held
//     by the caller that appends, across the store calls). Only one
//     caller leads at a time; it appends one batch, then hands the lead
//     to the head of the queue, so no caller serves others for long.
//   - Record uses its caller's context only for its values (the actor):
//     an act that happened is recorded even if the caller has gone away,
//     within appendTimeout.
//   - Events are bounded (see the Max constants): text beyond a bound is
//     cut and marked, so an act that happened is always recorded; a
//     malformed action or detail key is refused. Text is made valid UTF-8
//     so that it survives JSON unchanged and hashes the same in every
//     verifier.
//   - Logs use the fixed keys only; the record's number, action, scope
//     and hash are in the message text.
package audit
