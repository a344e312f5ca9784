package filter

import (
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	message "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets before tokenizing
)

// Bounds of tokenizing: the classifier looks at the start of a message
// only, as SpamAssassin's Bayes does, so scoring costs the same for a
// 50 MiB message as for a 1 MiB one and no message is held whole.
const (
	// maxScanBytes is how much of a message is read.
	maxScanBytes = 1 << 20
	// maxHeaderBytes bounds a header block (the message's or a part's).
	maxHeaderBytes = 256 << 10
	// maxPartText is how much decoded text of one part is tokenized.
	maxPartText = 128 << 10
	// maxParts and maxDepth bound the MIME tree walked.
	maxParts = 64
	maxDepth = 8
	// maxTokens bounds the distinct tokens of one message.
	maxTokens = 3000
	// Word lengths, in runes: shorter words are noise, longer ones are
	// counted by length only (SpamBayes' "skip" tokens).
	minWord = 3
	maxWord = 20
)

// Token classes: where a token came from. The class is kept with a
// token's weight in the delivery trace; the text never is.
const (
	classSubject = "subject"
	classFrom    = "from"
	classHeader  = "header"
	classBody    = "body"
	classURL     = "url"
	classMIME    = "mime"
)

// token is one feature of a message. Its text exists only in memory,
// while a message is scored or trained, and is hashed before it goes
// anywhere.
type token struct {
	class, text string
}

// tokenSet collects distinct tokens up to maxTokens.
type tokenSet struct {
	seen map[token]struct{}
	list []token
}

func newTokenSet() *tokenSet { return &tokenSet{seen: make(map[token]struct{}, 256)} }

func (s *tokenSet) add(class, text string) {
	if len(s.list) >= maxTokens {
		return
	}
	t := token{class, text}
	if _, ok := s.seen[t]; ok {
		return
	}
	s.seen[t] = struct{}{}
	s.list = append(s.list, t)
}

// words adds the words of text, lower-cased. ASCII text, the common
// case, takes a byte-wise path; other text is read as runes.
func (s *tokenSet) words(class, text string) {
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		w := text[start:end]
		start = -1
		n := len(w)
		ascii := true
		for i := 0; i < len(w); i++ {
			if w[i] >= 0x80 {
				ascii = false
				break
			}
		}
		if !ascii {
			n = utf8.RuneCountInString(w)
		}
		switch {
		case n < minWord:
		case n > maxWord:
			if c := w[0]; c < 0x80 {
				s.add(class, skipTokens[lowerByte(c)][min(n/10, 9)])
				break
			}
			r, _ := utf8.DecodeRuneInString(w)
			s.add(class, "skip:"+string(unicode.ToLower(r))+" "+string(rune('0'+min(n/10, 9))))
		default:
			s.add(class, lower(w))
		}
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < 0x80 {
			if wordByte[c] || c == '-' && start >= 0 {
				if start < 0 {
					start = i
				}
			} else {
				flush(i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
		} else {
			flush(i)
		}
		i += size
	}
	flush(len(text))
}

// wordByte says which ASCII bytes make words: letters, digits, the
// dollar sign and the apostrophe.
var wordByte = func() (t [128]bool) {
	for c := range 128 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '$' || c == '\''
	}
	return t
}()

// skipTokens are the tokens of long words starting with an ASCII byte,
// by byte and length/10: made once, not per word.
var skipTokens = func() (t [128][10]string) {
	for c := range 128 {
		for n := range 10 {
			t[c][n] = "skip:" + string(rune(c)) + " " + string(rune('0'+n))
		}
	}
	return t
}()

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// lower lower-cases w, without a copy when it is lower case already.
func lower(w string) string {
	for i := 0; i < len(w); i++ {
		if c := w[i]; c >= 0x80 || c >= 'A' && c <= 'Z' {
			return strings.ToLower(w)
		}
	}
	return w
}

// tokenize reads the start of a message and returns its tokens. A
// message that cannot be parsed as MIME still gives the tokens of what
// was read.
func tokenize(r io.Reader) []token {
	s := newTokenSet()
	lr := io.LimitReader(r, maxScanBytes)
	e, err := message.ReadWithOptions(lr, &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if e == nil {
		if err != nil {
			s.add(classMIME, "unparsable")
		}
		return s.list
	}
	headerTokens(s, e.Header)
	parts := 0
	walk(s, e, 0, &parts)
	return s.list
}

// headerTokens adds the features of a header block that carry signal:
// the subject's words, the sender's domain and name, the mailer.
func headerTokens(s *tokenSet, h message.Header) {
	if subj, err := h.Text("Subject"); err == nil {
		s.words(classSubject, subj)
		if subj != "" && strings.ToUpper(subj) == subj && strings.ToLower(subj) != subj {
			s.add(classSubject, "all-caps")
		}
	} else {
		s.add(classSubject, "undecodable")
	}
	for _, f := range []string{"From", "Reply-To", "Return-Path"} {
		v := h.Get(f)
		if v == "" {
			continue
		}
		if a, err := mail.ParseAddress(v); err == nil {
			if at := strings.LastIndexByte(a.Address, '@'); at >= 0 {
				s.add(classFrom, strings.ToLower(f)+":@"+strings.ToLower(a.Address[at+1:]))
			}
			s.words(classFrom, a.Name)
		} else {
			s.add(classFrom, strings.ToLower(f)+":unparsable")
		}
	}
	for _, f := range []string{"X-Mailer", "User-Agent"} {
		if v := h.Get(f); v != "" {
			if w := strings.Fields(v); len(w) > 0 {
				s.add(classHeader, "mailer:"+strings.ToLower(w[0]))
			}
		}
	}
	if h.Get("Message-Id") == "" {
		s.add(classHeader, "no-message-id")
	}
	if h.Get("Date") == "" {
		s.add(classHeader, "no-date")
	}
	if n := len(h.Values("Received")); n > 0 {
		s.add(classHeader, "received:"+string(rune('0'+min(n, 9))))
	}
}

// walk tokenizes an entity and its parts.
func walk(s *tokenSet, e *message.Entity, depth int, parts *int) {
	*parts++
	if *parts > maxParts || depth > maxDepth {
		return
	}
	mt, params, err := e.Header.ContentType()
	if err != nil {
		mt = "text/plain"
	}
	s.add(classMIME, "type:"+mt)
	if depth > 0 {
		headerTokens(s, e.Header)
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					s.add(classMIME, "broken-multipart")
				}
				return
			}
			walk(s, p, depth+1, parts)
			if *parts > maxParts {
				return
			}
		}
	}
	if disp, dp, err := mime.ParseMediaType(e.Header.Get("Content-Disposition")); err == nil && disp == "attachment" {
		name := dp["filename"]
		if name == "" {
			name = params["name"]
		}
		if dot := strings.LastIndexByte(name, '.'); dot >= 0 && len(name)-dot <= 8 {
			s.add(classMIME, "attachment:"+strings.ToLower(name[dot:]))
		}
		return
	}
	switch {
	case mt == "text/plain":
		textTokens(s, e.Body, false)
	case mt == "text/html":
		textTokens(s, e.Body, true)
	}
}

// textTokens tokenizes up to maxPartText of decoded text, read at
// once; for HTML it drops tags but keeps the hosts of links.
func textTokens(s *tokenSet, body io.Reader, html bool) {
	buf := textBufs.Get().(*[]byte)
	defer textBufs.Put(buf)
	n, _ := io.ReadFull(body, (*buf)[:maxPartText])
	text := string((*buf)[:n])
	clear((*buf)[:n]) // plaintext: do not leave it in pooled memory
	urls(s, text)
	if html {
		text = stripTags(text)
	}
	s.words(classBody, text)
}

// textBufs holds the buffers textTokens reads parts into.
var textBufs = sync.Pool{New: func() any { b := make([]byte, maxPartText); return &b }}

// stripTags removes HTML tags (and what a tag cut off at the end of the
// text left open).
func stripTags(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	in := false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '<':
			in = true
		case c == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// urls adds the host of every http(s) link in text.
func urls(s *tokenSet, text string) {
	for {
		i := strings.Index(text, "://")
		if i < 0 {
			return
		}
		scheme := strings.ToLower(text[max(0, i-5):i])
		text = text[i+3:]
		if !strings.HasSuffix(scheme, "http") && !strings.HasSuffix(scheme, "https") {
			continue
		}
		end := strings.IndexFunc(text, func(r rune) bool {
			return !(r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
		})
		if end < 0 {
			end = len(text)
		}
		host := strings.ToLower(strings.Trim(text[:end], ".-"))
		if host != "" && len(host) <= 253 {
			s.add(classURL, host)
			if labels := strings.Split(host, "."); len(labels) > 2 {
				s.add(classURL, strings.Join(labels[len(labels)-2:], "."))
			}
		}
	}
}
