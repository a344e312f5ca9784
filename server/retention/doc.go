// Package retention applies sealmail's retention policy (package policy)
// to the store: it is the shared service that keeps what the law says
// must be kept and destroys what must go, on metadata only, without ever
// opening sealed mail.
//
// A Service holds the policy in force (presets, assignments, holds,
// events) in memory and
//
//   - stamps every delivery with its retention (Store wraps the store for
//     the protocols and the account service), so that the store holds,
//     per message, its class, keep-until, delete-after and the rule that
//     produced them;
//   - recomputes the messages a change covers (ImportPreset, Assign,
//     Unassign, PlaceHold, ReleaseHold, RecordEvent), and the ones the
//     store marked pending (moved, copied, restored), in Settle;
//   - sweeps (Sweep): an index scan of what is due, destroyed in batches,
//     then store.Purger, so that destroyed bytes leave the files too;
//   - erases an account's mail as GDPR Art. 17 asks (Erase), restricting
//     what an obligation keeps;
//   - refuses to let an account under a legal hold be deleted (MayDelete,
//     the account service's DeleteGuard);
//   - explains what applies (Effective) and lists the vault (Vault).
//
// The decision that protects mail is enforced by the store itself (see
// store/retention.go): a message under retention or a hold is vaulted,
// never destroyed, by every path that removes mail, whether or not it
// went through this package. The service keeps the states current and
// the acts audited.
//
// Implementation notes:
//
//   - Consistency: every policy change is written to the store with a new
//     policy generation before the service recomputes anything. A state
//     computed under an older generation (a delivery stamped a moment
//     before the change) is stored pending, and a pending message is
//     protected while any policy is in force; the walk after the change,
//     or the next Settle, computes it. SetRetention updates a message
//     only if its version is the one read, so a concurrent move or
//     expunge always wins and the message is computed again.
//   - Lock order: Service.mu serialises policy changes with their walks,
//     settles, and each batch of a sweep or an erasure, so a hold placed
//     during a sweep is in force before the next batch. Deliveries and
//     reads never take it. The store's own locks come after.
//   - Every act is audited through Options.Auditor (Event); bulk
//     destruction once per batch and account, with counts per class and
//     the rules that decided, never message content.
package retention
