package smtp

import (
	"bytes"
	"crypto/tls"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/store"
)

// transaction is one MAIL … DATA (or BDAT … LAST) exchange.
type transaction struct {
	id       string // random; in the Received field, the 250 and the logs
	from     string // reverse path as policy reads it; "" for <>
	utf8     bool   // MAIL … SMTPUTF8
	sizeHint int64  // MAIL … SIZE=, 0 if absent
	rcptText []string
	accounts []store.PublicAccount // distinct, in RCPT order
	bdat     *bdatTransfer         // nil until the first BDAT
	inb      *inbound.Tx           // nil without inbound checks
	rpLen    int64                 // length of the Return-Path line the message starts with; 0 at submission

	// Submission only:
	ret        string       // MAIL … RET=
	envid      string       // MAIL … ENVID=, decoded
	requireTLS bool         // MAIL … REQUIRETLS
	rcpts      []queue.Rcpt // every accepted recipient, local and remote
}

// bdatTransfer is the state of a message arriving in BDAT chunks.
type bdatTransfer struct {
	msg      *msgBuffer
	sink     *msgSink
	start    time.Time
	deadline time.Time // all chunks must arrive by then (Limits.DataTimeout)
	chunks   int
}

// hasRecipients reports whether a recipient was accepted: a local
// account, or (submission) a remote address.
func (tx *transaction) hasRecipients() bool { return len(tx.accounts) > 0 || len(tx.rcpts) > 0 }

// resetTx drops the transaction, if any, and what it holds.
func (c *conn) resetTx() {
	if c.tx != nil && c.tx.inb != nil {
		c.tx.inb.End(inbound.Outcome{}) // nothing if the message's end recorded it
	}
	if c.tx != nil && c.tx.bdat != nil {
		c.tx.bdat.msg.release()
		c.srv.budget.give(txWorkingSet)
	}
	c.tx = nil
	c.mu.Lock()
	c.inTx = false
	c.mu.Unlock()
}

// dispatch runs one command. It reports false when the connection must
// close.
func (c *conn) dispatch(cmd command) bool {
	switch cmd.verb {
	case "EHLO", "HELO":
		c.hello(cmd)
	case "MAIL":
		return c.mail(cmd)
	case "RCPT":
		return c.rcpt(cmd)
	case "DATA":
		return c.data(cmd)
	case "BDAT":
		return c.bdat(cmd)
	case "RSET":
		if cmd.arg != "" {
			c.reply(replyNoArgs)
			return !c.refused()
		}
		c.resetTx()
		c.reply(replyOK)
	case "NOOP":
		// RFC 5321 §4.1.1.9: an argument is allowed and ignored.
		c.reply(replyOK)
	case "QUIT":
		c.reply(replyBye)
		return false
	case "VRFY":
		// RFC 5321 §3.5.3: 252 when the server will not verify; telling
		// who exists here would help address harvesters.
		c.reply(replyNoVerify)
	case "HELP":
		c.reply(replyHelp)
	case "STARTTLS":
		return c.startTLS(cmd)
	case "AUTH":
		if c.srv.sub != nil {
			return c.auth(cmd)
		}
		c.reply(replyNoAuth)
		return !c.refused()
	case "EXPN", "TURN", "ETRN", "ATRN", "SAML", "SEND", "SOML":
		c.reply(replyNotAvailable)
		return !c.refused()
	default:
		c.reply(replyUnknownCmd)
		return !c.refused()
	}
	return true
}

// replyNoVerify answers VRFY.
var replyNoVerify = &Reply{252, "2.5.0", "Cannot verify users; send mail to find out"}

// hello answers EHLO and HELO (RFC 5321 §4.1.1.1). Either resets the
// transaction.
func (c *conn) hello(cmd command) {
	f := strings.Fields(cmd.arg)
	if len(f) == 0 {
		c.reply(&Reply{501, "5.5.4", cmd.verb + " needs a domain or address literal"})
		c.refused()
		return
	}
	c.resetTx()
	c.helo = f[0]
	c.extended = cmd.verb == "EHLO"
	c.log.Debug("hello", keyHelo, sanitize(c.helo), "tls", c.tls)
	if !c.extended {
		c.reply(&Reply{250, "", c.srv.opt.Hostname})
		return
	}
	lines := []string{
		c.srv.opt.Hostname,
		"PIPELINING",
		"SIZE " + strconv.FormatInt(c.srv.lim.MessageBytes, 10),
		"8BITMIME",
		"SMTPUTF8",
		"ENHANCEDSTATUSCODES",
		"CHUNKING",
	}
	if c.srv.opt.TLSConfig != nil && !c.tls {
		lines = append(lines, "STARTTLS")
	}
	if c.srv.sub != nil {
		lines = append(lines, c.submissionExtensions()...)
	}
	c.reply(&Reply{250, "", strings.Join(lines, "\n")})
}

// mail opens a transaction (RFC 5321 §4.1.1.2).
func (c *conn) mail(cmd command) bool {
	switch {
	case c.helo == "":
		c.reply(replyNeedHelo)
		return !c.refused()
	case c.tx != nil:
		c.reply(replyNestedMail)
		return !c.refused()
	}
	if c.srv.sub != nil && c.login == nil {
		// RFC 4954 §6: submission needs authentication first.
		c.reply(replyAuthRequired)
		return !c.refused()
	}
	args, rep := parseMail(cmd.arg, c.mailParams())
	if rep != nil {
		c.reply(rep)
		return !c.refused()
	}
	if args.size > c.srv.lim.MessageBytes {
		// RFC 1870 §6.1: the announced size exceeds the fixed limit.
		c.reply(replyTooBig)
		return true
	}
	from := ""
	if !args.from.isNull() {
		from = args.from.addr()
		if rep := checkPath(from, args.utf8); rep != nil {
			c.log.Debug("MAIL refused", keyDomain, sanitize(domainOf(from)), keyResult, rep.Status())
			c.reply(rep)
			return !c.refused()
		}
	}
	if c.srv.sub != nil {
		if rep := c.checkSender(from); rep != nil {
			c.reply(rep)
			return !c.refused()
		}
	}
	if !c.srv.rates.allow(c.rateKey(), c.srv.lim, time.Now()) {
		c.log.Info("MAIL refused: rate limit", keyResult, replyRateLimited.Status())
		c.reply(replyRateLimited)
		return true
	}
	// A transaction open when Shutdown starts may finish; none may begin
	// after it.
	if !c.beginTx() {
		c.reply(replyShutdown)
		return false
	}
	c.tx = &transaction{id: newTxID(), from: from, utf8: args.utf8, sizeHint: args.size,
		ret: args.ret, envid: args.envid, requireTLS: args.requireTLS}
	if c.srv.opt.Inbound != nil {
		c.tx.inb = c.srv.opt.Inbound.Begin(c.tx.id, c.ip, c.helo, from)
	}
	c.reply(replySenderOK)
	return true
}

// data receives a message with DATA (RFC 5321 §4.1.1.4).
func (c *conn) data(cmd command) bool {
	switch {
	case cmd.arg != "":
		c.reply(replyNoArgs)
		return !c.refused()
	case c.tx == nil:
		c.reply(replyNeedMailFirst)
		return !c.refused()
	case c.tx.bdat != nil:
		c.reply(replyBdatOpen)
		return !c.refused()
	case !c.tx.hasRecipients():
		c.reply(replyNoValidRcpt)
		return !c.refused()
	}
	if !c.srv.budget.take(c.ctx, txWorkingSet, c.srv.lim.InFlightWait) {
		c.log.Warn("DATA refused: messages in flight fill the memory budget", keyResult, replyBusy.Status())
		c.reply(replyBusy)
		return true
	}
	defer c.srv.budget.give(txWorkingSet)
	start := time.Now()
	c.reply(replyStartData)
	msg := c.srv.newMsgBuffer()
	defer msg.release()
	c.writeTrace(msg, start)
	sink := newMsgSink(msg, c.dataLimits())
	c.beginData(start.Add(c.srv.lim.DataTimeout))
	err := readDotData(c.br, sink)
	c.endData()
	if err != nil {
		c.log.Info("message data incomplete", keyID, c.tx.id, keySize, sink.size, keyErr, err)
		c.readFailed(err)
		return false
	}
	rep := c.deliver(msg, sink, start)
	c.reply(rep)
	c.resetTx()
	return true
}

// replyNeedMailFirst answers DATA outside a transaction.
var replyNeedMailFirst = &Reply{503, "5.5.1", "Need MAIL and RCPT first"}

// bdat receives one chunk of a message (RFC 3030 §2). The chunk is read
// whatever happens, so the client's next command is read as one; a chunk
// cut short by the end of the connection aborts the transaction: nothing
// of it is stored.
func (c *conn) bdat(cmd command) bool {
	size, last, ok := parseBDAT(cmd.arg)
	if !ok {
		// The chunk's length is unknown: there is no way back into step.
		c.reply(replyBdatSyntax)
		return false
	}
	var refuse *Reply
	switch {
	case c.tx == nil:
		refuse = replyNeedMailFirst
	case !c.tx.hasRecipients():
		refuse = replyNoValidRcpt
	}
	now := time.Now()
	if refuse == nil && c.tx.bdat == nil {
		if !c.srv.budget.take(c.ctx, txWorkingSet, c.srv.lim.InFlightWait) {
			c.log.Warn("BDAT refused: messages in flight fill the memory budget", keyResult, replyBusy.Status())
			refuse = replyBusy
		} else {
			b := &bdatTransfer{msg: c.srv.newMsgBuffer(), start: now, deadline: now.Add(c.srv.lim.DataTimeout)}
			c.writeTrace(b.msg, now)
			b.sink = newMsgSink(b.msg, c.dataLimits())
			c.tx.bdat = b
		}
	}
	var (
		dst io.Writer = io.Discard
		end           = now.Add(c.srv.lim.DataTimeout)
	)
	if refuse == nil {
		dst, end = c.tx.bdat.sink, c.tx.bdat.deadline
		c.tx.bdat.chunks++
	}
	c.beginData(end)
	err := readChunk(c.br, dst, size)
	c.endData()
	if err != nil {
		if c.tx != nil {
			c.log.Info("BDAT chunk incomplete; transaction aborted", keyID, c.tx.id, keyErr, err)
		}
		c.readFailed(err)
		c.resetTx()
		return false
	}
	if refuse != nil {
		c.reply(refuse)
		if refuse == replyBusy {
			c.resetTx()
			return true
		}
		return !c.refused()
	}
	b := c.tx.bdat
	if b.sink.err != nil {
		// Refuse now: RFC 3030 §2, the client sends no more chunks after
		// an error. Pipelined ones meet no transaction.
		rep := c.deliverFault(b.sink, b.sink.err)
		c.reply(rep)
		c.resetTx()
		return true
	}
	if !last {
		c.reply(&Reply{250, "2.0.0", strconv.FormatInt(size, 10) + " octets received"})
		return true
	}
	rep := c.deliver(b.msg, b.sink, b.start)
	c.reply(rep)
	c.resetTx()
	return true
}

// replyBdatSyntax answers a BDAT whose size cannot be read; the
// connection closes after it (the chunk cannot be skipped).
var replyBdatSyntax = &Reply{421, "4.5.4", "Bad BDAT syntax; closing connection"}

// dataLimits returns the limits msgSink applies.
func (c *conn) dataLimits() dataLimits {
	return dataLimits{maxBytes: c.srv.lim.MessageBytes, maxLine: c.srv.lim.LineLength, maxHops: c.srv.lim.Hops}
}

// writeTrace writes the trace fields that precede the message: the
// MX's Return-Path and Received fields, submission's Received field.
func (c *conn) writeTrace(msg *msgBuffer, when time.Time) {
	ti := traceInfo{
		reversePath: c.tx.from,
		heloName:    c.helo,
		helo:        !c.extended,
		remoteIP:    c.ip,
		hostname:    c.srv.opt.Hostname,
		tls:         c.tls,
		utf8:        c.tx.utf8,
		id:          c.tx.id,
		when:        when,
	}
	if len(c.tx.rcptText) == 1 {
		ti.rcpt = c.tx.rcptText[0]
	}
	if sub := c.srv.sub; sub != nil {
		// Return-Path is for final delivery (RFC 5321 §4.4): the local
		// copies get theirs when they are sealed.
		ti.submission, ti.auth, ti.hideClient = true, c.login != nil, sub.HideClientIP
	}
	var b bytes.Buffer
	writeTrace(&b, ti)
	if !ti.submission {
		c.tx.rpLen = int64(bytes.IndexByte(b.Bytes(), '\n') + 1)
	}
	msg.Write(b.Bytes())
}

// startTLS upgrades the connection (RFC 3207). Whatever the client sent
// after STARTTLS in the clear is thrown away, never run inside TLS
// (CVE-2011-0411), and the client must greet again.
func (c *conn) startTLS(cmd command) bool {
	switch {
	case c.srv.opt.TLSConfig == nil:
		c.reply(replyNoTLS)
		return !c.refused()
	case c.tls:
		c.reply(replyTLSActive)
		return !c.refused()
	case cmd.arg != "":
		c.reply(replyNoArgs)
		return !c.refused()
	}
	c.reply(replyTLSReady)
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if n := c.br.Buffered(); n > 0 {
		c.log.Info("discarding commands sent with STARTTLS", "bytes", n)
	}
	tc := tls.Server(c.raw, c.srv.opt.TLSConfig)
	c.raw.SetDeadline(time.Now().Add(c.srv.lim.CommandTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.Info("TLS handshake failed", keyErr, err)
		return false
	}
	c.raw.SetDeadline(time.Time{})
	c.nc = tc
	c.tls = true
	c.br.Reset(connReader{c})
	c.bw.Reset(connWriter{c})
	c.resetTx()
	c.helo, c.extended = "", false
	st := tc.ConnectionState()
	c.log.Debug("TLS", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return true
}

// mailParams returns the MAIL and RCPT parameters this connection
// takes now.
func (c *conn) mailParams() mailParams {
	sub := c.srv.sub != nil
	return mailParams{esmtp: c.extended, dsn: sub, requireTLS: sub && c.tls}
}

// rateKey is what delivery rates count by: the client (an IPv4 address
// or IPv6 /64) at the MX; the account at submission, where a whole
// office may share one address and a stolen password is what to slow
// down.
func (c *conn) rateKey() string {
	if c.srv.sub != nil {
		return "account:" + c.account
	}
	return c.client
}
