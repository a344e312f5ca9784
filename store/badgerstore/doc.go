// Package badgerstore is sealmail's embedded storage backend: store.Store on
// a badger (github.com/dgraph-io/badger/v4) database in one directory. It is
// the only package that imports badger; no badger type or error crosses its
// API. It passes the conformance suite in store/storetest.
//
// # Key layout
//
// Every table is one prefix byte followed by big-endian integers (so keys
// sort numerically) and at most one trailing string. Each maps onto a SQL
// table with the same primary key; nothing relies on badger-only features
// (no TTLs, no merge operators, no key versions).
//
//	c <name>                 -> uint64         global counters: "account", "mailbox",
//	                                           "uidvalidity", "filterrule", "queue",
//	                                           "trace", "escrow", "tombstones"
//	a <address>              -> account        version, ID (8 bytes), created, fingerprint,
//	                                           public key, WKD, quota, last slot ID,
//	                                           wrapped key (last: public lookups skip it)
//	u <acct>                 -> usage          bytes in use, last blob ID (16 bytes)
//	s <acct> <slot:4>        -> slot           kind, created, label, opaque data
//	n <acct> <name>          -> mailbox ID     name index; its order is Mailboxes' order
//	m <acct> <mbox:8>        -> mailbox        name, special use, subscribed, UIDVALIDITY,
//	                                           UIDNEXT, HIGHESTMODSEQ, exact counters
//	i <acct> <mbox:8> <uid:4> -> meta          date, MODSEQ, sealed size, blob ID, flags
//	b <acct> <blob:8>        -> sealed message (opaque)
//	y <acct> <blob:8>        -> summary        sealed summary + sealed session key (opaque)
//	g <acct> <mbox:8>        -> (empty)        purge marker: a deletion in progress
//	                                           (mbox 0: the whole account)
//	o <acct> <seq:8>         -> blob IDs       blobs still to delete, left by older
//	                                           versions (a large Expunge, a destroyed
//	                                           large blob's pieces)
//	k <acct> <blob:8> <seq:4> -> piece         one piece of a large blob of an older
//	                                           version; Open moves them to files
//	p <acct> <blob:8>        -> size or empty  a staged blob not delivered yet (its
//	                                           file may exist)
//	K <acct> <blob:8>        -> size           a large blob's file: blobs/<shard>/<blob>
//	U <blob:8>               -> acct           a blob file to unlink (its blob is
//	                                           destroyed, or was never delivered)
//	F <acct> <id:8>          -> filter rule    owner, action, kind, value, note, created
//	                                           (acct 0: the organisation's)
//	Y <acct>                 -> filter model   generation, opaque key, opaque data
//	                                           (acct 0: the organisation's)
//	G <key>                  -> greylist       first, last, passes (key: a hash)
//	Q <id>                   -> queue entry    created, next, attempts, body, size,
//	                                           sealed meta (queue.go)
//	W <next:8> <id>          -> (empty)        the queue's due index
//	B <body:8>               -> queue body     entries naming it, size, staged
//	C <body:8>               -> sealed body    a small queue body; a large one is
//	                                           staged under account ID 0 (p, K)
//	T <kind:1> <time:8> <seq:8> -> trace record ref, opaque data (trace.go)
//	R <kind:1> <len:1> <ref> <time:8> <seq:8> -> (empty) trace index by ref
//	l <seq:8>                -> audit record   time, actor, action, scope, reason,
//	                                           details, prev hash, hash
//	h                        -> audit head     seq, time and hash of the last record
//	e <id:8>                 -> escrow key     created, retired, fingerprint, public key
//	w <acct>                 -> address        the account's address (the sweeper's
//	                                           index names accounts by ID)
//	t <acct> <blob:8>        -> retention      where the message is (mailbox, UID or the
//	                                           vault), size, arrival, classes, keep-until,
//	                                           delete-after, rule, held/locked/pending,
//	                                           policy generation, version
//	x <due:8> <kind> <acct> <blob:8> -> ()     the sweeper's index: kind 'd' a live
//	                                           message at its delete-after, 'k' a
//	                                           vaulted one at its keep-until
//	q <acct> <blob:8>        -> ()             records whose state is to be computed
//	v <acct> <blob:8>        -> vault entry    a removed message kept for retention:
//	                                           its meta, mailbox, UID, time, reason
//	f <acct>                 -> former account the vault of a deleted account: address,
//	                                           deletion time
//	j <acct> <seq:8>         -> disposals      messages of a large Expunge still to be
//	                                           vaulted or destroyed
//	P <id>                   -> preset         imported retention preset (YAML source)
//	A <scope> 0 <preset>     -> assignment     class, zone, fiscal year, who, why
//	H <id:8>                 -> hold           matter, reason, scope, range, placed,
//	                                           released
//	E <scope> 0 <name>       -> event          when it happened, who recorded it
//	z                        -> (scratch)      written and dropped by Purge
//	V <acct> <mbox:8> <modseq:8> <uid:4> -> () a removal's tombstone (tombstones.go)
//	X <acct> <mbox:8>        -> tombstones     the mailbox's tombstone floor and count
//
// A message's retention record is keyed by its blob ID, which stays the
// same through moves and into the vault, so a move rewrites the record
// (mailbox, UID, pending) but not the index; the index entry moves only
// when the times that decide it change, or when the message enters or
// leaves the vault. The rule that a protected message is vaulted, never
// destroyed, is applied in the transaction that removes it (Expunge,
// the chunks of DeleteMailbox's and DeleteAccount's purges): dispose
// reads the record there.
//
// <acct> is an 8-byte account ID from the "account" counter, so a
// re-created address never meets the rows of its deleted predecessor.
// <mbox> comes from the global "mailbox" counter, so a mailbox ID is never
// handed out twice, in any account: a deleted mailbox's ID and the
// UIDVALIDITY that goes with it name nothing ever again. Stores written
// before these counters existed are brought up to date by Open
// (migrate.go): the "mailbox" counter starts above every ID handed out
// before, account records written as JSON (version 1) are rewritten
// in the binary form, and mailboxes created before new ones started at
// HIGHESTMODSEQ 1 that nothing has changed since, still at 0 (which IMAP
// reports as NOMODSEQ), are raised to 1, once (raiseModSeqs).
// Binary records start with a version byte and use varints; the meta that
// every SELECT lists is about 30 bytes plus its flags. Metas, mailboxes and
// counters are small and stay in badger's LSM tree; blobs (and summaries
// above 1 KiB) go to the value log. Because the blob and summary are keyed
// by blob ID, not by mailbox and UID, a flag change rewrites only the meta,
// and a MOVE rewrites only metas. A COPY gets a new blob ID and a copy of
// the bytes (for a large blob, a hard link to its file).
//
// Large blobs are files, outside badger, in the directory blobs: one
// file per blob, blobs/<shard>/<blob ID as 16 hex digits>, the shard
// being the ID's low byte as two hex digits, mode 0600. A file holds the
// sealed bytes only, the same bytes a small blob's value holds in
// badger.
//
// # Implementation notes
//
// Large blobs (stage.go, blobfiles.go): a blob written through
// StageBlob (sealmail stages every message above 1 MiB) goes to its own
// file with write calls, never through badger, whose value log is a
// shared memory map: a large message in badger stays resident in the
// process (as clean file pages, counted in its RSS) until the kernel
// reclaims them. Its blob ID has the top bit set and comes from the
// global "staged" counter (reserved in blocks of 4096), so it never
// meets an ID from the account's own counter. A durable pending marker p
// comes before the file; Finish syncs the file and its directory and
// then writes the size into the marker (a large blob handed to Deliver
// in memory gets its marker with the size at once, one transaction
// fewer: only Deliver knows its ID, and it links the blob after the
// sync). The Deliver that links it
// replaces the marker with the file record K in the transaction that
// writes the meta, so a blob is linked once at most and a file without
// a K record always has a marker: Discard removes it, and Open removes
// whatever is still marked (a crash while writing, or between Finish
// and the link). The marker transactions read the account record, so
// they conflict with, and cannot land after, a DeleteAccount's shredding
// transaction; the purge that follows leaves the markers to the writers
// still at work (their files may come after it) and to Open.
// CopyMessages links each large blob's file under a new ID
// (a hard link, marked until its transaction commits). The transaction
// that destroys a large blob deletes its K record and writes an unlink
// entry U; the orphan loop (and Expunge and the purges, before they
// return) unlinks the files, syncs their directories and deletes the
// entries, and Open finishes what a crash left: the store never walks
// its blob directory. Reading: Blob reads a large blob's file whole;
// OpenBlob returns a reader of the file, opened after the read
// transaction ended. Inline blobs given to Deliver are not copied:
// badger reads them until the commit, before Deliver returns. Open
// moves the pieces (k) in which older versions kept large blobs into
// files.

// Quotas: an account's setting is a limit, store.QuotaNone or
// store.QuotaDefault, which means Options.DefaultQuota, resolved when
// the account is read and when Deliver and CopyMessages check it.
//
// Writes: one writer goroutine performs every write (writer.go). Callers
// hand it an operation and wait. The writes of mail traffic and of
// sessions are batchable: Deliver, StoreFlags, Expunge (up to
// inlineExpunge messages), CopyMessages, MoveMessages, SetSummaries,
// SetSubscribed, DestroyMessages, SetRetention, UpdateQueue, AddTraces.
// Consecutive batchable calls, whatever is queued when the writer gets to
// them (up to Options.MaxBatch), are applied one after the other to one
// transaction and committed together, one fsync for the lot (group
// commit). Each call's writes go to an overlay first and join the
// transaction only if the whole call succeeded, so a failing call (unknown
// recipient, quota, a mailbox just deleted) stores nothing and does not
// disturb the others. A call reads through its overlay, then the
// transaction's pending writes (the earlier calls of the batch; badger's
// Get and iterators include them, and scan merges the overlay in), then
// committed state, so it sees exactly what it would have seen running
// alone after them: two calls on one mailbox in one batch allocate UIDs,
// raise HIGHESTMODSEQ and count messages as if they had run in turn. A
// call may be applied more than once (the batch conflicted with a
// background purge, or it did not fit and the calls before it are redone
// in a smaller transaction), so it sets its results, never appends to
// them; a call that alone does not fit fails with store.ErrTooLarge. The
// other writes (accounts, mailboxes, policy, the large Expunge and the
// deletions' chunks) run alone in their own transaction. With a single
// writer, transactions never conflict with each other, UID allocation is
// a read-modify-write of the mailbox record with no race, and the
// per-mailbox and per-account counters are exact. Reads use read-only
// transactions (shared: see below) and see committed state only.
//
// Durability: a call returns nil only after its transaction is on the
// disk, batched or not. Group commit is what makes that cheap for many
// sessions: each waits for one shared sync instead of its own in turn.
// The store syncs, not badger (durable.go): badger v4.9 with SyncWrites
// on syncs the value log in every commit, also when the commit wrote
// nothing there (a flag change, an expunge), and each such sync costs a
// disk cache flush. So SyncWrites is off and every committer, after its
// commit and before it answers anyone, syncs the memtable's log, and the
// value log only if it wrote a value of at least vlogMin bytes. badger's
// DB.Sync would not do: it syncs only the active memtable's log, so a
// commit whose memtable was replaced before the Sync (ensureRoomForWrite)
// would be on disk only when that memtable is flushed; the store's sync
// follows the logs' numbers instead. Value-log GC syncs what it rewrote
// before badger deletes the old file (DB.gcOnce). TestCommitsReachTheDisk
// asks the page cache (cachestat) that nothing a call wrote is left
// unwritten when it returns, across new memtable logs and value-log
// files; TestGCSyncsBeforeDeleting checks GC's order. Once a sync has
// failed, every later commit is refused before it is made, until the
// store is reopened (syncer.sync says why; TestSyncFailureRefusesWrites).
// What the failed sync covered stays readable until then, though its
// callers were told it failed.
//
// badger writes a commit's value-log entries and its memtable-log entries
// before the store syncs either. A power failure in that window, had the
// kernel written the memtable log's page back and not the value log's,
// could leave an unacknowledged commit's row pointing past the value
// log's end, a value badger reports as unreadable. The kernel writes a
// dirty page back after 30 s unless memory runs short, and these logs are
// synced within milliseconds of each write, so it takes a power failure
// during writeback under memory pressure.
//
// If a call's context ends while its operation is still queued, the
// operation is withdrawn and nothing is stored; once the writer has taken
// it, the call waits for the outcome.
//
// Reads while a commit is in flight (snapshot.go): a badger read
// transaction begun while a commit is being written waits for that
// commit, fsync included, though nobody has been told of it yet. So
// every committer, after its commit and before it answers anyone (and
// before the caches hear of the commit), opens one read-only transaction
// at the state it left, and reads share that snapshot. A read sees every
// write acknowledged before it began and never waits for a sync: a
// 30-message listing with four callers changing flags without pause took
// 130–200 µs, now 36–40 µs (BenchmarkReadWhileCommitting). Purge's
// reopen and Close drop the snapshot before badger closes.
//
// Listing cache (listcache.go): Messages keeps the metas of the
// mailboxes it listed whole in memory, bounded by Options.ListCache
// messages (least recently used out first; a mailbox above a quarter of
// the bound is not kept), and serves any later listing of such a mailbox
// from there. An entry is tagged with its mailbox record's HIGHESTMODSEQ,
// UIDNEXT and message count, read in the same transaction as the metas;
// every write to a meta changes that tag, so a reader serves an entry
// only when its tag is the record's in the reader's own snapshot, and
// whatever snapshot a reader listed from, it never serves another
// state's metas. The writer logs the meta and mailbox-record writes that
// join each transaction (tx.log) and, after the commit and before it
// answers the calls, applies them to the entries that held the state
// before it (a flag change rewrites one meta in place, a delivery
// appends), and drops entries it cannot bring forward, those of deleted
// mailboxes and accounts, and those of a failed commit. So the cache
// stays warm through a session's flag changes and deliveries, and a
// listing no longer steps over the older versions of metas that badger
// keeps until compaction (a 30-message mailbox after 10,000 flag
// changes: 0.7 ms uncached, 15 µs from the cache). It holds what the
// metas hold on disk in the clear (SECURITY.md), never a summary or
// a blob. Tests set DB.checkLists to compare every entry with the disk
// after each commit.
//
// Batched reads: Blobs (a run of messages' blobs) and Messages with
// summaries read the values keyed by blob ID in one walk of one iterator
// in key order (readKeyed), seeking only over gaps, instead of one
// lookup per message: a lookup in badger's tables checks every level, and
// a mailbox's messages mostly have neighbouring blob IDs. Blobs resolves
// the mailbox once and takes the blob IDs from the listing cache when it
// holds the mailbox at the state of the reader's snapshot (the tag rule
// above), else from the metas.
//
// Account IDs (idcache.go): reads look an address's account ID up in
// memory before the account record, which is written once and so sits
// deep in the LSM tree. Only a deletion makes a mapping stale; the
// writer drops it after the deleting commit, and a reader whose
// transaction began before a drop cannot put the old ID back.
//
// Size limits: a transaction holds at most about 25,000 entries (15% of a
// 16 MiB memtable). A Deliver call needs two per message, CopyMessages up
// to three, MoveMessages two, StoreFlags one, Expunge three up to 2,000
// messages and one above (it then deletes only the metas and records the
// blob IDs; later transactions delete the blobs and summaries, and Open
// finishes them after a crash). A call that cannot fit fails with an error
// wrapping store.ErrTooLarge and stores nothing. Deletions of whole mailboxes and
// accounts are not limited: see below.
//
// Locks and their order: closeMu (RWMutex) is held for reading by every
// call for its duration and for writing by Close, which therefore waits for
// running calls before stopping the writer and the GC goroutine and closing
// badger, and by Purge while it reopens badger. gcMu (RWMutex) comes
// after closeMu: it is held for reading around every commit (DB.commit,
// DB.badgerUpdate: use them, never txn.Commit or bdb.Update, for anything
// written after Open) and for writing around each value-log GC run and
// Purge's reopen, because badger v4.9's GC rewrite reads the memtable's
// version counter without the lock commits hold when they write it (a
// data race the race detector reports; TestGCWhileWriting). Commits
// therefore wait while one value-log file is rewritten. The writer
// goroutine holds gcMu only around its commits; nothing else is held
// with it.
//
// Deletion: DeleteAccount crypto-shreds. Its first transaction, durable
// before anything else happens, removes the unlock slots and the account
// record with the wrapped private key, and sets a purge marker; from then
// on the sealed mail can never be opened and no call can reach it. Further
// transactions, outside the writer (their keys are unreachable, so nothing
// conflicts), remove mailboxes, metas, blobs, summaries and counters in
// chunks; DeleteMailbox works the same way for one mailbox. Open finishes
// any deletion a crash interrupted. What stays on disk: badger does not
// overwrite in place. Deleted values remain in value-log files until
// value-log GC rewrites them, and deleted keys and small values remain in
// LSM tables until compaction drops them. DeleteAccount triggers value-log
// GC, and GC also runs every Options.GCInterval, but neither is a
// guarantee: until then the old bytes are on disk. That is why the first
// transaction destroys the keys: the leftovers are sealed mail and sealed
// summaries nobody can open. Mailbox names, flags and sizes of a deleted
// account may also linger in the clear until compaction.
//
// Purge (store.Purger) makes deletion real where the above leaves it to
// chance: it reopens badger (flushing memtables and closing the value-log
// file being written, so that GC may rewrite it), compacts level 0 with a
// scratch DropPrefix, flattens the LSM tree and rewrites every value-log
// file that holds any deleted value. Calls wait during the reopen and the
// DropPrefix, and commits while each value-log file is rewritten (gcMu).
// The retention sweeper calls Purge after it
// destroys anything. What Purge cannot reach: blocks the filesystem freed
// when badger deleted a file, or when a destroyed large blob's file was
// unlinked (use an encrypted filesystem).
//
// Tuning for a small server: two 16 MiB memtables, 48 MiB of block and
// index cache (Options.CacheBytes), value-log files just large enough
// for the largest message (Options.MaxValueBytes; 64 MiB for sealmail's
// default limit: badger maps the file it writes at twice that, sparse,
// and a fresh store used to show a 512 MiB file), two compactors,
// metrics off. Badger's own log goes to Options.Logger at
// warning level and up.
//
// Backup and restore (backup.go): Backup reads one read-only badger
// transaction, so it sees one moment while writers go on, and writes the
// live rows (latest versions, no deletion markers) in the store's own
// format, which ends with the record count and a SHA-256 of the stream.
// Restore writes such a stream into an empty directory with a badger
// write batch, checking lengths as it reads and the checksum at the end;
// a failed restore empties the directory again. Counters are rows like
// any other, so a restored store never hands out an ID again. Each blob
// file's bytes follow its K record in the stream; while a backup runs,
// no blob file is unlinked (blobsMu: the unlinks wait for its end), and
// a linked file never changes, so the files agree with the snapshot.
//
// Locking the directory: badger holds an flock on the directory; a second
// Open (in this or another process) fails with an error wrapping
// store.ErrLocked.
// Open also makes the directory mode 0700.
package badgerstore
