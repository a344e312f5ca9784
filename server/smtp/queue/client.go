package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// This file is the SMTP client of deliveries (RFC 5321), sealmail's own
// rather than go-smtp's: go-smtp's client (v0.25 and v0.26) cannot send
// STARTTLS after an EHLO with our own name (its only way in,
// NewClientStartTLS, greets as "localhost" and gives up when STARTTLS is
// not offered, so opportunistic TLS would cost two connections), reads
// multi-line replies without bounding their number, and does not
// pipeline. This one greets with the server's host name, upgrades when
// it may or must, bounds every reply (replyMaxLines lines of
// replyMaxLine bytes) and every wait (timeouts below, and the context),
// and pipelines MAIL, RCPT and DATA when the server offers PIPELINING
// (RFC 2920).

// Timeouts of one delivery connection: RFC 5321 §4.5.3.2's minimums.
const (
	dialTimeout     = 30 * time.Second
	greetTimeout    = 5 * time.Minute
	commandTimeout  = 5 * time.Minute
	dataInitTimeout = 2 * time.Minute
	dataBlockTime   = 3 * time.Minute
	dataEndTimeout  = 10 * time.Minute
	// tlsTimeout bounds a STARTTLS handshake.
	tlsTimeout = time.Minute
)

// Reply bounds: a line of RFC 5321 §4.5.3.1.5's 512 octets, doubled
// for tolerance as go-smtp does, and more lines than any EHLO needs.
const (
	replyMaxLine  = 2000
	replyMaxLines = 100
)

// reply is one server reply.
type reply struct {
	code     int
	enhanced string   // "5.1.1" if the first line carries one, else ""
	lines    []string // the lines as received, without CRLF
}

// String is the reply as received, lines joined by "\n".
func (r *reply) String() string { return strings.Join(r.lines, "\n") }

// text is the first line's text after the codes.
func (r *reply) text() string {
	if len(r.lines) == 0 {
		return ""
	}
	t := r.lines[0]
	if len(t) > 4 {
		t = t[4:]
	} else {
		t = ""
	}
	if r.enhanced != "" {
		t = strings.TrimPrefix(strings.TrimPrefix(t, r.enhanced), " ")
	}
	return t
}

func (r *reply) permanent() bool { return r.code >= 500 }
func (r *reply) ok() bool        { return r.code >= 200 && r.code < 400 }

// status is the enhanced status code, or one made from the reply code's
// class (RFC 3463 §3.1: X.0.0).
func (r *reply) status() string {
	if r.enhanced != "" {
		return r.enhanced
	}
	return strconv.Itoa(r.code/100) + ".0.0"
}

// protocolError is a reply or a byte sequence that breaks the protocol.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "protocol error: " + e.msg }

// client is one connection to one server.
type client struct {
	raw  net.Conn // the TCP connection
	conn net.Conn // raw, or TLS over it
	br   *bufio.Reader
	bw   *bufio.Writer
	ext  map[string]string // EHLO keywords (upper case) → parameters
	tls  *tls.ConnectionState
	ehlo bool
}

func newClient(raw net.Conn) *client {
	c := &client{raw: raw, conn: raw}
	c.br = bufio.NewReaderSize(raw, 4096)
	c.bw = bufio.NewWriterSize(raw, 16<<10)
	return c
}

// close ends the connection, politely when it can: QUIT is sent but its
// reply not awaited long.
func (c *client) close(quit bool) {
	if quit {
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
		if c.write("QUIT") == nil {
			c.readReply()
		}
	}
	c.conn.Close()
}

// write sends one command line.
func (c *client) write(line string) error {
	c.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	if _, err := c.bw.WriteString(line); err != nil {
		return err
	}
	if _, err := c.bw.WriteString("\r\n"); err != nil {
		return err
	}
	return c.bw.Flush()
}

// queue adds a command line to the write buffer without sending it
// (pipelining).
func (c *client) queue(line string) {
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
}

func (c *client) flush() error {
	c.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	return c.bw.Flush()
}

// readReplyWithin reads one reply within d.
func (c *client) readReplyWithin(d time.Duration) (*reply, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	return c.readReply()
}

// readReply reads one reply (RFC 5321 §4.2): lines "ddd-text" and a
// last line "ddd text", all with the same code, each at most
// replyMaxLine bytes, at most replyMaxLines of them.
func (c *client) readReply() (*reply, error) {
	r := &reply{}
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) < 3 || !digits(line[:3]) || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return nil, &protocolError{fmt.Sprintf("malformed reply line %q", clip(line, 80))}
		}
		code, _ := strconv.Atoi(line[:3])
		if code < 200 || code > 599 {
			return nil, &protocolError{fmt.Sprintf("reply code %d", code)}
		}
		if len(r.lines) == 0 {
			r.code = code
			r.enhanced = enhancedCode(line, code)
		} else if code != r.code {
			return nil, &protocolError{"reply lines with different codes"}
		}
		if len(r.lines) == replyMaxLines {
			return nil, &protocolError{"reply longer than " + strconv.Itoa(replyMaxLines) + " lines"}
		}
		r.lines = append(r.lines, line)
		if len(line) == 3 || line[3] == ' ' {
			return r, nil
		}
	}
}

// readLine reads one line of at most replyMaxLine bytes, without its
// line ending (CRLF or a bare LF).
func (c *client) readLine() (string, error) {
	var b []byte
	for {
		part, err := c.br.ReadSlice('\n')
		if len(b)+len(part) > replyMaxLine+2 {
			return "", &protocolError{"reply line too long"}
		}
		b = append(b, part...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// enhancedCode returns the enhanced status code at the start of a reply
// line's text (RFC 2034 §4), if its class matches the reply code's.
func enhancedCode(line string, code int) string {
	if len(line) < 4 {
		return ""
	}
	f, _, _ := strings.Cut(line[4:], " ")
	parts := strings.Split(f, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || !digits(p) {
			return ""
		}
	}
	return f
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// cmd sends a command and reads its reply.
func (c *client) cmd(line string, timeout time.Duration) (*reply, error) {
	if err := c.write(line); err != nil {
		return nil, err
	}
	return c.readReplyWithin(timeout)
}

// greet reads the greeting.
func (c *client) greet() (*reply, error) {
	return c.readReplyWithin(greetTimeout)
}

// hello sends EHLO, or HELO if the server does not know EHLO, and
// records the extensions offered.
func (c *client) hello(name string) (*reply, error) {
	r, err := c.cmd("EHLO "+name, commandTimeout)
	if err != nil {
		return nil, err
	}
	if r.code == 500 || r.code == 502 {
		c.ehlo = false
		c.ext = nil
		return c.cmd("HELO "+name, commandTimeout)
	}
	if r.code != 250 {
		return r, nil
	}
	c.ehlo = true
	c.ext = make(map[string]string)
	for _, l := range r.lines[1:] {
		if len(l) < 5 {
			continue
		}
		kw, param, _ := strings.Cut(l[4:], " ")
		c.ext[strings.ToUpper(kw)] = param
	}
	return r, nil
}

// has reports whether the server offered an extension.
func (c *client) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// maxSize returns the SIZE the server announced (RFC 1870), 0 for none.
func (c *client) maxSize() int64 {
	v, ok := c.ext["SIZE"]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// startTLS sends STARTTLS and, on 220, runs the handshake with cfg. A
// non-220 reply is returned with a nil error; a failed handshake is an
// error (the connection is then unusable).
func (c *client) startTLS(ctx context.Context, cfg *tls.Config) (*reply, error) {
	r, err := c.cmd("STARTTLS", commandTimeout)
	if err != nil || r.code != 220 {
		return r, err
	}
	tc := tls.Client(c.raw, cfg)
	c.raw.SetDeadline(time.Now().Add(tlsTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		return r, fmt.Errorf("TLS handshake: %w", err)
	}
	c.raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls = &st
	c.conn = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	c.ext = nil
	return r, nil
}

// useTLS marks an implicit-TLS connection (the smarthost on port 465).
func (c *client) useTLS(tc *tls.Conn) {
	st := tc.ConnectionState()
	c.tls = &st
	c.conn = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
}

// auth authenticates with PLAIN (RFC 4616) or, if only that is offered,
// LOGIN. The caller has checked that TLS is up.
func (c *client) auth(user string, pass []byte) (*reply, error) {
	mechs := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case has("PLAIN") || !has("LOGIN"):
		resp := make([]byte, 0, 2+len(user)+len(pass))
		resp = append(resp, 0)
		resp = append(resp, user...)
		resp = append(resp, 0)
		resp = append(resp, pass...)
		enc := base64.StdEncoding.EncodeToString(resp)
		clear(resp)
		return c.cmd("AUTH PLAIN "+enc, commandTimeout)
	default:
		r, err := c.cmd("AUTH LOGIN", commandTimeout)
		if err != nil || r.code != 334 {
			return r, err
		}
		if r, err = c.cmd(base64.StdEncoding.EncodeToString([]byte(user)), commandTimeout); err != nil || r.code != 334 {
			return r, err
		}
		return c.cmd(base64.StdEncoding.EncodeToString(pass), commandTimeout)
	}
}

// transaction is what one MAIL … DATA exchange sends.
type transaction struct {
	mail  string   // the MAIL command line
	rcpts []string // RCPT command lines
}

// txResult is how the server answered a transaction. Replies are nil
// where the command was not sent or not answered.
type txResult struct {
	mail  *reply
	rcpts []*reply
	data  *reply // the reply to DATA (354), or the refusal
	final *reply // the reply after the message
	err   error  // a connection or protocol failure, and where
	stage string // the stage of err or of the deciding reply
}

// send runs one transaction: MAIL, RCPT for each recipient (pipelined
// when offered), DATA and the message from body (dot-stuffed). It stops
// at the first failure of the connection.
func (c *client) send(tx transaction, body io.Reader) txResult {
	var res txResult
	res.rcpts = make([]*reply, len(tx.rcpts))
	fail := func(stage string, err error) txResult {
		res.stage, res.err = stage, err
		return res
	}
	pipelined := c.has("PIPELINING")
	if pipelined {
		c.queue(tx.mail)
		for _, r := range tx.rcpts {
			c.queue(r)
		}
		c.queue("DATA")
		if err := c.flush(); err != nil {
			return fail("mail", err)
		}
	} else if err := c.write(tx.mail); err != nil {
		return fail("mail", err)
	}
	r, err := c.readReplyWithin(commandTimeout)
	if err != nil {
		return fail("mail", err)
	}
	res.mail = r
	if !pipelined && !r.ok() {
		res.stage = "mail"
		return res
	}
	accepted := 0
	for i, line := range tx.rcpts {
		if !pipelined {
			if err := c.write(line); err != nil {
				return fail("rcpt", err)
			}
		}
		r, err := c.readReplyWithin(commandTimeout)
		if err != nil {
			return fail("rcpt", err)
		}
		res.rcpts[i] = r
		if r.ok() {
			accepted++
		}
	}
	if !pipelined {
		if accepted == 0 {
			res.stage = "rcpt"
			return res
		}
		if err := c.write("DATA"); err != nil {
			return fail("data", err)
		}
	}
	r, err = c.readReplyWithin(dataInitTimeout)
	if err != nil {
		return fail("data", err)
	}
	res.data = r
	if r.code != 354 {
		res.stage = "data"
		if pipelined && !res.mail.ok() {
			res.stage = "mail"
		} else if accepted == 0 {
			res.stage = "rcpt"
		}
		return res
	}
	if accepted == 0 || !res.mail.ok() {
		// RFC 2920 §3.1: DATA was accepted although nothing else was;
		// end the (empty) message at once. The server refuses it.
		if err := c.write("."); err == nil {
			res.final, _ = c.readReplyWithin(dataEndTimeout)
		}
		res.stage = "rcpt"
		if !res.mail.ok() {
			res.stage = "mail"
		}
		return res
	}
	if err := c.writeData(body); err != nil {
		return fail("data", err)
	}
	r, err = c.readReplyWithin(dataEndTimeout)
	if err != nil {
		return fail("data", err)
	}
	res.final = r
	res.stage = "data"
	return res
}

// writeData writes body dot-stuffed (RFC 5321 §4.5.2) and the end of
// data. body is CRLF text; a missing final CRLF is added.
func (c *client) writeData(body io.Reader) error {
	w := &dotWriter{w: c.bw, c: c, lineStart: true}
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(w, body, buf); err != nil {
		return err
	}
	if !w.lineStart {
		if _, err := c.bw.WriteString("\r\n"); err != nil {
			return err
		}
	}
	if _, err := c.bw.WriteString(".\r\n"); err != nil {
		return err
	}
	return c.flush()
}

// dotWriter dot-stuffs: a line that starts with "." gets another. Each
// write refreshes the write deadline (a slow but moving peer is fine).
type dotWriter struct {
	w         *bufio.Writer
	c         *client
	lineStart bool
}

func (d *dotWriter) Write(p []byte) (int, error) {
	d.c.conn.SetWriteDeadline(time.Now().Add(dataBlockTime))
	n := 0
	for len(p) > 0 {
		if d.lineStart && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return n, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		if _, err := d.w.Write(chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		d.lineStart = i >= 0
		p = p[len(chunk):]
	}
	return n, nil
}
