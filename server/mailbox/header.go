package mailbox

import (
	"bytes"
	"strings"
)

// headerEnd returns the length of the header block of msg[start:end]:
// up to and including the first empty line, or all of it if there is
// none. A block that begins with an empty line has only that line.
func headerEnd(msg []byte, start, end int64) int64 {
	pos := start
	for pos < end {
		if msg[pos] == '\n' {
			return pos + 1 - start
		}
		if msg[pos] == '\r' && pos+1 < end && msg[pos+1] == '\n' {
			return pos + 2 - start
		}
		nl := bytes.IndexByte(msg[pos:end], '\n')
		if nl < 0 {
			return end - start
		}
		pos += int64(nl) + 1
	}
	return end - start
}

// HeaderLen returns the length of the header block at the start of msg,
// the blank line that ends it included.
func HeaderLen(msg []byte) int64 { return headerEnd(msg, 0, int64(len(msg))) }

// Field is one header field as written: Name without the colon, Value
// with its folding (CRLF before white space) kept.
type Field struct {
	Name  string
	Value string
	// Raw is the whole field, its name and line end included.
	Raw []byte
}

// maxHeaderFields bounds the fields parsed from one header block; the
// rest is ignored (a header is bounded by the message size, but a
// message of nothing but tiny fields should not cost more to describe
// than to store).
const maxHeaderFields = 10000

// ParseHeader splits a header block into fields. It is lenient, as mail
// readers are: a line that is not a field and does not continue one is
// skipped, and a missing final line end is accepted. Raw slices alias
// block.
func ParseHeader(block []byte) []Field {
	var out []Field
	pos := 0
	for pos < len(block) && len(out) < maxHeaderFields {
		lineEnd := bytes.IndexByte(block[pos:], '\n')
		next := len(block)
		if lineEnd >= 0 {
			next = pos + lineEnd + 1
		}
		line := block[pos:next]
		if isBlankLine(line) {
			break // end of the header
		}
		if line[0] == ' ' || line[0] == '\t' {
			pos = next // a continuation of nothing: skip
			continue
		}
		// Continuation lines.
		end := next
		for end < len(block) && (block[end] == ' ' || block[end] == '\t') {
			nl := bytes.IndexByte(block[end:], '\n')
			if nl < 0 {
				end = len(block)
				break
			}
			end += nl + 1
		}
		raw := block[pos:end]
		pos = end
		colon := bytes.IndexByte(raw, ':')
		if colon <= 0 {
			continue
		}
		name := raw[:colon]
		if !validFieldName(name) {
			// "Name : value" (obsolete syntax) is a field too.
			trimmed := bytes.TrimRight(name, " \t")
			if len(trimmed) == 0 || !validFieldName(trimmed) {
				continue
			}
			name = trimmed
		}
		out = append(out, Field{Name: string(name), Value: string(raw[colon+1:]), Raw: raw})
	}
	return out
}

func isBlankLine(line []byte) bool {
	return len(line) == 0 || line[0] == '\n' || (line[0] == '\r' && (len(line) == 1 || line[1] == '\n'))
}

// validFieldName reports whether b is a field name: printable US-ASCII
// except colon (RFC 5322 §3.6.8).
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return len(b) > 0
}

// Unfold removes the line breaks of a folded field value and the white
// space around it (RFC 5322 §2.2.3).
func Unfold(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		var sb strings.Builder
		sb.Grow(len(v))
		for i := 0; i < len(v); i++ {
			if v[i] == '\r' || v[i] == '\n' {
				continue
			}
			sb.WriteByte(v[i])
		}
		v = sb.String()
	}
	return strings.Trim(v, " \t")
}

// headerValue returns the unfolded value of the first field called name
// (case-insensitive) and whether there is one.
func headerValue(fields []Field, name string) (string, bool) {
	for i := range fields {
		if strings.EqualFold(fields[i].Name, name) {
			return Unfold(fields[i].Value), true
		}
	}
	return "", false
}
