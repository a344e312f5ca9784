package mailbox

import (
	"bytes"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// PreviewChars is the most characters a preview has (RFC 8970 §3.1
// allows 256; 200 is what it recommends clients show).
const PreviewChars = 200

// previewRead bounds the bytes of a part read for its preview: enough for
// PreviewChars characters after HTML markup and white space are removed.
const previewRead = 16 << 10

// Preview returns the start of the text of the message plain, whose
// structure is bs (nil: parsed here): its first text/plain part that is
// not an attachment, else its first such text/html part with the markup
// removed; decoded from its transfer encoding and charset, white space
// collapsed, at most PreviewChars characters. "" if there is no text.
func Preview(plain []byte, bs *structure.BodyStructure) string {
	if bs == nil {
		bs = Structure(plain)
	}
	part := findText(bs, "plain", 0)
	if part == nil {
		part = findText(bs, "html", 0)
	}
	if part == nil {
		return ""
	}
	end := min(part.End, part.BodyStart+previewRead*4)
	r, ok := newDecoder(part.Encoding, bytes.NewReader(plain[part.BodyStart:end]))
	if !ok {
		return ""
	}
	if cs := paramValue(part.Params, "charset"); cs != "" && !isUTF8(cs) {
		cr, err := charset.Reader(cs, r)
		if err != nil {
			return ""
		}
		r = cr
	}
	r = io.LimitReader(r, previewRead)
	if part.Subtype == "html" {
		b, _ := io.ReadAll(r)
		return collapse(stripHTML(strings.ToValidUTF8(string(b), "\uFFFD")), PreviewChars)
	}
	return previewPlain(r)
}

// previewFirstRead is how much text previewPlain decodes at first: a
// preview of ordinary text is complete well within it.
const previewFirstRead = 1 << 10

// previewPlain returns the preview of plain text read from r, decoding
// only as much as the preview needs (building a summary must not decode
// and copy previewRead bytes for 200 characters). The result is what
// collapse gives for all of r: a prefix is read, doubling, until its
// preview is complete before the prefix's last few bytes, where a cut
// UTF-8 sequence would read differently.
func previewPlain(r io.Reader) string {
	var b []byte
	for step := previewFirstRead; ; step *= 2 {
		n0 := len(b)
		b = append(b, make([]byte, step)...)
		n, err := io.ReadFull(r, b[n0:])
		b = b[:n0+n]
		text := strings.ToValidUTF8(string(b), "\uFFFD")
		out, stop := collapseAt(text, PreviewChars)
		if err != nil || (stop >= 0 && stop < len(text)-2*utf8.UTFMax) {
			return out
		}
	}
}

func isUTF8(cs string) bool {
	switch strings.ToLower(cs) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// findText returns the first text/sub leaf that is not an attachment,
// depth first, not descending into attached messages.
func findText(bs *structure.BodyStructure, sub string, depth int) *structure.BodyStructure {
	if depth > maxParseDepth {
		return nil
	}
	if bs.IsMultipart() {
		for _, p := range bs.Parts {
			if t := findText(p, sub, depth+1); t != nil {
				return t
			}
		}
		return nil
	}
	if bs.Type == "text" && bs.Subtype == sub && !strings.EqualFold(bs.Disposition, "attachment") {
		return bs
	}
	return nil
}

// stripHTML drops tags, comments and the content of style and script
// elements, and decodes the few entities that matter for a preview.
func stripHTML(s string) string {
	var sb strings.Builder
	lower := strings.ToLower(s)
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(lower[i:], "<!--"):
			j := strings.Index(lower[i:], "-->")
			if j < 0 {
				return sb.String()
			}
			i += j + 3
		case strings.HasPrefix(lower[i:], "<style"), strings.HasPrefix(lower[i:], "<script"):
			tag := "</style"
			if strings.HasPrefix(lower[i:], "<script") {
				tag = "</script"
			}
			j := strings.Index(lower[i:], tag)
			if j < 0 {
				return sb.String()
			}
			i += j
			k := strings.IndexByte(s[i:], '>')
			if k < 0 {
				return sb.String()
			}
			i += k + 1
		case s[i] == '<':
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				return sb.String()
			}
			i += j + 1
			sb.WriteByte(' ')
		case s[i] == '&':
			j := strings.IndexByte(s[i:min(len(s), i+10)], ';')
			if j > 0 {
				if r, ok := entities[lower[i+1:i+j]]; ok {
					sb.WriteString(r)
					i += j + 1
					continue
				}
			}
			sb.WriteByte('&')
			i++
		default:
			sb.WriteByte(s[i])
			i++
		}
	}
	return sb.String()
}

var entities = map[string]string{"amp": "&", "lt": "<", "gt": ">", "quot": `"`, "apos": "'", "nbsp": " "}

// collapse replaces runs of white space and control characters by one
// space, trims, and cuts to n characters.
func collapse(s string, n int) string {
	out, _ := collapseAt(s, n)
	return out
}

// collapseAt is collapse, and the offset in s of the first rune it did
// not need to look at: -1 if it read all of s (more of s could change
// the result).
func collapseAt(s string, n int) (string, int) {
	var sb strings.Builder
	space := false
	count := 0
	for i, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = sb.Len() > 0
			continue
		}
		if count == n {
			return sb.String(), i
		}
		if space {
			if count+1 == n {
				return sb.String(), i
			}
			sb.WriteByte(' ')
			count++
			space = false
		}
		sb.WriteRune(r)
		count++
	}
	return sb.String(), -1
}
