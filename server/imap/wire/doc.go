// Package wire is sealmail's IMAP protocol layer: it reads commands from
// the network, checks them against the connection's state and limits,
// parses them into typed values, calls a Session (the session logic of
// server/imap, which this package does not know), and writes the
// responses. It speaks IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) at
// once, with the extensions of Options.Caps.
//
// A Server serves connections (Serve, ServeConn, Shutdown); each gets a
// Session from Options.NewSession. The Session interface, its optional
// interfaces (SessionQResync, SessionExpungeModSeq, SessionCondStore,
// SessionQuota, SessionSort, SessionThread, SessionNotify,
// SessionSearchContext; AppendChecker and URLOpener on an Appender) and
// the result types are in backend.go; the parsed arguments in
// command.go. Package wiretest holds the attacks of issue 9 as test
// steps any server can be run against. go-imap's
// imap types are reused where they fit (sets, flags, response codes, copy
// and namespace data); ENVELOPE, BODYSTRUCTURE, search keys and fetch
// items have their own, because go-imap's lose what a server must echo
// (raw header values, address groups and routes, RFC822.* item names,
// FROM versus HEADER From).
//
// Implementation notes:
//
//   - Bytes before structure. The reader (reader.go) counts every byte of
//     a command against the limits of the connection's state (limits.go:
//     line, command, nesting, arguments) as it reads it, so nothing is
//     buffered beyond them. Before authentication the budgets are a few
//     KiB: only LOGIN, AUTHENTICATE and ID take arguments.
//   - Refusal by state before arguments. The tag and command name are
//     read first; a command unknown, not advertised, or not valid in the
//     state is refused before any of its arguments is read or buffered.
//   - Literals. A literal's size is checked against the command budget
//     (or, for APPEND's message, APPENDLIMIT) before anything else: a
//     synchronising literal that does not fit is refused before "+" is
//     sent, and the client sends nothing more of that command; a
//     non-synchronising one (LITERAL+) is read and thrown away, counted
//     against DiscardBytes, or the connection is closed with BYE [TOOBIG]
//     (RFC 7888 §4). Accepted literals are allocated as their data
//     arrives, never from the announced size; APPEND's message streams to
//     the Appender without being held here at all.
//   - Resynchronisation. After any error in a command, reader.skipCommand
//     reads to the command's real end: through non-synchronising literals
//     (discarded), stopping at a synchronising one (never sent). So no byte
//     of a refused command, nor of a literal, is ever parsed as a command
//     of its own. Tokens never consume a line end; only crlf,
//     readLiteralHeader and skipCommand do.
//   - Errors. Syntax errors are BAD (with [CLIENTBUG] or [LIMIT] where it
//     helps), names that cannot be decoded NO [CANNOT], oversize TOOBIG.
//     Session errors pass through as *imap.Error (text made 7-bit and
//     single-line); anything else is logged with its cause and answered
//     NO [SERVERBUG]. A failure of the connection itself (EOF, timeout,
//     a body shorter than its announced literal) ends the connection,
//     with BYE where the stream still allows one.
//   - Names. Mailbox names reach the Session in UTF-8: decoded from
//     modified UTF-7 for clients that enabled neither IMAP4rev2 nor
//     UTF8=ACCEPT, taken as UTF-8 from those that did, and encoded back
//     the same way. 8-bit bytes from the first kind are taken as UTF-8
//     when they are UTF-8 (go-imap's client sends names so), refused
//     otherwise. A LIST pattern that cannot be decoded matches nothing.
//   - Goroutines and locks. Each connection has one goroutine, which reads
//     commands, calls the Session and writes, so a Session is never called
//     concurrently. During IDLE, and between commands while NOTIFY is
//     active, that goroutine waits for input (DONE, or the next command's
//     first byte) and is woken to write the Session's updates: a
//     SessionWaker calls Conn's wake function wherever it signals
//     Updates, which interrupts the read (a read deadline in the past,
//     set under Conn.waitMu, under which every read sets its own, so that
//     no wake-up is lost); IDLE's keepalive wakes it from a timer. For a
//     Session without SessionWaker a second goroutine forwards Updates
//     while the wait lasts. The work between waits — the TLS handshake,
//     reading and running a command, Poll and the writes made while
//     waiting — runs on a goroutine of its own that the connection's
//     goroutine starts and waits for (offStack), so that the stack it
//     grows (8 KiB and more for LOGIN's unlock or SELECT) goes when it
//     ends; IDLE alone runs on the connection's goroutine, whose wait it
//     is. An idle session then holds one goroutine with a 4 KiB stack
//     (TestIdleSessionStack); it costs a goroutine start per command.
//     While LOGIN, SEARCH, SORT, THREAD or FETCH
//     has run for 20 ms, a goroutine waits on the connection and cancels
//     the command's context if the client hangs up; it is woken (read
//     deadline in the past) and waited for before the next command is
//     read. Conn.mu guards what the Session may read from other goroutines
//     (state, enabled extensions, TLS); it is never held while calling the
//     Session or doing I/O. Lock order: Conn.waitMu, then Conn.mu.
//   - Memory. An idle connection holds no read or write buffer: the
//     write buffer (32 KiB) is taken from the Server's pool at a
//     response's first write and given back when it is flushed, the read
//     buffer (4 KiB) is taken when the first byte of a command has been
//     read on its own, and given back when the next wait begins with
//     nothing buffered. The advertised capability set is shared between
//     connections. What is left is the goroutine, the Session, and TLS's
//     own state (cipher state and the buffers crypto/tls keeps from the
//     handshake, which it offers no way to release): with 500 idle TLS
//     sessions in a fresh process (sealbench imap -session-mode), about
//     12 KB of heap and 4 KB of stack each. COMPRESS adds a DEFLATE
//     compressor and decompressor (a few hundred KiB), and keeps its read
//     buffer, which the decompressor reads ahead into.
//   - Pipelining. A command's responses are flushed when it ends,
//     unless the read buffer already holds the whole first line of the
//     client's next command (Conn.pipelined): then they wait for that
//     command's and go out with them, one write and one TLS record for a
//     run of pipelined commands. A synchronising literal's continuation
//     request and the full write buffer flush them earlier.
//   - Unilateral responses. The Session decides what to tell (it owns
//     sequence numbers); this package decides when: after each command
//     (PollAfterCommand, or PollNoExpunge after FETCH/STORE/SEARCH by
//     sequence number, RFC 9051 §7.5.1), during IDLE, and between commands
//     with NOTIFY. UpdateWriter turns EXPUNGE into VANISHED once QRESYNC
//     is enabled and drops RECENT for IMAP4rev2 clients. A CONDSTORE
//     enabling command without a writer of its own (SEARCH, SORT, THREAD
//     with MODSEQ; STATUS, LIST-STATUS with HIGHESTMODSEQ) run while a
//     mailbox is selected first lets the Session write the mailbox's
//     HIGHESTMODSEQ (SessionCondStore, RFC 7162 §3.1).
//   - Timeouts. Waiting for a command: the state's IdleTimeout (and
//     before authentication, LoginTimeout from connect). Within a command:
//     ReadTimeout between reads and, before authentication,
//     CommandTimeout for the whole command. IDLE: 35 minutes, with a
//     keepalive. Every write: WriteTimeout. TLS handshakes: the pre-auth
//     ReadTimeout.
//   - Secrets. Passwords are read into byte slices that are wiped when
//     Login returns; they are never logged. Logs carry command names and
//     outcomes, never arguments; so does Options.Metrics, which hears each
//     command that ran (name, status, duration) for monitoring.
//
// Phase 2 (server/imap moving onto this package) keeps the listener caps,
// throttling, keys and store in server/imap; this package never imports
// them.
package wire
