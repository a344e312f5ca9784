package store

import (
	"context"
	"io"
	"time"
)

// The outbound queue. Mail that local users send to remote recipients
// waits here until a remote server takes it or it bounces. The store
// keeps each entry's envelope (Meta) and each message (the body) as
// opaque bytes: the queue seals both under the server's queue key
// before they get here. In the clear are only what scheduling needs:
// an entry's ID, when it was queued, when it is due, how often it was
// tried, and the body's sealed size.
//
// An entry is one message for one destination; a message for several
// destinations is several entries sharing one body, which is destroyed
// with the last entry that names it. Every change (new entries, updates
// after an attempt, removals, the local copies and bounces that go with
// them, trace records) is one durable transaction: UpdateQueue.

// MaxQueueIDLen bounds a queue entry ID.
const MaxQueueIDLen = 64

// QueueEntry is one message waiting for one destination.
type QueueEntry struct {
	// ID is chosen by the caller: unique, 1 to MaxQueueIDLen printable
	// ASCII bytes. IDs order the listing (QueueEntries).
	ID       string
	Created  time.Time // when it was queued
	Next     time.Time // when it is due for its next attempt
	Attempts int       // attempts made so far
	// Meta is opaque (sealed by the queue): envelope, recipients and
	// their state. Replaced whole by QueueUpdate.
	Meta []byte
	// Body is the store's reference to the entry's body, set by the
	// store; opaque to callers.
	Body uint64
	// Size is the body's sealed size, set by the store.
	Size int64
}

// QueueBody is the sealed message new entries share: inline bytes or a
// blob written with StageQueueBody.
type QueueBody struct {
	// Blob is the sealed message, or nil when Staged names it. Like
	// Delivery.Blob it is read in place, without a copy, and not kept
	// after UpdateQueue returns.
	Blob []byte
	// Staged is a blob written with StageQueueBody, linked by this
	// change; a staged blob is linked at most once, ever.
	Staged *StagedBlob
}

// QueueUpdate replaces the state of an entry after an attempt.
type QueueUpdate struct {
	ID       string
	Next     time.Time
	Attempts int
	Meta     []byte // nil keeps the old Meta
}

// QueueChange is one durable transaction on the queue. Every part is
// optional; all of it is stored, or none.
type QueueChange struct {
	// Body is a new message for the entries of Add, which share it.
	// Required with Add, refused without.
	Body *QueueBody
	// Add are new entries (ErrExists if an ID is taken). Body, Size are
	// set by the store.
	Add []QueueEntry
	// Update changes entries (ErrNotFound if one is gone).
	Update []QueueUpdate
	// Remove destroys entries (ErrNotFound if one is gone); a body that
	// no entry names any more is destroyed with them.
	Remove []string
	// Deliver are local copies committed with the change, as Deliver
	// commits them (a submitted message's local recipients, a bounce for
	// a local sender).
	Deliver []Delivery
	// Trace records are appended with the change (see AddTraces).
	Trace []TraceRecord
}

// QueueCursor is a position in due order: entries due at Next, and
// among those, IDs after ID.
type QueueCursor struct {
	Next time.Time
	ID   string
}

// Queue is the store's part of the outbound queue. Every Store has it.
type Queue interface {
	// StageQueueBody starts a large queue body, written in pieces ahead
	// of the UpdateQueue that links it (see BlobWriter). Its StagedBlob
	// has no Account.
	StageQueueBody(ctx context.Context) (BlobWriter, error)
	// UpdateQueue commits c in one durable transaction and returns where
	// c.Deliver's copies landed, in order. On any failure (an unknown or
	// taken ID, a staged body that is not pending, a local delivery that
	// fails as Deliver fails) nothing is stored.
	UpdateQueue(ctx context.Context, c QueueChange) ([]Delivered, error)
	// QueueEntry returns one entry, or ErrNotFound.
	QueueEntry(ctx context.Context, id string) (QueueEntry, error)
	// QueueEntries lists entries in ID order: those whose ID starts
	// with prefix ("" for all), after the ID after ("" from the
	// start), at most limit (≤ 0: all).
	QueueEntries(ctx context.Context, prefix, after string, limit int) ([]QueueEntry, error)
	// QueueDue lists entries due at or before until, in due order
	// (Next, then ID), strictly after the cursor (the zero cursor: from
	// the start), at most limit (≤ 0: all).
	QueueDue(ctx context.Context, after QueueCursor, until time.Time, limit int) ([]QueueEntry, error)
	// QueueLen returns the number of entries.
	QueueLen(ctx context.Context) (int, error)
	// OpenQueueBody returns a reader of an entry's sealed body and its
	// size, read piece by piece like OpenBlob. ErrNotFound if the entry
	// does not exist; a read may fail with ErrNotFound if it is removed
	// meanwhile. The reader must be closed.
	OpenQueueBody(ctx context.Context, id string) (io.ReadCloser, int64, error)
}
