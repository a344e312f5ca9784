package mailbox

import (
	"bytes"
	"encoding/base64"
	"strings"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// ConvertBinary returns msg with every part whose content is binary (a
// Content-Transfer-Encoding of "binary", or an identity encoding with NUL
// bytes) re-encoded as base64 and its header saying so, as Dovecot does
// with a binary APPEND (RFC 3516 §4.3 lets a server store such content
// encoded): BODY[] then never carries NUL, sizes agree with what is
// stored, and BINARY[] still gives the original bytes. It returns msg
// itself, and false, when nothing needs converting.
func ConvertBinary(msg []byte) ([]byte, bool) {
	var parts []*structure.BodyStructure
	collectBinary(msg, Structure(msg), &parts, 0)
	if len(parts) == 0 {
		return msg, false
	}
	var out bytes.Buffer
	out.Grow(len(msg) + len(msg)/3)
	pos := int64(0)
	for _, p := range parts {
		out.Write(msg[pos:p.HeaderStart])
		out.Write(withBase64Encoding(msg[p.HeaderStart:p.BodyStart]))
		writeBase64Lines(&out, msg[p.BodyStart:p.End])
		pos = p.End
	}
	out.Write(msg[pos:])
	return out.Bytes(), true
}

// collectBinary lists, in message order, the leaves with binary content.
func collectBinary(msg []byte, bs *structure.BodyStructure, out *[]*structure.BodyStructure, depth int) {
	if depth > maxParseDepth {
		return
	}
	switch {
	case bs.IsMultipart():
		for _, p := range bs.Parts {
			collectBinary(msg, p, out, depth+1)
		}
	case bs.IsMessage():
		collectBinary(msg, bs.Message, out, depth+1)
	default:
		enc := strings.ToLower(strings.TrimSpace(bs.Encoding))
		if enc == "binary" || isIdentity(enc) && bytes.IndexByte(msg[bs.BodyStart:bs.End], 0) >= 0 {
			*out = append(*out, bs)
		}
	}
}

// withBase64Encoding returns a header block with its
// Content-Transfer-Encoding fields replaced by one saying base64.
func withBase64Encoding(hdr []byte) []byte {
	var out []byte
	for _, f := range ParseHeader(hdr) {
		if strings.EqualFold(f.Name, "Content-Transfer-Encoding") {
			continue
		}
		out = append(out, f.Raw...)
		if n := len(out); out[n-1] != '\n' {
			out = append(out, '\r', '\n')
		}
	}
	out = append(out, "Content-Transfer-Encoding: base64\r\n\r\n"...)
	return out
}

// writeBase64Lines writes b in base64, 76 characters a line (RFC 2045
// §6.8), each line ended with CRLF.
func writeBase64Lines(out *bytes.Buffer, b []byte) {
	enc := base64.StdEncoding.EncodeToString(b)
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
}
