package crypto

import (
	"fmt"
)

// Index format, version 1:
//
//	version (1) || GCM nonce (12) || GCM(K_idx, nonce, plain, ad')
//
// with ad' = "sealmail index v1" || 0x00 || kind || caller's ad. The kind
// byte separates the caller's index data from the message session keys
// this package seals itself, so one can never be opened as the other.
const (
	indexVersion1  = 1
	indexADPrefix  = "sealmail index v1\x00"
	kindIndex      = 'i'
	kindSessionKey = 's'
	maxIndexPlain  = 64 << 20 // 64 MiB: far above any summary or search index
)

func indexAD(kind byte, ad []byte) []byte {
	b := make([]byte, 0, len(indexADPrefix)+1+len(ad))
	b = append(b, indexADPrefix...)
	b = append(b, kind)
	return append(b, ad...)
}

// SealIndex seals plain under the index key K_idx with AES-256-GCM and a
// random nonce, bound to ad (for example mailbox and UID): OpenIndex with
// any other ad fails.
func (k *Keyring) SealIndex(plain, ad []byte) ([]byte, error) {
	return k.sealIndex(kindIndex, plain, ad)
}

// OpenIndex opens what SealIndex sealed with the same ad. Tampered data or
// a different ad yields an error wrapping ErrIntegrity.
func (k *Keyring) OpenIndex(sealed, ad []byte) ([]byte, error) {
	return k.openIndex(kindIndex, sealed, ad)
}

func (k *Keyring) sealIndex(kind byte, plain, ad []byte) ([]byte, error) {
	if len(plain) > maxIndexPlain {
		return nil, fmt.Errorf("crypto: index data too large (%d bytes)", len(plain))
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.indexKey == nil {
		return nil, ErrWiped
	}
	dst := make([]byte, 1, 1+nonceLen+len(plain)+tagLen)
	dst[0] = indexVersion1
	return sealGCM(dst, k.indexKey, plain, indexAD(kind, ad))
}

func (k *Keyring) openIndex(kind byte, sealed, ad []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.indexKey == nil {
		return nil, ErrWiped
	}
	if len(sealed) == 0 || sealed[0] != indexVersion1 {
		return nil, fmt.Errorf("%w: unknown index format", ErrIntegrity)
	}
	return openGCM(k.indexKey, sealed[1:], indexAD(kind, ad))
}
