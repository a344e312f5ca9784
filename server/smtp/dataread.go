package smtp

import (
	"bufio"
	"errors"
	"io"
)

// readDotData reads DATA content from br up to the end-of-data line
// (RFC 5321 §4.1.1.4), undoes dot-stuffing (§4.5.2: a line's leading "."
// is removed) and writes the rest, line endings included, to w. Only
// <CRLF>.<CRLF> ends the data: a "." line after a bare LF, or "." followed
// by a bare CR, does not, so a message cannot be cut short by a sequence
// that another server reads differently (SMTP smuggling); what follows
// such a sequence stays message data, where msgSink refuses the bare CR
// or LF. The DATA command's own line ending counts as the CRLF before
// the first line. It returns nil at the end-of-data line,
// io.ErrUnexpectedEOF if the connection ends first, or the read error.
// Lines longer than br's buffer are passed on in pieces; w sees every
// byte of the message exactly once, and w's errors are ignored (msgSink
// never fails).
func readDotData(br *bufio.Reader, w io.Writer) error {
	lineStart := true // the bytes before ended in CRLF
	prevCR := false   // the last byte passed on (or the DATA line's) was CR
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			data := line
			if lineStart && line[0] == '.' {
				if len(line) == 3 && line[1] == '\r' && line[2] == '\n' {
					return nil
				}
				data = line[1:]
			}
			w.Write(data)
			if err == nil {
				// A complete line: was its LF preceded by CR?
				if len(line) >= 2 {
					lineStart = line[len(line)-2] == '\r'
				} else {
					lineStart = prevCR
				}
			} else {
				lineStart = false
			}
			prevCR = line[len(line)-1] == '\r'
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return io.ErrUnexpectedEOF
		default:
			return err
		}
	}
}

// readChunk copies exactly n bytes of a BDAT chunk (RFC 3030 §2) from br
// to w. A connection that ends before n bytes gives io.ErrUnexpectedEOF:
// the chunk, and so the message, is incomplete.
func readChunk(br *bufio.Reader, w io.Writer, n int64) error {
	got, err := io.CopyN(w, br, n)
	if got == n {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
