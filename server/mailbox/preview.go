package mailbox

import (
	"io"
	"strings"
	"unicode"

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
	r, ok := newDecoder(part.Encoding, strings.NewReader(string(plain[part.BodyStart:end])))
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
	b, _ := io.ReadAll(io.LimitReader(r, previewRead))
	text := strings.ToValidUTF8(string(b), "\uFFFD")
	if part.Subtype == "html" {
		text = stripHTML(text)
	}
	return collapse(text, PreviewChars)
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
	var sb strings.Builder
	space := false
	count := 0
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = sb.Len() > 0
			continue
		}
		if count == n {
			break
		}
		if space {
			if count+1 == n {
				break
			}
			sb.WriteByte(' ')
			count++
			space = false
		}
		sb.WriteRune(r)
		count++
	}
	return sb.String()
}
