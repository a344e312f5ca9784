package crypto

import (
	"bytes"
	"crypto/rand"
	"fmt"
)

// Recovery codes and app passwords are secrets the server makes, for a
// person to write down or paste once. Unlike passwords they have a fixed
// shape, which buys two things:
//
//   - Typing mistakes do not matter. Codes use Crockford's base32
//     alphabet (digits and upper-case letters without I, L, O and U), so
//     ParseCode can read lower case, spaces, dashes and the look-alikes
//     I/L (as 1) and O (as 0) and still arrive at the bytes the slot was
//     made from.
//   - A code names its slot. Its first codeSelectorLen characters are
//     taken from the slot's salt (stored in the clear in the slot), so a
//     server unlocking with a code runs argon2id on the one slot whose
//     selector matches, not on every slot of the account. That keeps the
//     cost of a guess, and the failed-login delay that hides it,
//     independent of how many codes an account has.
//
// The selector is public (anyone who can read the slot sees its salt); the
// secret part is the rest: 140 random bits in a recovery code, 80 in an
// app password. Both are stretched with argon2id like a password.

// CodeKind is the shape of a code.
type CodeKind int

const (
	// CodeRecovery is a recovery code: 32 characters, printed upper case
	// in eight dash-separated groups of four.
	CodeRecovery CodeKind = iota + 1
	// CodeAppPassword is an app password: 20 characters, printed lower
	// case in five dash-separated groups of four.
	CodeAppPassword
)

// String names the kind.
func (k CodeKind) String() string {
	switch k {
	case CodeRecovery:
		return "recovery code"
	case CodeAppPassword:
		return "app password"
	}
	return "unknown"
}

// length is the number of code characters of kind k.
func (k CodeKind) length() int {
	switch k {
	case CodeRecovery:
		return 32
	case CodeAppPassword:
		return 20
	}
	return 0
}

const (
	// crockford is Crockford's base32 alphabet: no I, L, O or U, so that
	// what a person reads back cannot be confused.
	crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	// codeSelectorLen characters (20 bits) of a code name its slot.
	codeSelectorLen = 4
	// codeGroup is the number of characters printed between dashes.
	codeGroup = 4
	// maxCodeInput bounds what ParseCode reads: a code with generous
	// spacing, not a password of any length.
	maxCodeInput = 128
)

// Code is a typed recovery code or app password, normalised.
type Code struct {
	Kind CodeKind
	// Selector names the slot the code was made for: compare it with
	// SlotSelector of each slot of Kind.
	Selector string
	// Secret is the normalised code, what the slot's key was stretched
	// from. Wipe it when done.
	Secret []byte
}

// Wipe zeroes the normalised secret.
func (c *Code) Wipe() { zero(c.Secret) }

// ParseCode reads what a person typed as a recovery code or app password:
// any case, with spaces, tabs and dashes anywhere, I and L read as 1 and O
// as 0. It returns false for anything that is not a code of either kind
// (most passwords), and for input longer than any sensibly spaced code.
func ParseCode(typed []byte) (Code, bool) {
	if len(typed) > maxCodeInput {
		return Code{}, false
	}
	norm := make([]byte, 0, 32)
	for _, c := range typed {
		switch {
		case c == ' ' || c == '-' || c == '\t':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		switch c {
		case 'I', 'L':
			c = '1'
		case 'O':
			c = '0'
		}
		if bytes.IndexByte([]byte(crockford), c) < 0 {
			zero(norm)
			return Code{}, false
		}
		norm = append(norm, c)
	}
	var kind CodeKind
	switch len(norm) {
	case CodeRecovery.length():
		kind = CodeRecovery
	case CodeAppPassword.length():
		kind = CodeAppPassword
	default:
		zero(norm)
		return Code{}, false
	}
	return Code{Kind: kind, Selector: string(norm[:codeSelectorLen]), Secret: norm}, true
}

// SlotSelector returns the selector of a slot: the characters a code made
// for it starts with. It does no KDF work. Every slot has one, whatever
// secret it was made from.
func SlotSelector(slotBytes []byte) (string, error) {
	s, err := parseSlot(slotBytes)
	if err != nil {
		return "", err
	}
	return selectorOf(s.salt), nil
}

// selectorOf spells the first 20 bits of salt in the code alphabet.
func selectorOf(salt []byte) string {
	v := uint32(salt[0])<<12 | uint32(salt[1])<<4 | uint32(salt[2])>>4
	var b [codeSelectorLen]byte
	for i := codeSelectorLen - 1; i >= 0; i-- {
		b[i] = crockford[v&31]
		v >>= 5
	}
	return string(b[:])
}

// NewCode makes a random code of kind and a slot it opens, wrapping the
// same M as this keyring. The code is printed in groups ("ABCD-EFGH-…",
// lower case for app passwords) and is returned only here: store the slot,
// show the code once. A zero kdf means DefaultKDF().
func (k *Keyring) NewCode(kind CodeKind, kdf KDFParams) (code string, slot []byte, err error) {
	n := kind.length()
	if n == 0 {
		return "", nil, fmt.Errorf("crypto: unknown code kind %d", kind)
	}
	kdf = kdf.orDefault()
	if err := kdf.Validate(); err != nil {
		return "", nil, err
	}
	var salt [slotSaltLen]byte
	// crypto/rand.Read never fails (Go 1.24+: it crashes the program
	// rather than return short).
	_, _ = rand.Read(salt[:])
	secret := make([]byte, 0, n)
	secret = append(secret, selectorOf(salt[:])...)
	random := make([]byte, n-codeSelectorLen)
	_, _ = rand.Read(random)
	for _, r := range random {
		secret = append(secret, crockford[r&31]) // 256 is a multiple of 32: uniform
	}
	zero(random)
	defer zero(secret)

	k.mu.RLock()
	if k.master == nil {
		k.mu.RUnlock()
		return "", nil, ErrWiped
	}
	m := bytes.Clone(k.master)
	k.mu.RUnlock()
	defer zero(m)
	slot, err = newSlotWithSalt(m, secret, kdf, salt[:])
	if err != nil {
		return "", nil, err
	}
	printed := make([]byte, 0, n+n/codeGroup)
	for i, c := range secret {
		if i > 0 && i%codeGroup == 0 {
			printed = append(printed, '-')
		}
		if kind == CodeAppPassword && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		printed = append(printed, c)
	}
	return string(printed), slot, nil
}
