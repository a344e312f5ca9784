package pop3

import (
	"bufio"
	"bytes"
	"errors"
)

// errLinesDone stops a copy into a dotWriter once TOP's line count is
// reached; it is not a failure.
var errLinesDone = errors.New("pop3: line limit reached")

// dotWriter writes a message as the body of a multi-line response (RFC
// 1939 §3): every line ends in CRLF, a line that begins with "." gets one
// more, and end adds the terminating ".". Line ends in the stored
// message are normalised on the way: a bare LF or a bare CR becomes CRLF,
// so that no client, however lax about line ends, can meet a line that
// holds only "." before the real end (no content can end the response
// early). A limit on body lines serves TOP.
type dotWriter struct {
	w     *bufio.Writer
	bol   bool // at the beginning of a line
	cr    bool // a CR ended the last Write; whether an LF follows is not known yet
	limit int  // lines still allowed; < 0 means no limit
	n     int64
}

func newDotWriter(w *bufio.Writer) *dotWriter {
	return &dotWriter{w: w, bol: true, limit: -1}
}

// eol ends a line.
func (d *dotWriter) eol() error {
	d.w.WriteString("\r\n")
	d.bol = true
	d.n += 2
	if d.limit > 0 {
		d.limit--
	}
	if d.limit == 0 {
		return errLinesDone
	}
	return nil
}

// text writes seg, which holds no CR or LF.
func (d *dotWriter) text(seg []byte) {
	if len(seg) == 0 {
		return
	}
	if d.bol && seg[0] == '.' {
		d.w.WriteByte('.')
		d.n++
	}
	d.w.Write(seg)
	d.n += int64(len(seg))
	d.bol = false
}

// Write implements io.Writer. Errors of the underlying writer show at
// its Flush; errLinesDone says the line limit was reached.
func (d *dotWriter) Write(p []byte) (int, error) {
	if d.limit == 0 {
		return 0, errLinesDone
	}
	n := len(p)
	for len(p) > 0 {
		if d.cr {
			d.cr = false
			if p[0] == '\n' {
				p = p[1:]
			}
			if err := d.eol(); err != nil {
				return n - len(p), err
			}
			continue
		}
		i := indexLineEnd(p)
		if i < 0 {
			d.text(p)
			break
		}
		d.text(p[:i])
		if p[i] == '\r' {
			if i+1 == len(p) {
				d.cr = true // decided by the next Write or end
				break
			}
			if p[i+1] == '\n' {
				i++
			}
		}
		p = p[i+1:]
		if err := d.eol(); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// setLimit allows lines more lines to be written (TOP's body lines).
func (d *dotWriter) setLimit(lines int) { d.limit = lines }

// end finishes the last line if it is open and writes the terminator.
// It returns the bytes written for the message, terminator included.
func (d *dotWriter) end() int64 {
	if d.cr {
		d.cr = false
		d.w.WriteString("\r\n")
		d.n += 2
		d.bol = true
	}
	if !d.bol {
		d.w.WriteString("\r\n")
		d.n += 2
		d.bol = true
	}
	d.w.WriteString(".\r\n")
	d.n += 3
	return d.n
}

// indexLineEnd returns the index of the first CR or LF in p, or -1.
func indexLineEnd(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	head := p
	if lf >= 0 {
		head = p[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
