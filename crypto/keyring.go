package crypto

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"math/big"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/ecdh"
	"github.com/ProtonMail/go-crypto/openpgp/ed25519"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
	"github.com/ProtonMail/go-crypto/openpgp/x25519"
)

// Keyring is an unlocked account: it opens messages and seals index data
// but never hands out the master secret M, the private key or the index
// key. It is safe for concurrent use. After Wipe every method that can
// fail returns ErrWiped.
//
// Of the unwrapped private key it keeps only the encryption-capable
// secret keys, which Open needs: every logged-in IMAP session holds a
// Keyring, and the rest of the parsed key (primary key, user IDs,
// self-signatures) was some 5 KB of each. What needs the whole key
// (ExportSecretKey) unwraps it again from M and the wrapped key, which
// costs no KDF run.
type Keyring struct {
	fingerprint string // immutable; public
	v6          bool   // immutable; the key is an RFC 9580 v6 key
	wrapped     []byte // immutable; the private key wrapped under M (ciphertext)

	mu         sync.RWMutex
	master     []byte               // guarded by mu; M, nil once wiped
	indexKey   []byte               // guarded by mu; K_idx = HKDF(M, infoIndexKey)
	decrypters []*packet.PrivateKey // guarded by mu; the encryption-capable secret keys, nil once wiped
}

// newKeyring unwraps the private key with M and derives K_idx. It copies
// master; the caller keeps ownership of its slice.
func newKeyring(master, wrappedKey []byte) (*Keyring, error) {
	e, err := unwrapEntity(master, wrappedKey)
	if err != nil {
		return nil, err
	}
	idx, err := deriveKey(master, infoIndexKey)
	if err != nil {
		wipeEntity(e)
		return nil, err
	}
	k := &Keyring{
		fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		v6:          e.PrimaryKey.Version == 6,
		wrapped:     bytes.Clone(wrappedKey),
		master:      bytes.Clone(master),
		indexKey:    idx,
	}
	keep := map[*packet.PrivateKey]bool{}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && !sk.PrivateKey.Encrypted && sk.PrivateKey.PubKeyAlgo.CanEncrypt() {
			k.decrypters = append(k.decrypters, sk.PrivateKey)
			keep[sk.PrivateKey] = true
		}
	}
	if e.PrivateKey.PubKeyAlgo.CanEncrypt() {
		k.decrypters = append(k.decrypters, e.PrivateKey)
		keep[e.PrivateKey] = true
	}
	// The secret keys not kept are wiped; the rest of e is dropped.
	if !keep[e.PrivateKey] {
		wipePrivateKey(e.PrivateKey)
	}
	for _, sk := range e.Subkeys {
		if !keep[sk.PrivateKey] {
			wipePrivateKey(sk.PrivateKey)
		}
	}
	if len(k.decrypters) == 0 {
		k.Wipe()
		return nil, fmt.Errorf("crypto: wrapped key has no encryption key")
	}
	return k, nil
}

// CheckPublicKey reports whether pub, an account's stored public key, is
// this keyring's: its primary key must be the keyring's and the key that
// mail is sealed to (the one ParsePublicKey picks) one of the keyring's
// decryption keys. The public key rests in the clear, but the private
// key is stored wrapped (AES-256-GCM) under a key derived from the master
// secret M, so checking one against the other authenticates the public
// key under M: a public key swapped by someone who can write the data
// directory is caught at the next login instead of sealing more mail to
// a key that is not the account's. A mismatch wraps ErrKeyMismatch.
func (k *Keyring) CheckPublicKey(pub []byte) error {
	pk, err := ParsePublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	if pk.fingerprint != k.fingerprint {
		return fmt.Errorf("%w: primary key %s, private key %s", ErrKeyMismatch, pk.fingerprint, k.fingerprint)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.decrypters == nil {
		return ErrWiped
	}
	for _, d := range k.decrypters {
		if bytes.Equal(d.Fingerprint, pk.encKey.Fingerprint) {
			return nil
		}
	}
	return fmt.Errorf("%w: mail would be sealed to subkey %x, which is not the account's", ErrKeyMismatch, pk.encKey.Fingerprint)
}

// Fingerprint returns the account key's fingerprint, lower-case hex. It is
// public information and stays available after Wipe.
func (k *Keyring) Fingerprint() string { return k.fingerprint }

// NewSlot returns a new slot that secret opens, wrapping the same M as
// this keyring, so that adding a password, app password or recovery code
// re-encrypts no mail. A zero kdf means DefaultKDF().
func (k *Keyring) NewSlot(secret []byte, kdf KDFParams) ([]byte, error) {
	kdf = kdf.orDefault()
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	k.mu.RLock()
	if k.master == nil {
		k.mu.RUnlock()
		return nil, ErrWiped
	}
	m := bytes.Clone(k.master)
	k.mu.RUnlock()
	defer zero(m)
	return newSlot(m, secret, kdf)
}

// ExportSecretKey returns the account's secret key, ASCII-armored and
// protected with password by OpenPGP S2K, for importing into a mail client.
// v4 keys use iterated-and-salted SHA-256 S2K with AES-256 CFB (what
// GnuPG 2.2 and Thunderbird read); v6 keys use Argon2 S2K with AEAD as
// RFC 9580 §3.7.2.1 asks.
func (k *Keyring) ExportSecretKey(password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, fmt.Errorf("crypto: export needs a non-empty password")
	}
	e, err := k.cloneEntity()
	if err != nil {
		return nil, err
	}
	defer wipeEntity(e)
	cfg := &packet.Config{
		DefaultCipher: packet.CipherAES256,
		S2KConfig: &s2k.Config{
			S2KMode:  s2k.IteratedSaltedS2K,
			Hash:     crypto.SHA256,
			S2KCount: 65011712, // the largest encodable count, as GnuPG picks on fast machines
		},
	}
	if k.v6 {
		cfg.S2KConfig = &s2k.Config{
			S2KMode:      s2k.Argon2S2K,
			Argon2Config: &s2k.Argon2Config{NumberOfPasses: 3, DegreeOfParallelism: 4, Memory: 64 * 1024},
		}
		cfg.AEADConfig = &packet.AEADConfig{DefaultMode: packet.AEADModeOCB}
	}
	if err := e.EncryptPrivateKeys(password, cfg); err != nil {
		return nil, fmt.Errorf("crypto: protect exported key: %w", err)
	}
	var out bytes.Buffer
	aw, err := armor.Encode(&out, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		return nil, fmt.Errorf("crypto: serialize exported key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// cloneEntity returns the whole secret key, unwrapped again from M; the
// caller wipes it.
func (k *Keyring) cloneEntity() (*openpgp.Entity, error) {
	k.mu.RLock()
	if k.master == nil {
		k.mu.RUnlock()
		return nil, ErrWiped
	}
	m := bytes.Clone(k.master)
	k.mu.RUnlock()
	defer zero(m)
	return unwrapEntity(m, k.wrapped)
}

// Wipe zeroes M, K_idx and the private key material the keyring holds and
// drops its references. It is idempotent. Best effort: Go gives no
// guarantee that no copy of a secret was left behind (library buffers,
// the AES key schedules of streams already returned by Open keep working
// until they are dropped).
func (k *Keyring) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	zero(k.master)
	zero(k.indexKey)
	for _, d := range k.decrypters {
		wipePrivateKey(d)
	}
	k.master, k.indexKey, k.decrypters = nil, nil, nil
}

// wipeEntity zeroes the secret key material of e's primary key and
// subkeys, for the key types this package makes.
func wipeEntity(e *openpgp.Entity) {
	if e == nil {
		return
	}
	wipePrivateKey(e.PrivateKey)
	for _, sk := range e.Subkeys {
		wipePrivateKey(sk.PrivateKey)
	}
}

func wipePrivateKey(pk *packet.PrivateKey) {
	if pk == nil {
		return
	}
	switch priv := pk.PrivateKey.(type) {
	case *eddsa.PrivateKey:
		zero(priv.D)
	case *ecdh.PrivateKey:
		zero(priv.D)
	case *ed25519.PrivateKey:
		zero(priv.Key)
	case *x25519.PrivateKey:
		zero(priv.Secret)
	case *rsa.PrivateKey:
		wipeInt(priv.D)
		for _, p := range priv.Primes {
			wipeInt(p)
		}
		wipeInt(priv.Precomputed.Dp)
		wipeInt(priv.Precomputed.Dq)
		wipeInt(priv.Precomputed.Qinv)
		// Go's crypto/rsa keeps a second, precomputed copy of the key in
		// its FIPS module (an unexported field) that no API reaches: drop
		// the reference so nothing uses it again; its bytes stay in memory
		// until the garbage collector reuses them (issue 9 item 14,
		// SECURITY.md). Ed25519/X25519 keys, the default, have no copy.
		priv.Precomputed = rsa.PrecomputedValues{}
	}
	pk.PrivateKey = nil
}

func wipeInt(n *big.Int) {
	if n == nil {
		return
	}
	clear(n.Bits())
	n.SetInt64(0)
}
