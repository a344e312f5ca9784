// Package pop3 is sealmail's POP3 server (RFC 1939, with RFC 2449 CAPA,
// RFC 2595 STLS and RFC 5034 SASL PLAIN), in which a user's login
// unlocks the account's keys, as IMAP's does, and only that session can
// read what is stored.
//
// A login (USER/PASS or AUTH PLAIN, refused before TLS) goes to the
// account service (Options.Accounts, server/account) with its throttle,
// unlock cache and fixed failure delay; wrong passwords and unknown users
// get the same answer. App passwords log in; recovery codes do not. The
// session keeps the unlocked keyring in memory only and wipes it at QUIT,
// at disconnect and at Shutdown; when the account service ends the login
// (the account deleted, the slot it used revoked or replaced) the
// connection is closed at once: POP3 has no way to tell the client.
//
// Only INBOX is served, as POP3 servers do (Dovecot, Postfix's
// neighbours): the maildrop is INBOX's messages at login, numbered from 1
// in UID order for the session. UIDL values are UIDVALIDITY and UID in
// hexadecimal (16 characters), stable across sessions and restarts and
// never reused. Messages are read through server/mailbox, shared with
// IMAP: sizes come from the sealed summaries, bodies are decrypted and
// verified before "+OK" (no unauthenticated plaintext reaches a client),
// and a client that retrieves in order gets the next messages decrypted
// ahead on the server's workers (readahead, within the server-wide
// memory budget). TOP n 0 is served from the summary without decrypting.
//
// At QUIT (the UPDATE state) retrieved messages get \Seen and deleted
// ones are removed with the store's Expunge, the deletion decision IMAP's
// EXPUNGE takes (so mail under retention goes to the vault). IMAP
// sessions hear of both through Options.Changes, the removal with the
// maildrop's HIGHESTMODSEQ read just before it (so that an IMAP session
// that must hold the removal back need not send its QRESYNC client back
// further than that, RFC 7162 §3.2); POP3 sessions hear of
// what IMAP or another POP3 session removed through Server.Expunged and
// stop offering those messages (their numbers stay; RETR answers -ERR).
// A connection that ends without QUIT removes nothing. There is no
// maildrop lock (RFC 1939's is optional, and Dovecot's default is none):
// a second session of the same account works on its own snapshot.
//
// Files: conn.go is the wire (bounded line reading, buffered responses,
// the command parser), dot.go the multi-line body writer, session.go the
// connection loop and states, auth.go AUTHORIZATION (CAPA, USER, PASS,
// AUTH, STLS), maildrop.go TRANSACTION and UPDATE, retrieve.go RETR, TOP
// and the readahead.
//
// Implementation notes:
//
//   - Bounds, before any byte is buffered: a line is at most
//     Limits.LineBytes (the reader's buffer; the rest of a longer line is
//     discarded up to DiscardBytes, then the connection closes);
//     commands before login (PreAuthCommands) and unknown or misplaced
//     commands (BadCommands) are counted; a connection has LoginTimeout
//     to log in, PreAuthIdle and then IdleTimeout between commands, and
//     WriteTimeout per blocked write. A session serves at most
//     MaxMessages messages.
//   - Responses are buffered and flushed when no pipelined command waits
//     (PIPELINING). A multi-line body is dot-stuffed and its line ends
//     normalised to CRLF (dot.go), so no stored content can end a
//     response early. After STLS nothing the client sent before the
//     handshake is read as a command.
//   - Secrets: PASS and AUTH lines are wiped in the read buffer as soon
//     as they are copied, and the copies after the login; a line refused
//     before it is parsed is wiped too (it may be a password sent out of
//     turn).
//   - Errors reaching the client are the fixed *Error values of
//     errors.go, with RFC 2449/3206 response codes; causes go to the log
//     with the fixed keys (proto, cid, remote, account, mailbox, uid,
//     err, duration), never message content or secrets.
//   - Locks: session.mu guards what other goroutines touch (Shutdown's
//     interrupt, the account service's end of the login, other sessions'
//     removals); Server.mu guards the listeners and sessions. Neither is
//     held with the other, nor across a store or crypto call.
package pop3
