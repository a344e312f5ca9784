package crypto

// This file is the contract other packages code against. The crypto helper
// replaces every body; signatures stay (more may be added).

import (
	"errors"
	"io"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrBadPassword: no slot opens with the given secret. Callers must not
	// distinguish it from an unknown account on the wire.
	ErrBadPassword = errors.New("crypto: bad password")
	// ErrIntegrity: ciphertext was tampered with or truncated.
	ErrIntegrity = errors.New("crypto: integrity check failed")
	// ErrWiped: the keyring was wiped.
	ErrWiped = errors.New("crypto: keyring wiped")
)

// KeyType selects the OpenPGP key an account gets.
type KeyType int

const (
	KeyEd25519   KeyType = iota // v4 Ed25519 primary + X25519 encryption subkey (default)
	KeyRSA3072                  // v4 RSA-3072
	KeyRSA4096                  // v4 RSA-4096
	KeyV6Ed25519                // v6 (RFC 9580) Ed25519 + X25519
)

// KDFParams are argon2id parameters, stored in each slot.
type KDFParams struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// AccountOptions configures NewAccount. The zero value gives KeyEd25519 and
// DefaultKDF.
type AccountOptions struct {
	KeyType KeyType
	KDF     KDFParams // zero: DefaultKDF
}

// AccountSecrets is what NewAccount makes, ready for the store.
type AccountSecrets struct {
	PublicKey   []byte // binary transferable public key, UID = address
	Fingerprint string // hex, lower case
	WrappedKey  []byte // private key wrapped under HKDF(M)
	Slot        []byte // first unlock slot, for the password
}

func notYet() { panic("crypto: being written") }

var (
	DefaultKDF KDFParams
	TestKDF    KDFParams // cheap parameters for tests only
)

func NewAccount(address string, password []byte, opt AccountOptions) (*AccountSecrets, error) {
	notYet()
	return nil, nil
}

// Unlock opens the first slot that the secret opens, then the wrapped key.
func Unlock(slots [][]byte, secret []byte, wrappedKey []byte) (*Keyring, error) {
	notYet()
	return nil, nil
}

// BurnUnlock spends the time of one unlock attempt, for unknown accounts.
func BurnUnlock(secret []byte) { notYet() }

// NewRecoveryCode returns a fresh random recovery code for humans.
func NewRecoveryCode() string { notYet(); return "" }

type Keyring struct{}

func (k *Keyring) NewSlot(secret []byte, kdf KDFParams) ([]byte, error) { notYet(); return nil, nil }

// Open decrypts a sealed message with the private key (public-key work) and
// returns the plaintext stream and the message's session key, already sealed
// under the index key so it can be stored as is. The plaintext reader returns
// an error wrapping ErrIntegrity at the end if the message was tampered with.
func (k *Keyring) Open(sealed io.Reader) (plain io.Reader, sealedSessionKey []byte, err error) {
	notYet()
	return nil, nil, nil
}

// OpenWithSessionKey decrypts with a session key from Open: symmetric work only.
func (k *Keyring) OpenWithSessionKey(sealed io.Reader, sealedSessionKey []byte) (io.Reader, error) {
	notYet()
	return nil, nil
}
func (k *Keyring) SealIndex(plain, ad []byte) ([]byte, error)      { notYet(); return nil, nil }
func (k *Keyring) OpenIndex(sealed, ad []byte) ([]byte, error)     { notYet(); return nil, nil }
func (k *Keyring) ExportSecretKey(password []byte) ([]byte, error) { notYet(); return nil, nil }
func (k *Keyring) Fingerprint() string                             { notYet(); return "" }
func (k *Keyring) Wipe()                                           { notYet() }

type PublicKey struct{}

func ParsePublicKey(b []byte) (*PublicKey, error)             { notYet(); return nil, nil }
func (p *PublicKey) Seal(w io.Writer) (io.WriteCloser, error) { notYet(); return nil, nil }
func (p *PublicKey) Armored() ([]byte, error)                 { notYet(); return nil, nil }
func (p *PublicKey) Fingerprint() string                      { notYet(); return "" }
