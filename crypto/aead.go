package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// Sizes shared by the symmetric formats of this package.
const (
	masterLen = 32 // 32: M is an AES-256-sized secret
	keyLen    = 32 // 32: AES-256
	nonceLen  = 12 // 12: the standard GCM nonce
	tagLen    = 16 // 16: the GCM tag
)

// HKDF info strings. Each derived key has exactly one purpose.
const (
	infoWrapKey  = "sealmail private-key wrap v1"
	infoIndexKey = "sealmail index key v1"
)

// deriveKey returns HKDF-SHA256(master, no salt, info), keyLen bytes.
func deriveKey(master []byte, info string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, master, nil, info, keyLen)
	if err != nil {
		return nil, fmt.Errorf("crypto: hkdf: %w", err)
	}
	return k, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypto: aes: %w", err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("crypto: gcm: %w", err)
	}
	return g, nil
}

// sealGCM appends nonce || GCM(key, nonce, plain, ad) to dst with a fresh
// random nonce. Nonces are random: each key seals far fewer than 2^32
// messages.
func sealGCM(dst, key, plain, ad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("crypto: random nonce: %w", err)
	}
	dst = append(dst, nonce[:]...)
	return g.Seal(dst, nonce[:], plain, ad), nil
}

// openGCM opens nonce || ciphertext sealed by sealGCM. Any failure is
// reported as ErrIntegrity.
func openGCM(key, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < nonceLen+tagLen {
		return nil, fmt.Errorf("%w: sealed data too short", ErrIntegrity)
	}
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	plain, err := g.Open(nil, sealed[:nonceLen], sealed[nonceLen:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return plain, nil
}

// zero overwrites b. Best effort: Go may have copied the bytes elsewhere
// (the garbage collector moves nothing, but library code may copy).
func zero(b []byte) {
	clear(b)
}
