package wire

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3), the mailbox name encoding of IMAP4rev1
// clients that enabled neither IMAP4rev2 nor UTF8=ACCEPT: printable ASCII
// stands for itself except "&", which is "&-"; anything else is UTF-16BE in
// base64 (with "," for "/", no padding) between "&" and "-".

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

var mutf7Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(mutf7Alphabet); i++ {
		t[mutf7Alphabet[i]] = int8(i)
	}
	return t
}()

var errMUTF7 = errors.New("invalid modified UTF-7")

// decodeMUTF7 decodes a modified UTF-7 name to UTF-8. It accepts only what
// a conforming encoder produces: no 8-bit or control bytes, no base64 run
// that is unterminated, has leftover bits, an odd byte count or broken
// surrogates, and none that encodes printable ASCII (which must stand for
// itself).
func decodeMUTF7(s string) (string, error) {
	return decodeMUTF7With8bit(s, false)
}

// decodeMUTF7With8bit is decodeMUTF7 that, if allow8bit, also takes bytes
// of 0x80 and above as they are (the caller checked they are UTF-8).
func decodeMUTF7With8bit(s string, allow8bit bool) (string, error) {
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f || s[i] > 0x7f && !allow8bit {
				return "", errMUTF7
			}
		}
		return s, nil
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c > 0x7f && !allow8bit {
			return "", errMUTF7
		}
		if c != '&' {
			sb.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errMUTF7
		}
		run := s[i+1 : i+1+j]
		i += j + 1
		if run == "" {
			sb.WriteByte('&')
			continue
		}
		if err := decodeRun(&sb, run); err != nil {
			return "", err
		}
	}
	return sb.String(), nil
}

// decodeRun decodes one base64 run of UTF-16BE.
func decodeRun(sb *strings.Builder, run string) error {
	var bits uint32
	nbits := 0
	units := make([]uint16, 0, len(run)*6/16)
	for k := 0; k < len(run); k++ {
		v := mutf7Index[run[k]]
		if v < 0 {
			return errMUTF7
		}
		bits = bits<<6 | uint32(v)
		nbits += 6
		if nbits >= 16 {
			nbits -= 16
			units = append(units, uint16(bits>>nbits))
			bits &= 1<<nbits - 1
		}
	}
	if nbits >= 6 || bits != 0 || len(units) == 0 {
		return errMUTF7 // leftover bits: a partial unit or non-zero padding
	}
	for k := 0; k < len(units); k++ {
		u := units[k]
		var r rune
		switch {
		case utf16.IsSurrogate(rune(u)):
			if u >= 0xdc00 || k+1 == len(units) {
				return errMUTF7
			}
			r = utf16.DecodeRune(rune(u), rune(units[k+1]))
			if r == utf8.RuneError {
				return errMUTF7
			}
			k++
		default:
			r = rune(u)
			if r >= 0x20 && r <= 0x7e {
				return errMUTF7 // printable ASCII must not be encoded
			}
		}
		sb.WriteRune(r)
	}
	return nil
}

// encodeMUTF7 encodes a UTF-8 name in modified UTF-7. Invalid UTF-8 bytes
// become U+FFFD.
func encodeMUTF7(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '&' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			if c == '&' {
				sb.WriteString("&-")
			} else {
				sb.WriteByte(c)
			}
			i++
			continue
		}
		// A run of characters outside printable ASCII.
		var units []uint16
		for i < len(s) && (s[i] < 0x20 || s[i] > 0x7e) {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				units = append(units, uint16(r1), uint16(r2))
			} else {
				units = append(units, uint16(r))
			}
		}
		sb.WriteByte('&')
		var bits uint32
		nbits := 0
		for _, u := range units {
			bits = bits<<16 | uint32(u)
			nbits += 16
			for nbits >= 6 {
				nbits -= 6
				sb.WriteByte(mutf7Alphabet[bits>>nbits&0x3f])
			}
			bits &= 1<<nbits - 1
		}
		if nbits > 0 {
			sb.WriteByte(mutf7Alphabet[bits<<(6-nbits)&0x3f])
		}
		sb.WriteByte('-')
	}
	return sb.String()
}
