// Package store defines sealmail's storage interface and the project's own
// storage types. A Store keeps bytes it cannot read: sealed messages, sealed
// summaries and session keys, wrapped private keys and unlock slots are
// opaque to it. It never imports crypto and no backend type (badger, SQL)
// crosses this API.
//
// Implementation notes:
//   - Every method is one transaction: it either commits durably (fsync'd)
//     before returning nil, or leaves nothing behind.
//   - Byte slices are copied at the boundary in both directions; callers may
//     reuse what they pass in and may keep what they get back. The one
//     exception is Delivery.Blob: Deliver reads it in place, without a
//     copy, and keeps no reference once it returns, so a sealed message
//     is never in memory twice; the caller must not change it meanwhile.
//   - Large blobs are written in pieces (StageBlob) and read in pieces
//     (OpenBlob), so that neither side holds a whole large message. A
//     staged blob stays invisible until one Deliver links it to a
//     mailbox, in the same transaction as every other copy of that
//     message; one that is never linked (the caller gave up, the
//     process stopped) is removed, at the latest by the next open.
//   - Addresses are stored and looked up in the canonical form the caller
//     gives (sealmail uses lower-case "local@domain"); the store does not
//     interpret them.
//   - Mailbox names are case-sensitive except "INBOX", which callers
//     canonicalise. The hierarchy delimiter is "/" (Delimiter).
//   - A mailbox is addressed by its ID (Mailbox.ID), never by its name,
//     in every operation on it or its messages. An ID is never handed out
//     twice, also not across a deleted and re-created account, so it names
//     one mailbox incarnation and its UIDVALIDITY for good (RFC 9051
//     §2.3.1.1). An operation on the ID of a deleted
//     mailbox fails with ErrNotFound and changes nothing. Names are
//     resolved to IDs with Mailbox (and Mailboxes); a rename keeps the ID.
//     Subscriptions are the exception: they are kept by name (RFC 9051
//     §6.3.7), apart from mailboxes, so SetSubscribed takes a name and
//     a subscription outlives its mailbox. Mailbox.Subscribed tells
//     whether the mailbox's current name is subscribed.
//   - A delivery names its target mailbox by ID; ID 0 means the account's
//     INBOX, which always exists. SMTP delivers to 0; a caller that wants
//     another mailbox (APPEND, a special-use mailbox) resolves its ID
//     first and, if it was deleted meanwhile, gets ErrNotFound.
//   - Lookups that serve the public (RCPT resolution, WKD) use
//     PublicAccount, which carries no wrapped key and no slots.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors, checked with errors.Is. Backends wrap them with context;
// no backend defines sentinels of its own.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrExists    = errors.New("store: already exists")
	ErrOverQuota = errors.New("store: over quota")
	ErrClosed    = errors.New("store: closed")
	// ErrTooLarge: one call's writes do not fit in one of the backend's
	// transactions (for example a COPY of tens of thousands of messages).
	// Nothing is stored; the caller may split the work into smaller calls.
	ErrTooLarge = errors.New("store: too much for one transaction")
	// ErrLocked: the store is held by another process (or another open
	// handle in this one); opening it failed.
	ErrLocked = errors.New("store: in use by another process")
	// ErrConflict: a conditional write found the state it depends on
	// changed (PutFilterModel, AppendAudit: another writer stored
	// first). Nothing is stored; the caller rereads and retries.
	ErrConflict = errors.New("store: conflicting write")
)

// Delimiter is the mailbox hierarchy delimiter.
const Delimiter = "/"

// Inbox is the canonical name of the inbox.
const Inbox = "INBOX"

// SlotKind says what secret an unlock slot is opened with. Persisted: only
// grow at the end.
type SlotKind uint8

const (
	SlotPassword    SlotKind = 1
	SlotRecovery    SlotKind = 2
	SlotAppPassword SlotKind = 3
)

func (k SlotKind) String() string {
	switch k {
	case SlotPassword:
		return "password"
	case SlotRecovery:
		return "recovery"
	case SlotAppPassword:
		return "app-password"
	}
	return "unknown"
}

// Slot is one unlock slot: an opaque blob (made by package crypto) that
// wraps the account's master secret under a key stretched from a secret.
type Slot struct {
	ID      uint32 // assigned by the store on AddSlot/CreateAccount; never reused
	Kind    SlotKind
	Label   string // free text for operators, e.g. "thunderbird laptop"
	Created time.Time
	Data    []byte // opaque
}

// Account is one mail account.
type Account struct {
	Address        string // canonical address; the account's identity
	Created        time.Time
	KeyFingerprint string // hex OpenPGP fingerprint of PublicKey
	PublicKey      []byte // binary transferable OpenPGP public key (in the clear)
	WrappedKey     []byte // opaque: the private key sealed under a key derived from the master secret
	Slots          []Slot
	PublishWKD     bool // publish PublicKey in the Web Key Directory
	// AutocryptOff: mail the account sends carries no Autocrypt header
	// with its key (the zero value adds one).
	AutocryptOff bool
	// QuotaBytes is the account's quota setting: a limit in sealed bytes
	// if positive, QuotaDefault (0) for the store's default quota,
	// QuotaNone for no limit whatever the default.
	QuotaBytes int64
	// QuotaLimit is the limit in force, in sealed bytes, 0 for none:
	// QuotaBytes, or the store's default for QuotaDefault. The store
	// fills it in; CreateAccount ignores it.
	QuotaLimit int64
	UsedBytes  int64 // sealed bytes in use; maintained by the store
}

// Quota settings (Account.QuotaBytes, SetQuota) other than a limit.
const (
	// QuotaDefault: the store's default quota applies (a backend option,
	// 0 for none), so changing the default changes every such account.
	QuotaDefault int64 = 0
	// QuotaNone: no limit, whatever the default.
	QuotaNone int64 = -1
)

// PublicAccount is what public lookups (RCPT resolution, WKD) may know of
// an account: no wrapped private key and no unlock slots, so a bug in a
// public path cannot leak them, and a backend can answer it without
// reading them.
type PublicAccount struct {
	Address        string
	Created        time.Time
	KeyFingerprint string
	PublicKey      []byte
	PublishWKD     bool
	AutocryptOff   bool
	QuotaBytes     int64 // the setting, as in Account
	QuotaLimit     int64 // the limit in force, 0 for none, as in Account
	UsedBytes      int64
}

// Public returns a's public view.
func (a Account) Public() PublicAccount {
	return PublicAccount{
		Address: a.Address, Created: a.Created, KeyFingerprint: a.KeyFingerprint, PublicKey: a.PublicKey,
		PublishWKD: a.PublishWKD, AutocryptOff: a.AutocryptOff, QuotaBytes: a.QuotaBytes, QuotaLimit: a.QuotaLimit,
		UsedBytes: a.UsedBytes,
	}
}

// MailboxSpec describes a mailbox to create.
type MailboxSpec struct {
	Name       string
	SpecialUse string // "" or one RFC 6154 attribute, e.g. `\Sent`
	Subscribed bool
}

// Mailbox is a mailbox's metadata and counters.
type Mailbox struct {
	// ID is unique within the account, never 0, and never handed out
	// again by the store, in any account: it names this one mailbox for
	// good, across renames.
	ID          uint64
	Name        string
	SpecialUse  string
	Subscribed  bool
	UIDValidity uint32
	UIDNext     uint32
	// HighestModSeq is the mod-sequence of the mailbox's last change,
	// which every change raises by one. A new mailbox starts at 1, not
	// 0: IMAP reserves 0 for a mailbox without mod-sequences (RFC 7162
	// NOMODSEQ), and a client that keeps 1 still hears of the first
	// change (mod-sequence 2) with CHANGEDSINCE 1.
	HighestModSeq uint64
	Messages      uint32 // number of messages
	Unseen        uint32 // messages without \Seen
	Deleted       uint32 // messages with \Deleted
	SealedSize    int64  // sum of sealed sizes
}

// Message is one message's metadata. Summary and SessionKey are nil until a
// session has built them (or when the listing did not ask for them).
type Message struct {
	UID          uint32
	InternalDate time.Time
	Flags        []string // sorted; system flags in canonical case (`\Seen`)
	ModSeq       uint64
	SealedSize   int64
	// SaveDate is when the message was saved into this mailbox (RFC
	// 8514): delivered, appended, copied or moved here, by the server's
	// clock. Zero for messages stored before the store kept it.
	SaveDate time.Time
	// EmailID identifies the message's content for OBJECTID's EMAILID
	// (RFC 8474): assigned at delivery, unique in the account, and kept
	// by every copy and move, so all copies of one message share it.
	EmailID    uint64
	Summary    []byte // opaque, sealed under the account's index key
	SessionKey []byte // opaque, sealed under the account's index key
}

// Delivery is one sealed copy of a message for one mailbox.
type Delivery struct {
	Account string
	// MailboxID is the target mailbox; 0 means the account's INBOX.
	MailboxID    uint64
	InternalDate time.Time // zero means the time of the commit
	Flags        []string
	// Blob is the sealed message, or nil when Staged names it. Deliver
	// reads it in place and keeps no reference after it returns.
	Blob []byte
	// Staged is a blob written with StageBlob for this account, or nil.
	// A staged blob is linked by at most one Delivery, ever.
	Staged *StagedBlob
	// Retention is the message's retention state, computed before the
	// delivery (server/retention); Arrival zero means the commit time.
	// nil, Pending, or a Gen older than the store's PolicyGen stores it
	// as Pending (class Origin, arrival at the commit): protected until
	// computed. See retention.go.
	Retention *Retention
}

// BlobWriter writes one sealed blob into the store in pieces, ahead of
// the Deliver that links it to a mailbox, so that a large message never
// has to be in memory whole. What it writes is invisible (no listing, no
// usage, no quota) until that Deliver commits, and removed if it never
// does. A BlobWriter is used by one goroutine.
type BlobWriter interface {
	// Write appends p. The store keeps a bounded piece in memory and
	// writes the rest as it goes.
	Write(p []byte) (int, error)
	// Finish writes what is left and returns the staged blob, to be
	// named by one Delivery. The writer takes no more writes.
	Finish(ctx context.Context) (StagedBlob, error)
	// Discard removes what was written, unless a Deliver has linked the
	// blob (then it does nothing). It may be called at any time, more
	// than once; a caller defers it right after StageBlob.
	Discard() error
}

// StagedBlob names a blob written with a BlobWriter and not delivered yet.
type StagedBlob struct {
	Account string // the account it was staged for
	Size    int64  // sealed bytes
	Ref     uint64 // the backend's reference; opaque to callers
}

// Delivered tells where a Delivery landed.
type Delivered struct {
	Account     string
	MailboxID   uint64 // never 0: INBOX's own ID when the Delivery said 0
	Mailbox     string // the mailbox's name at commit, for logs only
	UIDValidity uint32
	UID         uint32
}

// FlagOp is how StoreFlags changes flags.
type FlagOp uint8

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate asks StoreFlags to change flags on some messages.
type FlagUpdate struct {
	UIDs  []uint32
	Op    FlagOp
	Flags []string
	// UnchangedSince, if non-zero, skips messages whose ModSeq is greater and
	// reports them in FlagResult.Modified (RFC 7162 CONDSTORE semantics).
	UnchangedSince uint64
}

// FlagResult is what StoreFlags changed.
type FlagResult struct {
	Changed  []Message // messages whose flags changed, with new flags and ModSeq (no Summary)
	Modified []uint32  // UIDs skipped because of UnchangedSince
}

// ExpungeResult is what Expunge removed.
type ExpungeResult struct {
	UIDs []uint32 // the UIDs removed, ascending
	// ModSeq is the mod-sequence of the removal: the mailbox's
	// HighestModSeq after it, which every message removed shares (see
	// Tombstones). Nothing else has that mod-sequence, and every change
	// below it was committed before. 0 if nothing was removed.
	ModSeq uint64
}

// SummaryUpdate attaches a sealed summary and session key to a message.
type SummaryUpdate struct {
	UID        uint32
	Summary    []byte
	SessionKey []byte
}

// UIDPair maps a source UID to the UID of its copy.
type UIDPair struct {
	Src, Dst uint32
}

// CopyResult is the outcome of CopyMessages/MoveMessages.
type CopyResult struct {
	DstUIDValidity uint32
	Pairs          []UIDPair
	// SrcModSeq, for a move that moved anything, is the mod-sequence of
	// the removal from the source mailbox, as ExpungeResult.ModSeq is an
	// expunge's. 0 for a copy.
	SrcModSeq uint64
}

// ListOptions narrows Messages.
type ListOptions struct {
	FromUID, ToUID uint32 // inclusive range; 0 ToUID means no upper bound
	WithSummary    bool   // fill Summary and SessionKey
}

// DeleteReport says what DeleteAccount destroyed.
type DeleteReport struct {
	Slots     int
	Mailboxes int
	Messages  int
	Bytes     int64
}

// Store is sealmail's storage. All methods are safe for concurrent use.
type Store interface {
	// CreateAccount creates a with its slots (IDs are assigned) and mailboxes
	// in one transaction. ErrExists if the address is taken.
	CreateAccount(ctx context.Context, a Account, mailboxes []MailboxSpec) error
	// Account returns one account with its wrapped key and slots, or
	// ErrNotFound. Only what unlocks or administers the account uses it.
	Account(ctx context.Context, address string) (Account, error)
	// PublicAccount returns an account's public view, or ErrNotFound. It
	// reads neither the wrapped key nor the slots.
	PublicAccount(ctx context.Context, address string) (PublicAccount, error)
	// Accounts lists all accounts ordered by address.
	Accounts(ctx context.Context) ([]Account, error)
	// PublicAccounts lists the public views of all accounts ordered by
	// address.
	PublicAccounts(ctx context.Context) ([]PublicAccount, error)
	// AddSlot adds an unlock slot and returns its ID.
	AddSlot(ctx context.Context, address string, s Slot) (uint32, error)
	// RemoveSlot destroys one slot. ErrNotFound if it does not exist.
	RemoveSlot(ctx context.Context, address string, id uint32) error
	// SetPublishWKD sets whether the key is published in the WKD.
	SetPublishWKD(ctx context.Context, address string, publish bool) error
	// SetAutocrypt sets whether the account's outgoing mail carries an
	// Autocrypt header (Account.AutocryptOff is its negation).
	SetAutocrypt(ctx context.Context, address string, on bool) error
	// SetQuota sets the quota setting: a limit in sealed bytes,
	// QuotaDefault or QuotaNone (see Account.QuotaBytes).
	SetQuota(ctx context.Context, address string, bytes int64) error
	// DeleteAccount crypto-shreds the account: a first durable transaction
	// destroys its slots and wrapped private key, later ones the rest,
	// except messages under retention, which stay in the vault of the
	// former account (FormerAccounts) until destroyed.
	DeleteAccount(ctx context.Context, address string) (DeleteReport, error)

	// CreateMailbox creates a mailbox with a new ID and UIDVALIDITY.
	// ErrExists if the name is taken.
	CreateMailbox(ctx context.Context, address string, m MailboxSpec) (Mailbox, error)
	// Mailbox returns the mailbox now called name, or ErrNotFound.
	Mailbox(ctx context.Context, address, name string) (Mailbox, error)
	// MailboxByID returns the mailbox with this ID, whatever its name now,
	// or ErrNotFound once it is deleted.
	MailboxByID(ctx context.Context, address string, id uint64) (Mailbox, error)
	// Mailboxes lists the account's mailboxes ordered by name.
	Mailboxes(ctx context.Context, address string) ([]Mailbox, error)
	// DeleteMailbox deletes a mailbox and its messages (not its children);
	// messages under retention go to the vault.
	DeleteMailbox(ctx context.Context, address string, id uint64) error
	// RenameMailbox renames a mailbox to newName, and every mailbox below
	// it (its name+Delimiter+…) to the same place below newName, in one
	// transaction. Renamed mailboxes keep their messages, IDs and
	// UIDVALIDITY. ErrExists if a target name is taken; nothing moves
	// then. Renaming INBOX is the caller's business (RFC 9051 §6.3.6).
	RenameMailbox(ctx context.Context, address string, id uint64, newName string) error
	// SetSubscribed subscribes the account to name or unsubscribes it.
	// Subscriptions are kept by name, whether or not a mailbox has it
	// (RFC 9051 §6.3.7): deleting a mailbox keeps its subscription,
	// renaming one moves it. ErrNotFound only for an unknown account;
	// ErrBadName for a name the store would not keep as a mailbox name.
	SetSubscribed(ctx context.Context, address, name string, subscribed bool) error
	// Subscriptions lists the account's subscribed names, sorted.
	Subscriptions(ctx context.Context, address string) ([]string, error)

	// Deliver commits all deliveries in one durable transaction, allocating
	// UIDs race-free, and returns where each landed, in order. If any
	// delivery fails (unknown account or mailbox ID: ErrNotFound; a staged
	// blob that is not this account's or was linked or discarded before:
	// ErrNotFound; quota: ErrOverQuota wrapped with the account; too many:
	// ErrTooLarge) nothing is stored, and staged blobs stay staged.
	Deliver(ctx context.Context, ds []Delivery) ([]Delivered, error)
	// StageBlob starts a blob for the account at address (ErrNotFound if
	// there is none); see BlobWriter.
	StageBlob(ctx context.Context, address string) (BlobWriter, error)
	// Messages lists a mailbox's messages in UID order.
	Messages(ctx context.Context, address string, mailbox uint64, opt ListOptions) ([]Message, error)
	// Blob returns a message's sealed bytes. ErrNotFound if the mailbox or
	// the message does not exist.
	Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error)
	// Blobs returns the sealed bytes of several messages of one mailbox,
	// read together (one snapshot): out[i] is what Blob returns for
	// uids[i], or nil if the mailbox has no message uids[i] (any more).
	// ErrNotFound if the account or the mailbox does not exist. Every
	// blob is returned whole: the caller bounds the batch (reading many
	// small messages costs less this way than one Blob call each).
	Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error)
	// OpenBlob returns a reader of a message's sealed bytes and their
	// size. A large blob is read piece by piece, so memory stays bounded
	// whatever its size. The reader must be closed. If the message is
	// expunged while it is read, a later Read may fail with ErrNotFound.
	OpenBlob(ctx context.Context, address string, mailbox uint64, uid uint32) (io.ReadCloser, int64, error)
	// SetSummaries attaches sealed summaries and session keys. Messages that
	// no longer exist are skipped.
	SetSummaries(ctx context.Context, address string, mailbox uint64, us []SummaryUpdate) error
	// StoreFlags changes flags; each changed message gets a new ModSeq.
	// UIDs that do not exist are ignored.
	StoreFlags(ctx context.Context, address string, mailbox uint64, u FlagUpdate) (FlagResult, error)
	// Expunge removes the given messages and returns the UIDs removed, in
	// ascending order, and the removal's mod-sequence. UIDs that do not
	// exist are ignored. A message under retention goes to the vault
	// instead of being destroyed (see RetentionStore); the caller sees it
	// removed all the same.
	Expunge(ctx context.Context, address string, mailbox uint64, uids []uint32) (ExpungeResult, error)
	// CopyMessages copies messages (blob, flags, summary, session key,
	// internal date) from mailbox src to mailbox dst of the same account.
	// UIDs that do not exist are ignored.
	CopyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (CopyResult, error)
	// MoveMessages is CopyMessages and Expunge in one transaction.
	MoveMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (CopyResult, error)

	// FilterStore is the inbound filter's state (filter.go).
	FilterStore
	// Queue is the outbound queue (queue.go).
	Queue
	// Tracer is the delivery trace (trace.go).
	Tracer
	// AuditLog is the audit log and the escrow keys (audit.go).
	AuditLog
	// RetentionStore is retention: policy data, states, the vault (retention.go).
	RetentionStore
	// Tombstones remembers removals, for QRESYNC (tombstones.go).
	Tombstones

	// Close flushes and closes the store.
	Close() error
}

// DefaultMailboxes are created with every account (RFC 6154 special use).
var DefaultMailboxes = []MailboxSpec{
	{Name: Inbox, Subscribed: true},
	{Name: "Sent", SpecialUse: `\Sent`, Subscribed: true},
	{Name: "Drafts", SpecialUse: `\Drafts`, Subscribed: true},
	{Name: "Trash", SpecialUse: `\Trash`, Subscribed: true},
	{Name: "Junk", SpecialUse: `\Junk`, Subscribed: true},
	{Name: "Archive", SpecialUse: `\Archive`, Subscribed: true},
}
