package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/sealmail/sealmail/store"
)

// mbox files, as `sealmail import` reads and `sealmail export` writes
// them (mboxrd: https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml).
//
// Writing: each message is "From MAILER-DAEMON <asctime of its internal
// date, UTC>\n", then its bytes exactly as stored, except that a line
// matching ^>*From␠ gets one more '>' in front; then, if the message does
// not end with a line break, "\n"; then an empty line "\n".
//
// Reading: a message starts at a "From " line at the start of the file
// or after an empty line. Its internal date is the From line's date (else
// its Date: field, else the time of the import). A line ^>+From␠ loses
// one '>'. The empty line before the next From line (or at the end of the
// file) is the separator, not part of the message. Lines ending in a bare
// LF get CRLF, as mail on the wire and in the store has. The fields that
// mbox writers keep their state in (Status, X-Status, X-Keywords, X-UID,
// X-IMAP, X-IMAPbase, Content-Length) are turned into flags and removed,
// and the pseudo-message of UW-IMAP and Pine (with X-IMAP) is skipped.
// So a message written by export reads back as the bytes it had.

// mboxMessage is one message read from an mbox file.
type mboxMessage struct {
	Offset   int64     // of its From line in the file
	Date     time.Time // zero: unknown
	Flags    []string
	Data     []byte // nil when TooLarge
	Size     int64  // bytes, as read
	TooLarge bool   // larger than the reader's limit; Data dropped
}

// mboxReader reads messages one at a time, holding at most one message
// (up to max bytes) in memory.
type mboxReader struct {
	br      *bufio.Reader
	max     int64
	off     int64  // offset of the next line
	lineLen int64  // the length of the last line read, before any cut
	from    []byte // the From line of the next message; nil at the start
	fromOff int64
	started bool
	done    bool
}

func newMboxReader(r io.Reader, max int64) *mboxReader {
	return &mboxReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// line returns the next line with its line ending, or io.EOF. A line
// longer than the limit is cut after max+1 bytes (its message is too
// large anyway).
func (r *mboxReader) line() ([]byte, error) {
	var line []byte
	r.lineLen = 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.off += int64(len(chunk))
		r.lineLen += int64(len(chunk))
		if room := r.max + 1 - int64(len(line)); room > 0 {
			line = append(line, chunk[:min(int64(len(chunk)), room)]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		return line, err
	}
}

// errNotMbox: the file does not start with a From line.
var errNotMbox = errors.New("not an mbox file (it does not start with a \"From \" line)")

// Next returns the next message, or io.EOF after the last.
func (r *mboxReader) Next() (*mboxMessage, error) {
	for {
		m, err := r.next()
		if err != nil {
			return nil, err
		}
		if !m.skip {
			return &m.mboxMessage, nil
		}
	}
}

type mboxRead struct {
	mboxMessage
	skip bool // the folder's internal pseudo-message
}

func (r *mboxReader) next() (*mboxRead, error) {
	if r.done {
		return nil, io.EOF
	}
	if !r.started {
		r.started = true
		line, err := r.line()
		if err == io.EOF {
			r.done = true
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(line, []byte("From ")) {
			return nil, errNotMbox
		}
		r.from, r.fromOff = line, 0
	}
	m := &mboxRead{mboxMessage: mboxMessage{Offset: r.fromOff, Date: fromLineDate(r.from)}}
	var (
		buf       bytes.Buffer
		prevEmpty bool
		lastEmpty int // length of the trailing empty line in buf, 0 if none
		inHeader  = true
		dropping  bool // inside a dropped header field (its continuation lines)
		h         mboxState
	)
	add := func(b []byte, n int64) {
		m.Size += n
		if m.TooLarge {
			return
		}
		if int64(buf.Len()+len(b)) > r.max {
			m.TooLarge = true
			buf = bytes.Buffer{}
			return
		}
		buf.Write(b)
	}
	for {
		line, err := r.line()
		if err == io.EOF {
			r.done = true
			break
		}
		if err != nil {
			return nil, err
		}
		lineOff := r.off - int64(len(line))
		if prevEmpty && bytes.HasPrefix(line, []byte("From ")) {
			r.from, r.fromOff = line, lineOff
			break
		}
		empty := isEmptyLine(line)
		raw := line
		line = crlf(line)
		if unq, ok := unquoteFrom(line); ok {
			line = unq
		}
		if inHeader {
			if empty {
				inHeader = false
			} else if line[0] == ' ' || line[0] == '\t' {
				if dropping {
					h.add(line)
					continue
				}
			} else {
				dropping = h.field(line)
				if dropping {
					continue
				}
			}
		}
		add(line, r.lineLen+int64(len(line))-int64(len(raw)))
		prevEmpty = empty
		lastEmpty = 0
		if empty {
			lastEmpty = len(line)
		}
	}
	// The empty line before the next From line (or at the end) is the
	// separator.
	if !m.TooLarge && lastEmpty > 0 {
		buf.Truncate(buf.Len() - lastEmpty)
	}
	if lastEmpty > 0 {
		m.Size -= int64(lastEmpty)
	}
	m.skip = h.pseudo
	m.Flags = h.flags()
	if !m.TooLarge {
		m.Data = buf.Bytes()
		if m.Date.IsZero() {
			m.Date = headerDate(m.Data)
		}
	}
	return m, nil
}

// mboxState collects the mbox state fields of one message.
type mboxState struct {
	name   string // the field being read (continuation lines)
	status string
	xstat  string
	keys   []string
	pseudo bool
}

// field looks at a header line and says whether it is one of mbox's
// state fields, which are dropped.
func (h *mboxState) field(line []byte) bool {
	name, value, ok := strings.Cut(string(line), ":")
	if !ok {
		return false
	}
	h.name = strings.ToLower(strings.TrimSpace(name))
	switch h.name {
	case "status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length":
		h.add([]byte(value))
		if h.name == "x-imap" || h.name == "x-imapbase" {
			h.pseudo = h.pseudo || h.name == "x-imap"
		}
		return true
	}
	return false
}

// add takes a value (or a continuation of it) of the current field.
func (h *mboxState) add(v []byte) {
	s := strings.TrimSpace(string(v))
	switch h.name {
	case "status":
		h.status += s
	case "x-status":
		h.xstat += s
	case "x-keywords":
		for _, k := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			h.keys = append(h.keys, k)
		}
	}
}

// flags maps Status (R: read) and X-Status (A: answered, F: flagged,
// T: draft, D: deleted) and X-Keywords to IMAP flags, dropping what the
// store would refuse.
func (h *mboxState) flags() []string {
	var f []string
	if strings.Contains(h.status, "R") {
		f = append(f, store.FlagSeen)
	}
	for c, flag := range map[byte]string{'A': store.FlagAnswered, 'F': store.FlagFlagged, 'T': store.FlagDraft, 'D': store.FlagDeleted} {
		if strings.IndexByte(h.xstat, c) >= 0 {
			f = append(f, flag)
		}
	}
	f = append(f, h.keys...)
	return canonicalFlagsLoose(f)
}

// canonicalFlagsLoose canonicalises flags, leaving out the ones the
// store refuses (a keyword with characters IMAP does not allow).
func canonicalFlagsLoose(in []string) []string {
	var ok []string
	for _, f := range in {
		if c, err := store.CanonicalFlag(f); err == nil {
			ok = append(ok, c)
		}
	}
	out, err := store.CanonicalFlags(ok)
	if err != nil {
		return nil
	}
	return out
}

func isEmptyLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// crlf ends a line that ends in a bare LF with CRLF.
func crlf(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' && (n == 1 || line[n-2] != '\r') {
		return append(line[:n-1:n-1], '\r', '\n')
	}
	return line
}

// unquoteFrom removes one '>' from a line ^>+From␠.
func unquoteFrom(line []byte) ([]byte, bool) {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	if i == 0 || !bytes.HasPrefix(line[i:], []byte("From ")) {
		return line, false
	}
	return line[1:], true
}

// fromLineDates are the date layouts seen on From lines.
var fromLineDates = []string{
	time.ANSIC, // Mon Jan _2 15:04:05 2006
	"Mon Jan _2 15:04:05 2006 -0700",
	"Mon Jan _2 15:04:05 MST 2006",
	"Mon Jan _2 15:04:05 -0700 2006",
	"Mon Jan _2 15:04 2006",
	"Mon, _2 Jan 2006 15:04:05 -0700",
}

// fromLineDate parses the date of "From sender date".
func fromLineDate(line []byte) time.Time {
	s := strings.TrimSpace(strings.TrimPrefix(string(line), "From "))
	// The sender is one token, or a quoted local part with spaces.
	if strings.HasPrefix(s, `"`) {
		if i := strings.Index(s[1:], `"`); i >= 0 {
			s = s[i+2:]
		}
	}
	_, date, ok := strings.Cut(s, " ")
	if !ok {
		return time.Time{}
	}
	date = strings.Join(strings.Fields(date), " ")
	for _, layout := range fromLineDates {
		if t, err := time.Parse(strings.ReplaceAll(layout, "_2", "2"), date); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// headerDate is the Date: field of a message, or zero.
func headerDate(data []byte) time.Time {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return time.Time{}
	}
	t, err := msg.Header.Date()
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// writeMboxMessage writes one message in mboxrd form (see above).
func writeMboxMessage(w *bufio.Writer, date time.Time, data []byte) error {
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	fmt.Fprintf(w, "From MAILER-DAEMON %s\n", date.UTC().Format(time.ANSIC))
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data
		if i >= 0 {
			line = data[:i+1]
		}
		j := 0
		for j < len(line) && line[j] == '>' {
			j++
		}
		if bytes.HasPrefix(line[j:], []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(line)
		data = data[len(line):]
		if i < 0 {
			w.WriteByte('\n')
		}
	}
	_, err := w.WriteString("\n")
	return err
}
