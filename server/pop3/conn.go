package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"
)

// writeBufferBytes is the size of a connection's write buffer: large
// enough that a 10 KB message goes out in one write.
const writeBufferBytes = 32 << 10

// Errors of readLine.
var (
	// errLong: a line longer than Limits.LineBytes; the rest of it was
	// read and dropped.
	errLong = errors.New("pop3: line too long")
	// errFlood: a line whose rest did not fit Limits.DiscardBytes; the
	// connection must be closed.
	errFlood = errors.New("pop3: line too long to discard")
)

// conn is the wire of one connection: lines read within the limits,
// responses written through a buffer with a deadline per write.
type conn struct {
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	lim *Limits
}

func newConn(nc net.Conn, lim *Limits) *conn {
	c := &conn{nc: nc, lim: lim}
	c.br = bufio.NewReaderSize(nc, lim.LineBytes)
	c.bw = bufio.NewWriterSize(deadlineWriter{c}, writeBufferBytes)
	return c
}

// deadlineWriter sets the write deadline before every write to the
// connection, so that a client that stops reading is cut off.
type deadlineWriter struct{ c *conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.lim.WriteTimeout))
	return w.c.nc.Write(p)
}

// readLine reads one line, without its line end (CRLF, or a bare LF as
// lax clients send), reading nothing beyond Limits.LineBytes into
// memory. The line is valid until the next read; callers that hold a
// secret in it wipe it.
func (c *conn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, c.discardLine()
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// discardLine reads and drops the rest of a line that is too long.
func (c *conn) discardLine() error {
	var dropped int64
	for {
		b, err := c.br.ReadSlice('\n')
		dropped += int64(len(b))
		if dropped > c.lim.DiscardBytes {
			return errFlood
		}
		switch {
		case err == nil:
			return errLong
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return err
		}
	}
}

// ok writes a positive status line.
func (c *conn) ok(text string) {
	c.bw.WriteString("+OK")
	if text != "" {
		c.bw.WriteByte(' ')
		c.bw.WriteString(text)
	}
	c.bw.WriteString("\r\n")
}

// fail writes a negative status line.
func (c *conn) fail(e *Error) {
	c.bw.WriteString("-ERR ")
	if e.Code != "" {
		c.bw.WriteString("[" + e.Code + "] ")
	}
	c.bw.WriteString(e.Text)
	c.bw.WriteString("\r\n")
}

// line writes one line of a multi-line response (no dot-stuffing: the
// caller's lines never begin with ".").
func (c *conn) line(s string) {
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
}

// end writes the terminator of a multi-line response.
func (c *conn) end() { c.bw.WriteString(".\r\n") }

// flush sends what is buffered unless more commands are waiting in the
// input (RFC 2449 §6.6 PIPELINING: their responses go out together).
func (c *conn) flush() error {
	if c.br.Buffered() > 0 {
		return nil
	}
	return c.bw.Flush()
}

// command is one parsed command line.
type command struct {
	name string   // upper case
	args [][]byte // separated by spaces; at most maxArgs; views of the line
	rest []byte   // the line after the keyword and one space (PASS)
}

// maxArgs bounds the arguments of a command: none of RFC 1939's, 2449's
// or 5034's takes more than two.
const maxArgs = 2

// parseCommand parses a command line (RFC 1939 §3: a keyword of three
// or four characters, arguments separated by single spaces). Keywords
// are case-insensitive. Control characters are refused, except in the
// rest of the line (PASS allows anything but CR, LF and NUL).
func parseCommand(line []byte) (command, error) {
	var cmd command
	sp := bytes.IndexByte(line, ' ')
	kw := line
	if sp >= 0 {
		kw = line[:sp]
		cmd.rest = line[sp+1:]
	}
	if len(kw) < 3 || len(kw) > 4 {
		return cmd, errUnknownCommand
	}
	var name [4]byte
	for i, b := range kw {
		switch {
		case 'a' <= b && b <= 'z':
			b -= 'a' - 'A'
		case 'A' <= b && b <= 'Z':
		default:
			return cmd, errUnknownCommand
		}
		name[i] = b
	}
	cmd.name = string(name[:len(kw)])
	if bytes.IndexByte(cmd.rest, 0) >= 0 || bytes.IndexByte(cmd.rest, '\r') >= 0 {
		return cmd, errSyntax
	}
	if cmd.name == "PASS" {
		return cmd, nil // the rest is the password, spaces included
	}
	for _, b := range cmd.rest {
		if b < 0x20 || b == 0x7f {
			return cmd, errSyntax
		}
	}
	for f := range bytes.SplitSeq(cmd.rest, []byte{' '}) {
		if len(f) == 0 {
			continue // lax clients send two spaces
		}
		if len(cmd.args) == maxArgs {
			return cmd, errSyntax
		}
		cmd.args = append(cmd.args, f)
	}
	return cmd, nil
}

// parseNumber parses a decimal argument: a message number (at least 1)
// or TOP's line count (at least 0). Signs, spaces and values beyond
// int32 are refused.
func parseNumber(s []byte, min int) (int, bool) {
	if len(s) == 0 || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(s), 10, 32)
	if err != nil || int(n) < min {
		return 0, false
	}
	return int(n), true
}
