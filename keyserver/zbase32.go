package keyserver

import (
	"crypto/sha1"
	"strings"
)

// zbase32Alphabet is the z-base-32 alphabet (Zooko's human-oriented base-32,
// used by draft-koch-openpgp-webkey-service §3.1). Only lower case is valid.
const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// hashLen is the length of an encoded WKD hash: 160 bits of SHA-1 in 5-bit
// groups is exactly 32 characters, with no padding.
const hashLen = 32

// zbase32 encodes b, most significant bit first, without padding; a final
// partial group is padded with zero bits.
func zbase32(b []byte) string {
	var sb strings.Builder
	sb.Grow((len(b)*8 + 4) / 5)
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(zbase32Alphabet[(acc>>uint(bits))&0x1f])
		}
	}
	if bits > 0 {
		sb.WriteByte(zbase32Alphabet[(acc<<uint(5-bits))&0x1f])
	}
	return sb.String()
}

// WKDHash returns the Web Key Directory hash of a local part: the z-base-32
// encoded SHA-1 of the local part mapped to lower case
// (draft-koch-openpgp-webkey-service §3.1). Like GnuPG, only ASCII letters
// are mapped; other bytes are hashed as they are.
//
// SHA-1 is what the draft specifies; it serves as a name mangling, not as a
// security function.
func WKDHash(local string) string {
	sum := sha1.Sum([]byte(asciiLower(local)))
	return zbase32(sum[:])
}

// asciiLower maps A-Z to a-z and leaves every other byte alone.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// validHash reports whether s is a well-formed encoded hash: exactly 32
// characters of the lower-case z-base-32 alphabet.
func validHash(s string) bool {
	if len(s) != hashLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(zbase32Alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
