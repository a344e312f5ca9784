package badgerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Commits are made durable here, not by badger (doc.go, Durability).
//
// badger v4.9 with SyncWrites on syncs, in every commit, the memtable's
// write-ahead log and also the value log, whether or not the commit wrote
// to it. A flag change or an expunge writes only small values, which stay
// in the LSM tree, so half of its fsyncs were of a file it never touched,
// and each costs a disk cache flush. So badger runs with SyncWrites off
// and every committer calls syncer.sync after its commit and before it
// answers anyone, asking for the value log only when the commit wrote a
// value that goes there, and not at all when it wrote nothing
// (commitLog.need).
//
// With SyncWrites off, badger syncs neither log on its own, so sync must
// cover every log file a commit may have written to:
//   - the memtable's log: badger replaces a full memtable (and its log
//     file, named with the next number) before applying a write, and
//     flushes the old one to a table in the background; until that flush
//     the old log alone holds its writes. So sync follows the numbers:
//     while a file with the next number exists, the current one is synced
//     and the next becomes current, then the current one is synced.
//   - the value log: the same, for its files, when asked.
//
// A memtable's log deleted after its flush holds nothing more: badger
// syncs the table before it records it and deletes the log. Value-log GC
// (DB.gcOnce) rewrites values through ordinary unsynced writes and then
// deletes the old file, so it holds an iterator while it runs (badger
// deletes a rewritten file only once no iterator is open), syncs, and
// then lets go. badger's Close syncs every value-log file and flushes the
// memtable, so a restore (backup.go) is durable once Close returns.
type syncer struct {
	wal, vlog logChain
	mu        sync.Mutex
	commits   atomic.Uint64 // commits finished (counted after txn.Commit)
	walAt     uint64        // commits covered by the last log sync (mu)
	vlogAt    uint64        // commits covered by the last value-log sync (mu)
	walSyncs  atomic.Int64  // memtable-log syncs (tests)
	vlogSyncs atomic.Int64  // value-log syncs (tests)
	// failed is the first sync error (mu): from then on every sync
	// fails (see sync).
	failed error
	// datasync syncs one file's data: datasync, or a failure (tests).
	datasync func(*os.File) error
	// beforeSyncAll, if not nil, is called as syncAll begins (tests).
	beforeSyncAll func()
}

// errSyncFailed is what a sync returns once one has failed.
var errSyncFailed = errors.New("an earlier sync failed; the store takes no writes until it is reopened")

// syncNeed is what a commit must sync: the logs its transaction wrote to.
type syncNeed uint8

const (
	syncNothing syncNeed = iota // it wrote nothing (a flag already set)
	syncLog                     // small values only: the memtable's log
	syncBoth                    // a value for the value log too
)

// needOf is what writing val makes a commit sync.
func needOf(val []byte) syncNeed {
	if len(val) >= vlogMin {
		return syncBoth
	}
	return syncLog
}

// logChain is one of badger's numbered log files: the current one and
// its number.
type logChain struct {
	dir, ext string
	width    int // digits in the file name
	fid      uint64
	f        *os.File // nil until the file exists
	created  bool     // a file was created since the directory was synced
}

// newSyncer starts at the newest memtable log and value-log file in dir,
// where badger has just been opened.
func newSyncer(dir string) (*syncer, error) {
	s := &syncer{
		wal:      logChain{dir: dir, ext: ".mem", width: 5},
		vlog:     logChain{dir: dir, ext: ".vlog", width: 6},
		datasync: datasync,
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open: %v", err)
	}
	for _, e := range ents {
		for _, c := range []*logChain{&s.wal, &s.vlog} {
			if n, ok := c.number(e.Name()); ok && n > c.fid {
				c.fid = n
			}
		}
	}
	for _, c := range []*logChain{&s.wal, &s.vlog} {
		if err := c.open(); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// committed counts a commit that has returned and returns its number,
// for sync.
func (s *syncer) committed() uint64 { return s.commits.Add(1) }

// sync makes commit n (and every commit counted before it) durable: the
// memtable logs, and the value log too if vlog. One sync covers every
// commit counted when it begins, so concurrent committers share it.
//
// Once a sync has failed, every later one fails too (errSyncFailed)
// without trying: after a failed fsync the kernel may have dropped the
// unwritten pages or marked them clean, so a later fsync can succeed
// with an earlier commit lost, and a commit acknowledged then could
// rest on one that is gone. Reopening reads back what is on the disk.
func (s *syncer) sync(n uint64, vlog bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.brokenLocked(); err != nil {
		return err
	}
	if s.walAt >= n && (!vlog || s.vlogAt >= n) {
		return nil
	}
	upTo := s.commits.Load()
	if vlog && s.vlogAt < n {
		if err := s.vlog.sync(s.datasync); err != nil {
			s.failed = err
			return err
		}
		s.vlogSyncs.Add(1)
		s.vlogAt = upTo
	}
	if s.walAt < n {
		if err := s.wal.sync(s.datasync); err != nil {
			s.failed = err
			return err
		}
		s.walSyncs.Add(1)
		s.walAt = upTo
	}
	return nil
}

// broken returns the error every sync returns once one has failed, or
// nil.
func (s *syncer) broken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.brokenLocked()
}

func (s *syncer) brokenLocked() error {
	if s.failed != nil {
		return fmt.Errorf("badgerstore: %w (%v)", errSyncFailed, s.failed)
	}
	return nil
}

// syncAll makes everything committed so far durable, value log included.
func (s *syncer) syncAll() error {
	if s.beforeSyncAll != nil {
		s.beforeSyncAll()
	}
	return s.sync(s.commits.Load()+1, true)
}

func (s *syncer) close() {
	for _, c := range []*logChain{&s.wal, &s.vlog} {
		if c.f != nil {
			c.f.Close()
			c.f = nil
		}
	}
}

// number parses a file name of the chain.
func (c *logChain) number(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, c.ext)
	if !ok || len(base) < c.width {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil
}

func (c *logChain) path(fid uint64) string {
	return filepath.Join(c.dir, fmt.Sprintf("%0*d%s", c.width, fid, c.ext))
}

// open opens the current file if it exists.
func (c *logChain) open() error {
	f, err := os.Open(c.path(c.fid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("badgerstore: sync: %v", err)
	}
	c.f = f
	return nil
}

// sync syncs, with datasync, the files written since the last sync: the
// current one and those after it, up to the newest.
func (c *logChain) sync(datasync func(*os.File) error) error {
	if c.f == nil {
		if err := c.open(); err != nil {
			return err
		}
	}
	for {
		next, err := os.Open(c.path(c.fid + 1))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("badgerstore: sync: %v", err)
		}
		if c.f != nil {
			err := datasync(c.f)
			c.f.Close()
			if err != nil {
				next.Close()
				return fmt.Errorf("badgerstore: sync %s: %v", c.path(c.fid), err)
			}
		}
		c.f, c.fid, c.created = next, c.fid+1, true
	}
	if c.created {
		// The new file's name must survive too.
		if err := syncDir(c.dir); err != nil {
			return fmt.Errorf("badgerstore: sync: %v", err)
		}
		c.created = false
	}
	if c.f == nil {
		return nil
	}
	if err := datasync(c.f); err != nil {
		return fmt.Errorf("badgerstore: sync %s: %v", c.path(c.fid), err)
	}
	return nil
}
