// Package smtp is sealmail's SMTP server, in two roles on one wire
// layer. As the inbound MX it accepts mail for the accounts of its
// configured domains only, seals each copy to its recipient's OpenPGP
// public key and commits all copies in one durable store transaction
// before it answers 250. As the submission server (Options.Submission,
// RFC 6409; submission.go, auth.go) it lets an authenticated local user
// send as themselves to anyone: local recipients are sealed and
// committed as the MX does, remote ones go to the outbound queue
// (server/smtp/queue), both in one transaction before the 250.
//
// The wire protocol is this package's own (conn.go, commands.go,
// parse.go, dataread.go): RFC 5321 with SIZE (RFC 1870), 8BITMIME (RFC
// 6152), SMTPUTF8 (RFC 6531), PIPELINING (RFC 2920), ENHANCEDSTATUSCODES
// (RFC 2034, codes of RFC 3463), CHUNKING (RFC 3030) and STARTTLS (RFC
// 3207, when Options.TLSConfig is set). Not offered on the MX: AUTH
// (this listener never relays; an AUTH command gets 502 5.5.1 naming
// the submission port), BINARYMIME, DSN, REQUIRETLS. The MX's policy at
// each step (who may send, which recipients are local, quota, rates) is
// in mx.go, apart from the wire layer; submission brings its own on the
// same layer: parseMail and parseRcpt know each parameter by name, and
// conn.dispatch each verb.
//
// Submission:
//   - AUTH PLAIN (RFC 4616) and LOGIN, offered and accepted only under
//     TLS (538 5.7.11 without), with the account password or an app
//     password through server/account: its throttle (counted per client
//     address and account when an attempt starts), fixed failure delay
//     and identical answers for unknown users and wrong passwords (535
//     5.7.8; 454 4.7.0 when throttled). Three failed AUTHs end the
//     connection. The login's keyring is wiped at once (submission needs
//     no private key); the login itself lives with the connection, so
//     that revoking its secret or deleting the account cuts it off.
//   - MAIL before AUTH: 530 5.7.0. The envelope sender, and every From:
//     and Sender: address, must be the account's, an alias that
//     delivers to it, or a sub-address of either (policy.Recipients.Owns):
//     else 550 5.7.1. The null sender is allowed (read receipts, RFC 8098).
//     A message without exactly one From: field is refused (550 5.6.0).
//   - Limits.RateMessages and RateBytes count per account here, not per
//     client address: an office may share one address, and a stolen
//     password is what must be slowed down.
//   - DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT are kept for notices
//     and passed on; REQUIRETLS (RFC 8689) under TLS; AUTH= (RFC 4954
//     §5) is accepted and ignored.
//   - The server adds Message-ID and Date when missing (RFC 6409 §8),
//     and a Received field (ESMTPSA, RFC 3848) that names the client's
//     address unless SubmissionOptions.HideClientIP. Then the
//     Transforms (DKIM, Autocrypt) run, each prepending header fields.
//   - Local copies get a Return-Path and are sealed as at the MX; the
//     queue seals one body for the remote ones (queue.Prepare); one
//     store.Queue.UpdateQueue commits both, then 250.
//
// Implementation notes:
//   - Every input is bounded before it is buffered: command lines by 2048
//     bytes (500 5.5.2, the rest of the line is skipped unread into
//     memory), message lines by Limits.LineLength, messages by
//     Limits.MessageBytes, recipients by Limits.Recipients, refused
//     commands by Limits.Errors, unknown recipients by
//     Limits.UnknownRecipients. Each command line must arrive within
//     Limits.CommandTimeout; message data within Limits.DataTimeout in
//     all (for BDAT, all chunks of one message), each read within
//     CommandTimeout, and, after 30 s, at Limits.MinDataRate on average.
//     After a timeout the client gets 421 and nothing more is read, so
//     the rest of a stalled message is never taken for commands.
//   - One goroutine per connection runs the protocol. Replies are queued
//     and sent when the next read would block, so pipelined commands
//     (RFC 2920) get their replies in one write, in order; each command
//     gets exactly one reply, also after a failed BDAT chunk, so no stale
//     result answers the next transaction.
//   - DATA (readDotData): only <CRLF>.<CRLF> ends the data, and "." at
//     the start of a line (after CRLF) is removed. The message then passes
//     msgSink: a CR not followed by LF, an LF not preceded by CR (550
//     5.6.11) or a NUL (550 5.6.0) refuses it, so no bare-LF end-of-data
//     trick can end a message early or smuggle a second one, and what is
//     stored is canonical CRLF text. <CRLF>.<CR>X is therefore refused,
//     not unstuffed into X. After a fault the rest of the data is read and
//     dropped, and the fault answers the end of data. BDAT chunks pass the
//     same msgSink across chunk boundaries; a chunk cut short by the end
//     of the connection (also under TLS) aborts the transaction and
//     nothing is stored. Received fields already in the header are
//     counted as they arrive (Limits.Hops, RFC 5321 §6.3).
//   - Addresses (parsePath): source routes (<@a,@b:user@dom>) are
//     ignored, as RFC 5321 §3.3 says servers SHOULD; the final mailbox
//     alone is judged. A quoted local part is decoded first: one that
//     equals a dot-string ("alice") is that dot-string (RFC 5321 §4.1.2),
//     and one with routing characters ('@', '%', '!', quotes) is refused
//     as relaying by policy. The bare <postmaster> (RFC 5321 §4.1.1.3)
//     is postmaster@ of the first configured domain.
//   - Recipients are decided at RCPT, before any data is read, by
//     policy.Recipients: accounts of local domains (sub-address tags
//     removed), postmaster@ of every domain, configured aliases. Everything
//     else is refused: unknown local users with 550 5.1.1, other domains
//     and every routing trick with 550 5.7.1. Several RCPTs reaching one
//     account (alias, tags) give one copy. Unknown users are tarpitted:
//     after the first three (counted per connection, and per client over
//     15 minutes, whichever is more), each answer waits twice as long as
//     the one before, from 1 s up to 16 s, and Limits.UnknownRecipients of
//     them on one connection end it with 421 4.7.0.
//   - Quota is checked at RCPT against the account's usage and limit
//     (store.PublicAccount.QuotaLimit: 452 4.2.2 when full, or 552 5.2.2
//     when the announced SIZE can never fit) and enforced again by the
//     store at commit. Because one reply covers the whole DATA, a quota
//     failure at commit fails the whole message (nothing stored).
//   - Rates: a client (an IPv4 address or IPv6 /64) may deliver
//     Limits.RateMessages messages and Limits.RateBytes bytes (message
//     size times receiving accounts) per minute, as token buckets; MAIL
//     gets 451 4.7.1 above either. Per-client state lives in bounded
//     tables (clientTable), least recently seen forgotten first.
//   - Memory: a message is kept in a pooled buffer while it is under 1
//     MiB and the in-flight budget (Limits.InFlightBytes) has room; then
//     it goes to the spool: a file in Options.SpoolDir, unlinked as soon
//     as it is created, sealed in 64 KiB records with AES-256-GCM under a
//     random key held only in memory. Every transfer first takes a fixed
//     working set from the budget; when none is left within
//     Limits.InFlightWait, DATA or the first BDAT gets 452 4.3.1. Sealing
//     runs on at most 2×GOMAXPROCS (at least 4) slots server-wide. Small
//     messages are sealed into memory (the budget pays for the copies)
//     and handed to the store without a copy; large ones, or many copies,
//     are sealed as streams from the buffer or spool into staged blobs
//     (store.StageBlob), which the store writes to files. So memory per
//     message is bounded by a few MiB whatever its size and recipient
//     count.
//   - Sealing runs per recipient account, in parallel, outside any store
//     lock; parsed public keys are cached (LRU, keyed by address and
//     fingerprint). Then one Store.Deliver call commits every copy
//     (inline and staged), then the client gets 250. On any failure the
//     client gets 451 4.3.0 (or the quota codes) and nothing is stored
//     (staged copies are discarded); the cause is logged, never sent.
//   - Escrow (Options.Escrow, escrow.go): before sealing, each copy's
//     escrow keys are decided (mail of producible classes, once escrow
//     is on); the copy gets one more key packet for each, in the same
//     message. A failing decision is a temporary failure, never a copy
//     stored without the escrow it needs.
//   - Options.OnDeliver runs after the 250, on a goroutine of its own
//     (notifier): deliveries that arrive meanwhile are merged per
//     mailbox, bounded by notifyPending, so IMAP's locks never hold a
//     reply back.
//   - Options.Metrics hears each command's verb (known ones only) and
//     final reply, and each message's reply and the time from the end of
//     its data to that reply; never anything a client sent.
//   - Plaintext lives only in the message buffer, which is zeroed before
//     it returns to the pool, and in the spool, which is sealed; only
//     sealed bytes reach the store.
//   - Connection caps (in total and per client) are the listener's: the
//     binary serves SMTP on a listener guarded by server/listener, whose
//     Refuse hook is Server.Refuse, so a client over a cap gets 421 4.7.0
//     and is closed before it is served. This package tracks the open
//     connections for Shutdown, and retries temporary accept errors too.
//   - Shutdown closes the listeners and lets transactions in flight
//     finish: a transaction is in flight from an accepted MAIL until the
//     reply to its data (or RSET). A connection without one is told 421
//     4.3.2 and closed at once (its blocked read is interrupted), the
//     others right after that reply, so a committed message always gets
//     its 250 out; a client stalling inside a transaction is cut off when
//     the Shutdown context ends.
//   - Lock order: Server.mu, then conn.mu; budget.mu, clientTable.mu,
//     keyCache.mu and notifier.mu are leaves, never held while calling
//     out.
//   - The Received field says ESMTP (SMTP after HELO, UTF8SMTP with
//     SMTPUTF8), plus S under TLS (RFC 3848, RFC 6531 §4.3).
//   - Inbound policy (Options.Inbound, server/smtp/inbound): each
//     transaction gets an inbound.Tx at MAIL. At each RCPT, after the
//     recipient resolved to local accounts, Tx.Rcpt runs the client's
//     checks (once: SPF, DNS lists, country) and the recipient's allow
//     and deny lists and greylisting, and may refuse the recipient
//     (554 5.7.1, 550 5.7.23, 451 4.4.3, 451 4.7.1) before any data is
//     read. At the end of the data, Tx.Data reads the message (buffer
//     or spool, never loaded whole) for DKIM, DMARC and the spam score
//     and returns a plan: one reply for all, or per account the copy's
//     extra fields (Authentication-Results, X-Spam-*, inserted after the
//     Return-Path line), the byte ranges of forged such fields to leave
//     out, and whether the copy goes to the account's \Junk mailbox.
//     Sealing reads each copy through spliceReader, so nothing is
//     copied. Tx.End writes the delivery trace once per transaction. (id, size, recipient count, result,
//     duration, and the receiving accounts on success); refused
//     recipients are logged by domain only; never content.
package smtp
