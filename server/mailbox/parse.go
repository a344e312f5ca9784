package mailbox

import (
	"bytes"
	"io"
	"mime"
	"strings"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// Bounds on the structure parsed from one message: deeper or further
// parts are left opaque (the last part keeps the rest of its parent's
// body). Dovecot bounds MIME parts the same way.
const (
	maxParseDepth = 32
	maxParseParts = 1000
)

// Envelope returns the envelope of a header block (RFC 9051 §7.5.2):
// raw values of Date, Subject, In-Reply-To and Message-ID, parsed
// address lists, Sender and Reply-To defaulting to From when absent or
// empty.
func Envelope(header []byte) *structure.Envelope {
	return envelopeOf(ParseHeader(header))
}

func envelopeOf(fields []Field) *structure.Envelope {
	env := &structure.Envelope{}
	env.Date, _ = headerValue(fields, "Date")
	env.Subject, _ = headerValue(fields, "Subject")
	env.InReplyTo, _ = headerValue(fields, "In-Reply-To")
	env.MessageID, _ = headerValue(fields, "Message-ID")
	addrs := func(name string) []structure.Address {
		v, ok := headerValue(fields, name)
		if !ok {
			return nil
		}
		return ParseAddressList(v)
	}
	env.From = addrs("From")
	env.Sender = addrs("Sender")
	env.ReplyTo = addrs("Reply-To")
	env.To = addrs("To")
	env.Cc = addrs("Cc")
	env.Bcc = addrs("Bcc")
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}

// Structure returns the MIME structure of a whole message, with the
// offsets of every part (see structure.BodyStructure).
func Structure(msg []byte) *structure.BodyStructure {
	p := &structParser{msg: msg}
	return p.entity(0, int64(len(msg)), 0, false)
}

type structParser struct {
	msg   []byte
	parts int
}

// entity parses the entity msg[start:end]: a header block and a body.
// digest is set inside multipart/digest, where parts default to
// message/rfc822.
func (p *structParser) entity(start, end int64, depth int, digest bool) *structure.BodyStructure {
	p.parts++
	hl := headerEnd(p.msg, start, end)
	bs := &structure.BodyStructure{HeaderStart: start, BodyStart: start + hl, End: end}
	fields := ParseHeader(p.msg[start : start+hl])

	ct, hasCT := headerValue(fields, "Content-Type")
	typ, sub, params := parseContentType(ct)
	if !hasCT || typ == "" {
		typ, sub = "text", "plain"
		if digest {
			typ, sub = "message", "rfc822"
		}
		params = []structure.Param{{Name: "charset", Value: "us-ascii"}}
	}
	bs.Type, bs.Subtype, bs.Params = typ, sub, params
	bs.ID, _ = headerValue(fields, "Content-ID")
	bs.Description, _ = headerValue(fields, "Content-Description")
	bs.Encoding, _ = headerValue(fields, "Content-Transfer-Encoding")
	if bs.Encoding == "" {
		bs.Encoding = "7BIT"
	}
	bs.MD5, _ = headerValue(fields, "Content-MD5")
	if d, ok := headerValue(fields, "Content-Disposition"); ok && d != "" {
		dt, dp := parseDisposition(d)
		bs.Disposition, bs.DispositionParams = dt, dp
	}
	if l, ok := headerValue(fields, "Content-Language"); ok {
		bs.Language = strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	}
	bs.Location, _ = headerValue(fields, "Content-Location")

	body := p.msg[bs.BodyStart:end]
	bs.Size = int64(len(body))
	deep := depth >= maxParseDepth || p.parts >= maxParseParts
	switch {
	case typ == "multipart" && !deep:
		boundary := paramValue(params, "boundary")
		if boundary != "" {
			p.multipart(bs, boundary, depth, sub == "digest")
		}
		if len(bs.Parts) == 0 {
			// No boundary or no part: one empty text part, as Dovecot
			// does, so that the structure stays a multipart.
			bs.Parts = []*structure.BodyStructure{{
				Type: "text", Subtype: "plain", Encoding: "7BIT",
				Params:      []structure.Param{{Name: "charset", Value: "us-ascii"}},
				HeaderStart: end, BodyStart: end, End: end,
			}}
		}
		bs.Size = 0
		bs.Encoding = ""
	case typ == "message" && (sub == "rfc822" || sub == "global") && !deep && isIdentity(bs.Encoding):
		inner := p.entity(bs.BodyStart, end, depth+1, false)
		bs.Message = inner
		bs.Envelope = envelopeOf(ParseHeader(p.msg[inner.HeaderStart:inner.BodyStart]))
		bs.Lines = int64(bytes.Count(body, []byte{'\n'}))
		bs.DecodedSize = bs.Size
	default:
		if typ == "text" {
			bs.Lines = int64(bytes.Count(body, []byte{'\n'}))
		}
		bs.DecodedSize = decodedSize(body, bs.Encoding)
	}
	return bs
}

// multipart finds the parts of bs's body between delimiter lines
// "--boundary" (RFC 2046 §5.1.1). The line end before a delimiter belongs
// to it; text before the first delimiter (the preamble) and after the
// closing one (the epilogue) is in no part. A body without a closing
// delimiter ends its last part at its end.
func (p *structParser) multipart(bs *structure.BodyStructure, boundary string, depth int, digest bool) {
	delim := []byte("--" + boundary)
	pos := bs.BodyStart
	end := bs.End
	partStart := int64(-1)
	for pos < end {
		lineStart := pos
		nl := bytes.IndexByte(p.msg[pos:end], '\n')
		lineEnd := end
		next := end
		if nl >= 0 {
			lineEnd = pos + int64(nl)
			next = lineEnd + 1
		}
		pos = next
		line := p.msg[lineStart:lineEnd]
		if !bytes.HasPrefix(line, delim) {
			continue
		}
		rest := bytes.TrimRight(line[len(delim):], " \t\r")
		closing := bytes.Equal(rest, []byte("--"))
		if len(rest) != 0 && !closing {
			continue // a longer boundary, or text that starts like one
		}
		if partStart >= 0 {
			// The part ends before the line end that precedes this
			// delimiter line.
			partEnd := lineStart
			if partEnd > partStart && p.msg[partEnd-1] == '\n' {
				partEnd--
				if partEnd > partStart && p.msg[partEnd-1] == '\r' {
					partEnd--
				}
			}
			p.addPart(bs, partStart, partEnd, depth, digest)
		}
		if closing || p.parts >= maxParseParts {
			return
		}
		partStart = next
	}
	if partStart >= 0 && partStart <= end {
		p.addPart(bs, partStart, end, depth, digest)
	}
}

func (p *structParser) addPart(bs *structure.BodyStructure, start, end int64, depth int, digest bool) {
	if start > end {
		start = end
	}
	bs.Parts = append(bs.Parts, p.entity(start, end, depth+1, digest))
}

// parseContentType returns the lower-case type and subtype and the
// parameters of a Content-Type value; type "" if it has none. Invalid
// parameters are dropped, the type kept.
func parseContentType(v string) (typ, sub string, params []structure.Param) {
	if v == "" {
		return "", "", nil
	}
	mt, ps, err := mime.ParseMediaType(v)
	if err != nil {
		// Salvage "type/subtype" before the first ';'.
		t, _, _ := strings.Cut(v, ";")
		mt = strings.ToLower(strings.TrimSpace(t))
		ps = nil
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.ContainsAny(mt, " \t\"") {
		return "", "", nil
	}
	return typ, sub, orderedParams(v, ps)
}

func parseDisposition(v string) (string, []structure.Param) {
	dt, ps, err := mime.ParseMediaType(v)
	if err != nil {
		t, _, _ := strings.Cut(v, ";")
		return strings.ToLower(strings.TrimSpace(t)), nil
	}
	return dt, orderedParams(v, ps)
}

// orderedParams returns ps in the order their names first appear in the
// raw value (mime.ParseMediaType gives a map). Names are lower case.
func orderedParams(raw string, ps map[string]string) []structure.Param {
	if len(ps) == 0 {
		return nil
	}
	lower := strings.ToLower(raw)
	out := make([]structure.Param, 0, len(ps))
	for k, v := range ps {
		out = append(out, structure.Param{Name: k, Value: v})
	}
	pos := func(name string) int {
		i := strings.Index(lower, name+"=")
		if i < 0 {
			i = strings.Index(lower, name+"*")
		}
		if i < 0 {
			return len(lower)
		}
		return i
	}
	// Few parameters: insertion sort by position.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (pos(out[j].Name) < pos(out[j-1].Name) ||
			pos(out[j].Name) == pos(out[j-1].Name) && out[j].Name < out[j-1].Name); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func paramValue(ps []structure.Param, name string) string {
	for _, p := range ps {
		if strings.EqualFold(p.Name, name) {
			return p.Value
		}
	}
	return ""
}

// isIdentity reports a transfer encoding that leaves the bytes as they
// are (RFC 2045 §6.1).
func isIdentity(enc string) bool {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// decodedSize returns the size of body once decoded from enc (with the
// decoders that BINARY uses), -1 for an unknown encoding.
func decodedSize(body []byte, enc string) int64 {
	d, ok := newDecoder(enc, bytes.NewReader(body))
	if !ok {
		return -1
	}
	n, _ := io.Copy(io.Discard, d)
	return n
}
