// Package smtp is sealmail's inbound MX: an SMTP server (RFC 5321) that
// accepts mail for the accounts of its configured domains only, seals each
// copy to its recipient's OpenPGP public key and commits all copies in one
// durable store transaction before it answers 250.
//
// Wire parsing is go-smtp's; this package holds policy, limits, sealing
// and storage calls. Offered: STARTTLS (when Options.TLSConfig is set),
// SIZE, 8BITMIME, SMTPUTF8, PIPELINING, ENHANCEDSTATUSCODES, CHUNKING.
// Not offered: AUTH (this listener never relays), BINARYMIME, DSN.
//
// Implementation notes:
//   - Recipients are decided at RCPT, before any data is read, by
//     policy.Recipients: accounts of local domains (sub-address tags
//     removed), postmaster@ of every domain, configured aliases. Everything
//     else is refused: unknown local users with 550 5.1.1, other domains
//     and every routing trick (percent hack, bang path, quoted local part
//     hiding an '@') with 550 5.7.1. go-smtp drops source routes
//     (<@a:b@c> arrives as b@c, RFC 5321 §4.1.1.3 allows ignoring them),
//     so a source route is judged by its final mailbox: relaying unless
//     local. Several RCPTs reaching one account (alias, tags) give one copy.
//   - Quota is checked at RCPT against the account's usage (452 4.2.2, or
//     552 5.2.2 when the announced SIZE can never fit) and enforced again
//     by the store at commit. Because one reply covers the whole DATA, a
//     quota failure at commit fails the whole message (nothing stored).
//   - DATA and BDAT content is read fully, up to Limits.MessageBytes, into
//     a pooled buffer behind the Return-Path and Received fields, and
//     checked on the way (readMessage): a CR not followed by LF or an LF
//     not preceded by CR refuses the message (550 5.6.11), so no bare-LF
//     end-of-data trick can end a message early or smuggle a second one
//     and what is stored is canonical CRLF text. Message lines (DATA and
//     BDAT) are bounded by Limits.LineLength in our scanner, with a 554
//     5.6.0 reply; go-smtp gets the looser bound max(LineLength, 64 KiB)
//     for command lines, because its counter also sees BDAT chunk bytes
//     read ahead with the command and would cut such a connection
//     without a reply. Received fields are bounded by Limits.Hops.
//   - The stored message is the trace fields followed by the client's
//     bytes unchanged. Every value written into the trace fields is
//     validated or sanitised, so no envelope input can inject a header.
//   - Sealing runs per recipient account, in parallel, outside any store
//     lock; parsed public keys are cached (LRU, keyed by address and
//     fingerprint). Then one Store.Deliver call commits every copy, then
//     Options.OnDeliver runs, then go-smtp writes 250. On any failure the
//     client gets 451 4.3.0 (or the quota codes) and nothing is stored;
//     the cause is logged, never sent.
//   - Plaintext lives only in the message buffer, which is zeroed before
//     it returns to the pool; only sealed bytes reach the store.
//   - Connection caps (in total and per client) are the listener's: the
//     binary serves SMTP on a listener guarded by server/listener, whose
//     Refuse hook is Server.Refuse, so a client over a cap gets 421 4.7.0
//     and is closed before go-smtp sees it. This package only tracks the
//     open connections for Shutdown. Commands have Limits.CommandTimeout;
//     a DATA transfer has Limits.DataTimeout in total (go-smtp's own read
//     deadline would cover it with the command timeout). After any read
//     timeout the connection reads nothing more and is closed after the
//     reply (421 4.4.2 for DATA and BDAT; trackedConn reports a timeout
//     inside a transaction as that reply, since go-smtp would send a BDAT
//     read error as 554 with the socket error's text): go-smtp would
//     otherwise go on reading the rest of a stalled message or BDAT
//     chunk as commands.
//   - Shutdown closes the listeners and lets transactions in flight
//     finish: a transaction is in flight from an accepted MAIL until the
//     reply to its data (or RSET). Connections without one are closed at
//     once, the others right after that reply, so a committed message
//     always gets its 250 out; a client stalling inside a transaction is
//     cut off when the Shutdown context ends. The connection state (idle
//     / transaction / in Data / replying) lives in trackedConn, whose
//     mutex is never held while calling out. (Marking the connection busy
//     only inside Session.Data raced with go-smtp's 354 reply, which is
//     written before Data is called.)
//   - Lock order: session.mu, then nothing; keyCache.mu, then nothing;
//     connTracker.mu and trackedConn.mu are never held together (drain
//     copies the set before touching connections).
//   - The Received field says ESMTP (or UTF8SMTP), plus S under TLS (RFC
//     3848, RFC 6531 §4.3): go-smtp does not tell EHLO from HELO, so a
//     HELO client is recorded as ESMTP too.
//   - Logs: one line per transaction (id, size, recipient count, result,
//     duration, and the receiving accounts on success); refused
//     recipients are logged by domain only; never content.
package smtp
