package wire

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// encoder writes response syntax (RFC 9051 §9) to the client. Errors are
// sticky: after the first, every write is a no-op and err reports it.
//
// Its buffer is held only while something is written: the first write
// takes one from bufs, and release gives it back once all is flushed, so
// that an idle connection holds none.
type encoder struct {
	w    *bufio.Writer // nil while no response is written
	dst  io.Writer     // where w writes: the connection or its compressor
	bufs *sync.Pool    // of *bufio.Writer; nil: w is made once and kept
	err  error
	utf8 bool // quoted strings may carry UTF-8 (IMAP4rev2 or UTF8=ACCEPT)
}

// buf returns the write buffer, taking one if none is held.
func (e *encoder) buf() *bufio.Writer {
	if e.w == nil {
		if e.bufs != nil {
			e.w = e.bufs.Get().(*bufio.Writer)
			e.w.Reset(e.dst)
		} else {
			e.w = bufio.NewWriterSize(e.dst, writeBufSize)
		}
	}
	return e.w
}

// setDst makes the buffer write to dst from now on (TLS, COMPRESS).
func (e *encoder) setDst(dst io.Writer) {
	e.dst = dst
	if e.w != nil {
		e.w.Reset(dst)
	}
}

// flush writes out what is buffered and gives the buffer back.
func (e *encoder) flush() error {
	if e.err != nil {
		return e.err
	}
	if e.w == nil {
		return nil
	}
	if e.err = e.w.Flush(); e.err != nil {
		return e.err
	}
	if e.bufs != nil {
		e.w.Reset(nil)
		e.bufs.Put(e.w)
		e.w = nil
	}
	return nil
}

func (e *encoder) raw(s string) {
	if e.err == nil {
		_, e.err = e.buf().WriteString(s)
	}
}

func (e *encoder) byte(b byte) {
	if e.err == nil {
		e.err = e.buf().WriteByte(b)
	}
}

func (e *encoder) sp()   { e.byte(' ') }
func (e *encoder) crlf() { e.raw("\r\n") }

func (e *encoder) number(n uint32) { e.raw(strconv.FormatUint(uint64(n), 10)) }

func (e *encoder) number64(n uint64) { e.raw(strconv.FormatUint(n, 10)) }

func (e *encoder) int64(n int64) { e.raw(strconv.FormatInt(n, 10)) }

// maxQuoted is the longest string written quoted rather than as a literal.
const maxQuoted = 1024

// canQuote reports whether s can be a quoted string for this client.
func (e *encoder) canQuote(s string) bool {
	if len(s) > maxQuoted {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
		if c >= 0x80 && !e.utf8 {
			return false
		}
	}
	return !e.utf8 || utf8.ValidString(s)
}

// quoted writes s as a quoted string; the caller checked canQuote.
func (e *encoder) quoted(s string) {
	e.byte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			e.raw(s[start:i])
			e.byte('\\')
			start = i
		}
	}
	e.raw(s[start:])
	e.byte('"')
}

// literal writes b as a literal {n}. NUL bytes, which a literal cannot
// carry (CHAR8), are dropped.
func (e *encoder) literal(b string) {
	clean := true
	for i := 0; i < len(b); i++ {
		if b[i] == 0 {
			clean = false
			break
		}
	}
	if !clean {
		out := make([]byte, 0, len(b))
		for i := 0; i < len(b); i++ {
			if b[i] != 0 {
				out = append(out, b[i])
			}
		}
		b = string(out)
	}
	e.byte('{')
	e.raw(strconv.Itoa(len(b)))
	e.raw("}\r\n")
	e.raw(b)
}

// string writes s quoted when it can be, else as a literal.
func (e *encoder) string(s string) {
	if e.canQuote(s) {
		e.quoted(s)
		return
	}
	e.literal(s)
}

// nstring writes s, or NIL when it is empty.
func (e *encoder) nstring(s string) {
	if s == "" {
		e.raw("NIL")
		return
	}
	e.string(s)
}

// astring writes s as an atom when it is one (and not NIL), else as a
// string.
func (e *encoder) astring(s string) {
	if s != "" && !isNIL(s) {
		ok := true
		for i := 0; i < len(s); i++ {
			if !isAstringChar(s[i]) {
				ok = false
				break
			}
		}
		if ok {
			e.raw(s)
			return
		}
	}
	e.string(s)
}

func isNIL(s string) bool {
	return len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l'
}

// mailbox writes a UTF-8 mailbox name in the client's encoding. It is
// always quoted (or a literal): clients parse that best, and "INBOX" needs
// no case games.
func (e *encoder) mailbox(name string) {
	e.string(encodeMailbox(name, e.utf8))
}

// flags writes "(" flag *(SP flag) ")".
func (e *encoder) flags(fs []imap.Flag) {
	e.byte('(')
	n := 0
	for _, f := range fs {
		if !validFlag(string(f)) {
			continue
		}
		if n > 0 {
			e.sp()
		}
		e.raw(string(f))
		n++
	}
	e.byte(')')
}

// validFlag reports whether f can be written as a flag: a keyword atom or
// "\" atom (or "\*").
func validFlag(f string) bool {
	if f == `\*` {
		return true
	}
	if len(f) > 0 && f[0] == '\\' {
		f = f[1:]
	}
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if !isAtomChar(f[i]) {
			return false
		}
	}
	return true
}

// dateTime writes an INTERNALDATE-style date-time.
func (e *encoder) dateTime(t time.Time) {
	e.byte('"')
	e.raw(t.Format("02-Jan-2006 15:04:05 -0700"))
	e.byte('"')
}

// numSet writes a set of numbers in the order given, as ranges where they
// are consecutive ascending ("1:3,7,5"): for ESORT, the order is the
// result's.
func (e *encoder) numList(nums []uint32) {
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			e.byte(',')
		}
		e.number(nums[i])
		if j > i {
			e.byte(':')
			e.number(nums[j])
		}
		i = j + 1
	}
}

// set writes a sequence or UID set as go-imap prints it.
func (e *encoder) set(s imap.NumSet) { e.raw(s.String()) }

// literalHeader writes the announcement of a literal of n bytes.
func (e *encoder) literalHeader(n int64, binary bool) {
	if binary {
		e.byte('~')
	}
	e.byte('{')
	e.int64(n)
	e.raw("}\r\n")
}

// copyLiteral copies exactly n bytes of r after a literal header.
func (e *encoder) copyLiteral(r io.Reader, n int64) error {
	if e.err != nil {
		return e.err
	}
	m, err := io.CopyN(e.buf(), r, n)
	if err != nil && m < n {
		// The literal cannot be completed: the response is broken.
		e.err = errShortBody
		return e.err
	}
	return nil
}
