package store

import (
	"context"
	"time"
)

// Retention: what the store keeps so that mail is kept as long as the law
// says and no longer (package policy decides; server/retention applies
// the decisions). The store holds the policy data (imported presets,
// assignments, legal holds, events) and, per message, the materialised
// outcome of the policy: its class, its keep-until and delete-after
// times, whether a hold covers it. It enforces that outcome itself, so no
// caller can bypass it:
//
//   - Expunge, DeleteMailbox and DeleteAccount destroy a message only if
//     it is not protected (see Retention.Protected). A protected message
//     goes to the account's hidden retention vault instead, in the same
//     transaction as the user's removal: the user's view is exactly as
//     if it had been destroyed (the counters, the quota, every listing),
//     but the sealed blob stays until DestroyMessages removes it.
//   - DestroyMessages is the only call that destroys protected data, and
//     it refuses anything a hold covers, anything not yet computed and
//     anything whose keep-until lies ahead, whatever the caller asks.
//   - A deleted account's vault outlives it (its keys are gone, so only
//     an escrow copy, where there is one, can open it) until the sweeper
//     destroys the last entry; Owner.Former names it meanwhile.
//
// Messages are identified for retention by an ID (RetainedMessage.ID)
// that the store assigns at delivery and keeps for the message's whole
// life, through moves and into the vault (where it is the vault entry's
// ID). A copy is a new message with a new ID.

// Forever is the KeepUntil of a message kept until an event that has not
// happened yet (a rule that starts at "event:NAME").
var Forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Retention is one message's materialised retention state.
type Retention struct {
	// Arrival is when the server accepted the message (never a client's
	// APPEND date); every retention clock starts from it.
	Arrival time.Time
	// Origin is the class decided at delivery, from metadata only (""
	// means "default"); Class is the current class, which moving the
	// message into a mailbox with a class of its own changes. Class ids
	// are the only classification stored, in the clear.
	Origin, Class string
	// KeepUntil: the message may not be destroyed before it. Zero: no
	// minimum; Forever: until an event that has not happened.
	KeepUntil time.Time
	// DeleteAfter: the sweeper destroys the message once it has passed,
	// unless a hold covers it. Zero: no maximum. Never before KeepUntil.
	DeleteAfter time.Time
	// Rule says which preset rules and assignments produced the times
	// (free text for people, at most MaxRuleLen bytes).
	Rule string
	// Held: a legal hold covers the message. It beats every deletion.
	Held bool
	// Locked: KeepUntil comes from a locked rule (SEC 17a-4 style); the
	// store never lowers a locked KeepUntil.
	Locked bool
	// Pending: the store has not got a computed state for the message
	// (delivered without one, moved or copied since, or computed under an
	// older policy generation). While any assignment or active hold
	// exists, a pending message counts as protected; with no policy at
	// all it does not, so a server without retention behaves as if it
	// had none. DestroyMessages never destroys it. Set by the store;
	// SetRetention clears it.
	Pending bool
	// Gen is the policy generation (PolicyGen) the state was computed
	// under. A state computed under an older generation than the store's
	// is stored as Pending.
	Gen uint64
}

// MaxRuleLen bounds Retention.Rule.
const MaxRuleLen = 512

// Protected reports whether a computed state r forbids destroying the
// message at now: held, or before its keep-until.
func (r Retention) Protected(now time.Time) bool {
	return r.Held || r.KeepUntil.After(now)
}

// Owner names whose messages a retention call is about: a live account
// (Former 0), or the vault of a deleted account (Former is the deleted
// account's store-internal number, Address the address it had).
type Owner struct {
	Address string
	Former  uint64
}

// FormerAccount is the retention vault a deleted account left behind.
type FormerAccount struct {
	Owner
	Deleted time.Time
}

// RetainedMessage is one message's retention state and where it is.
type RetainedMessage struct {
	ID         uint64 // the message's retention ID (and vault entry ID)
	MailboxID  uint64 // 0 while in the vault
	UID        uint32 // 0 while in the vault
	Vaulted    bool
	SealedSize int64
	Retention  Retention
	// Version changes with every change of the record; SetRetention
	// updates only the version it read.
	Version uint64
}

// RetentionUpdate sets the computed state of one message.
type RetentionUpdate struct {
	ID        uint64
	Version   uint64 // the Version read; the update is skipped if it changed
	Retention Retention
}

// VaultEntry is one message in an account's retention vault.
type VaultEntry struct {
	ID           uint64
	MailboxID    uint64 // where it was
	Mailbox      string // that mailbox's name then
	UID          uint32 // its UID there
	InternalDate time.Time
	Flags        []string
	SealedSize   int64
	Vaulted      time.Time
	// Reason says why it is in the vault: how the user removed it
	// ("expunge", "mailbox deleted", "account deleted"), or the legal
	// basis recorded by an erasure.
	Reason    string
	Retention Retention
}

// DueMessage is an entry of the sweeper's index: a message that may be
// destroyed from Due on.
type DueMessage struct {
	Owner Owner
	ID    uint64
	Due   time.Time
	// Vaulted: the entry is due because the message's keep-until has
	// passed in the vault; otherwise because its delete-after has passed.
	Vaulted bool
}

// DestroyOptions says what DestroyMessages may destroy.
type DestroyOptions struct {
	// Now is the time the decision is made for; zero means time.Now().
	Now time.Time
	// Due limits destruction to messages whose time has come: a live
	// message past its DeleteAfter, a vaulted one past its KeepUntil (the
	// sweeper). Without it every message that is not protected goes (an
	// erasure).
	Due bool
}

// MessageRef names one message for retention: its owner and its ID.
type MessageRef struct {
	Owner Owner
	ID    uint64
}

// Destroyed is one message DestroyMessages destroyed.
type Destroyed struct {
	Owner      Owner
	ID         uint64
	MailboxID  uint64 // 0 if it was in the vault
	UID        uint32
	Class      string
	Rule       string
	SealedSize int64
	// ModSeq, for a message destroyed from a mailbox (MailboxID not 0),
	// is the mod-sequence of its removal: the mailbox's HighestModSeq
	// after the call, which every message the call destroyed from that
	// mailbox shares (see Tombstones). 0 for a vaulted message.
	ModSeq uint64
}

// Preset is an imported retention preset: its YAML source, kept as the
// officer wrote it (package policy parses it).
type Preset struct {
	ID       string
	Version  int
	Source   []byte
	Imported time.Time
	By       string // who imported it
}

// Assignment applies a preset to a scope.
type Assignment struct {
	Preset string
	// Scope is "org", "domain:D", "user:A" or "mailbox:A#ID" (the
	// mailbox by its never-reused ID, so that a rename keeps it).
	Scope string
	// Class, for a mailbox scope, is the class of every message in that
	// mailbox ("" keeps their own).
	Class string
	// Zone and FiscalYearStart ("MM-DD") override the preset's, "" keeps
	// them.
	Zone            string
	FiscalYearStart string
	Created         time.Time
	By              string
	Reason          string
}

// Hold is a legal hold. While active (Released zero) it beats every
// deletion of what it covers.
type Hold struct {
	ID     uint64 // assigned by AddHold; never reused
	Matter string
	Reason string
	Scope  string // as Assignment.Scope
	// From and To, if not zero, limit the hold to messages that arrived
	// in [From, To).
	From, To      time.Time
	Placed        time.Time
	PlacedBy      string
	Released      time.Time
	ReleasedBy    string
	ReleaseReason string
}

// Active reports whether h is in force.
func (h Hold) Active() bool { return h.Released.IsZero() }

// RetentionEvent records that something that starts a retention period
// ("event:NAME" rules) happened for a scope, e.g. "account-closed" for
// "user:A".
type RetentionEvent struct {
	Name  string
	Scope string
	At    time.Time
	By    string
}

// PurgeReport says what Purger.Purge did.
type PurgeReport struct {
	// Rewritten counts storage files rewritten to drop deleted data.
	Rewritten int
	Duration  time.Duration
}

// Purger is implemented by backends that keep deleted bytes in their files
// until a later rewrite (badger: LSM compaction, value-log GC). Purge
// makes deletion real: once it returns, no data deleted before the call
// is left in the backend's files. It may pause other calls briefly.
type Purger interface {
	Purge(ctx context.Context) (PurgeReport, error)
}

// RetentionStore is the retention part of Store. Every method is one
// transaction unless it says otherwise; lists are ordered as stated.
type RetentionStore interface {
	// PolicyGen returns the policy generation: it grows with every change
	// of presets, assignments, holds and events (each of the calls below
	// that changes them increments it in the same transaction).
	PolicyGen(ctx context.Context) (uint64, error)
	// PutPreset stores an imported preset, replacing one with the same
	// ID.
	PutPreset(ctx context.Context, p Preset) error
	// Presets lists the imported presets by ID.
	Presets(ctx context.Context) ([]Preset, error)
	// PutAssignment adds or replaces the assignment of a.Preset to
	// a.Scope.
	PutAssignment(ctx context.Context, a Assignment) error
	// DeleteAssignment removes an assignment; ErrNotFound if there is
	// none.
	DeleteAssignment(ctx context.Context, preset, scope string) error
	// Assignments lists assignments by scope, then preset.
	Assignments(ctx context.Context) ([]Assignment, error)
	// AddHold stores a new hold with a new ID and returns it.
	AddHold(ctx context.Context, h Hold) (Hold, error)
	// ReleaseHold marks a hold released; ErrNotFound if unknown,
	// ErrExists if released already.
	ReleaseHold(ctx context.Context, id uint64, at time.Time, by, reason string) (Hold, error)
	// Holds lists every hold, released ones included, by ID.
	Holds(ctx context.Context) ([]Hold, error)
	// PutRetentionEvent records an event (replacing the same name and
	// scope).
	PutRetentionEvent(ctx context.Context, e RetentionEvent) error
	// RetentionEvents lists events by scope, then name.
	RetentionEvents(ctx context.Context) ([]RetentionEvent, error)

	// Retained lists up to limit messages of owner (live ones and the
	// vault) with IDs above after, by ID. limit ≤ 0 means 1000.
	Retained(ctx context.Context, owner Owner, after uint64, limit int) ([]RetainedMessage, error)
	// RetainedByUID returns the live messages of a mailbox with these
	// UIDs (those that exist), by UID.
	RetainedByUID(ctx context.Context, address string, mailbox uint64, uids []uint32) ([]RetainedMessage, error)
	// SetRetention stores computed states. An update whose Version is no
	// longer the message's, or whose message is gone, is skipped; so is
	// one computed under an older generation than the store's (it is
	// kept Pending). A locked KeepUntil is never lowered. It returns how
	// many updates were applied.
	SetRetention(ctx context.Context, owner Owner, us []RetentionUpdate) (int, error)
	// PendingRetention lists up to limit messages that need their state
	// computed, by owner and ID.
	PendingRetention(ctx context.Context, limit int) ([]DueMessage, error)
	// DueMessages lists up to limit entries of the sweeper's index whose
	// time is at or before now, by due time, after the entry after (zero
	// for the start).
	DueMessages(ctx context.Context, now time.Time, after DueMessage, limit int) ([]DueMessage, error)
	// DestroyMessages destroys messages for good, in one transaction:
	// blob, summary, metadata, vault entry, retention record. It skips
	// (without error) every message that is protected at opt.Now, pending,
	// not due when opt.Due, or gone (an owner that is gone included), and
	// returns what it destroyed, in the order asked. At most
	// MaxDestroyBatch messages per call; they may belong to several
	// owners (a sweep batch in due order mixes accounts).
	DestroyMessages(ctx context.Context, refs []MessageRef, opt DestroyOptions) ([]Destroyed, error)
	// ExpungeReport is Expunge that also says which of the removed UIDs
	// went to the vault rather than being destroyed.
	ExpungeReport(ctx context.Context, address string, mailbox uint64, uids []uint32) (removed ExpungeResult, vaulted []uint32, err error)
	// VaultMessages moves live messages into the vault with reason,
	// whatever their state (a restriction of processing, GDPR Art. 18),
	// and returns the UIDs moved.
	VaultMessages(ctx context.Context, address string, mailbox uint64, uids []uint32, reason string) ([]uint32, error)
	// SetVaultReason changes the reason recorded for vault entries.
	SetVaultReason(ctx context.Context, owner Owner, ids []uint64, reason string) error
	// Vault lists owner's vault, by ID.
	Vault(ctx context.Context, owner Owner) ([]VaultEntry, error)
	// VaultBlob returns the sealed message of owner's vault entry id
	// (the account's own key, or an escrow key, opens it: escrow export
	// produces vaulted mail, also a deleted account's). ErrNotFound if
	// there is no such entry.
	VaultBlob(ctx context.Context, owner Owner, id uint64) ([]byte, error)
	// RestoreFromVault moves a live account's vault entry back into the
	// mailbox with ID mailbox (0: INBOX) under a new UID, and returns
	// where it landed. ErrNotFound if there is no such entry.
	RestoreFromVault(ctx context.Context, address string, id, mailbox uint64) (Delivered, error)
	// FormerAccounts lists the vaults of deleted accounts.
	FormerAccounts(ctx context.Context) ([]FormerAccount, error)
}

// MaxDestroyBatch bounds one DestroyMessages call.
const MaxDestroyBatch = 1000
