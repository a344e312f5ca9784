package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/sealmail/sealmail/store"
)

var _ store.Store = (*DB)(nil)

// Options configures Open. The zero value is safe and suits a small server.
type Options struct {
	// Logger receives badger's warnings and errors and the store's own
	// background errors. Nil discards them.
	Logger *slog.Logger
	// GCInterval is how often value-log garbage collection runs in the
	// background. Zero means 10 minutes; negative disables the periodic run
	// (DeleteAccount still triggers one).
	GCInterval time.Duration
	// CacheBytes bounds badger's block and index caches together. Zero
	// means 48 MiB.
	CacheBytes int64
	// MaxBatch is the most Deliver calls one group commit gathers. Zero
	// means 128.
	MaxBatch int
	// DefaultQuota is the quota, in sealed bytes, of every account whose
	// own setting is store.QuotaDefault. Zero means none.
	DefaultQuota int64
	// MaxValueBytes is the largest value one call writes whole: a sealed
	// message as Deliver or CopyMessages gets it. The value-log file
	// size follows from it (valueLogFileSize). Zero means
	// DefaultMaxValueBytes.
	MaxValueBytes int64
	// OnCommit is told, after every commit of a write transaction, how
	// long the commit took (fsync included) and how many calls it
	// carried (a group commit carries several Deliver calls). It runs in
	// the writer goroutine, so it must be cheap and must not block. nil:
	// nobody.
	OnCommit func(d time.Duration, calls int)
	// ListCache bounds the listing cache (doc.go, Listing cache) in
	// messages: the metas of recently listed mailboxes kept in memory,
	// about 150 bytes each. Zero means DefaultListCache; negative
	// disables the cache.
	ListCache int
}

// DefaultListCache is Options.ListCache's default: 100,000 messages,
// about 15 MiB; one mailbox of up to 25,000 messages is cached.
const DefaultListCache = 100_000

func listCacheSize(n int) int {
	switch {
	case n == 0:
		return DefaultListCache
	case n < 0:
		return 0
	}
	return n
}

// DB is the badger implementation of store.Store. Create it with Open.
type DB struct {
	// bdb is replaced only by Purge, which holds closeMu for writing and
	// gcMu; every other user holds closeMu for reading (or is the writer,
	// serving those who do) or gcMu.
	bdb          *badger.DB
	bopt         badger.Options // immutable: what bdb was opened with
	log          *slog.Logger
	maxBatch     int
	solo         bool                     // tests: every write alone, as before group commit for sessions' writes
	defaultQuota int64                    // immutable
	staged       stagedIDs                // IDs of staged blobs
	blobRoot     string                   // immutable: the blob files' directory (blobfiles.go)
	onCommit     func(time.Duration, int) // immutable; may be nil
	lists        *listCache               // the listing cache (listcache.go)
	ids          *idCache                 // account IDs for reads (idcache.go)
	snaps        snapshots                // the read snapshot (snapshot.go)
	// durable makes commits durable (durable.go). Replaced only with
	// bdb, by Purge's reopen.
	durable *syncer

	// stageHook, if not nil, is called where a crash opens a window that
	// tests must reach (stage.go, blobfiles.go): "marked", a blob
	// writer's pending marker is durable and its file not created yet;
	// "copy marked", prepareCopies' markers are durable and its links
	// not made yet. Tests set it before the store is used; nil otherwise.
	stageHook func(point string)

	// checkLists, if not nil, has the writer compare every listing-cache
	// entry that names its mailbox's current state with the metas on
	// disk after each commit, and report a difference to it (tests: a
	// write path the cache misses; verifyLists). Set before use.
	checkLists func(error)

	ops        chan *op      // to the writer goroutine
	writerDone chan struct{} // closed when the writer has exited
	stopWriter chan struct{}

	kickGC      chan struct{} // buffered 1: run value-log GC now
	lastQueueGC atomic.Int64  // Unix nanoseconds of the last kick by queueFreed
	stopGC      chan struct{} // closed by Close: the GC and orphan loops end
	gcDone      chan struct{}

	kickOrphans chan struct{} // buffered 1: work through the orphan lists now
	orphansDone chan struct{}

	closeMu sync.RWMutex // held for reading by every call, for writing by Close
	closed  bool         // guarded by closeMu

	// gcMu is held for reading around every commit (commit,
	// badgerUpdate) and for writing around each value-log GC run and
	// Purge's reopen: badger v4.9's GC rewrite reads the memtable's
	// version counter, which commits write, under no common lock (a data
	// race the race detector reports), so the two must not overlap.
	gcMu sync.RWMutex

	// blobsMu is held for reading by each running Backup and for writing
	// by processUnlinks, so that no blob file a backup's snapshot names
	// is unlinked before the backup ends.
	blobsMu sync.RWMutex

	sizes sizeCache // Sizes' last walk of the directory

	// tombSince: mailboxes with a higher ID have kept tombstones since
	// they were created (tombstones.go). Set by Open.
	tombSince uint64

	// deletions counts calls since the last Purge that deleted data, so
	// that a Purge with nothing to do returns at once.
	deletions atomic.Int64
}

// Open opens (creating if needed) the store in dir. The directory is made
// private (mode 0700). If another process holds dir, the error wraps
// store.ErrLocked. Interrupted deletions are finished before Open returns.
func Open(dir string, opt Options) (*DB, error) {
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bdb, bo, err := openBadgerOptions(dir, opt, logger)
	if err != nil {
		return nil, err
	}
	durable, err := newSyncer(dir)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	db := &DB{
		bdb:          bdb,
		durable:      durable,
		bopt:         bo,
		blobRoot:     blobDir(dir),
		log:          logger,
		maxBatch:     opt.MaxBatch,
		defaultQuota: max(opt.DefaultQuota, 0),
		onCommit:     opt.OnCommit,
		lists:        newListCache(listCacheSize(opt.ListCache)),
		ids:          newIDCache(),
		ops:          make(chan *op, 256),
		writerDone:   make(chan struct{}),
		stopWriter:   make(chan struct{}),
		kickGC:       make(chan struct{}, 1),
		stopGC:       make(chan struct{}),
		gcDone:       make(chan struct{}),
		kickOrphans:  make(chan struct{}, 1),
		orphansDone:  make(chan struct{}),
	}
	if db.maxBatch <= 0 {
		db.maxBatch = 128
	}
	if err := db.initMailboxIDs(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.initTombstones(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.upgradeAccounts(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.initSubscriptions(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.dropAllStaged(); err != nil {
		bdb.Close()
		return nil, err
	}
	// The upgrades above committed with badger's Update.
	if err := db.durable.syncAll(); err != nil {
		bdb.Close()
		return nil, err
	}
	db.deletions.Store(1) // what an earlier process deleted may still be in the files
	// The writer starts first: the migration and the purges resumed
	// below write through it.
	go db.writeLoop()
	stopWriter := func() {
		close(db.stopWriter)
		<-db.writerDone
		bdb.Close()
	}
	if err := db.migrateRetention(); err != nil {
		stopWriter()
		return nil, err
	}
	if err := db.resumePurges(); err != nil {
		stopWriter()
		return nil, err
	}
	if err := db.migrateChunks(); err != nil {
		stopWriter()
		return nil, err
	}
	if err := db.processUnlinks(); err != nil {
		stopWriter()
		return nil, fmt.Errorf("badgerstore: open: remove blob files: %w", err)
	}
	interval := opt.GCInterval
	if interval == 0 {
		interval = 10 * time.Minute
	}
	go db.gcLoop(interval)
	go db.orphanLoop()
	return db, nil
}

// vlogMin is the smallest value badger keeps in the value log; smaller
// ones stay in the LSM tree (and the memtable's log).
const vlogMin = 1 << 10

// DefaultMaxValueBytes is Options.MaxValueBytes when zero: a sealed
// message of sealmail's default size limit and more.
const DefaultMaxValueBytes = 50 << 20

// Bounds of the value-log file size. badger maps the file it writes at
// twice this size, sparse until written: a fresh store shows a file that
// large, which surprises people and trips backups that do not handle
// sparse files, and each rotation costs only a file creation and an
// fsync, so the file is as small as the largest value allows (badger
// refuses a value larger than the file).
const (
	minValueLogFile = 64 << 20
	maxValueLogFile = 1<<30 - 1 // badger: below 2 GiB
)

// valueLogFileSize is the value-log file size for values of at most
// largest bytes: largest, plus room for the entry's header and the key, rounded up
// to 16 MiB, within [minValueLogFile, maxValueLogFile].
func valueLogFileSize(largest int64) int64 {
	if largest <= 0 {
		largest = DefaultMaxValueBytes
	}
	largest = min(largest, maxValueLogFile)
	const step = 16 << 20
	n := (largest + 1<<20 + step - 1) / step * step
	return min(max(n, minValueLogFile), maxValueLogFile)
}

// openBadger opens (creating if needed) the badger database in dir, mode
// 0700, with the options every sealmail store uses (Open, Restore).
func openBadger(dir string, opt Options, logger *slog.Logger) (*badger.DB, error) {
	bdb, _, err := openBadgerOptions(dir, opt, logger)
	return bdb, err
}

// openBadgerOptions is openBadger that also returns the options badger
// was opened with (Purge reopens it with them).
func openBadgerOptions(dir string, opt Options, logger *slog.Logger) (*badger.DB, badger.Options, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, badger.Options{}, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, badger.Options{}, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	cache := opt.CacheBytes
	if cache <= 0 {
		cache = 48 << 20
	}
	bo := badger.DefaultOptions(dir).
		// Commits are synced by the store (durable.go), not by badger,
		// which would sync the value log on every commit.
		WithSyncWrites(false).
		WithLogger(badgerLogger{logger}).
		WithLoggingLevel(badger.WARNING).
		WithMetricsEnabled(false).
		// 16 MiB memtables, two of them: the memtable arena is allocated up
		// front. A transaction may hold 15% of it (2.4 MiB of keys and small
		// values, about 25,000 entries).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithNumCompactors(2). // 2: the minimum badger accepts
		WithNumGoroutines(2).
		WithBlockCacheSize(cache * 2 / 3).
		WithIndexCacheSize(cache / 3).
		// Message metas, mailbox records and counters (< 1 KiB) stay in the
		// LSM tree, where listing them is cheap; sealed blobs go to the
		// value log, so flag changes never rewrite them.
		WithValueThreshold(vlogMin).
		WithValueLogFileSize(valueLogFileSize(opt.MaxValueBytes)).
		// Tables are written as they are, not snappy-compressed (badger's
		// default), so that every byte the store keeps rests on disk as
		// written and a byte search of the data directory (the at-rest
		// tests) sees all of it: a compressed block can hide a string in
		// back-references. What it would save is small: sealed
		// summaries do not compress, and on a 10,000-message store the
		// tables grow from 2.8 to 3.8 MiB next to 223 MiB of value log,
		// at no measurable CPU cost either way. Tables written
		// compressed before stay readable (the manifest records each
		// table's compression) until compaction rewrites them.
		WithCompression(options.None)
	bdb, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, badger.Options{}, fmt.Errorf("badgerstore: open %s: %w", dir, store.ErrLocked)
		}
		return nil, badger.Options{}, fmt.Errorf("badgerstore: open %s: %v", dir, err)
	}
	return bdb, bo, nil
}

// Close waits for running calls, stops the background goroutines and
// closes badger. Calls after Close return store.ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return store.ErrClosed
	}
	db.closed = true
	db.closeMu.Unlock()
	close(db.stopWriter)
	<-db.writerDone
	close(db.stopGC)
	<-db.gcDone
	<-db.orphansDone
	db.snaps.clear()
	db.durable.close()
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("badgerstore: close: %v", err)
	}
	return nil
}

// enter starts a call; leave must follow if it returns nil.
func (db *DB) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

func (db *DB) leave() { db.closeMu.RUnlock() }

// gcLoop runs value-log GC every interval (if positive) and when kicked.
func (db *DB) gcLoop(interval time.Duration) {
	defer close(db.gcDone)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-db.stopGC:
			return
		case <-tick:
		case <-db.kickGC:
		}
		db.runGC()
	}
}

// runGC rewrites value-log files that are at least half garbage, until none
// is left or the store is closing.
func (db *DB) runGC() {
	if err := db.enter(context.Background()); err != nil {
		return
	}
	defer db.leave()
	start := time.Now()
	for n := 0; n < 64; n++ {
		select {
		case <-db.stopGC:
			return
		default:
		}
		err := db.gcOnce(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) && !errors.Is(err, store.ErrClosed) {
			db.log.Warn("badgerstore: value-log gc", "err", err, "duration", time.Since(start))
		}
		return
	}
}

// gcOnce rewrites at most one value-log file with at least ratio
// garbage, while no commit runs (gcMu): commits wait for one file at
// most. The caller holds closeMu for reading.
func (db *DB) gcOnce(ratio float64) error {
	db.gcMu.Lock()
	defer db.gcMu.Unlock()
	// GC writes the values it keeps without a sync and then deletes the
	// file they came from, unless an iterator is open: so one is, until
	// they are synced (durable.go).
	hold := db.bdb.NewTransaction(false)
	it := hold.NewIterator(badger.IteratorOptions{Prefix: []byte{pScratch}})
	err := db.bdb.RunValueLogGC(ratio)
	if serr := db.durable.syncAll(); serr != nil {
		// The rewritten file stays until the store closes.
		db.log.Error("badgerstore: value-log gc: sync", "err", serr)
		return serr
	}
	it.Close()
	hold.Discard()
	return err
}

// commit commits txn while no value-log GC runs (gcMu) and makes it
// durable (durable.go): need says which logs it wrote to.
func (db *DB) commit(txn *badger.Txn, need syncNeed) error {
	db.gcMu.RLock()
	defer db.gcMu.RUnlock()
	if err := db.durable.broken(); err != nil {
		return err // nothing committed (durable.go, sync)
	}
	err := txn.Commit()
	if err == nil && need != syncNothing {
		if err = db.durable.sync(db.durable.committed(), need == syncBoth); err != nil && !errors.Is(err, errSyncFailed) {
			db.log.Error("badgerstore: sync failed; the store takes no writes until it is reopened", "err", err)
		}
	}
	db.committed()
	return err
}

// badgerUpdate is badger's Update, committed while no value-log GC runs
// and synced, value log included. Everything written after Open uses it,
// badgerUpdateNeed or commit.
func (db *DB) badgerUpdate(fn func(txn *badger.Txn) error) error {
	return db.badgerUpdateNeed(syncBoth, fn)
}

// badgerUpdateNeed is badgerUpdate for fn that writes only to the logs
// need names (durable.go).
func (db *DB) badgerUpdateNeed(need syncNeed, fn func(txn *badger.Txn) error) error {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return db.commit(txn, need)
}

// orphanLoop works through the orphan lists and the blob files to unlink
// (of destroyed large blobs) when kicked, until the store closes.
func (db *DB) orphanLoop() {
	defer close(db.orphansDone)
	for {
		select {
		case <-db.stopGC:
			return
		case <-db.kickOrphans:
		}
		if err := db.enter(context.Background()); err != nil {
			continue // closing: stopGC is closed or about to be
		}
		if err := db.resumeOrphans(0); err != nil {
			db.log.Warn("badgerstore: delete destroyed blobs; the next Open finishes", "err", err)
		}
		if err := db.processUnlinks(); err != nil {
			db.log.Warn("badgerstore: remove destroyed blob files; the next Open finishes", "err", err)
		}
		db.leave()
	}
}

// orphaned asks the orphan loop to run soon, without waiting.
func (db *DB) orphaned() {
	select {
	case db.kickOrphans <- struct{}{}:
	default:
	}
}

// triggerGC asks the GC goroutine to run soon, without waiting.
func (db *DB) triggerGC() {
	select {
	case db.kickGC <- struct{}{}:
	default:
	}
}

// badgerLogger routes badger's log to slog at warning level and up.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
