package store

import "context"

// Expunge tombstones: what lets a client that was away learn which
// messages left a mailbox without listing it whole (RFC 7162 §3.2.5
// QRESYNC, §3.2.6 VANISHED).
//
// Every removal of a message from a mailbox that stays (Expunge, the
// source side of MoveMessages, VaultMessages, a live message destroyed by
// DestroyMessages) gives the mailbox a new HighestModSeq and records a
// tombstone (the UID and that mod-sequence), in the same transaction.
// Vanished answers from the tombstones in mod-sequence order, without
// reading the mailbox's messages.
//
// Tombstones are bounded per mailbox (a backend keeps at least the newest
// TombstoneWindow, dropping the oldest removals beyond it, each removal
// whole) and so is one removal: a
// removal of more than TombstoneBulk messages at once records none. Either
// raises the mailbox's tombstone floor (VanishedSince.Floor) to the
// highest mod-sequence whose removals are no longer all known. A mailbox
// that existed before the backend kept tombstones starts with its floor
// at its HighestModSeq of then. DeleteMailbox drops a mailbox's
// tombstones with it.

// TombstoneWindow is how many tombstones a backend keeps per mailbox at
// least: a client away for fewer removals than this resynchronises
// exactly.
const TombstoneWindow = 10000

// TombstoneBulk is the largest removal that records tombstones; a larger
// one raises the floor instead (its transaction is large already, and a
// client that missed it lists the mailbox anyway).
const TombstoneBulk = 2000

// VanishedSince is the answer of Vanished.
type VanishedSince struct {
	// UIDs are the messages removed with a mod-sequence above the
	// question's, ascending, without duplicates (a UID is never reused
	// in a mailbox).
	UIDs []uint32
	// Floor is the mailbox's tombstone floor: removals at or below it
	// may be forgotten.
	Floor uint64
	// Complete: the question's mod-sequence is at or above Floor, so
	// UIDs are every removal since. When it is false, UIDs hold the
	// removals above Floor only, and the caller must treat every UID it
	// knows that is not in the mailbox as removed (RFC 7162 §3.2.10
	// allows VANISHED (EARLIER) to name UIDs the client never had).
	Complete bool
}

// Tombstones is the part of Store that remembers removals.
type Tombstones interface {
	// Vanished returns the UIDs removed from the mailbox with a
	// mod-sequence above since (see VanishedSince). ErrNotFound for a
	// mailbox that does not exist. Its cost grows with the tombstones
	// above since, not with the mailbox's size.
	Vanished(ctx context.Context, address string, mailbox uint64, since uint64) (VanishedSince, error)
}
