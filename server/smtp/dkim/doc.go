// Package dkim signs the mail sealmail's users send (DKIM, RFC 6376)
// and keeps the signing keys: per domain an Ed25519 key (RFC 8463) and
// an RSA-2048 key, both signing every message, because many verifiers
// still know RSA only.
//
// Keys is the key store, a directory (dkim.key_dir, by default
// DATA_DIR/dkim):
//
//	selectors.json        the selectors of every domain and their times (public data)
//	lock                  taken (flock) by whoever changes the store
//	DOMAIN/SELECTOR.key   a private key, PKCS#8 PEM, mode 0600
//
// The private keys are server secrets stored unencrypted: the server must
// sign unattended, so no password could protect them that the server does
// not also hold. SECURITY.md says so. The directory is created 0700 and
// every file 0600; a retired selector's private key is deleted.
//
// A selector's life (Status), from its times in selectors.json:
//
//   - pending: made by Rotate; its record is printed by `sealmail dns`
//     for the operator to publish, but it does not sign yet.
//   - active: signing. Ensure makes the first pair of a domain active at
//     once, so that mail is signed from the first message (a signature
//     whose key is not yet in DNS counts as no signature: nothing is
//     lost). A rotated pair becomes active when CheckPending, which the
//     server runs periodically through its resolver, has seen both
//     records published for PublishWait, or when the operator runs
//     Activate (`sealmail dkim activate`).
//   - retiring: replaced by a newer active pair; no longer signing, but
//     its record stays published for RetireAfter (14 days by default,
//     longer than the queue's 5 days), so that mail signed before the
//     rotation still verifies when it arrives or is checked late.
//   - retired: its record may be removed (`sealmail dns` prints it with
//     an empty p=, which revokes it, RFC 6376 §3.6.1), and its private
//     key is destroyed the next time the store changes or CheckPending
//     runs.
//
// Selector names are never reused ("ed-20261201", "rsa-20261201-2"), so a
// verifier's cached record always belongs to the key it names.
//
// Signer is the smtp.Transform that signs each submitted message for the
// domain of its From: address (DMARC alignment), with relaxed/relaxed
// canonicalization and the header fields of RFC 6376 §5.4.1, oversigned
// (§5.4.2) where a field added in transit would change the message's
// meaning: From, To, Cc, Subject, Reply-To always, Date, Message-ID,
// MIME and threading fields and Autocrypt when present.
//
// Implementation notes:
//   - Signing streams: go-msgauth's signer reads the header section whole
//     (bounded by SignerOptions.MaxHeaderBytes, 1 MiB) and the body as a
//     stream. Its body canonicalizers keep a run of line breaks in memory
//     until content follows, so a body with an absurd run of empty lines
//     (SignerOptions.MaxBlankRun, 1 MiB) is refused rather than buffered.
//     The keys of one message are fed in one pass (io.MultiWriter).
//   - Several processes share the store: `serve` signs and runs
//     CheckPending while the command line rotates or activates. Every
//     change takes the directory lock, rereads selectors.json, and
//     replaces it atomically (temporary file, fsync, rename, fsync of
//     the directory); key files are written before the state that names
//     them and removed after the state that retires them. Readers reload
//     selectors.json when its inode, size or time changes (one stat per
//     message), so a rotation reaches a running server without a signal.
//   - Lock order: the directory lock, then Keys.mu; Keys.mu is never held
//     during DNS lookups or signing.
package dkim
