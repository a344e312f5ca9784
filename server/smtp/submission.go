package smtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/store"
)

// This file is submission's policy at each step of a transaction (RFC
// 6409), on the wire layer the MX uses (conn.go, commands.go): an
// authenticated client (auth.go) sends as itself to anyone. Its local
// recipients are sealed and committed as the MX commits them; its
// remote ones go to the outbound queue; both in one store transaction
// before the 250.

// Replies of submission.
var (
	// RFC 4954 §6.
	replyAuthRequired = &Reply{530, "5.7.0", "Authentication required"}
	// RFC 6409 §6.1: the MSA checks that the sender is the
	// authenticated user's.
	replyNotYourSender = &Reply{550, "5.7.1", "Sender address not owned by the authenticated account"}
	replyNotYourFrom   = &Reply{550, "5.7.1", "From: address not owned by the authenticated account"}
	replyNoFrom        = &Reply{550, "5.6.0", "The message has no From: field (RFC 5322 §3.6)"}
	replyManyFrom      = &Reply{550, "5.6.0", "The message has more than one From: field (RFC 5322 §3.6)"}
	replyBadFrom       = &Reply{550, "5.6.0", "The From: or Sender: field does not parse"}
	replyFieldTooLong  = &Reply{550, "5.6.0", "A From: or Sender: field is too long"}
	replyNoLiteral     = &Reply{550, "5.1.2", "Address literals are not accepted; use a domain name"}
	replyBadDomain     = &Reply{501, "5.1.3", "Bad recipient domain"}
)

// submissionExtensions are the EHLO keywords submission adds to the
// MX's: AUTH only under TLS (RFC 4954 §4, RFC 8314 §3), DSN (RFC 3461),
// REQUIRETLS only under TLS (RFC 8689 §4).
func (c *conn) submissionExtensions() []string {
	ext := []string{"DSN"}
	if c.tls {
		if c.login == nil {
			ext = append(ext, "AUTH PLAIN LOGIN")
		}
		ext = append(ext, "REQUIRETLS")
	}
	return ext
}

// checkSender refuses an envelope sender the account does not own. The
// null sender is allowed: clients send read receipts (RFC 8098 §2.1)
// with it; the From: field is still checked.
func (c *conn) checkSender(from string) *Reply {
	if from == "" || c.srv.rcpts.Owns(c.account, from) {
		return nil
	}
	c.log.Info("MAIL refused: sender not owned", keyDomain, sanitize(domainOf(from)),
		keyResult, replyNotYourSender.Status())
	return replyNotYourSender
}

// submissionRcpt adds a recipient of a submitted message: a local one
// as the MX would (without the tarpit: the client is known), a remote
// one for the queue.
func (c *conn) submissionRcpt(p path, ra rcptArgs, addr string) bool {
	if strings.HasPrefix(p.domain, "[") {
		c.reply(replyNoLiteral)
		return !c.refused()
	}
	var (
		r        queue.Rcpt
		accounts []store.PublicAccount
	)
	domain, err := policy.NormalizeDomain(p.domain)
	if err != nil {
		c.reply(replyBadDomain)
		return !c.refused()
	}
	if c.srv.rcpts.IsLocalDomain(domain) {
		ctx, cancel := context.WithTimeout(c.ctx, c.srv.lim.CommandTimeout)
		defer cancel()
		accounts, err = c.srv.rcpts.Resolve(ctx, c.srv.opt.Store, addr)
		if err != nil {
			rep := c.rcptReply(addr, err)
			if rep == replyTemporary {
				c.reply(rep)
				return true
			}
			c.log.Info("RCPT refused", keyDomain, sanitize(domain), keyResult, rep.Status())
			c.reply(rep)
			return !c.refused()
		}
		for _, a := range accounts {
			if rep := quotaCheck(a, c.tx.sizeHint); rep != nil {
				c.log.Info("RCPT refused: quota", keyRcptAccount, a.Address, keyResult, rep.Status())
				c.reply(rep)
				return true
			}
		}
		canon, err := policy.CanonicalAddress(addr)
		if err != nil {
			canon = addr
		}
		r = queue.Rcpt{Addr: canon, Local: true}
	} else {
		// A remote recipient: its local part is the remote's business,
		// kept as given (quoted again if it needs quotes); its domain in
		// A-labels for the routing.
		r = queue.Rcpt{Addr: quoteLocal(p.local) + "@" + domain}
	}
	r.Notify, r.ORcpt = ra.notify, ra.orcpt
	if slices.ContainsFunc(c.tx.rcpts, func(x queue.Rcpt) bool { return x.Addr == r.Addr }) {
		c.reply(replyRcptOK) // named twice: one copy
		return true
	}
	c.tx.rcptText = append(c.tx.rcptText, addr)
	c.tx.rcpts = append(c.tx.rcpts, r)
	for _, a := range accounts {
		if !slices.ContainsFunc(c.tx.accounts, func(b store.PublicAccount) bool { return b.Address == a.Address }) {
			c.tx.accounts = append(c.tx.accounts, a)
		}
	}
	c.reply(replyRcptOK)
	return true
}

// quoteLocal quotes a local part that is not a dot-atom (RFC 5321
// §4.1.2).
func quoteLocal(local string) string {
	if dotAtom(local) {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String()
}

// submit checks a submitted message's header, adds what is missing,
// runs the transforms, and commits the local copies and the queue
// entries in one transaction; 250 only after that.
func (c *conn) submit(msg *msgBuffer, sink *msgSink, start time.Time) *Reply {
	tx := c.tx
	// c.log names the account since AUTH.
	attrs := []any{keyID, tx.id, keySize, sink.size, keyRcpts, len(tx.rcpts)}
	fail := func(rep *Reply, err error) *Reply {
		level := c.log.Info
		if !rep.Permanent() {
			level = c.log.Warn
		}
		level("message not submitted", append(attrs, keyResult, rep.Status(), keyDuration, time.Since(start), keyErr, err)...)
		return rep
	}
	h, err := scanHeader(msg.reader())
	if err != nil {
		switch {
		case errors.Is(err, errNoFrom):
			return fail(replyNoFrom, err)
		case errors.Is(err, errManyFrom):
			return fail(replyManyFrom, err)
		case errors.Is(err, errBadFrom):
			return fail(replyBadFrom, err)
		case errors.Is(err, errFieldTooLong):
			return fail(replyFieldTooLong, err)
		}
		return fail(replyTemporary, err)
	}
	var headerFrom []string
	for _, a := range append(h.from, h.sender...) {
		if !c.srv.rcpts.Owns(c.account, a) {
			c.log.Info("message refused: From: not owned", keyID, tx.id, keyDomain, sanitize(domainOf(a)))
			return fail(replyNotYourFrom, errors.New("smtp: From: or Sender: not owned"))
		}
	}
	for _, a := range h.from {
		if ca, err := policy.CanonicalAddress(a); err == nil {
			headerFrom = append(headerFrom, ca)
		}
	}

	// What the server adds: RFC 6409 §8.2, §8.3.
	var prefix bytes.Buffer
	if !h.messageID {
		prefix.WriteString("Message-ID: <" + tx.id + "@" + c.srv.opt.Hostname + ">\r\n")
	}
	if !h.date {
		prefix.WriteString("Date: " + start.Format(time.RFC1123Z) + "\r\n")
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.lim.DataTimeout)
	defer cancel()
	sub := &Submitted{ID: tx.id, Account: c.account, From: tx.from, HeaderFrom: headerFrom,
		UTF8: tx.utf8, RequireTLS: tx.requireTLS, TLSOptional: h.tlsOptional}
	for _, r := range tx.rcpts {
		sub.Recipients = append(sub.Recipients, r.Addr)
	}
	for _, t := range c.srv.sub.Transforms {
		fields, err := t.Transform(ctx, sub, io.MultiReader(bytes.NewReader(prefix.Bytes()), msg.reader()))
		if err != nil {
			var rep *Reply
			if errors.As(err, &rep) {
				return fail(rep, err)
			}
			return fail(replyTemporary, err)
		}
		if len(fields) > 0 {
			b := make([]byte, 0, len(fields)+prefix.Len())
			b = append(append(b, fields...), prefix.Bytes()...)
			prefix.Reset()
			prefix.Write(b)
		}
	}

	// The queue's part: remote copies (and notices for local ones).
	size := int64(prefix.Len()) + msg.size()
	m := &queue.Message{ID: tx.id, Account: c.account, From: tx.from, Rcpts: tx.rcpts, Size: size,
		UTF8: tx.utf8, RequireTLS: tx.requireTLS, TLSOptional: h.tlsOptional, Ret: tx.ret, EnvID: tx.envid}
	p, err := c.srv.sub.Queue.Prepare(ctx, m, ctxReader{ctx, io.MultiReader(bytes.NewReader(prefix.Bytes()), msg.reader())})
	if err != nil {
		return fail(replyTemporary, err)
	}
	committed := false
	defer func() {
		if !committed {
			p.Discard()
		}
	}()
	commit := func(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
		ch := p.Change
		ch.Deliver = append(ds, ch.Deliver...)
		out, err := c.srv.queueSt.UpdateQueue(ctx, ch)
		if err != nil {
			return nil, err
		}
		committed = true
		return out[:len(ds)], nil
	}
	var delivered []store.Delivered
	if len(tx.accounts) > 0 {
		// Local copies get their Return-Path, as at the MX.
		var local bytes.Buffer
		writeReturnPath(&local, tx.from)
		local.Write(prefix.Bytes())
		delivered, err = c.srv.deliver(ctx, tx.accounts, local.Bytes(), msg, start, copyPlan{submission: true}, commit)
	} else {
		_, err = commit(ctx, nil)
	}
	if err != nil {
		return fail(deliverReply(err), err)
	}
	c.srv.sub.Queue.Committed(p)
	c.srv.rates.charge(c.rateKey(), c.srv.lim, time.Now(), size*int64(max(len(delivered), 1)))
	if c.srv.notify != nil && len(delivered) > 0 {
		c.srv.notify.add(delivered)
	}
	c.log.Info("message submitted", append(attrs, keyResult, "250 2.0.0", keyDuration, time.Since(start),
		"local", len(delivered), "queued", len(p.Change.Add))...)
	return &Reply{250, "2.0.0", "Accepted, id " + tx.id}
}
