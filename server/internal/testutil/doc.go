// Package testutil is the test scaffolding the server packages share:
// a goroutine-safe log sink, self-signed TLS certificates, a test clock,
// a listener that fails on demand, sealing to an account's public key,
// and the deterministic messages the IMAP and POP3 benchmarks store.
//
// Only tests import it (cmd/deptest checks), and it imports nothing of
// the project but crypto, store and server/benchmsg (the benchmark
// messages, shared with cmd/sealbench; it imports nothing of the
// project), so that any server package's own tests may use it without an
// import cycle.
package testutil
