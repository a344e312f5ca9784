package smtp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/store"
)

// This file is the MX's policy at each step of a transaction; the wire
// protocol is in conn.go and commands.go. A submission listener would
// bring its own rules for these steps (an authenticated sender, remote
// recipients to a queue) on the same wire layer.

// checkPath refuses envelope addresses that could not be written into a
// header safely: too long, control characters, invalid UTF-8, or non-ASCII
// without SMTPUTF8 (RFC 6531 §3.4).
func checkPath(addr string, utf8OK bool) *Reply {
	if len(addr) > maxPathLen || !utf8.ValidString(addr) {
		return replyBadSender
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if c < 0x20 || c == 0x7f {
			return replyBadSender
		}
		if c >= 0x80 && !utf8OK {
			return replyNeedUTF8
		}
	}
	return nil
}

// rcpt adds a recipient (RFC 5321 §4.1.1.3). Every check happens here,
// before any data is read: relaying, unknown users and full mailboxes are
// refused per recipient. Unknown users cost the client time (tarpit) and,
// past Limits.UnknownRecipients, the connection.
func (c *conn) rcpt(cmd command) bool {
	switch {
	case c.tx == nil:
		c.reply(replyNeedMail)
		return !c.refused()
	case c.tx.bdat != nil:
		c.reply(replyBdatOpen)
		return !c.refused()
	}
	p, ra, rep := parseRcpt(cmd.arg, c.srv.sub != nil)
	if rep != nil {
		c.reply(rep)
		return !c.refused()
	}
	addr := p.addr()
	if p.domain == "" {
		// The bare <postmaster> (RFC 5321 §4.1.1.3, §4.5.1): this
		// server's postmaster, at its first domain.
		if len(c.srv.opt.Domains) == 0 {
			c.reply(replyRelayDenied)
			return !c.refused()
		}
		addr = "postmaster@" + c.srv.opt.Domains[0]
	}
	if !c.tx.utf8 {
		for i := 0; i < len(addr); i++ {
			if addr[i] >= 0x80 {
				c.reply(replyNeedUTF8)
				return !c.refused()
			}
		}
	}
	if len(c.tx.rcptText) >= c.srv.lim.Recipients {
		// RFC 5321 §4.5.3.1.10: 452, and the client sends the rest later.
		c.reply(replyTooManyRcpts)
		return true
	}
	if c.srv.sub != nil {
		return c.submissionRcpt(p, ra, addr)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.lim.CommandTimeout)
	defer cancel()
	accounts, err := c.srv.rcpts.Resolve(ctx, c.srv.opt.Store, addr)
	if err != nil {
		return c.rcptRefused(addr, err)
	}
	for _, a := range accounts {
		if rep := quotaCheck(a, c.tx.sizeHint); rep != nil {
			c.log.Info("RCPT refused: quota", keyAccount, a.Address, keyResult, rep.Status())
			c.reply(rep)
			return true
		}
	}
	if c.tx.inb != nil {
		names := make([]string, len(accounts))
		for i, a := range accounts {
			names[i] = a.Address
		}
		if rep := c.tx.inb.Rcpt(ctx, addr, names); rep != nil {
			c.log.Info("RCPT refused by inbound policy", keyDomain, sanitize(domainOf(addr)), keyResult, fmt.Sprintf("%d %s", rep.Code, rep.Enhanced))
			c.reply(&Reply{rep.Code, rep.Enhanced, rep.Text})
			return true
		}
	}
	c.tx.rcptText = append(c.tx.rcptText, addr)
	for _, a := range accounts {
		if !slices.ContainsFunc(c.tx.accounts, func(b store.PublicAccount) bool { return b.Address == a.Address }) {
			c.tx.accounts = append(c.tx.accounts, a)
		}
	}
	c.reply(replyRcptOK)
	return true
}

// rcptRefused answers a recipient that policy refused, and logs it by
// domain only (local parts are the sender's business). An unknown user
// is tarpitted: see tarpitDelay.
func (c *conn) rcptRefused(addr string, err error) bool {
	rep := c.rcptReply(addr, err)
	if rep == replyTemporary {
		c.reply(rep)
		return true
	}
	c.log.Info("RCPT refused", keyDomain, sanitize(domainOf(addr)), keyResult, rep.Status())
	if rep != replyNoSuchUser {
		c.reply(rep)
		return !c.refused()
	}
	c.unknown++
	seen := c.srv.probes.addUnknown(c.client, time.Now())
	if d := tarpitDelay(max(c.unknown, seen)); d > 0 {
		c.srv.sleep(c.ctx, d)
	}
	if c.unknown >= c.srv.lim.UnknownRecipients {
		c.log.Info("too many unknown recipients; closing", "unknown", c.unknown)
		c.reply(replyTooManyProbe)
		return false
	}
	c.reply(rep)
	return true
}

// rcptReply maps the recipient policy's error for addr to its reply; an
// error that is not the policy's is logged and answered replyTemporary.
func (c *conn) rcptReply(addr string, err error) *Reply {
	switch {
	case errors.Is(err, policy.ErrRelayDenied):
		return replyRelayDenied
	case errors.Is(err, policy.ErrNoSuchUser):
		return replyNoSuchUser
	case errors.Is(err, policy.ErrBadAddress):
		return replyBadRcpt
	}
	c.log.Error("RCPT failed", keyDomain, sanitize(domainOf(addr)), keyErr, err)
	return replyTemporary
}

// Tarpit for unknown recipients: the first tarpitFree cost nothing (a
// typo, a stale list entry), each one after doubles the wait, from
// tarpitBase to tarpitMax. The count is the larger of the connection's
// and the client's (all its connections, over clientWindow), so
// spreading a probe over connections does not reset it.
const (
	tarpitFree = 3
	tarpitBase = time.Second
	tarpitMax  = 16 * time.Second
)

// tarpitDelay returns the wait before answering the n-th unknown
// recipient.
func tarpitDelay(n int) time.Duration {
	if n <= tarpitFree {
		return 0
	}
	shift := min(n-tarpitFree-1, 8)
	return min(tarpitBase<<shift, tarpitMax)
}

// sealOverhead estimates what sealing adds to a message (key packet,
// packet headers, integrity tag), for quota checks before the message
// exists. Compression is not counted on: sealed mail is rarely smaller.
const sealOverhead = 1024

// quotaCheck refuses a recipient whose mailbox is full, or, when the
// client announced a size, cannot take that message now (452 4.2.2) or
// ever (552 5.2.2). The store enforces the quota again at commit.
func quotaCheck(a store.PublicAccount, sizeHint int64) *Reply {
	if a.QuotaLimit <= 0 {
		return nil
	}
	if sizeHint > 0 && sizeHint+sealOverhead > a.QuotaLimit {
		return replyNeverFits
	}
	if a.UsedBytes+sizeHint >= a.QuotaLimit {
		return replyMailboxFull
	}
	return nil
}

// deliverFault answers a message refused while it arrived, and logs it.
func (c *conn) deliverFault(sink *msgSink, err error) *Reply {
	rep, clientFault := dataReply(err)
	defer c.countMessage(rep, time.Now())
	level := c.log.Info
	if !clientFault {
		level = c.log.Warn
	}
	level("message refused", keyID, c.tx.id, keySize, sink.size, keyRcpts, len(c.tx.accounts),
		keyResult, rep.Status(), keyErr, err)
	return rep
}

// deliver checks the whole message, seals and commits it, and returns
// the reply: 250 only after the commit.
func (c *conn) deliver(msg *msgBuffer, sink *msgSink, start time.Time) *Reply {
	tx := c.tx
	dataEnd := time.Now()
	if err := sink.finish(); err != nil {
		return c.deliverFault(sink, err)
	}
	if err := msg.finish(); err != nil {
		return c.deliverFault(sink, err)
	}
	if c.srv.sub != nil {
		return c.submit(msg, sink, start)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.lim.CommandTimeout)
	defer cancel()
	attrs := []any{keyID, tx.id, keySize, sink.size, keyRcpts, len(tx.accounts)}
	var plan *inbound.Plan
	if tx.inb != nil {
		names := make([]string, len(tx.accounts))
		for i, a := range tx.accounts {
			names[i] = a.Address
		}
		var irep *inbound.Reply
		plan, irep = tx.inb.Data(ctx, msg.reader, names)
		if irep != nil {
			rep := &Reply{irep.Code, irep.Enhanced, irep.Text}
			tx.inb.End(inbound.Outcome{Reply: irep, Plan: plan})
			c.log.Info("message refused by inbound policy", append(attrs, keyResult, rep.Status(), keyDuration, time.Since(start))...)
			c.countMessage(rep, dataEnd)
			return rep
		}
	}
	delivered, err := c.srv.deliver(ctx, tx.accounts, nil, msg, start, copyPlan{plan: plan, rpLen: tx.rpLen}, c.srv.commit)
	if err != nil {
		rep := deliverReply(err)
		if tx.inb != nil {
			tx.inb.End(inbound.Outcome{Reply: &inbound.Reply{Code: rep.Code, Enhanced: rep.Enhanced, Text: rep.Text}, Plan: plan})
		}
		c.countMessage(rep, dataEnd)
		c.log.Warn("message not delivered", append(attrs, keyResult, rep.Status(), keyDuration, time.Since(start), keyErr, err)...)
		return rep
	}
	c.srv.rates.charge(c.client, c.srv.lim, time.Now(), sink.size*int64(len(delivered)))
	if c.srv.notify != nil {
		c.srv.notify.add(delivered)
	}
	accounts := make([]string, len(delivered))
	for i, d := range delivered {
		accounts[i] = d.Account
		c.log.Debug("copy stored", keyID, tx.id, keyAccount, d.Account, keyMailbox, d.Mailbox, keyUID, d.UID)
	}
	c.log.Info("message delivered", append(attrs, keyResult, "250 2.0.0", keyDuration, time.Since(start),
		keyAccount, strings.Join(accounts, ","))...)
	rep := &Reply{250, "2.0.0", "Delivered, id " + tx.id}
	if tx.inb != nil {
		tx.inb.End(inbound.Outcome{Reply: &inbound.Reply{Code: rep.Code, Enhanced: rep.Enhanced, Text: rep.Text}, Plan: plan, Delivered: true})
	}
	c.countMessage(nil, dataEnd)
	return rep
}
