package badgerstore

import (
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Read snapshots (doc.go, Reads while a commit is in flight). A badger
// read transaction takes the newest commit timestamp handed out as its
// read timestamp and then waits until that commit is written, fsync
// included (oracle.readTs: txnMark.WaitForMark). With the writer
// committing back to back under load, nearly every read began during a
// commit and so waited for a sync that holds nothing the reader was
// promised: the commit's callers are not answered yet. So after every
// commit, before its callers are answered, the committer opens one
// read-only transaction at that state and makes it current; reads share
// the current one instead of opening their own. A read then sees every
// write acknowledged before it began (each was answered after its
// snapshot became current) and never waits for a sync.
//
// Sharing: badger documents a Txn as not safe for concurrent use, but a
// read-only one (v4.9) changes nothing on Get or NewIterator but an
// atomic iterator count; Discard, which does write, runs only when the
// last user has released it.

// snapshot is a shared read-only transaction.
type snapshot struct {
	txn  *badger.Txn
	refs int // guarded by snapshots.mu; one of them while current
}

// snapshots holds the current snapshot.
type snapshots struct {
	mu  sync.Mutex
	cur *snapshot // guarded by mu; may be nil
}

// acquire returns the current snapshot, or nil if there is none; a
// snapshot returned must be released.
func (s *snapshots) acquire() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.refs++
	}
	return s.cur
}

// release ends one use of sn; the last discards its transaction.
func (s *snapshots) release(sn *snapshot) {
	s.mu.Lock()
	sn.refs--
	last := sn.refs == 0
	s.mu.Unlock()
	if last {
		sn.txn.Discard()
	}
}

// install makes txn, a fresh read-only transaction, the current
// snapshot, unless the current one is newer (two committers, the writer
// and a background deletion, may install in either order). The caller
// gives up txn.
func (s *snapshots) install(txn *badger.Txn) {
	s.mu.Lock()
	old := s.cur
	if old != nil && old.txn.ReadTs() > txn.ReadTs() {
		s.mu.Unlock()
		txn.Discard()
		return
	}
	s.cur = &snapshot{txn: txn, refs: 1}
	s.mu.Unlock()
	if old != nil {
		s.release(old)
	}
}

// clear drops the current snapshot, before badger is closed. No read may
// be running (the caller holds closeMu for writing).
func (s *snapshots) clear() {
	s.mu.Lock()
	old := s.cur
	s.cur = nil
	s.mu.Unlock()
	if old != nil {
		s.release(old)
	}
}

// committed makes the state a commit just left the current snapshot. Every
// committer calls it after its commit, failed or not, before it answers
// anyone.
func (db *DB) committed() {
	db.snaps.install(db.bdb.NewTransaction(false))
}
