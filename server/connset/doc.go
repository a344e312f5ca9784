// Package connset is what every sealmail protocol server (SMTP, IMAP,
// POP3) needs around its connections and nothing protocol-specific: the
// set of listeners it serves and of connections it has open, an accept
// loop that retries temporary errors, and a Shutdown that stops
// accepting, asks every connection to end, waits, and cuts off whatever
// is left when its deadline passes. It imports nothing of the project.
//
// A server embeds a Set of its connection type, calls Serve for each
// listener with a function that starts one connection, and Add/Remove
// around each connection's life. Shutdown takes two functions: interrupt
// asks a connection to end at its next chance (the protocol's goodbye
// after the command in flight), and kill closes it.
//
// Accept errors. Serve retries temporary accept errors (EMFILE, ENFILE,
// ECONNABORTED, ENOBUFS…) with a Backoff from 5 ms to 1 s, as net/http's
// Server.Serve does, so a server keeps serving once descriptors are free
// again. server/listener's guard and the control socket use the same
// Backoff and Temporary.
//
// Limits. OrDefault is the rule of every server's Limits: a zero (or
// negative) field means its default.
//
// Implementation notes: Set.mu is never held while calling interrupt,
// kill or the start function; a connection added after Shutdown began is
// refused (Add returns false), so Shutdown's snapshot is complete.
package connset
