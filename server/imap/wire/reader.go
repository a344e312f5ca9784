package wire

import (
	"bufio"
	"errors"
	"io"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// reader reads the bytes of one command at a time from the client, with
// the limits of the connection's state. It never buffers more than the
// limits allow: every byte of a line is counted as it is read, a literal is
// checked against the budget from its announced size before any of its
// bytes are read (and before "+" is sent), and literal data is allocated
// as it arrives, never from the announced size.
//
// After an error the command is finished with skipCommand, which reads to
// the command's real end (through non-synchronising literals, discarded up
// to a bound) so that no byte of a refused command is ever parsed as a
// command of its own.
type reader struct {
	br  *bufio.Reader
	lim *StateLimits
	// cont sends the continuation request of an accepted synchronising
	// literal and flushes it.
	cont func() error

	line      int   // bytes of the current line
	cmd       int64 // bytes of the current command: lines and buffered literals
	discarded int64 // bytes thrown away while refusing this command
	depth     int   // current nesting of lists and search keys
	args      int   // elements of this command so far
	ended     bool  // the command's final CRLF (or a refused sync literal's) is read

	// tail holds the last bytes of the current line (a ring), to tell on
	// skip whether a line ends with a literal announcement.
	tail  [32]byte
	ntail int // bytes written to tail since the line began
}

// begin resets the per-command counters for a command read under lim.
func (r *reader) begin(lim *StateLimits) {
	r.lim = lim
	r.line, r.cmd, r.discarded, r.depth, r.args = 0, 0, 0, 0, 0
	r.ended = false
	r.ntail = 0
}

func (r *reader) pushTail(b byte) {
	r.tail[r.ntail%len(r.tail)] = b
	r.ntail++
}

// tailBytes returns the last bytes of the current line, in order.
func (r *reader) tailBytes() []byte {
	n := min(r.ntail, len(r.tail))
	out := make([]byte, n)
	for i := range n {
		out[i] = r.tail[(r.ntail-n+i)%len(r.tail)]
	}
	return out
}

var (
	errLineTooLong = &cmdError{resp: &imap.Error{Type: imap.StatusResponseTypeBad, Code: "TOOBIG", Text: "Command line too long"}}
	errCmdTooLong  = &cmdError{resp: &imap.Error{Type: imap.StatusResponseTypeBad, Code: "TOOBIG", Text: "Command too long"}}
)

// readByte reads one byte of a command line, counting it.
func (r *reader) readByte() (byte, error) {
	if r.line >= r.lim.LineBytes {
		return 0, errLineTooLong
	}
	if r.cmd >= r.lim.CommandBytes {
		return 0, errCmdTooLong
	}
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.line++
	r.cmd++
	r.pushTail(b)
	return b, nil
}

// peek returns the next byte without reading it.
func (r *reader) peek() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// peek2 returns the next two bytes without reading them; at the end of the
// input it returns what there is.
func (r *reader) peek2() []byte {
	b, _ := r.br.Peek(2)
	return b
}

func (r *reader) unexpected(want string) error {
	b, err := r.peek()
	if err != nil {
		return err
	}
	switch b {
	case '\r', '\n':
		return bad("Missing argument: expected " + want)
	}
	return bad("Syntax error: expected " + want)
}

// expect reads the byte c.
func (r *reader) expect(c byte, what string) error {
	b, err := r.peek()
	if err != nil {
		return err
	}
	if b != c {
		return r.unexpected(what)
	}
	_, err = r.readByte()
	return err
}

// sp reads one space.
func (r *reader) sp() error { return r.expect(' ', "space") }

// maybe reads c if it is next.
func (r *reader) maybe(c byte) (bool, error) {
	b, err := r.peek()
	if err != nil {
		return false, err
	}
	if b != c {
		return false, nil
	}
	_, err = r.readByte()
	return err == nil, err
}

// atEOL reports whether the command line ends here (CRLF or a bare LF).
func (r *reader) atEOL() (bool, error) {
	b, err := r.peek()
	if err != nil {
		return false, err
	}
	return b == '\r' || b == '\n', nil
}

// crlf reads the end of the command. A bare LF is accepted, as most
// servers do; a CR must be followed by LF.
func (r *reader) crlf() error {
	b, err := r.peek()
	if err != nil {
		return err
	}
	switch b {
	case '\r':
		if _, err := r.readByte(); err != nil {
			return err
		}
		b, err = r.peek()
		if err != nil {
			return err
		}
		if b != '\n' {
			return bad("Syntax error: CR without LF")
		}
		fallthrough
	case '\n':
		if _, err := r.readByte(); err != nil {
			return err
		}
		r.line = 0
		r.ntail = 0
		r.ended = true
		return nil
	}
	return bad("Syntax error: unexpected arguments at end of command")
}

// arg counts one element of the command against Limits.Args.
func (r *reader) arg() error {
	r.args++
	if r.args > r.lim.Args {
		return badCode(imap.ResponseCodeLimit, "Too many arguments")
	}
	return nil
}

// enter counts one level of nesting; leave undoes it.
func (r *reader) enter() error {
	r.depth++
	if r.depth > r.lim.Depth {
		return badCode(imap.ResponseCodeLimit, "Too deeply nested")
	}
	return nil
}

func (r *reader) leave() { r.depth-- }

// readLine reads one line after a command (a SASL response, IDLE's
// DONE), without its line end. A line longer than LineBytes is read to its
// end (within DiscardBytes) and refused.
func (r *reader) readLine() ([]byte, error) {
	r.line, r.ntail = 0, 0
	var buf []byte
	for {
		b, err := r.readByte()
		if err == errLineTooLong || err == errCmdTooLong {
			for {
				c, rerr := r.br.ReadByte()
				if rerr != nil {
					return nil, rerr
				}
				if derr := r.countDiscard(1); derr != nil {
					return nil, derr
				}
				if c == '\n' {
					r.line = 0
					return nil, err
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			r.line, r.ntail = 0, 0
			if n := len(buf); n > 0 && buf[n-1] == '\r' {
				buf = buf[:n-1]
			}
			return buf, nil
		}
		buf = append(buf, b)
	}
}

// skipCommand reads and throws away the rest of the current command after
// an error: to the end of the line, and, when that line announces a
// non-synchronising literal, through the literal and the lines after it.
// A line that announces a synchronising literal ends the command: the
// client sends the literal only after "+", which it will not get. Past
// DiscardBytes it gives up with a byeError.
func (r *reader) skipCommand() error {
	for !r.ended {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if err := r.countDiscard(1); err != nil {
			return err
		}
		r.pushTail(b)
		if b != '\n' {
			continue
		}
		n, sync, ok := tailLiteral(r.tailBytes())
		r.ntail = 0
		r.line = 0
		if !ok || sync {
			r.ended = true
			return nil
		}
		if err := r.discard(n); err != nil {
			return err
		}
	}
	return nil
}

// countDiscard counts n bytes thrown away.
func (r *reader) countDiscard(n int64) error {
	r.discarded += n
	if r.discarded > r.lim.DiscardBytes {
		return &byeError{code: "TOOBIG", text: "Refused command too large to skip"}
	}
	return nil
}

// discard reads and throws away n bytes of a refused literal, or gives up
// with a byeError when they do not fit the discard budget (RFC 7888 §4:
// the server either reads a refused non-synchronising literal or closes
// the connection).
func (r *reader) discard(n int64) error {
	if err := r.countDiscard(n); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, r.br, n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// tailLiteral reports whether a line (with its line end) ends with a
// literal announcement: "{n}", "{n+}" or "~{n}" before CRLF.
func tailLiteral(t []byte) (n int64, sync, ok bool) {
	if len(t) > 0 && t[len(t)-1] == '\n' {
		t = t[:len(t)-1]
	}
	if len(t) > 0 && t[len(t)-1] == '\r' {
		t = t[:len(t)-1]
	}
	if len(t) < 3 || t[len(t)-1] != '}' {
		return 0, false, false
	}
	t = t[:len(t)-1]
	sync = true
	if t[len(t)-1] == '+' {
		sync = false
		t = t[:len(t)-1]
	}
	i := len(t)
	for i > 0 && t[i-1] >= '0' && t[i-1] <= '9' {
		i--
	}
	if i == 0 || i == len(t) || t[i-1] != '{' || len(t)-i > 19 {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(t[i:]), 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, sync, true
}

// literalHeader is an announced literal: {n}, {n+}, ~{n} or ~{n+}.
type literalHeader struct {
	n      int64
	sync   bool
	binary bool // literal8 (RFC 3516): may contain NUL
}

// atLiteral reports whether a literal begins here.
func (r *reader) atLiteral() bool {
	b, err := r.peek()
	if err != nil || b != '{' && b != '~' {
		return false
	}
	if b == '{' {
		return true
	}
	two := r.peek2()
	return len(two) == 2 && two[1] == '{'
}

// readLiteralHeader reads a literal's announcement through its CRLF. The
// literal's bytes follow; the caller must accept or refuse them.
func (r *reader) readLiteralHeader() (literalHeader, error) {
	var h literalHeader
	if ok, err := r.maybe('~'); err != nil {
		return h, err
	} else if ok {
		h.binary = true
	}
	if err := r.expect('{', "literal"); err != nil {
		return h, err
	}
	digits := 0
	for {
		b, err := r.peek()
		if err != nil {
			return h, err
		}
		if b < '0' || b > '9' {
			break
		}
		if _, err := r.readByte(); err != nil {
			return h, err
		}
		digits++
		if digits > 19 || h.n > (1<<63-1-int64(b-'0'))/10 {
			return h, bad("Literal size out of range")
		}
		h.n = h.n*10 + int64(b-'0')
	}
	if digits == 0 {
		return h, bad("Syntax error in literal size")
	}
	h.sync = true
	if ok, err := r.maybe('+'); err != nil {
		return h, err
	} else if ok {
		h.sync = false
	}
	if err := r.expect('}', "}"); err != nil {
		return h, err
	}
	b, err := r.peek()
	if err != nil {
		return h, err
	}
	if b == '\r' {
		if _, err := r.readByte(); err != nil {
			return h, err
		}
	}
	if err := r.expect('\n', "CRLF after literal size"); err != nil {
		return h, err
	}
	r.line = 0
	r.ntail = 0
	return h, nil
}

// refuseLiteral refuses an announced literal with e. A synchronising
// literal ends the command (the client sends its bytes only after "+"); a
// non-synchronising one is discarded, then the rest of the command is
// skipped by the caller.
func (r *reader) refuseLiteral(h literalHeader, e *cmdError) error {
	if h.sync {
		r.ended = true
		return e
	}
	if err := r.discard(h.n); err != nil {
		return err
	}
	return e
}

var errLiteralTooBig = no("TOOBIG", "Literal too large")

// literal reads a literal argument that is buffered (a string, not
// message data). It is refused before any byte is read if it does not fit
// the command budget; literal8 only where allow8. Its memory grows as data
// arrives. A NUL in a plain literal is a syntax error (RFC 9051 CHAR8).
func (r *reader) literal(allow8 bool) ([]byte, error) {
	h, err := r.readLiteralHeader()
	if err != nil {
		return nil, err
	}
	if h.binary && !allow8 {
		return nil, r.refuseLiteral(h, bad("literal8 not allowed here"))
	}
	if h.n > r.lim.CommandBytes-r.cmd {
		return nil, r.refuseLiteral(h, errLiteralTooBig)
	}
	if h.sync {
		if err := r.cont(); err != nil {
			return nil, err
		}
	}
	buf, err := readGrowing(r.br, h.n)
	if err != nil {
		return nil, err
	}
	r.cmd += h.n
	if !h.binary {
		for _, c := range buf {
			if c == 0 {
				return nil, badCode(imap.ResponseCodeClientBug, "NUL in literal")
			}
		}
	}
	return buf, nil
}

// readGrowing reads exactly n bytes, allocating as they arrive.
func readGrowing(rd io.Reader, n int64) ([]byte, error) {
	const chunk = 4096
	buf := make([]byte, 0, min(n, chunk))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			grow := min(int64(cap(buf)), n-int64(len(buf)))
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		m, err := rd.Read(buf[len(buf):min(int64(cap(buf)), n)])
		buf = buf[:len(buf)+m]
		if err != nil && int64(len(buf)) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}
