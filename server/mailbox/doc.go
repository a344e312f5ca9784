// Package mailbox reads sealed mailboxes for the access protocols (IMAP
// now, POP3 and the escrow export later): it opens messages with their
// stored session keys, builds and keeps sealed summaries, extracts
// sections, decrypts bodies ahead of a writer, and searches text. A
// Service bounds the work and memory of every session of a server
// together; a Reader is one session's view of one unlocked account.
//
// # Summaries
//
// The first session that meets a message without a usable summary opens
// it once with the private key (public-key work), parses it and stores,
// sealed under the account's index key, its Summary (plaintext size, raw
// header block, envelope, body structure with the offset of every part,
// preview) and its session key. Later reads decrypt with the session key
// (symmetric work only), and most FETCH items need no decryption at all.
// Parsing is this package's own (parse.go, address.go, decode.go): raw
// envelope values with address groups and source routes, part offsets
// for byte-exact sections, lenient base64 and quoted-printable decoders
// whose output BINARY.SIZE announces.
//
// # Binding to the message
//
// A summary and a session key are sealed with associated data naming the
// message: account, mailbox ID (never reused) and UID (MessageAD). A data
// directory writer who moves them between messages makes them fail to
// open; the message is then opened with the private key again and they
// are rebuilt, with a warning. Summaries of an older format are rebuilt
// the same way (the migration is lazy, one public-key operation per old
// message). COPY and MOVE carry summaries to new UIDs; Copied binds them
// to the copies.
//
// # No unauthenticated plaintext reaches a client
//
// OpenPGP's integrity check (the MDC of SEIPDv1, the final tag of
// SEIPDv2) completes only at the end of a message. Open returns a Body
// only after that check passed: a message up to InMemoryMax is decrypted
// into memory (within the server's MemoryBudget) and served from there;
// a larger one, or one that finds no room in the budget, is decrypted to
// its end once to verify it and again to serve each range. A message
// over 1 MiB sealed is read from the store in pieces (store.OpenBlob),
// and every reading after the first checks each 64 KiB piece against the
// SHA-256 the first recorded (sealed.go), so what is sent is what was
// verified, even if the store changed in between. A message that fails is ErrIntegrity, logged; no byte
// of it is returned. Search never counts a match of unverified text: a
// scan reads each message to its end.
//
// Implementation notes:
//
//   - Work bounds. Options.Workers bounds the goroutines that decrypt,
//     parse or scan, over all sessions (Run, Summaries, Prefetch). The
//     memory budget bounds verified plaintext held in memory; prefetching
//     only takes what is free (tryAcquire) and never waits, so a slow
//     client cannot starve others; building a summary waits for room
//     (it needs the whole message). Rebuilt summaries are stored in
//     batches by a goroutine of their own (a bounded queue of batches),
//     so the workers go on opening messages while a batch is committed;
//     Summaries returns once they are all stored.
//   - Reading ahead. The sealed bytes of small messages are read from
//     the store in runs (ReadSealed, store.Blobs: one read for up to 32
//     messages or about 1 MiB), not one read each: by Prefetch one run
//     ahead of its workers, by Summaries for the messages of a chunk it
//     builds, by SEARCH's workers for their run of messages. What is
//     read ahead is sealed; it is verified exactly as a single read is,
//     and a message missing from a run is read alone, which reports it.
//     Plaintext buffers are not pooled: a buffer reused after a Close
//     that came too early would hand one account's mail to another
//     session; they are wiped and left to the garbage collector.
//   - Plaintext buffers are wiped when released; what crosses the API
//     (Summary, Body) belongs to the caller until Close.
//   - Logs use the fixed keys (account, mailbox, uid, err) and never
//     carry content.
package mailbox
