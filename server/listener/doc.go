// Package listener guards the TCP listeners of sealmail's servers before
// any protocol sees a connection. cmd/sealmail wraps every listener it
// binds with New and hands the servers (server/smtp, server/imap, the
// keyserver's HTTPS server) the guarded listener; they do not import this
// package. It imports server/connset only, for the accept backoff that
// every accept loop shares.
//
// A guarded listener:
//
//   - caps open connections in total and per client (an IPv4 address, or
//     the /64 of an IPv6 address, which one subscriber usually holds
//     whole) through a Limiter, which several listeners may share (IMAP
//     and IMAPS count together). A connection over a cap is accepted and
//     closed at once, after Options.Refuse has written the protocol's
//     goodbye on a plaintext listener (SMTP "421 4.7.0", IMAP "* BYE");
//   - on an implicit-TLS listener (Options.TLSConfig) returns *tls.Conn, so
//     servers still see TLS, and ends the handshake after
//     Options.HandshakeTimeout whatever the protocol does: a client that
//     connects and says nothing is closed, instead of holding a descriptor
//     forever;
//   - sets a read deadline of Options.IdleTimeout on every new connection,
//     which stays until the protocol sets its own (see below);
//   - retries temporary accept errors (EMFILE, ENFILE, ECONNABORTED,
//     ENOBUFS …) with a backoff from 5 ms to 1 s, as net/http does, instead
//     of returning them: a server whose Serve loop stops on the first error
//     keeps serving once descriptors are free again (connset.Backoff, which
//     the servers' own accept loops and the control socket use too).
//
// File descriptors. RaiseFileLimit lifts RLIMIT_NOFILE's soft limit to the
// hard limit, and ConnectionBudget says how many descriptors the guarded
// listeners may hold together so that Reserve stay free for everything
// else: the control socket, the store's files, certificates. cmd/sealmail
// shares that budget among the listeners' total caps (Share) at start-up,
// so that no flood of connections on one port, however many addresses it
// comes from, can starve the others or the control socket of descriptors.
//
// Deadlines: who owns them. The guard's idle deadline is a backstop for
// the time between accept and the protocol's first read. Every protocol
// then owns its read deadlines and must set one before each read that a
// client could stall: server/smtp, server/imap/wire and server/pop3 set
// their read timeouts per command and state, net/http ReadHeaderTimeout
// and IdleTimeout. A protocol that reads without ever setting a deadline
// keeps the guard's and is cut off IdleTimeout after accept, busy or
// not, so a new protocol layer must set its own (its pre-login timeout
// included) before it reads.
//
// Implementation notes:
//   - Limiter.mu is the only lock; it is never held while calling out.
//     A connection's count is released exactly once, by the first Close
//     (guardConn.once), so the counts cannot drift when a server and the
//     handshake timer both close a connection.
//   - The TLS handshake runs in the protocol's goroutine as usual; a
//     goroutine per connection only waits on HandshakeContext, whose
//     context ends at HandshakeTimeout and then closes the connection
//     (crypto/tls interrupts a handshake by closing the conn). Nothing
//     handshakes in the accept loop, so a slow client cannot stall it.
//   - Refusals write at most one short line with a 100 ms write deadline
//     in the accept loop: a new socket's send buffer is empty, so the
//     write does not block. Refusals are logged at most once a second per
//     listener, with the count since the last line, so a flood cannot
//     flood the log.
package listener
