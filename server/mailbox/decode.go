package mailbox

import (
	"io"
	"strings"
)

// newDecoder returns a reader of r decoded from the transfer encoding enc
// (RFC 2045 §6), or false for an encoding it does not know. Both decoders
// are lenient, as mail readers are, and never fail: base64 skips
// characters outside its alphabet and stops at the first '='; quoted-
// printable drops white space at line ends, joins soft line breaks
// ("=" at a line end, white space allowed after it) and keeps an '=' that
// does not start a valid escape. Line ends are kept as they are.
func newDecoder(enc string, r io.Reader) (io.Reader, bool) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "7bit", "8bit", "binary":
		return r, true
	case "base64":
		return &decodeReader{src: r, dec: &b64State{}}, true
	case "quoted-printable":
		return &decodeReader{src: r, dec: &qpState{}}, true
	}
	return nil, false
}

// decodeState decodes a stream in pieces: decode appends what src
// decodes to (with what it holds back from earlier pieces), flush what is
// left at the end.
type decodeState interface {
	decode(dst, src []byte) []byte
	flush(dst []byte) []byte
}

type decodeReader struct {
	src  io.Reader
	dec  decodeState
	in   []byte
	out  []byte
	off  int
	err  error
	done bool
}

func (d *decodeReader) Read(p []byte) (int, error) {
	for d.off == len(d.out) {
		if d.done {
			return 0, d.err
		}
		if d.in == nil {
			d.in = make([]byte, 8<<10)
		}
		n, err := d.src.Read(d.in)
		d.out = d.dec.decode(d.out[:0], d.in[:n])
		d.off = 0
		if err != nil {
			d.out = d.dec.flush(d.out)
			d.done = true
			d.err = err
		}
	}
	n := copy(p, d.out[d.off:])
	d.off += n
	return n, nil
}

// b64State decodes base64 (RFC 2045 §6.8).
type b64State struct {
	quad [4]byte
	n    int
	end  bool // '=' seen
}

func b64Value(c byte) (byte, bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26, true
	case c >= '0' && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

func (s *b64State) decode(dst, src []byte) []byte {
	for _, c := range src {
		if s.end {
			break
		}
		if c == '=' {
			s.end = true
			break
		}
		v, ok := b64Value(c)
		if !ok {
			continue
		}
		s.quad[s.n] = v
		s.n++
		if s.n == 4 {
			dst = append(dst, s.quad[0]<<2|s.quad[1]>>4, s.quad[1]<<4|s.quad[2]>>2, s.quad[2]<<6|s.quad[3])
			s.n = 0
		}
	}
	return dst
}

func (s *b64State) flush(dst []byte) []byte {
	switch s.n {
	case 2:
		dst = append(dst, s.quad[0]<<2|s.quad[1]>>4)
	case 3:
		dst = append(dst, s.quad[0]<<2|s.quad[1]>>4, s.quad[1]<<4|s.quad[2]>>2)
	}
	s.n = 0
	return dst
}

// qpState decodes quoted-printable (RFC 2045 §6.7) one byte at a time.
type qpState struct {
	ws []byte // white space held back: dropped at a line end
	eq []byte // "=" and what followed it, while undecided
	cr bool   // a CR held back: a line end if LF follows
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (s *qpState) decode(dst, src []byte) []byte {
	for _, c := range src {
		dst = s.byte(dst, c)
	}
	return dst
}

func (s *qpState) byte(dst []byte, c byte) []byte {
	if len(s.eq) > 0 {
		// After '=': two hex digits, or white space up to a line end
		// (a soft line break).
		switch {
		case len(s.eq) == 1 && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			s.eq = append(s.eq, c)
			return dst
		case len(s.eq) == 2 && s.eq[1] != ' ' && s.eq[1] != '\t' && s.eq[1] != '\r':
			hi, ok1 := unhex(s.eq[1])
			lo, ok2 := unhex(c)
			if ok1 && ok2 {
				s.eq = s.eq[:0]
				return append(dst, hi<<4|lo)
			}
			// Not an escape: keep it as it is.
			held := append([]byte(nil), s.eq...)
			s.eq = s.eq[:0]
			for _, b := range held {
				dst = s.plain(dst, b)
			}
			return s.byte(dst, c)
		case c == ' ' || c == '\t' || c == '\r':
			s.eq = append(s.eq, c)
			return dst
		case c == '\n':
			s.eq = s.eq[:0] // soft line break
			return dst
		}
		held := append([]byte(nil), s.eq...)
		s.eq = s.eq[:0]
		for _, b := range held {
			dst = s.plain(dst, b)
		}
		return s.byte(dst, c)
	}
	if c == '=' {
		if s.cr {
			dst = append(dst, s.ws...)
			s.ws = s.ws[:0]
			dst = append(dst, '\r')
			s.cr = false
		}
		// White space before '=' is not at a line end.
		dst = append(dst, s.ws...)
		s.ws = s.ws[:0]
		s.eq = append(s.eq, '=')
		return dst
	}
	return s.plain(dst, c)
}

// plain handles a byte outside an escape: white space is held until it is
// known not to end a line.
func (s *qpState) plain(dst []byte, c byte) []byte {
	switch c {
	case ' ', '\t':
		if s.cr {
			dst = append(dst, s.ws...)
			s.ws = s.ws[:0]
			dst = append(dst, '\r')
			s.cr = false
		}
		s.ws = append(s.ws, c)
		return dst
	case '\r':
		if s.cr {
			dst = append(dst, s.ws...)
			s.ws = s.ws[:0]
			dst = append(dst, '\r')
		}
		s.cr = true
		return dst
	case '\n':
		s.ws = s.ws[:0]
		if s.cr {
			dst = append(dst, '\r')
			s.cr = false
		}
		return append(dst, '\n')
	}
	if s.cr {
		dst = append(dst, s.ws...)
		s.ws = s.ws[:0]
		dst = append(dst, '\r')
		s.cr = false
	}
	dst = append(dst, s.ws...)
	s.ws = s.ws[:0]
	return append(dst, c)
}

func (s *qpState) flush(dst []byte) []byte {
	if len(s.eq) > 0 {
		// "=" at the very end is a soft break; anything else is kept.
		if len(s.eq) == 2 && s.eq[1] != ' ' && s.eq[1] != '\t' && s.eq[1] != '\r' {
			dst = append(dst, s.eq...)
		}
		s.eq = s.eq[:0]
	}
	if s.cr {
		dst = append(dst, '\r')
		s.cr = false
	}
	s.ws = s.ws[:0] // trailing white space at the end is dropped
	return dst
}
