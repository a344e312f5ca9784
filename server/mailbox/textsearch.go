package mailbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/sealmail/sealmail/server/mailbox/structure"
	"github.com/sealmail/sealmail/store"
)

// maxScanRegions bounds the parts of one message a scan visits.
const maxScanRegions = 1000

// copyBufSize is the size of the buffers that stream plaintext.
const copyBufSize = 32 << 10

var errAllFound = errors.New("mailbox: all patterns found")

// Scanner looks for a fixed set of patterns in message text, ignoring
// case. One is made per search worker and reused for every message, so a
// scan allocates little.
type Scanner struct {
	m   *matcher
	buf []byte
}

// NewScanner returns a scanner for pats.
func NewScanner(pats []string) *Scanner {
	return &Scanner{m: newMatcher(pats), buf: make([]byte, copyBufSize)}
}

// Scan reports, for each of sc's patterns, whether it occurs in the text
// of message m of mailbox (summary sm): the headers of attached messages
// and the bodies of its text parts, decoded from their transfer encoding
// and charset. The top-level header is not scanned (HeaderContains
// decides it from the summary). Memory stays bounded whatever the
// message size: the plaintext streams through a matcher that keeps only
// a pattern-sized overlap. The message is read to its end even when
// every pattern was found, and a message that fails its integrity check
// matches nothing (ErrIntegrity): a result is never based on unverified
// bytes. pre, if not nil, is the message's sealed bytes read ahead
// (ReadSealed); else Scan reads them. The caller holds a worker slot.
// The result is valid until the next call.
func (r *Reader) Scan(ctx context.Context, mailbox uint64, m *store.Message, pre []byte, sm *Summary, sc *Scanner) ([]bool, error) {
	src, err := r.sealed(ctx, mailbox, m, pre)
	if err != nil {
		return nil, err
	}
	ad := MessageAD(r.account, mailbox, m.UID)
	sealed, err := src.open(ctx)
	if err != nil {
		return nil, err
	}
	defer sealed.Close()
	plain, err := r.decrypt(sealed, m.SessionKey, ad)
	if err != nil && m.SessionKey != nil {
		sealed.Close()
		if sealed, err = src.open(ctx); err == nil {
			defer sealed.Close()
			plain, err = r.decrypt(sealed, nil, ad)
		}
	}
	if err != nil {
		return nil, r.integrity(mailbox, m.UID, err)
	}
	found, err := sc.scan(ctx, plain, sm)
	if err != nil {
		return nil, r.integrity(mailbox, m.UID, err)
	}
	return found, nil
}

// region is a piece of a message to scan: raw bytes, or a body to decode.
type region struct {
	start, end int64
	encoding   string // "" for raw
	charset    string
	decode     bool
}

// scanRegions lists what a scan reads, in ascending offset order.
func scanRegions(bs *structure.BodyStructure, top bool, out []region) []region {
	if len(out) >= maxScanRegions {
		return out
	}
	switch {
	case bs.IsMultipart():
		for _, p := range bs.Parts {
			out = scanRegions(p, false, out)
		}
	case bs.IsMessage():
		m := bs.Message
		out = append(out, region{start: m.HeaderStart, end: m.BodyStart})
		out = scanRegions(m, false, out)
	case bs.Type == "text" || bs.Type == "message":
		out = append(out, region{start: bs.BodyStart, end: bs.End, encoding: bs.Encoding, charset: paramValue(bs.Params, "charset"), decode: true})
	}
	return out
}

func (sc *Scanner) scan(ctx context.Context, plain io.Reader, sm *Summary) ([]bool, error) {
	m := sc.m
	m.restart()
	var pos int64
	cr := &countingReader{r: plain}
	for _, rg := range scanRegions(sm.Structure, true, nil) {
		if rg.start < pos || m.left == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := io.CopyBuffer(io.Discard, onlyReader{io.LimitReader(cr, rg.start-pos)}, sc.buf); err != nil {
			return nil, err
		}
		var src io.Reader = io.LimitReader(cr, rg.end-rg.start)
		if rg.decode {
			if d, ok := newDecoder(rg.encoding, src); ok {
				src = d
			}
			if rg.charset != "" && !isUTF8(rg.charset) {
				if c, err := charset.Reader(rg.charset, src); err == nil {
					src = c
				}
			}
		}
		m.reset()
		_, err := io.CopyBuffer(m, onlyReader{src}, sc.buf)
		if err != nil && !errors.Is(err, errAllFound) {
			return nil, err
		}
		// Skip what the decoders left unread.
		if _, err := io.Copy(io.Discard, io.LimitReader(cr, rg.end-cr.n)); err != nil {
			return nil, err
		}
		pos = cr.n
	}
	// Read to the end: the integrity check is there.
	if _, err := io.CopyBuffer(io.Discard, onlyReader{cr}, sc.buf); err != nil {
		return nil, err
	}
	if cr.n != sm.Size {
		return nil, ErrIntegrity
	}
	return m.found, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// onlyReader hides any WriterTo of the reader so io.CopyBuffer uses the
// given buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// wordDecoder decodes RFC 2047 encoded-words in any charset go-message
// knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeText decodes the encoded-words of a header value; a value that
// does not decode is returned as it is.
func DecodeText(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

// containsFold reports whether s contains pat, ignoring case (Unicode
// simple folding; ASCII fast).
func containsFold(s, pat string) bool {
	if pat == "" {
		return true
	}
	if isASCII(pat) && isASCII(s) {
		return bytes.Contains(asciiLower([]byte(s)), asciiLower([]byte(pat)))
	}
	return strings.Contains(strings.ToLower(s), strings.ToLower(pat))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func asciiLower(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// HeaderContains reports whether any field of the top-level header has
// pat in its decoded value (SEARCH TEXT's header half).
func HeaderContains(sm *Summary, pat string) bool {
	if !headerMayContain(sm.Header, pat) {
		return false
	}
	return headerContains(sm.Header, pat)
}

// headerContains is HeaderContains without the shortcut: every field
// parsed, unfolded and decoded.
func headerContains(h []byte, pat string) bool {
	for _, f := range ParseHeader(h) {
		if containsFold(DecodeText(Unfold(f.Value)), pat) {
			return true
		}
	}
	return false
}

// headerMayContain reports whether a field value of header block h may
// contain pat; false only when it surely does not, which it tells
// without parsing the header. That holds when h is ASCII with no
// encoded-word ("=?") and no CR but before an LF, and pat is ASCII with
// no white space or line break: decoding then changes nothing, unfolding
// only removes the line breaks that come before a space or tab (which no
// match can span), and the block holds every value, so a value that
// contains pat (ASCII case ignored, as containsFold does for ASCII)
// leaves pat in the block. Otherwise it says true.
func headerMayContain(h []byte, pat string) bool {
	if pat == "" || !isASCII(pat) || strings.ContainsAny(pat, " \t\r\n") || bytes.Contains(h, []byte("=?")) {
		return true
	}
	for i, c := range h {
		if c >= utf8.RuneSelf || (c == '\r' && (i+1 == len(h) || h[i+1] != '\n')) {
			return true
		}
	}
	return containsFoldASCII(h, asciiLower([]byte(pat)))
}

// FieldContains reports whether a field called name has pat in its
// decoded value; with pat "" whether there is such a field (SEARCH
// HEADER, RFC 9051 §6.4.4).
func FieldContains(sm *Summary, name, pat string) bool {
	for _, f := range ParseHeader(sm.Header) {
		if !strings.EqualFold(f.Name, name) {
			continue
		}
		if pat == "" || containsFold(DecodeText(Unfold(f.Value)), pat) {
			return true
		}
	}
	return false
}

// AddressContains reports whether an address of a list (an envelope's
// From, To, Cc or Bcc) matches pat: its decoded display name, its
// address (mailbox@host) or its group's name contains pat, ignoring
// case. This is what SEARCH FROM/TO/CC/BCC mean (RFC 9051 §6.4.4:
// "contains the specified string in the envelope structure's … field"),
// as Dovecot reads it.
func AddressContains(l []structure.Address, pat string) bool {
	for i := range l {
		a := &l[i]
		switch {
		case a.IsGroupEnd():
			continue
		case a.IsGroupStart():
			if containsFold(a.Mailbox, pat) {
				return true
			}
			continue
		}
		if a.Name != "" && containsFold(DecodeText(a.Name), pat) {
			return true
		}
		addr := a.Mailbox
		if a.Host != "" && a.Host != missingDomain {
			addr += "@" + a.Host
		}
		if containsFold(addr, pat) {
			return true
		}
	}
	return false
}

// matcher is an io.Writer that looks for several patterns, ignoring case,
// across write boundaries. It returns errAllFound once every pattern is
// found, to stop the copy. Its buffers are reused across messages.
type matcher struct {
	pats  [][]byte // folded
	found []bool
	left  int
	ascii bool   // every pattern is ASCII: fold bytes, not runes
	keep  int    // bytes carried between writes
	carry []byte // tail of the previous write: folded if ascii, else raw
	raw   []byte // scratch: carry + write, raw (non-ASCII mode)
	buf   []byte // scratch: folded window
}

func newMatcher(pats []string) *matcher {
	m := &matcher{found: make([]bool, len(pats)), ascii: true}
	longest := 0
	for _, p := range pats {
		for j := 0; j < len(p); j++ {
			if p[j] >= utf8.RuneSelf {
				m.ascii = false
			}
		}
		longest = max(longest, len(p))
	}
	for _, p := range pats {
		m.pats = append(m.pats, m.fold(nil, []byte(p)))
	}
	m.keep = max(longest-1, 0)
	if !m.ascii {
		// Folding can change byte lengths; keep a generous overlap.
		m.keep = 4*longest + utf8.UTFMax
	}
	m.restart()
	return m
}

// restart forgets every result, for the next message.
func (m *matcher) restart() {
	m.left = len(m.pats)
	for i, p := range m.pats {
		m.found[i] = len(p) == 0
		if m.found[i] {
			m.left--
		}
	}
	m.reset()
}

// reset forgets the overlap, at a part boundary.
func (m *matcher) reset() { m.carry = m.carry[:0] }

func (m *matcher) fold(dst, src []byte) []byte {
	if !m.ascii {
		for len(src) > 0 {
			r, n := utf8.DecodeRune(src)
			if r == utf8.RuneError && n <= 1 {
				dst = append(dst, src[0])
				src = src[1:]
				continue
			}
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			src = src[n:]
		}
		return dst
	}
	for _, c := range src {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func (m *matcher) Write(p []byte) (int, error) {
	if m.left == 0 {
		return len(p), errAllFound
	}
	if m.ascii {
		m.writeASCII(p)
	} else {
		m.writeFolded(p)
	}
	if m.left == 0 {
		return len(p), errAllFound
	}
	return len(p), nil
}

// writeASCII looks for ASCII patterns in p without copying or folding
// it: a match across the previous write's end is looked for in the
// carried tail and the start of p, the others in p itself.
func (m *matcher) writeASCII(p []byte) {
	edge := p[:min(len(p), m.keep)]
	if len(m.carry) > 0 {
		m.buf = append(append(m.buf[:0], m.carry...), edge...)
		m.look(m.buf)
	}
	m.look(p)
	if len(p) >= m.keep {
		m.carry = append(m.carry[:0], p[len(p)-m.keep:]...)
		return
	}
	m.carry = append(m.carry, p...)
	m.carry = append(m.carry[:0], m.carry[len(m.carry)-min(len(m.carry), m.keep):]...)
}

// look marks the ASCII patterns found in b.
func (m *matcher) look(b []byte) {
	for i, pat := range m.pats {
		if !m.found[i] && containsFoldASCII(b, pat) {
			m.found[i] = true
			m.left--
		}
	}
}

// writeFolded folds the carried tail and p rune by rune and looks for
// the patterns in that (patterns that are not ASCII).
func (m *matcher) writeFolded(p []byte) {
	m.raw = append(append(m.raw[:0], m.carry...), p...)
	m.buf = m.fold(m.buf[:0], m.raw)
	tail := m.raw
	for i, pat := range m.pats {
		if !m.found[i] && bytes.Contains(m.buf, pat) {
			m.found[i] = true
			m.left--
		}
	}
	k := min(m.keep, len(tail))
	// Do not cut a UTF-8 sequence in two.
	for k < len(tail) && k > 0 && !utf8.RuneStart(tail[len(tail)-k]) {
		k++
	}
	m.carry = append(m.carry[:0], tail[len(tail)-k:]...)
}

// containsFoldASCII reports whether s contains pat (ASCII, lower case),
// ASCII letters of s compared without case. Candidates are found with
// bytes.IndexByte on both cases of pat's first byte, each case's next
// position kept until passed, so the scan stays linear.
func containsFoldASCII(s, pat []byte) bool {
	if len(pat) == 0 {
		return true
	}
	last := len(s) - len(pat) + 1 // candidates start before last
	if last <= 0 {
		return false
	}
	c0, c1 := pat[0], pat[0]
	if 'a' <= c0 && c0 <= 'z' {
		c1 = c0 - ('a' - 'A')
	}
	next := func(c byte, at int) int {
		if i := bytes.IndexByte(s[at:last], c); i >= 0 {
			return at + i
		}
		return -1
	}
	lo, up := next(c0, 0), -1
	if c1 != c0 {
		up = next(c1, 0)
	}
	for lo >= 0 || up >= 0 {
		i := lo
		if i < 0 || (up >= 0 && up < i) {
			i = up
		}
		if equalFoldASCII(s[i+1:i+len(pat)], pat[1:]) {
			return true
		}
		if i == lo {
			lo = next(c0, i+1)
		} else {
			up = next(c1, i+1)
		}
	}
	return false
}

// equalFoldASCII reports whether a equals lower (ASCII, lower case) with
// a's ASCII letters folded.
func equalFoldASCII(a, lower []byte) bool {
	for k, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[k] {
			return false
		}
	}
	return true
}
