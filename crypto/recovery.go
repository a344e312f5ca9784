package crypto

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// recoveryBytes is the entropy of a recovery code: 160 bits, which base32
// spells in exactly 32 characters (8 groups of 4) without padding.
const recoveryBytes = 20

// NewRecoveryCode returns a fresh random recovery code for humans: 160 bits
// from crypto/rand in upper-case base32 (RFC 4648 §6), in dash-separated
// groups of four, e.g. "ABCD-EFGH-…". Make its slot from
// NormalizeRecoveryCode(code), and unlock with the same normalization.
func NewRecoveryCode() string {
	var b [recoveryBytes]byte
	// crypto/rand.Read never fails (Go 1.24+: it crashes the program
	// rather than return short).
	_, _ = rand.Read(b[:])
	s := base32.StdEncoding.EncodeToString(b[:])
	clear(b[:])
	var out strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i : i+4])
	}
	return out.String()
}

// NormalizeRecoveryCode returns the secret a recovery code stands for:
// upper case, with spaces and dashes removed, and the look-alikes 0, 1 and
// 8 read as O, I and B (base32 has no 0, 1 or 8), so that what a human
// types unlocks what NewRecoveryCode printed.
func NormalizeRecoveryCode(code string) []byte {
	out := make([]byte, 0, len(code))
	for _, r := range strings.ToUpper(code) {
		switch r {
		case ' ', '-', '\t', '\n', '\r':
			continue
		case '0':
			r = 'O'
		case '1':
			r = 'I'
		case '8':
			r = 'B'
		}
		out = append(out, string(r)...)
	}
	return out
}
