package imap

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	message "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets in SEARCH
	"github.com/emersion/go-message/textproto"
)

// maxSearchParts bounds how many MIME parts one message's scan visits, and
// maxSearchDepth how deep it descends.
const (
	maxSearchParts = 1000
	maxSearchDepth = 16
)

var errAllFound = errors.New("imap: all patterns found")

func messageHeader(h textproto.Header) message.Header { return message.Header{Header: h} }

// copyBufSize is the size of the buffers that stream plaintext.
const copyBufSize = 32 << 10

// bodyScanner scans message bodies for a fixed set of patterns. One is
// made per search worker and reused for every message, so the scan
// allocates little per message.
type bodyScanner struct {
	m   *matcher
	buf []byte // copy buffer
}

func newBodyScanner(pats []string) *bodyScanner {
	return &bodyScanner{m: newMatcher(pats), buf: make([]byte, copyBufSize)}
}

// scanBody reports, for each pattern, whether it occurs case-insensitively
// in the text of the message read from r (see bodyScanner.scan).
func scanBody(r io.Reader, sum *summary, pats []string) ([]bool, error) {
	found, err := newBodyScanner(pats).scan(r, sum)
	return slices.Clone(found), err
}

// scan reports, for each pattern, whether it occurs case-insensitively in
// the text of the message read from r: the decoded bodies of its text/*
// and message/* parts. Memory stays bounded whatever the message size: the
// plaintext is streamed through a matcher that keeps only a short overlap.
// When the summary shows a single text part without transfer encoding in
// UTF-8 or ASCII, the raw body is scanned directly. The result is valid
// until the next call.
func (sc *bodyScanner) scan(r io.Reader, sum *summary) ([]bool, error) {
	m := sc.m
	m.restart()
	if plainText(sum.Structure) {
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(r, int64(len(sum.Header))), sc.buf); err != nil {
			return m.found, err
		}
		_, err := io.CopyBuffer(m, onlyReader{r}, sc.buf)
		if errors.Is(err, errAllFound) {
			err = nil
		}
		return m.found, err
	}
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return m.found, err
	}
	parts := 0
	err = sc.scanEntity(e, 0, &parts)
	if errors.Is(err, errAllFound) {
		err = nil
	}
	return m.found, err
}

// onlyReader hides any WriterTo of the reader so io.CopyBuffer uses the
// given buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (sc *bodyScanner) scanEntity(e *message.Entity, depth int, parts *int) error {
	*parts++
	if depth > maxSearchDepth || *parts > maxSearchParts {
		return nil
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return err
			}
			if p == nil {
				return nil
			}
			if err := sc.scanEntity(p, depth+1, parts); err != nil {
				return err
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return nil
	}
	sc.m.reset()
	_, err := io.CopyBuffer(sc.m, onlyReader{e.Body}, sc.buf)
	return err
}

// plainText reports whether bs is one text part whose raw bytes are its
// text: no transfer encoding and a UTF-8 compatible charset.
func plainText(bs imap.BodyStructure) bool {
	sp, ok := bs.(*imap.BodyStructureSinglePart)
	if !ok || !strings.EqualFold(sp.Type, "text") {
		return false
	}
	switch strings.ToLower(sp.Encoding) {
	case "", "7bit", "8bit", "binary":
	default:
		return false
	}
	switch strings.ToLower(sp.Params["charset"]) {
	case "", "utf-8", "us-ascii", "utf8":
		return true
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
	var tail []byte // what the next write's window starts with
	if m.ascii {
		m.buf = m.fold(append(m.buf[:0], m.carry...), p)
		tail = m.buf
	} else {
		m.raw = append(append(m.raw[:0], m.carry...), p...)
		m.buf = m.fold(m.buf[:0], m.raw)
		tail = m.raw
	}
	for i, pat := range m.pats {
		if !m.found[i] && bytes.Contains(m.buf, pat) {
			m.found[i] = true
			m.left--
		}
	}
	k := min(m.keep, len(tail))
	if !m.ascii {
		// Do not cut a UTF-8 sequence in two.
		for k < len(tail) && k > 0 && !utf8.RuneStart(tail[len(tail)-k]) {
			k++
		}
	}
	m.carry = append(m.carry[:0], tail[len(tail)-k:]...)
	if m.left == 0 {
		return len(p), errAllFound
	}
	return len(p), nil
}
