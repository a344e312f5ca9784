package crypto

// This file holds the exported contract other packages code against: the
// sentinel errors and the plain types. The functions live in files by
// concern (kdf.go, slots.go, keys.go, keyring.go, seal.go, open.go,
// index.go, recovery.go).

import "errors"

// Sentinel errors, checked with errors.Is.
var (
	// ErrBadPassword: no slot opens with the given secret. Callers must not
	// distinguish it from an unknown account on the wire.
	ErrBadPassword = errors.New("crypto: bad password")
	// ErrIntegrity: ciphertext was tampered with or truncated.
	ErrIntegrity = errors.New("crypto: integrity check failed")
	// ErrWiped: the keyring was wiped.
	ErrWiped = errors.New("crypto: keyring wiped")
	// ErrKeyMismatch: a stored public key is not the one of the unlocked
	// private key (Keyring.CheckPublicKey).
	ErrKeyMismatch = errors.New("crypto: public key does not belong to the account's private key")
)

// KeyType selects the OpenPGP key an account gets. Persisted values only
// grow at the end.
type KeyType int

const (
	KeyEd25519   KeyType = iota // v4 Ed25519 primary + X25519 encryption subkey (default)
	KeyRSA3072                  // v4 RSA-3072
	KeyRSA4096                  // v4 RSA-4096
	KeyV6Ed25519                // v6 (RFC 9580) Ed25519 + X25519
)

// String returns the key type's name as used in configuration.
func (t KeyType) String() string {
	switch t {
	case KeyEd25519:
		return "ed25519"
	case KeyRSA3072:
		return "rsa3072"
	case KeyRSA4096:
		return "rsa4096"
	case KeyV6Ed25519:
		return "v6-ed25519"
	}
	return "unknown"
}

// KDFParams are argon2id parameters, stored in each slot.
type KDFParams struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// AccountOptions configures NewAccount. The zero value gives KeyEd25519 and
// DefaultKDF().
type AccountOptions struct {
	KeyType KeyType
	KDF     KDFParams // zero: DefaultKDF()
}

// AccountSecrets is what NewAccount makes, ready for the store.
type AccountSecrets struct {
	PublicKey   []byte // binary transferable public key, UID = address
	Fingerprint string // hex, lower case
	WrappedKey  []byte // private key wrapped under HKDF(M)
	Slot        []byte // first unlock slot, for the password
}

// DefaultKDF returns the argon2id cost of a password slot: 64 MiB, 3
// passes, 2 lanes (RFC 9106's second recommended setting, with one lane
// per core of the reference 2-core machine). Measured there
// (BenchmarkUnlockDefaultKDF) one unlock takes about 100–120 ms, inside
// the 100–250 ms we aim for and low enough for an IMAP LOGIN under 150 ms;
// t=4 took 130 ms and t=6 170–200 ms. Slots keep their own parameters:
// raising this later affects only new slots. It is a function, not a
// variable, so that no package can change it for everyone.
func DefaultKDF() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}
}

// TestKDF returns a cheap cost for tests only (1 pass, 1 MiB, 1 lane).
// Never use it for real accounts.
func TestKDF() KDFParams {
	return KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}
}
