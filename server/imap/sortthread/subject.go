package sortthread

import (
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// maxText bounds the decoded text of one field that SORT and THREAD
// compare (a subject, a display name). Keys this long already differ in
// their first bytes; a longer field is compared by its start.
const maxText = 4096

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeText returns the text of an unstructured header value as it
// appears in the header: RFC 2047 encoded-words decoded to UTF-8 (left as
// they are where they cannot be decoded), invalid UTF-8 replaced, at most
// maxText bytes.
func DecodeText(raw string) string {
	if len(raw) > 4*maxText {
		raw = raw[:4*maxText]
	}
	s := raw
	if strings.Contains(raw, "=?") {
		if d, err := wordDecoder.DecodeHeader(raw); err == nil {
			s = d
		}
	}
	if len(s) > maxText {
		s = s[:maxText]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// BaseSubject returns the base subject of a Subject field value raw, given
// as it appears in the header (RFC 5256 §2.1), and whether extracting it
// removed a reply or forward marker: a subj-refwd ("Re:", "Fwd:"…), a
// "(fwd)" trailer or a "[fwd: …]" wrapper. THREAD=REFERENCES needs the
// latter (RFC 5256 §3, step 5).
func BaseSubject(raw string) (base string, replyOrFwd bool) {
	// (1) Decode encoded-words; tabs and continuations become spaces,
	// runs of spaces one space.
	s := collapseSpace(DecodeText(raw))
	x := extractor{s: s, end: len(s)}
	x.index()
	for {
		// (2) Trailers: "(fwd)" and white space.
		x.trimTrailers()
		// (3)-(5) Leaders and blobs, until neither matches.
		for {
			n := x.leader()
			if n > 0 {
				x.start += n
				continue
			}
			if n = x.blob(x.start); n > 0 && x.start+n < x.end {
				x.start += n
				continue
			}
			break
		}
		// (6) A "[fwd: …]" wrapper: remove it and start again at (2).
		if x.end-x.start >= len("[fwd:]") && hasPrefixFold(s[x.start:x.end], "[fwd:") && s[x.end-1] == ']' {
			x.start += len("[fwd:")
			x.end--
			x.refwd = true
			continue
		}
		break
	}
	return s[x.start:x.end], x.refwd
}

// collapseSpace turns tabs, CR and LF into spaces and runs of spaces into
// one.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\t' || c == '\r' || c == '\n' {
			c = ' '
		}
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// extractor runs the steps of RFC 5256 §2.1 over s[start:end]. Steps only
// move start forward and end back, so bracket positions are computed once
// (index) and a blob is recognised in constant time: base subject
// extraction is linear in the subject's length whatever its shape.
type extractor struct {
	s          string
	start, end int
	refwd      bool
	// bracket[i] is the position of the first '[' or ']' at or after
	// i, or len(s).
	bracket []int32
}

func (x *extractor) index() {
	x.bracket = make([]int32, len(x.s)+1)
	next := int32(len(x.s))
	x.bracket[len(x.s)] = next
	for i := len(x.s) - 1; i >= 0; i-- {
		if x.s[i] == '[' || x.s[i] == ']' {
			next = int32(i)
		}
		x.bracket[i] = next
	}
}

func (x *extractor) trimTrailers() {
	for x.end > x.start {
		switch {
		case x.s[x.end-1] == ' ':
			x.end--
		case x.end-x.start >= len("(fwd)") && strings.EqualFold(x.s[x.end-len("(fwd)"):x.end], "(fwd)"):
			x.end -= len("(fwd)")
			x.refwd = true
		default:
			return
		}
	}
}

// blob returns the length of the subj-blob ("[" *BLOBCHAR "]" *WSP) at i,
// or 0.
func (x *extractor) blob(i int) int {
	if i >= x.end || x.s[i] != '[' {
		return 0
	}
	j := int(x.bracket[i+1])
	if j >= x.end || x.s[j] != ']' {
		return 0
	}
	j++
	for j < x.end && x.s[j] == ' ' {
		j++
	}
	return j - i
}

// leader returns the length of the subj-leader at start ((*subj-blob
// subj-refwd) / WSP), or 0; a subj-refwd sets x.refwd.
func (x *extractor) leader() int {
	i := x.start
	if i < x.end && x.s[i] == ' ' {
		return 1
	}
	for {
		n := x.blob(i)
		if n == 0 {
			break
		}
		i += n
	}
	for _, w := range []string{"re", "fwd", "fw"} {
		if n := x.refwd0(i, w); n > 0 {
			x.refwd = true
			return i + n - x.start
		}
	}
	return 0
}

// refwd0 returns the length of subj-refwd (word *WSP [subj-blob] ":") at
// i with the given word, or 0.
func (x *extractor) refwd0(i int, word string) int {
	j := i + len(word)
	if j > x.end || !strings.EqualFold(x.s[i:j], word) {
		return 0
	}
	for j < x.end && x.s[j] == ' ' {
		j++
	}
	j += x.blob(j)
	if j >= x.end || x.s[j] != ':' {
		return 0
	}
	return j + 1 - i
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// isASCII reports whether s is all 7-bit.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
