package smtp

import (
	"bytes"
	"fmt"
	"io"
)

// dataLimits bound one message as readMessage reads it.
type dataLimits struct {
	maxBytes int64 // message bytes, trace fields not counted
	maxLine  int   // bytes per line, CRLF included
	maxHops  int   // Received fields already in the header
}

// readChunk is how much readMessage asks the reader for at a time.
const readChunk = 32 << 10

// readMessage appends the message r yields to dst and checks it on the
// way: every CR must be followed by LF and every LF preceded by CR (so no
// sequence such as <LF>.<LF> means anything different to any reader of
// the stored message), no line may exceed lim.maxLine, the message may not
// exceed lim.maxBytes, and its header may not carry more than lim.maxHops
// Received fields. It returns the message size. On error dst holds an
// unspecified prefix and the caller must discard it.
func readMessage(dst *bytes.Buffer, r io.Reader, lim dataLimits) (int64, error) {
	start := dst.Len()
	var sc lineScanner
	sc.maxLine = lim.maxLine
	var size int64
	for {
		dst.Grow(readChunk)
		buf := dst.AvailableBuffer()
		buf = buf[:cap(buf)]
		// Ask for at most one byte beyond the limit, to notice it.
		if room := lim.maxBytes - size + 1; int64(len(buf)) > room {
			buf = buf[:room]
		}
		n, err := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > lim.maxBytes {
				return size, errScanTooBig
			}
			if serr := sc.scan(buf[:n]); serr != nil {
				return size, serr
			}
			dst.Write(buf[:n]) // appends in place: buf is dst's free space
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return size, fmt.Errorf("smtp: read data: %w", err)
		}
	}
	if sc.pendingCR {
		return size, errScanBareNewline
	}
	if receivedFields(dst.Bytes()[start:]) > lim.maxHops {
		return size, errScanLoop
	}
	return size, nil
}

// lineScanner checks line endings and lengths across chunk boundaries.
type lineScanner struct {
	maxLine   int  // immutable
	lineLen   int  // bytes of the current line so far, CR not counted
	pendingCR bool // the last byte seen was a CR
}

func (s *lineScanner) scan(p []byte) error {
	for len(p) > 0 {
		if s.pendingCR {
			if p[0] != '\n' {
				return errScanBareNewline
			}
			s.pendingCR = false
			s.lineLen = 0
			p = p[1:]
			continue
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			i = len(p)
		}
		s.lineLen += i
		if s.lineLen+2 > s.maxLine {
			return errScanLineTooLong
		}
		if i == len(p) {
			return nil
		}
		if p[i] == '\n' {
			return errScanBareNewline
		}
		s.pendingCR = true
		p = p[i+1:]
	}
	return nil
}

// receivedFields counts the Received fields in msg's header section (RFC
// 5322 §2.2): the lines before the first empty line, or before the first
// line that is neither a field nor a continuation.
func receivedFields(msg []byte) int {
	n := 0
	for len(msg) > 0 {
		line := msg
		rest := []byte(nil)
		if i := bytes.Index(msg, []byte("\r\n")); i >= 0 {
			line, rest = msg[:i], msg[i+2:]
		}
		if len(line) == 0 {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				break
			}
			if bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte("Received")) {
				n++
			}
		}
		msg = rest
	}
	return n
}
