package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// cacheAD is the GCM associated data of a cached master secret.
const cacheAD = "sealmail unlock cache v1"

// cacheSaltLen is the size of a cached entry's random salt.
const cacheSaltLen = 16

// CachedSecret is an account's master secret M wrapped, in memory only,
// under a key derived from the secret that unlocked it with a fast keyed
// hash: HMAC-SHA256 keyed with a random per-entry salt over the secret,
// then AES-256-GCM. It lets a server check a returning client's password
// and rebuild its Keyring in microseconds instead of an argon2id run,
// while still proving the password: only the right secret opens it.
//
// It is much cheaper to attack than a slot: whoever can read it (server
// memory) can test guesses at hash speed. It must never be written to
// disk, and callers keep it for a short idle time only (see
// server/account).
type CachedSecret struct {
	mu     sync.RWMutex
	salt   []byte // guarded by mu; nil once wiped
	sealed []byte // guarded by mu; nonce || GCM(key, M)
}

// cacheKey is HMAC-SHA256(salt, secret).
func cacheKey(salt, secret []byte) []byte {
	h := hmac.New(sha256.New, salt)
	h.Write(secret)
	return h.Sum(nil)
}

// Cache wraps this keyring's M under secret for an in-memory unlock
// cache. secret is what the caller will present again (for codes, the
// normalised Code.Secret).
func (k *Keyring) Cache(secret []byte) (*CachedSecret, error) {
	k.mu.RLock()
	if k.master == nil {
		k.mu.RUnlock()
		return nil, ErrWiped
	}
	m := bytes.Clone(k.master)
	k.mu.RUnlock()
	defer zero(m)
	salt := make([]byte, cacheSaltLen)
	_, _ = rand.Read(salt) // never fails (Go 1.24+)
	key := cacheKey(salt, secret)
	defer zero(key)
	sealed, err := sealGCM(nil, key, m, []byte(cacheAD))
	if err != nil {
		return nil, err
	}
	return &CachedSecret{salt: salt, sealed: sealed}, nil
}

// Unlock returns a new Keyring if secret is the one the entry was made
// with, ErrBadPassword if not, ErrWiped after Wipe. Another error means
// M does not unwrap wrappedKey (the account was replaced): drop the entry.
func (c *CachedSecret) Unlock(secret, wrappedKey []byte) (*Keyring, error) {
	c.mu.RLock()
	if c.salt == nil {
		c.mu.RUnlock()
		return nil, ErrWiped
	}
	key := cacheKey(c.salt, secret)
	m, err := openGCM(key, c.sealed, []byte(cacheAD))
	c.mu.RUnlock()
	zero(key)
	if err != nil {
		return nil, ErrBadPassword
	}
	defer zero(m)
	return newKeyring(m, wrappedKey)
}

// Wipe zeroes the entry. It is idempotent; Unlock then fails with
// ErrWiped.
func (c *CachedSecret) Wipe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	zero(c.salt)
	zero(c.sealed)
	c.salt, c.sealed = nil, nil
}
