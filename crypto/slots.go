package crypto

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Slot format, version 1 (all integers big-endian):
//
//	off len
//	0   1   version (1)
//	1   4   argon2id time
//	5   4   argon2id memory, KiB
//	9   1   argon2id threads
//	10  16  salt
//	26  12  GCM nonce
//	38  48  GCM(slot key, nonce, M, ad = bytes 0..25)
//
// The header (version, parameters, salt) is the GCM associated data, so a
// slot whose parameters were altered fails to open like a wrong password.
const (
	slotVersion1  = 1
	slotSaltLen   = 16
	slotHeaderLen = 1 + 4 + 4 + 1 + slotSaltLen
	slotLen       = slotHeaderLen + nonceLen + masterLen + tagLen
)

// errMalformedSlot marks slot bytes that cannot be a slot at all.
var errMalformedSlot = errors.New("crypto: malformed slot")

// slot is a parsed, validated slot.
type slot struct {
	kdf    KDFParams
	header []byte // bytes 0..slotHeaderLen, the GCM associated data
	salt   []byte
	sealed []byte // nonce || ciphertext || tag
}

// parseSlot checks b's structure and bounds without doing any KDF work.
func parseSlot(b []byte) (slot, error) {
	if len(b) != slotLen {
		return slot{}, fmt.Errorf("%w: length %d, want %d", errMalformedSlot, len(b), slotLen)
	}
	if b[0] != slotVersion1 {
		return slot{}, fmt.Errorf("%w: unknown version %d", errMalformedSlot, b[0])
	}
	kdf := KDFParams{
		Time:      binary.BigEndian.Uint32(b[1:5]),
		MemoryKiB: binary.BigEndian.Uint32(b[5:9]),
		Threads:   b[9],
	}
	if err := kdf.Validate(); err != nil {
		return slot{}, fmt.Errorf("%w: %w", errMalformedSlot, err)
	}
	return slot{
		kdf:    kdf,
		header: b[:slotHeaderLen],
		salt:   b[10:slotHeaderLen],
		sealed: b[slotHeaderLen:],
	}, nil
}

// SlotKDF returns the argon2id parameters stored in a slot, for callers
// that want to re-wrap slots made with weaker parameters than the current
// ones. It does no KDF work.
func SlotKDF(b []byte) (KDFParams, error) {
	s, err := parseSlot(b)
	if err != nil {
		return KDFParams{}, err
	}
	return s.kdf, nil
}

// newSlot seals master under a key stretched from secret with kdf and a
// fresh random salt.
func newSlot(master, secret []byte, kdf KDFParams) ([]byte, error) {
	var salt [slotSaltLen]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("crypto: random salt: %w", err)
	}
	return newSlotWithSalt(master, secret, kdf, salt[:])
}

// newSlotWithSalt is newSlot with a salt chosen by the caller (codes.go
// names a slot by its salt, so it picks the salt before the secret).
func newSlotWithSalt(master, secret []byte, kdf KDFParams, salt []byte) ([]byte, error) {
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	if len(master) != masterLen {
		return nil, fmt.Errorf("crypto: master secret has length %d", len(master))
	}
	if len(salt) != slotSaltLen {
		return nil, fmt.Errorf("crypto: slot salt has length %d", len(salt))
	}
	b := make([]byte, slotHeaderLen, slotLen)
	b[0] = slotVersion1
	binary.BigEndian.PutUint32(b[1:5], kdf.Time)
	binary.BigEndian.PutUint32(b[5:9], kdf.MemoryKiB)
	b[9] = kdf.Threads
	copy(b[10:slotHeaderLen], salt)
	key := kdf.derive(secret, b[10:slotHeaderLen])
	defer zero(key)
	return sealGCM(b, key, master, b[:slotHeaderLen])
}

// open returns M if secret opens the slot, ErrBadPassword otherwise.
func (s slot) open(secret []byte) ([]byte, error) {
	key := s.kdf.derive(secret, s.salt)
	defer zero(key)
	m, err := openGCM(key, s.sealed, s.header)
	if err != nil {
		return nil, ErrBadPassword
	}
	if len(m) != masterLen {
		zero(m)
		return nil, fmt.Errorf("%w: master secret has length %d", errMalformedSlot, len(m))
	}
	return m, nil
}

// Unlock opens the first slot that the secret opens, then the wrapped key.
// Each well-formed slot costs one argon2id run with its own parameters;
// malformed slots (bad length, version or out-of-bounds parameters) are
// skipped without KDF work. If no slot opens, the error wraps
// ErrBadPassword, also when some slots were malformed. Servers that know
// which slots a secret can open use UnlockSlot instead, so that a guess
// costs them one run, not one per slot.
func Unlock(slots [][]byte, secret []byte, wrappedKey []byte) (*Keyring, error) {
	malformed := 0
	for _, b := range slots {
		kr, err := UnlockSlot(b, secret, wrappedKey)
		if err == nil {
			return kr, nil
		}
		switch {
		case errors.Is(err, errMalformedSlot):
			malformed++
		case errors.Is(err, ErrBadPassword):
		default:
			return nil, err
		}
	}
	if malformed > 0 {
		return nil, fmt.Errorf("%w (%d of %d slots malformed)", ErrBadPassword, malformed, len(slots))
	}
	return nil, ErrBadPassword
}

// UnlockSlot opens one slot with secret (one argon2id run with the slot's
// parameters), then the wrapped key. A wrong secret gives ErrBadPassword;
// a malformed slot an error wrapping both ErrBadPassword and the reason,
// without KDF work.
func UnlockSlot(slotBytes, secret, wrappedKey []byte) (*Keyring, error) {
	s, err := parseSlot(slotBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPassword, err)
	}
	m, err := s.open(secret)
	if err != nil {
		if errors.Is(err, ErrBadPassword) {
			return nil, ErrBadPassword
		}
		return nil, fmt.Errorf("%w: %w", ErrBadPassword, err)
	}
	defer zero(m)
	return newKeyring(m, wrappedKey)
}

// burnSalt is a fixed salt for BurnUnlock; its output is thrown away.
const burnSalt = "sealmail burn\x00\x00\x00"

// BurnUnlock spends the time of one slot's unlock attempt, for unknown
// accounts and secrets that name no slot: one argon2id run with kdf (zero
// means DefaultKDF()) and one failed GCM open, so that such an attempt
// costs what a wrong password for a one-slot account costs. Pass the
// parameters new slots get.
func BurnUnlock(secret []byte, kdf KDFParams) {
	kdf = kdf.orDefault()
	if kdf.Validate() != nil {
		kdf = DefaultKDF()
	}
	key := kdf.derive(secret, []byte(burnSalt))
	defer zero(key)
	var sealed [nonceLen + masterLen + tagLen]byte
	_, _ = openGCM(key, sealed[:], []byte(burnSalt))
}
