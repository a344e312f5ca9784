// Package imap is sealmail's IMAP server: the session logic behind the
// protocol layer of server/imap/wire, in which a user's LOGIN unlocks the
// account's keys and only that session can read what is stored.
//
// Mail rests in the store sealed to the account's OpenPGP public key. A
// successful LOGIN or AUTHENTICATE PLAIN (refused without TLS by the wire
// layer) goes to the account service (Options.Accounts, server/account),
// which checks the password or app password, throttles, and returns an
// account.Session holding the unlocked crypto.Keyring; the IMAP session
// keeps it in memory only. LOGOUT, UNAUTHENTICATE, a dropped connection
// and Shutdown wipe it. When the account service ends the login (the
// account deleted, the slot it used revoked or replaced), the client gets
// an untagged BYE saying why and is disconnected (wire.Conn.Disconnect).
//
// Reading mail is server/mailbox's (shared with POP3): sealed summaries
// built once per message, sections, bodies verified before release,
// prefetch and text search, with a server-wide bound on decrypt workers
// and plaintext memory (Options.Mailboxes, Options.Workers).
//
// One file per command family: auth.go (LOGIN), select.go (SELECT,
// EXAMINE, CLOSE, UNSELECT; sequence sets), mailbox.go (CREATE, DELETE,
// RENAME, SUBSCRIBE, STATUS), list.go (LIST, LSUB), fetch.go, search.go,
// store_flags.go (STORE, EXPUNGE), copy_move.go, append.go; session.go has
// the session state and Poll, registry.go the views shared between
// sessions. An extension is an optional interface of wire.Session
// (SessionQuota, SessionSort…) implemented in a file of its own, and is
// advertised only once it is: sort.go (SORT, SORT=DISPLAY, ESORT,
// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES; the algorithms are
// server/imap/sortthread's pure functions), context.go (CONTEXT=SEARCH,
// CONTEXT=SORT: results kept current, CANCELUPDATE), catenate.go
// (CATENATE's URL parts), condstore.go (CONDSTORE: CHANGEDSINCE, the
// MODSEQ of search results, HIGHESTMODSEQ for an enabling command and
// for STATUS of the selected mailbox),
// qresync.go (QRESYNC: VANISHED (EARLIER) from the store's tombstones,
// SELECT's resynchronisation, UID FETCH … VANISHED, EXPUNGE's tagged
// HIGHESTMODSEQ; it, the enabling command's and STATUS's are never
// above a change the session has not heard of, and a Poll whose FETCH
// MODSEQ ran ahead of one ends with a HIGHESTMODSEQ below it),
// objectid.go
// (OBJECTID and SAVEDATE from the message records), compress.go
// (COMPRESS=DEFLATE, which the wire layer runs by itself),
// within.go (WITHIN: OLDER and YOUNGER on the internal date), quota.go
// (QUOTA, QUOTA=RES-STORAGE: the account's store quota as one root "",
// SETQUOTA refused), notify.go (NOTIFY, RFC 5465).
//
// Implementation notes:
//
//   - Mailbox identity. A session resolves a name to the mailbox's store ID
//     once, at SELECT (or per command for CREATE, DELETE, RENAME, STATUS,
//     APPEND and a COPY/MOVE target), and reaches the store by that ID
//     only. IDs are never reused, so a selected mailbox deleted and
//     created again under the same name is a different mailbox: nothing
//     the old session sends can read or change the new one's mail (RFC
//     9051 §2.3.1.1). RENAME keeps the ID and UIDVALIDITY, so a renamed
//     selected mailbox stays usable.
//   - A deleted selected mailbox. DELETE marks the mailbox's state gone
//     (registry.deleted); a store call that finds the ID gone (a deletion
//     by another process) does the same. Every other session that has it
//     selected then ends with an untagged BYE ("Selected mailbox was
//     deleted, have to disconnect", Dovecot's words): from Poll (at once
//     in IDLE, else after its next command) or from the command itself.
//     IMAP has no way for the server to close a selected mailbox (RFC 2180
//     §3.3). The session that deleted its own selected mailbox gets OK and
//     is left with nothing selected.
//   - Views. Every mailbox that some session has selected has one
//     in-process mailboxState (registry.go), keyed by account and mailbox
//     ID: its UIDs as this process knows them, the keywords in use, and
//     one view per session: the UIDs that session's client knows (their
//     positions are its sequence numbers) and what it has not been told
//     yet (new messages, expunges, flag changes with their modseq, new
//     keywords). A change one session makes is queued in the others' views
//     and wakes them (Updates); Poll writes it when the protocol allows
//     (no EXPUNGE after FETCH, STORE or SEARCH by sequence number, RFC
//     9051 §7.5.1), announcing a new keyword with FLAGS before any FETCH
//     uses it; while an expunge is held back, a client told a higher
//     MODSEQ meanwhile gets a HIGHESTMODSEQ below the expunge's, so it
//     cannot resynchronise past it (RFC 7162 §3.2, condstore.go), and
//     one told a MODSEQ above a change another writer has committed and
//     not yet told gets a HIGHESTMODSEQ below that change (the state
//     counts the mod-sequences it was told of in a row, mailboxState.
//     reached, and reads the store only past a gap; qresync.go). What
//     Poll writes is computed under the state's lock and
//     written after it is released, so a slow client holds no other
//     session up.
//   - Every mutation this process makes reaches the views: our own
//     EXPUNGE/MOVE/STORE/APPEND/COPY at once, SMTP deliveries through
//     Server.Delivered, which returns at once and announces in the
//     background (the notifier), so the SMTP reply never waits on IMAP.
//     SELECT lists the mailbox under its state's lock and reconciles: what
//     another process expunged is expunged for the views, what it added is
//     announced. A message that appears with a UID below one already
//     announced (a store that commits UIDs out of order; badger never
//     does) cannot be announced without breaking sequence numbers; the
//     views see it at their next SELECT.
//   - NOTIFY (notify.go, notify_hub.go). The selected mailbox is told
//     through its view, as above: while no command runs (wire.PollNotify)
//     Poll tells what the SELECTED group asks for, and holds EXPUNGE back
//     for SELECTED-DELAYED; without such a group the selected mailbox
//     waits for a command, as without NOTIFY. MessageNew's fetch
//     attributes are a UID FETCH of the new messages. Every other
//     mailbox is told through the registry's change feed (notifyHub):
//     every mutation this process makes (IMAP commands, SMTP deliveries
//     through Server.Delivered, POP3 through ExpungedAt and
//     FlagsChanged, retention sweeps through ExpungedAbove)
//     publishes a change — kind, account, mailbox ID, and the name where
//     the name is the news — to the sessions of that account with NOTIFY
//     set. A change carries no content and no sequence numbers, so a
//     store's own change feed (a SQL backend's LISTEN/NOTIFY rows of
//     account, mailbox ID and kind) can drive the same hub for changes
//     made by other processes. A session's queue coalesces message
//     changes per mailbox (one STATUS, read from the store when written,
//     with MESSAGES, UIDNEXT, UNSEEN and HIGHESTMODSEQ as the events
//     ask) and keeps name changes in order (one LIST each: OLDNAME after
//     RENAME, \NonExistent after DELETE, \Subscribed as it is). The
//     queue is bounded (about 1,000 mailboxes, 256 names); past that the
//     client gets [NOTIFICATIONOVERFLOW] and NOTIFY is off (RFC 5465
//     §5.8). Filters match names when the notification is written, so
//     a mailbox named before it exists is covered once it is created.
//     INBOXES is INBOX and the \Junk mailbox (where SMTP delivers).
//   - \Recent (RFC 3501 §2.3.2, for IMAP4rev1 clients) is kept in process
//     (recentTracker): new mail is recent in the first read-write session
//     that selects the mailbox or is told of it; EXAMINE shows it without
//     taking it; STATUS RECENT counts what no session took. After a
//     restart nothing is recent until new mail arrives.
//   - Lock order: registry.mu, then mailboxState.mu, then recentTracker.mu.
//     session.mu is never held with another. No store or crypto call is
//     made under registry.mu; under mailboxState.mu only the listings of
//     SELECT and of new messages.
//   - FETCH writes a message's response whole or not at all: a body is
//     verified (server/mailbox) before any item of the message is
//     written; a message that fails is left out and the command ends
//     NO [CORRUPTION], one expunged meanwhile NO [EXPUNGEISSUED] (RFC 2180
//     §4.1.2). A binary APPEND (literal8) up to 1 MiB is stored with its
//     binary parts re-encoded as base64, as Dovecot does, so BODY never
//     carries NUL and BINARY gives the original bytes; in anything else
//     (a larger binary APPEND) BODY shows NUL as 0x80 (a literal must not
//     carry NUL; the size stays). FETCH loads its set in chunks (64
//     messages, doubling to 1,024, cut where a UID range would list mostly
//     messages not asked for) on a goroutine of its own, the next chunk
//     while the session writes one; the command waits for that goroutine
//     before it returns, so nothing reads with the session's keys after
//     the command has ended.
//   - SEARCH is bounded before any work (Options.Search: string keys per
//     command, strings × plaintext bytes to scan) and by a deadline, and
//     its context ends when the client goes away. It works from the sealed
//     summaries; TEXT and BODY decrypt and scan, and only verified text
//     can match. SORT and THREAD search the same way, within the same
//     bounds and deadline, and take their keys (envelope, References,
//     size) from the sealed summaries only.
//   - Limits per account: mailboxes and hierarchy depth (NO [LIMIT]),
//     APPEND commands in progress (Options.MaxAppends). APPEND seals the
//     message as its literal streams in; size and quota are refused
//     before the client sends it. Its tagged OK follows the durable
//     delivery; the summary and session key for the first FETCH are
//     stored after it in the background (Server.added: at most 32 at
//     once, Shutdown waits for them), as the first read would rebuild
//     them if they were missing.
//   - COPY, MOVE and STORE of any number of messages: the store is asked
//     in runs of at most 4,096 messages, halved while the store answers
//     ErrTooLarge (batch.go). COPY stays all or nothing (a failed run
//     expunges the earlier runs' copies); a MOVE that fails part way
//     reports what moved and fails (RFC 6851 §3.3); a STORE that fails
//     part way tells the flags that changed.
//   - Errors reaching the client are *imap.Error values built in errors.go
//     and next to the commands; causes go to the log with the fixed keys
//     (proto, cid, remote, account, mailbox, uid, err, duration), never
//     message content or secrets.
//   - Logins: the throttle, the unlock cache, the bound on argon2id runs
//     and the fixed failure delay live in server/account, shared with the
//     other protocols. This package maps its answers: wrong credentials
//     and unknown accounts alike to NO [AUTHENTICATIONFAILED], refusals
//     before any work, and a tampered account (account.ErrKeyMismatch),
//     to NO [UNAVAILABLE].
//   - Spam training (train.go, Options.Trainer): after a MOVE or COPY
//     into the \Junk mailbox, or a MOVE out of it to anywhere but
//     \Trash, the session opens the moved messages with its keyring
//     (verified, through server/mailbox) and hands them to the Trainer
//     (server/filter) before the command completes, so the next delivery
//     already sees the verdict. At most 500 messages per command, each
//     under 8 MiB; a failure is logged, the command still succeeds.
package imap
