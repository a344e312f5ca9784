package inbound

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// maxHeaderBytes bounds the header section that is parsed: DKIM
// verification reads the header whole, so a message whose header is
// larger is not verified (dkim=permerror) and its fields are not
// examined past this point.
const maxHeaderBytes = 256 << 10

// maxFields bounds the fields kept of one header.
const maxFields = 1000

// field is one header field of a message: its name, its value
// unfolded, and where its bytes lie in the message (line ends
// included).
type field struct {
	name       string
	value      string
	start, end int64
}

var errHeaderTooLarge = errors.New("inbound: header section too large")

// readHeader reads the header section of a message (RFC 5322 §2.2):
// fields up to the first empty line, or up to the first line that is
// neither a field nor a continuation. Lines end in CRLF (the MX refuses
// bare CR and LF). It returns errHeaderTooLarge, with the fields read so
// far, if the section exceeds maxHeaderBytes.
func readHeader(r io.Reader) ([]field, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxHeaderBytes+1), 16<<10)
	var (
		fields []field
		off    int64
		cur    *field
		val    strings.Builder
	)
	flush := func(end int64) {
		if cur != nil {
			cur.value = strings.TrimSpace(val.String())
			cur.end = end
			if len(fields) < maxFields {
				fields = append(fields, *cur)
			}
			cur = nil
			val.Reset()
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: read it whole, bounded by
			// the limit reader.
			rest, err2 := br.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
			err = err2
		}
		if off+int64(len(line)) > maxHeaderBytes {
			flush(off)
			return fields, errHeaderTooLarge
		}
		start := off
		off += int64(len(line))
		text := bytes.TrimRight(line, "\r\n")
		switch {
		case len(text) == 0:
			flush(start)
			return fields, nil
		case text[0] == ' ' || text[0] == '\t':
			if cur == nil {
				return fields, nil // a continuation of nothing: not a header
			}
			if val.Len() < maxHeaderBytes {
				val.Write(text)
			}
		default:
			colon := bytes.IndexByte(text, ':')
			if colon <= 0 || !fieldName(text[:colon]) {
				flush(start)
				return fields, nil // the body starts without an empty line
			}
			flush(start)
			cur = &field{name: string(text[:colon]), start: start}
			val.Write(text[colon+1:])
		}
		if err != nil {
			flush(off)
			if errors.Is(err, io.EOF) {
				return fields, nil
			}
			return fields, err
		}
	}
}

// fieldName reports whether b is a field name: printable ASCII but ':'
// (RFC 5322 §2.2), allowing trailing blanks ("Subject :").
func fieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// authservID returns the authserv-id of an Authentication-Results value
// (RFC 8601 §2.2): the first word, comments removed.
func authservID(v string) string {
	v = stripComments(v)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(f[0]), ".")
}

// stripComments removes RFC 5322 comments (nested parentheses,
// backslash escapes), bounded by the value's length.
func stripComments(v string) string {
	if !strings.Contains(v, "(") {
		return v
	}
	var b strings.Builder
	depth := 0
	esc := false
	for _, r := range v {
		switch {
		case esc:
			esc = false
			continue
		case r == '\\' && depth > 0:
			esc = true
			continue
		case r == '(':
			depth++
			continue
		case r == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteRune(r)
		}
	}
	return b.String()
}
