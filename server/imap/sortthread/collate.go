package sortthread

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Key returns the i;unicode-casemap form of s (RFC 5051 §2): every
// character titlecased, then the whole canonically decomposed. Two
// strings collate as their keys compare octet by octet.
func Key(s string) string {
	if isASCII(s) {
		return asciiUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(unicode.ToTitle(r))
	}
	return norm.NFD.String(b.String())
}

func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
