package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawIMAP is the harness's IMAP client: it sends one command at a time
// and reads the responses to the tagged status, counting them and the
// bytes of their literals without parsing what they say (an envelope is
// never decoded), so that the client costs little next to the server.
type rawIMAP struct {
	conn    net.Conn
	r       *bufio.Reader
	tag     int
	timeout time.Duration // per command
	// line is the current response, its literals left out; reused.
	line []byte
}

// rawCounts is what one command's responses were.
type rawCounts struct {
	untagged int   // untagged responses
	fetch    int   // untagged FETCH responses
	complete int   // FETCH responses holding every item of want
	literals int64 // bytes of literals
	bytes    int64 // bytes read in all
	hits     int   // numbers in SEARCH responses
	vanished int   // UIDs in VANISHED responses
}

// dialRawIMAP connects with implicit TLS (certificate not verified: the
// harness starts the server with a throw-away one) and reads the
// greeting.
func dialRawIMAP(addr string, timeout time.Duration) (*rawIMAP, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	c := &rawIMAP{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), timeout: timeout}
	conn.SetReadDeadline(time.Now().Add(timeout))
	if err := c.readResponse(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(c.line, []byte("* OK")) {
		conn.Close()
		return nil, fmt.Errorf("greeting: %q", c.line)
	}
	return c, nil
}

// Close closes the connection.
func (c *rawIMAP) Close() error { return c.conn.Close() }

// run sends cmd and reads its responses up to the tagged one, which must
// be OK. A FETCH response counts as complete if it holds every string of
// want.
func (c *rawIMAP) run(cmd string, want ...string) (rawCounts, error) {
	var n rawCounts
	c.tag++
	tag := "s" + strconv.Itoa(c.tag)
	deadline := time.Now().Add(c.timeout)
	c.conn.SetDeadline(deadline)
	if _, err := io.WriteString(c.conn, tag+" "+cmd+"\r\n"); err != nil {
		return n, err
	}
	wants := make([][]byte, len(want))
	for i, w := range want {
		wants[i] = []byte(w)
	}
	for {
		lits, total, err := c.readResponseCounting()
		n.bytes += total
		n.literals += lits
		if err != nil {
			return n, fmt.Errorf("%s: %w", cmd, err)
		}
		l := c.line
		switch {
		case bytes.HasPrefix(l, []byte(tag+" ")):
			if !bytes.HasPrefix(l[len(tag)+1:], []byte("OK")) {
				return n, fmt.Errorf("%s: %s", cmd, l)
			}
			return n, nil
		case bytes.HasPrefix(l, []byte("* ")):
			n.untagged++
			c.count(&n, l[2:], wants)
		case bytes.HasPrefix(l, []byte("+")):
			return n, fmt.Errorf("%s: unexpected continuation %q", cmd, l)
		default:
			return n, fmt.Errorf("%s: unexpected line %q", cmd, l)
		}
	}
}

// count classifies one untagged response (without its "* ").
func (c *rawIMAP) count(n *rawCounts, l []byte, wants [][]byte) {
	first, rest, _ := bytes.Cut(l, []byte(" "))
	switch {
	case string(first) == "SEARCH":
		for f := range bytes.FieldsSeq(rest) {
			if f[0] >= '0' && f[0] <= '9' {
				n.hits++
			}
		}
		return
	case string(first) == "VANISHED":
		set := rest
		if after, ok := bytes.CutPrefix(set, []byte("(EARLIER) ")); ok {
			set = after
		}
		n.vanished += setSize(set)
		return
	}
	if kind, _, _ := bytes.Cut(rest, []byte(" ")); string(kind) == "FETCH" {
		n.fetch++
		for _, w := range wants {
			if !bytes.Contains(rest, w) {
				return
			}
		}
		n.complete++
	}
}

// setSize is the number of numbers in a sequence set such as 2,4:6.
func setSize(set []byte) int {
	n := 0
	for r := range bytes.SplitSeq(bytes.TrimSpace(set), []byte(",")) {
		lo, hi, ok := bytes.Cut(r, []byte(":"))
		a, err := strconv.Atoi(string(lo))
		if err != nil {
			continue
		}
		if !ok {
			n++
			continue
		}
		b, err := strconv.Atoi(string(hi))
		if err != nil {
			continue
		}
		n += max(a, b) - min(a, b) + 1
	}
	return n
}

// readResponse reads one response into c.line.
func (c *rawIMAP) readResponse() error {
	_, _, err := c.readResponseCounting()
	return err
}

// maxRawLine bounds one response line (without its literals) in the
// harness's memory.
const maxRawLine = 1 << 20

// readResponseCounting reads one response: lines up to one that does not
// end in a literal's announcement {n} (or {n+}); literals are skipped
// and counted, the rest is kept in c.line. It returns the literal bytes
// and all bytes read.
func (c *rawIMAP) readResponseCounting() (lits, total int64, err error) {
	c.line = c.line[:0]
	for {
		frag, err := c.r.ReadSlice('\n')
		total += int64(len(frag))
		if len(c.line)+len(frag) > maxRawLine {
			return lits, total, errors.New("response line too long")
		}
		c.line = append(c.line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return lits, total, err
		}
		c.line = bytes.TrimRight(c.line, "\r\n")
		k, ok := literalSize(c.line)
		if !ok {
			return lits, total, nil
		}
		d, err := c.r.Discard(int(k))
		lits += int64(d)
		total += int64(d)
		if err != nil {
			return lits, total, err
		}
	}
}

// literalSize returns n if line ends in {n} or {n+}.
func literalSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(line[open+1:len(line)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
