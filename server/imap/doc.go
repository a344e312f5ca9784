// Package imap is sealmail's IMAP server: a backend for
// github.com/emersion/go-imap/v2's imapserver in which a user's LOGIN unlocks
// the account's keys and only that session can read what is stored.
//
// Mail rests in the store sealed to the account's OpenPGP public key. A
// successful LOGIN or AUTHENTICATE PLAIN (refused without TLS) goes to the
// account service (Options.Accounts, server/account), which checks the
// password or app password, throttles, and returns an account.Session
// holding the unlocked crypto.Keyring; the IMAP session keeps it in memory
// only. LOGOUT, UNAUTHENTICATE, a dropped connection and Shutdown wipe it.
// When the account service ends the login (the account deleted, the slot
// it used revoked or replaced), the client gets an untagged BYE saying why
// and is disconnected.
//
// The first unlocked session that meets a message without a summary opens it
// once (public-key work), parses it and stores, sealed under the account's
// index key, a summary (plaintext size, raw header block, envelope, body
// structure; see summary.go) and the message's session key. Later FETCH and
// SEARCH use the summary, and bodies are decrypted with the stored session key
// (symmetric work only), streaming.
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
//     selected is then sent an untagged BYE ("Selected mailbox was
//     deleted, have to disconnect", Dovecot's words) and disconnected, at
//     its next command (selectedState, Poll) or at once if it is in IDLE:
//     IMAP has no way for the server to close a selected mailbox (RFC 2180
//     §3.3). The session that deleted its own selected mailbox gets OK and
//     is left with nothing selected.
//   - Sequence numbers. Every mailbox that some session has selected has one
//     in-process mailboxState (registry.go), keyed by account and mailbox
//     ID so that it survives RENAME. It holds the mailbox's UIDs in
//     ascending order (the "server view") and the imapserver.MailboxTracker
//     that queues unilateral EXISTS/EXPUNGE/FETCH FLAGS responses to each
//     session. The UID list and the tracker change together, under
//     mailboxState.mu, so the tracker's count never disagrees with the list
//     (the tracker panics on inconsistent counts). Sequence numbers are
//     translated between the server view and each client's view with
//     SessionTracker.EncodeSeqNum/DecodeSeqNum, also only under
//     mailboxState.mu. One EXISTS increase is queued per new message, because
//     the tracker does not handle larger steps.
//   - Every mutation of a mailbox made by this process reaches its tracker:
//     our own EXPUNGE/MOVE/STORE/APPEND/COPY directly, SMTP deliveries via
//     Server.Delivered. Changes made by other processes are picked up at the
//     next SELECT, which reconciles the UID list with the store. A message
//     that appears with a UID lower than one already announced (a late
//     concurrent commit) cannot be announced without breaking sequence
//     numbers; it is logged and shows up at the next SELECT of a fresh state.
//   - Lock order: registry.mu, then mailboxState.mu, then the trackers' own
//     mutexes (taken inside imapserver). No store or crypto call is made
//     while registry.mu is held; store calls under mailboxState.mu are
//     limited to listing UIDs when a state is loaded or synchronised.
//   - The library does not enforce EXAMINE's read-only mode, set \Seen on
//     non-PEEK body fetches, answer a non-silent STORE with FETCH FLAGS, or
//     fill SelectData.List for IMAP4rev2 clients: this package does all four.
//   - Errors reaching the client are *imap.Error values built in errors.go;
//     causes go to the log with the fixed keys (proto, cid, remote, account,
//     mailbox, uid, err, duration), never message content or secrets.
//   - Logins: the throttle, the unlock cache, the bound on argon2id runs
//     and the fixed failure delay live in server/account, shared with the
//     other protocols. This package maps its answers: wrong credentials
//     and unknown accounts alike to NO [AUTHENTICATIONFAILED], refusals
//     before any work to NO [UNAVAILABLE] (auth.go).
//   - FETCH of bodies decrypts ahead of the writer on the server's workers
//     (prefetch.go): at most prefetchWindow messages per worker of at most
//     maxPrefetchSize bytes each are held decrypted, and each is wiped once
//     written; larger messages are streamed. SEARCH TEXT/BODY streams every
//     message through a matcher that keeps only a pattern-sized overlap.
//   - Spam training (train.go, Options.Trainer): after a MOVE or COPY
//     into the \Junk mailbox, or a MOVE out of it to anywhere but
//     \Trash, the session opens the moved messages with its keyring and
//     hands them to the Trainer (server/filter) before the command
//     completes, so the next delivery already sees the verdict. At most
//     500 messages per command, each under 8 MiB; a failure is logged,
//     the command still succeeds.
//   - Limitation of the library: mailbox names are always decoded as
//     modified UTF-7 by imapserver before this package sees them. A name
//     that is not valid modified UTF-7 (for example a bare "&" sent by an
//     IMAP4rev2 client) is answered by imapserver with NO [SERVERBUG] before
//     any backend code runs. Names that decode (including "&-" and raw
//     UTF-8) are stored as UTF-8 and handled end to end.
package imap
