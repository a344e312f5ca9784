package wire

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// APPEND streams: parseAppendStart reads only the mailbox; the dispatcher
// then asks the Session for an Appender (so TRYCREATE and the like refuse
// the command before any literal is accepted) and reads the messages one
// by one with an appendReader, each message's data flowing from the
// connection into the Appender as it arrives.
//
//	append         = "APPEND" SP mailbox 1*append-message     ; RFC 3502
//	append-message = [SP flag-list] [SP date-time] SP append-data
//	append-data    = literal / literal8                        ; RFC 3516
//	               / "CATENATE" SP "(" cat-part *(SP cat-part) ")" ; RFC 4469
//	               / "UTF8" SP "(" literal8 ")"                ; RFC 6855
//	cat-part       = "TEXT" SP (literal / literal8) / "URL" SP astring

func parseAppendStart(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	c.Args = &Append{Mailbox: name}
	return nil
}

// appendReader reads the messages of one APPEND after its mailbox.
type appendReader struct {
	p        *parser
	limit    int64 // largest message
	maxMsgs  int
	n        int             // messages begun
	appender Appender        // resolves CATENATE URLs
	ctx      context.Context // of the command
	// mapErr turns an error of the Appender into the command's refusal
	// (a *cmdError); nil keeps it as it is.
	mapErr func(error) error
}

// next reads the options of the next message and announces its data,
// accepting the literal (sending "+" for a synchronising one). It returns
// nil at the end of the command, after reading the final CRLF.
func (a *appendReader) next() (*AppendMessage, error) {
	p := a.p
	if a.n > 0 {
		if eol, err := p.atEOL(); err != nil {
			return nil, err
		} else if eol {
			return nil, p.crlf()
		}
		if !p.has(imap.CapMultiAppend) {
			return nil, bad("Syntax error: one message per APPEND")
		}
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	a.n++
	if a.n > a.maxMsgs {
		return nil, badCode(imap.ResponseCodeLimit, "Too many messages in one APPEND")
	}
	m := &AppendMessage{Size: -1}
	if b, err := p.peek(); err != nil {
		return nil, err
	} else if b == '(' {
		if m.Flags, err = p.flagList(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if b, err := p.peek(); err != nil {
		return nil, err
	} else if b == '"' {
		if m.Date, err = p.dateTime(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if p.atLiteral() {
		lb, err := a.acceptLiteral(0, m)
		if err != nil {
			return nil, err
		}
		m.Size, m.Binary, m.Body = lb.left, lb.binary, lb
		return m, nil
	}
	k, err := p.keyword()
	if err != nil {
		return nil, err
	}
	switch {
	case k == "CATENATE" && p.has(imap.CapCatenate):
		if err := p.sp(); err != nil {
			return nil, err
		}
		if err := p.expect('(', "("); err != nil {
			return nil, err
		}
		if err := a.check(m); err != nil {
			return nil, err
		}
		cb := &catenateBody{a: a}
		m.Body = cb
		// The first part is read now, so that a message that cannot
		// begin fails before the Appender sees it.
		if err := cb.nextPart(); err != nil {
			return nil, err
		}
		return m, nil
	case k == "UTF8" && p.has(imap.CapUTF8Accept):
		if err := p.sp(); err != nil {
			return nil, err
		}
		if err := p.expect('(', "("); err != nil {
			return nil, err
		}
		if !p.atLiteral() {
			return nil, r8expected(p)
		}
		m.UTF8 = true
		lb, err := a.acceptLiteral(0, m)
		if err != nil {
			return nil, err
		}
		if !lb.binary {
			return nil, bad("Syntax error: UTF8 takes a literal8")
		}
		m.Size, m.Binary, m.UTF8 = lb.left, true, true
		m.Body = &closingBody{literalBody: lb, p: p}
		return m, nil
	}
	return nil, bad("Syntax error: expected message literal")
}

func r8expected(p *parser) error { return p.unexpected("literal8") }

// check asks the Appender, if it is an AppendChecker, whether m may come.
func (a *appendReader) check(m *AppendMessage) error {
	ch, ok := a.appender.(AppendChecker)
	if !ok {
		return nil
	}
	if err := ch.CheckMessage(a.ctx, m); err != nil {
		if a.mapErr != nil {
			return a.mapErr(err)
		}
		return err
	}
	return nil
}

// acceptLiteral reads a message literal's header and accepts it if it
// fits, with before bytes of the message already received. m, if not nil,
// is the message the literal begins: the Appender may refuse it first.
func (a *appendReader) acceptLiteral(before int64, m *AppendMessage) (*literalBody, error) {
	p := a.p
	h, err := p.readLiteralHeader()
	if err != nil {
		return nil, err
	}
	if h.binary && !p.has(imap.CapBinary) && !p.has(imap.CapIMAP4rev2) {
		return nil, p.refuseLiteral(h, bad("literal8 needs BINARY"))
	}
	if h.n > a.limit-before {
		return nil, p.refuseLiteral(h, no(imap.ResponseCodeTooBig, "Message too large: the limit is "+strconv.FormatInt(a.limit, 10)+" bytes"))
	}
	if m != nil {
		m.Size, m.Binary = h.n, h.binary || m.UTF8
		if err := a.check(m); err != nil {
			var ce *cmdError
			if !errors.As(err, &ce) {
				return nil, err
			}
			return nil, p.refuseLiteral(h, ce)
		}
	}
	if h.sync {
		if err := p.cont(); err != nil {
			return nil, err
		}
	}
	return &literalBody{r: p.reader, left: h.n, binary: h.binary}, nil
}

// finish makes sure the message's data is read to its end so that the
// stream is positioned after it: what the Appender left unread of an
// accepted literal is thrown away. When the Appender failed, a CATENATE
// message stops at the part being read (the rest of the command is then
// skipped, refusing later synchronising parts).
func (a *appendReader) finish(m *AppendMessage, failed bool) error {
	switch b := m.Body.(type) {
	case *literalBody:
		return b.drain()
	case *closingBody:
		if err := b.drain(); err != nil {
			return err
		}
		if b.closed {
			return nil
		}
		return a.p.expect(')', ")")
	case *catenateBody:
		if failed {
			return b.abort()
		}
		if !b.done {
			// The Appender stopped early without an error: read the rest.
			_, err := io.Copy(io.Discard, b)
			return err
		}
	}
	return nil
}

// literalBody streams the data of an accepted literal.
type literalBody struct {
	r      *reader
	left   int64
	binary bool
	err    error // the connection failed while reading
}

func (b *literalBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	return n, nil
}

// bodyErr returns the error of the stream under a message body: the
// connection's, or a syntax error inside CATENATE, or an Appender's
// refusal of a URL part.
func bodyErr(body BodyReader) error {
	switch b := body.(type) {
	case *literalBody:
		return b.err
	case *closingBody:
		return b.literalBody.err
	case *catenateBody:
		if b.err != nil {
			return b.err
		}
		if b.text != nil {
			return b.text.err
		}
	}
	return nil
}

// drain reads what is left of the literal.
func (b *literalBody) drain() error {
	if b.left == 0 {
		return nil
	}
	n, err := io.CopyN(io.Discard, b.r.br, b.left)
	b.left -= n
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// closingBody is the literal8 of APPEND's UTF8 form, followed by ")".
type closingBody struct {
	*literalBody
	p      *parser
	closed bool
}

func (b *closingBody) Read(buf []byte) (int, error) {
	n, err := b.literalBody.Read(buf)
	if err == io.EOF && !b.closed {
		if err := b.p.expect(')', ")"); err != nil {
			return n, err
		}
		b.closed = true
		return n, io.EOF
	}
	return n, err
}

// catenateBody streams a CATENATE message: its TEXT literals from the
// connection, accepted one by one as the Appender reaches them, and its
// URL parts from the Appender's URLOpener.
type catenateBody struct {
	a     *appendReader
	size  int64 // bytes of TEXT parts announced so far
	text  *literalBody
	url   io.ReadCloser
	parts int
	done  bool // ")" read
	err   error
}

func (b *catenateBody) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return 0, io.EOF
		}
		switch {
		case b.text != nil:
			n, err := b.text.Read(p)
			if err == io.EOF {
				b.text = nil
				if n > 0 {
					return n, nil
				}
			} else {
				if err != nil {
					b.err = err
				}
				return n, err
			}
		case b.url != nil:
			n, err := b.url.Read(p)
			if err == io.EOF {
				b.url.Close()
				b.url = nil
				if n > 0 {
					return n, nil
				}
			} else {
				if err != nil {
					b.err = err
				}
				return n, err
			}
		}
		if b.err = b.afterPart(); b.err != nil {
			return 0, b.err
		}
	}
}

// afterPart reads the separator after a part, then the next part.
func (b *catenateBody) afterPart() error {
	p := b.a.p
	if ok, err := p.maybe(')'); err != nil {
		return err
	} else if ok {
		b.done = true
		return nil
	}
	if err := p.sp(); err != nil {
		return err
	}
	return b.nextPart()
}

// nextPart reads one cat-part's header: TEXT literal (accepted against
// the message limit) or URL (opened through the Appender).
func (b *catenateBody) nextPart() error {
	p := b.a.p
	b.parts++
	if err := p.arg(); err != nil {
		return err
	}
	k, err := p.keyword()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	switch k {
	case "TEXT":
		if !p.atLiteral() {
			return p.unexpected("literal")
		}
		lb, err := b.a.acceptLiteral(b.size, nil)
		if err != nil {
			return err
		}
		b.size += lb.left
		b.text = lb
		return nil
	case "URL":
		u, err := p.astring()
		if err != nil {
			return err
		}
		op, ok := b.a.appender.(URLOpener)
		if !ok {
			return no(imap.ResponseCode("BADURL "+quoteCodeArg(u)), "URL parts are not supported")
		}
		rc, err := op.OpenURL(b.a.ctx, u)
		if err != nil {
			return err
		}
		b.url = rc
		return nil
	}
	return bad("Syntax error: expected TEXT or URL")
}

// abort stops a CATENATE message after the Appender failed: the current
// TEXT literal (already accepted) is read to its end, a URL part closed.
func (b *catenateBody) abort() error {
	if b.url != nil {
		b.url.Close()
		b.url = nil
	}
	if b.text != nil {
		return b.text.drain()
	}
	return nil
}

// quoteCodeArg makes s safe inside a response code: "]" and controls are
// dropped.
func quoteCodeArg(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < 200; i++ {
		if c := s[i]; c > ' ' && c < 0x7f && c != ']' {
			out = append(out, c)
		}
	}
	return string(out)
}
