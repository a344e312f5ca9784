package mailbox

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// Section names a piece of a message as IMAP does (RFC 9051 §6.4.5
// BODY[…], RFC 3516 BINARY[…]).
type Section struct {
	// Part is the part path (1-based); empty for the whole message.
	Part []int
	// Specifier is "", "HEADER", "TEXT" or "MIME"; HEADER with Fields is
	// HEADER.FIELDS (NotFields: HEADER.FIELDS.NOT).
	Specifier string
	Fields    []string
	NotFields bool
	// Binary asks for the content decoded from its transfer encoding.
	Binary bool
}

// ErrUnknownEncoding is returned for BINARY of a part whose transfer
// encoding is not known (RFC 3516 §4.3: NO [UNKNOWN-CTE]).
var ErrUnknownEncoding = errors.New("mailbox: unknown content transfer encoding")

// Extract is where a section lies in a message and how to turn those
// bytes into the section's content.
type Extract struct {
	// Nil: the section does not exist (a part the message does not have).
	Nil bool
	// Start and Len are the byte range of the plaintext the content comes
	// from.
	Start, Len int64
	// Size is the size of the content.
	Size int64
	// Header, if not nil, is the content itself (filtered header fields);
	// Start and Len are then unused.
	Header []byte
	// Encoding, with Binary, is the transfer encoding to decode.
	Encoding string
	Binary   bool
}

// Locate finds a section in the message that sm describes. Sections of
// the top-level header are answered from the summary (Header set) and
// need no decryption; NeedsBody reports which do.
func Locate(sm *Summary, s *Section) (*Extract, error) {
	root := sm.Structure
	hdrLen := int64(len(sm.Header))
	if len(s.Part) == 0 {
		switch s.Specifier {
		case "HEADER":
			h := sm.Header
			if len(s.Fields) > 0 {
				h = FilterHeader(h, s.Fields, s.NotFields)
			}
			return &Extract{Header: h, Size: int64(len(h))}, nil
		case "TEXT":
			return &Extract{Start: hdrLen, Len: sm.Size - hdrLen, Size: sm.Size - hdrLen}, nil
		}
		return &Extract{Start: 0, Len: sm.Size, Size: sm.Size}, nil
	}
	part := resolvePart(root, s.Part)
	if part == nil {
		return &Extract{Nil: true}, nil
	}
	switch s.Specifier {
	case "MIME":
		n := part.BodyStart - part.HeaderStart
		return &Extract{Start: part.HeaderStart, Len: n, Size: n}, nil
	case "HEADER", "TEXT":
		m := part.Message
		if m == nil {
			return &Extract{Nil: true}, nil
		}
		if s.Specifier == "TEXT" {
			n := m.End - m.BodyStart
			return &Extract{Start: m.BodyStart, Len: n, Size: n}, nil
		}
		n := m.BodyStart - m.HeaderStart
		e := &Extract{Start: m.HeaderStart, Len: n, Size: n}
		if len(s.Fields) > 0 {
			e.Header = []byte{} // filtered once the bytes are read
			e.Size = -1
		}
		return e, nil
	}
	n := part.End - part.BodyStart
	e := &Extract{Start: part.BodyStart, Len: n, Size: n}
	if s.Binary {
		e.Binary = true
		e.Encoding = part.Encoding
		if !part.IsMultipart() && !part.IsMessage() {
			if part.DecodedSize < 0 {
				return nil, ErrUnknownEncoding
			}
			e.Size = part.DecodedSize
		} else {
			e.Encoding = ""
		}
	}
	return e, nil
}

// BinarySize returns BINARY.SIZE of a part (RFC 3516 §4.2), or
// ErrUnknownEncoding; ok is false for a part the message does not have.
func BinarySize(sm *Summary, part []int) (n int64, ok bool, err error) {
	if len(part) == 0 {
		return sm.Size, true, nil
	}
	p := resolvePart(sm.Structure, part)
	if p == nil {
		return 0, false, nil
	}
	if p.IsMultipart() || p.IsMessage() {
		return p.End - p.BodyStart, true, nil
	}
	if p.DecodedSize < 0 {
		return 0, true, ErrUnknownEncoding
	}
	return p.DecodedSize, true, nil
}

// resolvePart follows a part path (RFC 9051 §6.4.5): in a multipart, n is
// its nth part; in a message that is not multipart, 1 is its body; a
// message/rfc822 part is entered by the number after it.
func resolvePart(root *structure.BodyStructure, path []int) *structure.BodyStructure {
	cur := root // a message: the top level or an encapsulated one
	inMessage := true
	for i, n := range path {
		switch {
		case cur.IsMultipart():
			if n < 1 || n > len(cur.Parts) {
				return nil
			}
			cur = cur.Parts[n-1]
		case inMessage && n == 1:
			// The body of a single-part message is its part 1.
		default:
			return nil
		}
		inMessage = false
		if i < len(path)-1 && cur.IsMessage() {
			cur = cur.Message
			inMessage = true
		}
	}
	return cur
}

// NeedsBody reports whether the section needs the message's plaintext
// (everything but the top-level header).
func NeedsBody(s *Section) bool {
	return len(s.Part) > 0 || s.Specifier != "HEADER"
}

// Content returns a reader of the section's content given a reader of
// plain[e.Start:e.Start+e.Len], and its size (known in advance for
// everything but a filtered header of an inner message, which is read
// here). A BODY (not BINARY) section has every NUL byte replaced by 0x80:
// a literal must not carry NUL (RFC 9051 §4.3) and the size does not
// change. (Binary content appended by IMAP is usually re-encoded before
// it is stored, ConvertBinary; this covers what was not.)
func (e *Extract) Content(r io.Reader, fields []string, not bool) (io.Reader, int64, error) {
	if e.Header != nil && e.Size >= 0 {
		return bytes.NewReader(e.Header), e.Size, nil
	}
	if e.Header != nil {
		b, err := io.ReadAll(io.LimitReader(r, e.Len))
		if err != nil {
			return nil, 0, err
		}
		h := FilterHeader(b, fields, not)
		return bytes.NewReader(h), int64(len(h)), nil
	}
	if e.Binary {
		d, ok := newDecoder(e.Encoding, r)
		if !ok {
			return nil, 0, ErrUnknownEncoding
		}
		return d, e.Size, nil
	}
	return nulFilter{r}, e.Size, nil
}

// nulFilter replaces NUL bytes by 0x80.
type nulFilter struct{ r io.Reader }

func (f nulFilter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	b := p[:n]
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			break
		}
		b[i] = 0x80
		b = b[i+1:]
	}
	return n, err
}

// FilterHeader returns the fields of a header block named in fields
// (HEADER.FIELDS), or not named (HEADER.FIELDS.NOT), as written, and the
// blank line that ends a header (RFC 9051 §6.4.5).
func FilterHeader(block []byte, fields []string, not bool) []byte {
	var out []byte
	for _, f := range ParseHeader(block) {
		named := false
		for _, n := range fields {
			if strings.EqualFold(n, f.Name) {
				named = true
				break
			}
		}
		if named != not {
			out = append(out, f.Raw...)
			if n := len(out); n == 0 || out[n-1] != '\n' {
				out = append(out, '\r', '\n')
			}
		}
	}
	return append(out, '\r', '\n')
}
