package badgerstore

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Every write goes through one writer goroutine (group commit). It takes
// operations off db.ops in arrival order; consecutive batchable operations
// (deliveries and the writes IMAP and POP3 sessions make: see doc.go,
// Writes) share one transaction and so one fsync, and every other write
// runs alone in its own transaction. Writers therefore never conflict with
// each other, UIDs are allocated without races, and the per-mailbox and
// per-account counters need no locks. Readers share the read-only
// snapshot of the last commit (snapshot.go) and see only committed state.
//
// After answering a round the writer yields its processor
// (runtime.Gosched). The callers it has just woken wait in its
// processor's run queue; without the yield the writer would first go on
// to the next round's commit and sync, a blocking system call that hands
// the processor over only once the runtime's monitor notices it. With
// it they answer their clients first, and their next writes join the
// next round. imaptest's long sessions, side by side: +6-10% commands
// per second, less CPU per command; SMTP ingest unchanged.

// op states.
const (
	opQueued    = 0
	opTaken     = 1 // the writer owns it; the caller waits for done
	opCancelled = 2 // the caller gave up before the writer took it
)

// maxConflictRetries bounds retries of a transaction that badger reports as
// conflicting (only possible with the background purges, whose keys are
// disjoint from live data; kept as a safety net).
const maxConflictRetries = 5

type op struct {
	batch bool // may share a transaction with other batch ops
	// apply does the work in t. It may run more than once (after a
	// conflict, or again in a smaller batch), so it must set its results,
	// not append to them.
	apply func(t *tx) error
	state atomic.Int32
	done  chan error // buffered 1
	err   error      // writer-owned result of the last apply
}

func (o *op) take() bool { return o.state.CompareAndSwap(opQueued, opTaken) }

// write runs apply in the writer goroutine and returns once its transaction
// is durable (or failed). If ctx ends before the writer picks the operation
// up, nothing is stored and ctx's error is returned; after that, write waits
// for the outcome. The caller holds db.closeMu for reading.
func (db *DB) write(ctx context.Context, batch bool, apply func(t *tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{batch: batch && !db.solo, apply: apply, done: make(chan error, 1)}
	select {
	case db.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCancelled) {
			return ctx.Err()
		}
		return <-o.done
	}
}

func (db *DB) writeLoop() {
	defer close(db.writerDone)
	var backlog []*op // taken ops waiting for their turn, in order
	for {
		if len(backlog) == 0 {
			select {
			case o := <-db.ops:
				if o.take() {
					backlog = append(backlog, o)
				}
				continue
			case <-db.stopWriter:
				// Close holds closeMu, so no caller is waiting any more.
				return
			}
		}
		first := backlog[0]
		if !first.batch {
			backlog = backlog[1:]
			db.runAlone(first)
			runtime.Gosched()
			continue
		}
		// Gather the batchable ops at the head of the backlog and whatever
		// else is already queued, without waiting.
		n := 1
		for n < len(backlog) && n < db.maxBatch && backlog[n].batch {
			n++
		}
	gather:
		for n == len(backlog) && n < db.maxBatch {
			select {
			case o := <-db.ops:
				if o.take() {
					backlog = append(backlog, o)
					if !o.batch {
						break gather
					}
					n++
				}
			default:
				break gather
			}
		}
		done := db.runBatch(backlog[:n])
		backlog = backlog[done:]
		runtime.Gosched()
	}
}

// runAlone runs one op in its own transaction and answers it.
func (db *DB) runAlone(o *op) {
	var err error
	for attempt := 0; ; attempt++ {
		txn := db.bdb.NewTransaction(true)
		log := newCommitLog()
		err = o.apply(&tx{txn: txn, log: log})
		if err == nil {
			err = db.commitCalls(txn, log.need, 1)
			db.logged(log, err)
			if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
				continue // Commit discarded txn
			}
			if err != nil {
				err = internal("commit", err)
			}
		}
		txn.Discard()
		break
	}
	o.done <- err
}

// runBatch applies ops in one transaction, commits it and answers the ops
// it covered. It returns how many ops (a prefix of ops) it answered: when
// the transaction fills up, the rest wait for the next round.
func (db *DB) runBatch(ops []*op) int {
	for attempt := 0; ; attempt++ {
		n, err := db.tryBatch(ops)
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			continue
		}
		if err != nil {
			err = internal("commit", err)
			for _, o := range ops[:n] {
				o.err = err
			}
		}
		for _, o := range ops[:n] {
			o.done <- o.err
		}
		return n
	}
}

// tryBatch applies as many of ops as fit in one transaction and commits
// them. It sets each covered op's err (its own failure, which stored
// nothing) and returns how many ops it covered and the commit error.
func (db *DB) tryBatch(ops []*op) (int, error) {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	log := newCommitLog()
	for i, o := range ops {
		t := &tx{txn: txn, ov: make(map[string]ovEntry), log: log}
		o.err = o.apply(t)
		if o.err != nil {
			continue
		}
		if err := t.flush(); err != nil {
			if i == 0 {
				// Alone it does not fit: fail it; the transaction holds
				// part of its writes, so discard it unused.
				o.err = err
				return 1, nil
			}
			// The transaction holds part of o's writes: redo the ops
			// before o in a fresh one; o starts the next round.
			txn.Discard()
			return db.tryBatch(ops[:i])
		}
	}
	err := db.commitCalls(txn, log.need, len(ops))
	db.logged(log, err)
	return len(ops), err
}

// logged tells the listing cache how the transaction that log describes
// ended (err: its commit's error), before its callers are answered, so
// that a caller's next listing finds the cache up to date.
func (db *DB) logged(log *commitLog, err error) {
	// Dropped even if the commit failed: what reached the disk is not
	// known.
	db.ids.drop(log.accounts)
	if err != nil {
		db.lists.failed(log)
		return
	}
	db.lists.committed(log)
	if db.checkLists != nil {
		db.verifyLists()
	}
}

// commitCalls commits txn (db.commit), which carries calls calls, and
// tells Options.OnCommit how long it took.
func (db *DB) commitCalls(txn *badger.Txn, need syncNeed, calls int) error {
	if db.onCommit == nil {
		return db.commit(txn, need)
	}
	start := time.Now()
	err := db.commit(txn, need)
	db.onCommit(time.Since(start), calls)
	return err
}
