package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Delivery status notifications (RFC 3464, and RFC 6533 for messages
// that need SMTPUTF8): a multipart/report with a human part, a
// machine-readable message/delivery-status part and the original
// message (RET=FULL and small enough) or its header. A notice for a
// local sender is sealed to its account and delivered into its INBOX in
// the same transaction as the change that caused it; one for a remote
// sender is queued with the null sender, so it is never bounced.

const (
	// fullReturnMax is the largest original returned whole in a failure
	// notice; a larger one is returned as its header (Postfix's
	// bounce_size_limit is 50,000 bytes).
	fullReturnMax = 256 << 10
	// headerReturnMax bounds a returned header section.
	headerReturnMax = 64 << 10
)

// notice is one recipient's line in a notice.
type notice struct {
	action string // failed, delayed, delivered, relayed (RFC 3464 §2.3.3)
	rcpt   *rcpt
	res    result
	until  time.Time // delayed: Will-Retry-Until
}

// notify builds a notice about env's recipients ns and adds its delivery
// to c: sealed copies for a local sender, or a queue entry for a remote
// one. A notice that cannot be built or addressed is logged and
// dropped: the change itself must still commit.
func (q *Queue) notify(c *store.QueueChange, it *item, ns []notice, now time.Time) {
	env := it.env
	id := NewID()
	action := ns[0].action
	for _, n := range ns {
		if n.action == "failed" {
			action = "failed"
		}
	}
	event := trace.EventBounced
	if action != "failed" {
		event = trace.EventDelayed
		if action != "delayed" {
			event = "notified"
		}
	}
	rcpts := make([]string, len(ns))
	for i, n := range ns {
		rcpts[i] = n.rcpt.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	msg, err := q.buildDSN(ctx, id, env, it.e.ID, it.e.Created, ns, now)
	if err != nil {
		q.log.Error("queue: build notice", "entry", it.e.ID, "err", err)
		return
	}
	defer clear(msg)
	accounts, err := q.rcpts.Resolve(ctx, q.st, env.From)
	switch {
	case err == nil:
		for _, a := range accounts {
			sealed, err := q.sealNotice(ctx, a, msg)
			if err != nil {
				q.log.Error("queue: seal notice", "account", a.Address, "err", err)
				continue
			}
			c.Deliver = append(c.Deliver, store.Delivery{Account: a.Address, InternalDate: now, Blob: sealed})
		}
	case errors.Is(err, policy.ErrRelayDenied):
		// A remote sender: queue the notice with the null sender.
		if err := q.queueNotice(c, id, env, msg, now); err != nil {
			q.log.Error("queue: queue notice", "entry", it.e.ID, "err", err)
			return
		}
	default:
		// A local sender that is gone (account deleted), or a lookup
		// failure: nobody to tell now.
		q.log.Warn("queue: notice has no recipient", "entry", it.e.ID, "domain", domainOf(env.From), "err", err)
		q.addTraces(c, env.Msg, now, &trace.Outbound{Event: event, Entry: it.e.ID, Rcpts: rcpts,
			Error: "the notice could not be delivered: the sender is unknown here"})
		return
	}
	q.addTraces(c, env.Msg, now, &trace.Outbound{Event: event, Entry: it.e.ID, Rcpts: rcpts, DSN: id, To: env.From})
}

// sealNotice seals the notice msg to an account's public key, and to
// the escrow keys Options.Escrow names for its INBOX.
func (q *Queue) sealNotice(ctx context.Context, a store.PublicAccount, msg []byte) ([]byte, error) {
	pub, err := crypto.ParsePublicKey(a.PublicKey)
	if err != nil {
		return nil, err
	}
	var also []*crypto.PublicKey
	if q.opt.Escrow != nil {
		if also, err = q.opt.Escrow.EscrowKeys(ctx, a.Address, 0, ""); err != nil {
			return nil, fmt.Errorf("escrow: %w", err)
		}
	}
	return pub.SealBytes(msg, also...)
}

// queueNotice adds the notice msg, for the remote sender of env, to c as
// a new queue entry with the null sender.
func (q *Queue) queueNotice(c *store.QueueChange, id string, env *envelope, msg []byte, now time.Time) error {
	if c.Body != nil {
		return errors.New("queue: a change with two new bodies")
	}
	var b bytes.Buffer
	b.Grow(int(sealedSize(int64(len(msg)))))
	bw, err := q.seal.newBodyWriter(&b)
	if err != nil {
		return err
	}
	bw.Write(msg)
	if err := bw.Close(); err != nil {
		return err
	}
	nenv := &envelope{Msg: id, Domain: domainOf(env.From), Size: int64(len(msg)), UTF8: env.UTF8,
		Rcpts: []*rcpt{{Addr: env.From, Notify: []string{"NEVER"}}}}
	eid := entryID(id, 1)
	meta, err := q.seal.encodeEnvelope(eid, nenv)
	if err != nil {
		return err
	}
	c.Body = &store.QueueBody{Blob: b.Bytes()}
	c.Add = []store.QueueEntry{{ID: eid, Created: now, Next: now, Meta: meta}}
	q.addTraces(c, id, now, &trace.Outbound{Event: trace.EventQueued, Entry: eid, Rcpts: []string{env.From},
		Domain: nenv.Domain, Size: nenv.Size})
	return nil
}

// buildDSN writes the notice id about env's recipients ns, returning
// the queued message of entry (or its header) with it.
func (q *Queue) buildDSN(ctx context.Context, id string, env *envelope, entry string, arrived time.Time, ns []notice, now time.Time) ([]byte, error) {
	return q.noticeMessage(id, env, arrived, now, ns, func(b *bytes.Buffer, full bool) error {
		body, err := q.openBody(ctx, entry)
		if err != nil {
			return err
		}
		defer body.Close()
		if full {
			if _, err := io.Copy(b, io.LimitReader(body, fullReturnMax)); err != nil {
				return err
			}
			if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
				b.WriteString("\r\n")
			}
			return nil
		}
		return copyHeader(b, body)
	})
}

// noticeMessage writes the notice id about env's recipients ns; original
// writes the original message (full) or its header section.
func (q *Queue) noticeMessage(id string, env *envelope, arrived, now time.Time, ns []notice, original func(b *bytes.Buffer, full bool) error) ([]byte, error) {
	var boundary [12]byte
	rand.Read(boundary[:])
	bnd := "=_sealmail_" + hex.EncodeToString(boundary[:])
	failed := false
	for _, n := range ns {
		failed = failed || n.action == "failed"
	}
	subject := "Successful Mail Delivery Report"
	switch {
	case failed:
		subject = "Undelivered Mail Returned to Sender"
	case ns[0].action == "delayed":
		subject = "Delayed Mail (still being retried)"
	}
	utf8 := env.UTF8
	statusType, msgType, hdrType := "message/delivery-status", "message/rfc822", "text/rfc822-headers"
	if utf8 {
		statusType, msgType, hdrType = "message/global-delivery-status", "message/global", "message/global-headers"
	}
	var b bytes.Buffer
	h := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	h("Date", now.Format(time.RFC1123Z))
	h("From", "Mail Delivery System <MAILER-DAEMON@"+q.opt.Hostname+">")
	h("To", "<"+env.From+">")
	h("Subject", subject)
	h("Message-ID", "<"+id+".dsn@"+q.opt.Hostname+">")
	h("Auto-Submitted", "auto-replied") // RFC 3834 §5
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+bnd+`"`)
	b.WriteString("\r\n")
	b.WriteString("This is a MIME-formatted delivery status notification.\r\n")

	// The human part.
	b.WriteString("\r\n--" + bnd + "\r\n")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Description", "Notification")
	h("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n", q.opt.Hostname)
	switch {
	case failed:
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n" +
			"It, or its header if it is large, is attached below.\r\n\r\n")
	case ns[0].action == "delayed":
		fmt.Fprintf(&b, "Your message has not been delivered yet to one or more recipients.\r\n"+
			"The mail system will keep trying until %s;\r\nyou do not need to send it again.\r\n\r\n",
			ns[0].until.UTC().Format(time.RFC1123Z))
	default:
		b.WriteString("Your message was delivered to the following recipients, as you asked.\r\n\r\n")
	}
	for _, n := range ns {
		fmt.Fprintf(&b, "<%s>: %s\r\n", n.rcpt.Addr, n.action)
		if n.res.reply != "" {
			who := "the mail system here"
			if n.res.remote != "" {
				who = n.res.remote
			}
			fmt.Fprintf(&b, "    %s said: %s\r\n", who, oneLine(n.res.reply, true))
		}
	}

	// The machine-readable part (RFC 3464 §2).
	b.WriteString("\r\n--" + bnd + "\r\n")
	h("Content-Type", statusType)
	h("Content-Description", "Delivery report")
	if utf8 {
		h("Content-Transfer-Encoding", "8bit")
	}
	b.WriteString("\r\n")
	h("Reporting-MTA", "dns; "+q.opt.Hostname)
	if env.EnvID != "" {
		h("Original-Envelope-Id", oneLine(env.EnvID, false))
	}
	h("Arrival-Date", arrived.Format(time.RFC1123Z))
	for _, n := range ns {
		b.WriteString("\r\n")
		if n.rcpt.ORcpt != "" {
			h("Original-Recipient", oneLine(n.rcpt.ORcpt, utf8))
		}
		addrType := "rfc822"
		if !isPrintableASCII(n.rcpt.Addr) {
			addrType = "utf-8" // RFC 6533 §3
		}
		h("Final-Recipient", addrType+"; "+n.rcpt.Addr)
		h("Action", n.action)
		h("Status", n.res.status)
		if n.res.remote != "" {
			h("Remote-MTA", "dns; "+n.res.remote)
		}
		if n.res.reply != "" {
			kind := "smtp"
			if n.res.remote == "" {
				kind = "X-Sealmail"
			}
			h("Diagnostic-Code", kind+"; "+oneLine(n.res.reply, utf8))
		}
		h("Last-Attempt-Date", now.Format(time.RFC1123Z))
		if n.action == "delayed" {
			h("Will-Retry-Until", n.until.Format(time.RFC1123Z))
		}
	}

	// The original, or its header (RFC 3461 §4.3: RET=HDRS, or anything
	// but a failure, or too large).
	full := failed && env.Ret != "HDRS" && env.Size <= fullReturnMax
	b.WriteString("\r\n--" + bnd + "\r\n")
	if full {
		h("Content-Type", msgType)
		h("Content-Description", "Undelivered message")
	} else {
		h("Content-Type", hdrType)
		h("Content-Description", "Header of the message")
	}
	h("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	if err := original(&b, full); err != nil {
		return nil, err
	}
	b.WriteString("\r\n--" + bnd + "--\r\n")
	return b.Bytes(), nil
}

// copyHeader copies a message's header section (up to the empty line,
// at most headerReturnMax bytes, whole lines) to w.
func copyHeader(w *bytes.Buffer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 8192)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: the header is cut here.
			return nil
		}
		if len(line) == 0 || string(line) == "\r\n" || n+len(line) > headerReturnMax {
			return nil
		}
		w.Write(line)
		n += len(line)
		if err != nil {
			if !bytes.HasSuffix(line, []byte("\n")) {
				w.WriteString("\r\n")
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// oneLine makes s fit a header field value: one line, printable (UTF-8
// allowed when utf8 is set), at most 900 bytes.
func oneLine(s string, utf8 bool) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == ' ':
			space = true
			continue
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			r = '?'
		case r >= 0x80 && !utf8:
			r = '?'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() >= 900 {
			b.WriteString("...")
			break
		}
	}
	return b.String()
}
