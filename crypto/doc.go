// Package crypto holds sealmail's keys: account creation, password unlock
// slots, sealing mail to an OpenPGP public key, and opening it inside an
// unlocked session; the escrow key; the audit chain's hash. It knows nothing of storage: callers store the byte
// slices it returns (public key, wrapped key, slots, sealed messages,
// sealed session keys, sealed index data) as opaque values.
//
// # Key hierarchy
//
//	password / app password / recovery code
//	      │  argon2id, per-slot salt and parameters       (slots.go, kdf.go)
//	      ▼
//	 slot key ──AES-256-GCM──► master secret M (32 random bytes, per account)
//	                                │ HKDF-SHA256, one info string per use
//	               ┌────────────────┴──────────────┐
//	               ▼                               ▼
//	  "sealmail private-key wrap v1"     "sealmail index key v1" = K_idx
//	  AES-256-GCM over the unencrypted   AES-256-GCM over summaries, search
//	  OpenPGP secret key (keys.go)       indexes and message session keys
//	                                     (index.go, open.go)
//
// Every slot wraps the same M, as LUKS key slots do: a password change
// writes one new slot and re-encrypts no mail; a recovery code or an app
// password is one more slot. Recovery codes and app passwords are made
// here (codes.go): fixed-shape random secrets that survive how people type
// them and whose first characters name their slot, so that unlocking with
// one runs argon2id once whatever the number of slots.
//
// CachedSecret (cache.go) is M wrapped under a fast keyed hash of the
// secret that unlocked it, for a server's in-memory unlock cache: it
// proves the secret again without argon2id. It never goes to disk. Mail is sealed to the account's OpenPGP public key (seal.go), so
// delivery needs no secret. Opening a message the first time is public-key
// work; Open returns its session key sealed under K_idx, and
// OpenWithSessionKey later opens the same message with symmetric work only.
//
// Escrow (escrow.go): an organisation key pair made once, whose public
// half Seal can add as a second recipient of a message (one more PKESK
// for the same session key), and whose private half, armored and
// passphrase-protected, opens such messages (EscrowKey) outside the
// server. The audit chain's hash (audit.go) is here too: SHA-256 over a
// length-prefixed encoding of a record and its predecessor's hash.
//
// A Keyring is the unlocked form of an account. It holds M, K_idx and the
// unwrapped private key, and has no method returning any of them. Wipe
// zeroes them; every later call that can fail returns ErrWiped.
//
// # Formats
//
// All formats start with a version byte so they can change without
// guessing. Slots: version, argon2id time, memory and threads, 16-byte
// salt, GCM nonce, sealed M; the header is the GCM associated data
// (slots.go). Wrapped key: version, nonce, sealed secret key (keys.go).
// Index data: version, nonce, sealed data, with associated data that
// separates caller data from session keys and binds the caller's ad
// (index.go); a sealed session key is bound to the message it opens when
// the caller names it (OpenFor: account, mailbox, UID). Messages are standard binary OpenPGP messages (RFC 9580
// §10.3): one PKESK and a SEIPD packet holding one uncompressed literal
// data packet.
//
// # Implementation notes
//
//   - Algorithms. v4 Ed25519 accounts use the legacy EdDSA and
//     ECDH-Curve25519 algorithm ids, which GnuPG 2.2 and Thunderbird read;
//     the RFC 9580 Ed25519/X25519 ids are used only for v6 keys. The user
//     ID is "<address>". Mail to v4 keys is SEIPDv1 with AES-256, the only
//     integrity-protected format GnuPG 2.2 decrypts; mail to v6 keys is
//     SEIPDv2 with AES-256-GCM in 64 KiB chunks (GCM is several times
//     faster than OCB in go-crypto; see BenchmarkSeal/BenchmarkOpen).
//   - go-crypto is called at the packet level (packet.SerializeEncryptedKeyAEAD,
//     SerializeSymmetricallyEncrypted, EncryptedKey.Decrypt,
//     EncryptedDataPacket.Decrypt), always with an explicit *packet.Config,
//     so the choice of cipher and SEIPD version is ours and not the result
//     of preference negotiation, and so the session key is in our hands.
//     One exception: the contents of a SEIPDv1 packet with an AES cipher
//     (all mail sealed to v4 keys) are decrypted here, with the standard
//     library's AES and SHA-1 (seipd1.go): go-crypto's OpenPGP CFB runs a
//     byte at a time and was the largest cost of reading mail. Packet
//     framing, the packets inside and every other cipher and format stay
//     go-crypto's. TestSEIPD1 checks it against go-crypto's encrypter,
//     TestGnuPGInterop against GnuPG's.
//   - Integrity. Opening streams: bytes before the end are unauthenticated,
//     and the final Read returns an error wrapping ErrIntegrity instead of
//     io.EOF if the MDC or the final AEAD tag does not verify or the input
//     was truncated. Callers that must not act on partial plaintext read to
//     EOF first. Every failure to open a message wraps ErrIntegrity (except
//     ErrWiped), including "not sealed to this key", so callers need one
//     check. Signatures inside messages are skipped, not verified.
//   - Bounds. Slot parameters are validated before any argon2 work
//     (KDFParams.Validate: at most 1 GiB, 64 passes, 16 lanes, and a bound
//     on time×memory), so a corrupted slot cannot exhaust the server.
//     Opening tries at most 8 private-key operations per message, reads at
//     most 64 key packets and 16 packets before the literal data.
//   - Timing. Unlock runs argon2id once per well-formed slot until one
//     opens; UnlockSlot once. BurnUnlock runs it once with the given
//     parameters, for unknown accounts and codes that name no slot, so
//     that they cost what a wrong password for a one-slot account costs.
//   - No exported variable can change the package's behaviour: the
//     argon2id defaults are functions (DefaultKDF, TestKDF); the exported
//     variables are the sentinel errors only.
//   - Wiping is best effort, as Go allows: the package zeroes every
//     secret byte slice it owns (M, K_idx, derived keys, serialized secret
//     keys, session keys, the private key scalars it knows) and drops the
//     references. Copies inside go-crypto or the runtime (AES key
//     schedules of open streams, big.Int temporaries) are out of reach,
//     and so is the precomputed copy of an RSA private key that Go's
//     crypto/rsa keeps in its FIPS module: Wipe drops the reference to
//     it, and it stays in memory until the garbage collector reuses it.
//     Ed25519/X25519 keys (the default) have no such copy.
//   - Concurrency. Keyring methods take a read lock around the use of its
//     secrets; Wipe takes the write lock. Streams returned by Open do not
//     touch the keyring and keep working after Wipe. PublicKey is
//     immutable and may be cached and shared.
//   - Exported secret keys (ExportSecretKey) are protected with OpenPGP S2K
//     (iterated and salted SHA-256, AES-256, for v4; Argon2 with AEAD for
//     v6), which GnuPG and Thunderbird prompt for on import. GnuPG 2.2
//     cannot import v6 keys at all.
package crypto
