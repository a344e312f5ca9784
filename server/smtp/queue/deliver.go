package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Recipient states after an attempt.
const (
	stateDeferred = iota // try again later
	stateSent            // the remote server took it
	stateFailed          // it cannot be delivered
)

// result is one recipient's outcome of an attempt.
type result struct {
	state  int
	status string // enhanced status code
	reply  string // the remote server's reply, or the local failure in words
	remote string // the server that gave the reply, "" for local failures
	// passed: the server offered DSN (RFC 3461), so success notices are
	// its business from here on.
	passed bool
}

// attempt delivers one entry once and commits the outcome.
func (q *Queue) attempt(ctx context.Context, it *item) {
	start := q.now()
	attemptNo := it.e.Attempts + 1
	rs, recs := q.deliver(ctx, it, attemptNo)
	q.conclude(it, rs, recs, start)
}

// deliver tries the entry's destination and returns each recipient's
// outcome and the trace of each server tried.
func (q *Queue) deliver(ctx context.Context, it *item, attemptNo int) ([]result, []*trace.Outbound) {
	env := it.env
	rs := make([]result, len(env.Rcpts))
	setAll := func(r result) {
		for i := range rs {
			rs[i] = r
		}
	}
	var recs []*trace.Outbound
	route, _ := q.route(env.Domain)
	targets, perm, err := q.targets(ctx, env.Domain)
	switch {
	case perm != nil:
		setAll(result{state: stateFailed, status: perm.status, reply: perm.text})
		recs = append(recs, &trace.Outbound{Event: trace.EventAttempt, Entry: it.e.ID, Domain: env.Domain, Route: route,
			Stage: "route", Error: perm.text, Status: perm.status, Attempt: attemptNo, Rcpts: addrs(env.Rcpts)})
		return rs, recs
	case err != nil:
		status := "4.4.3" // RFC 3463: directory server failure
		setAll(result{state: stateDeferred, status: status, reply: err.Error()})
		recs = append(recs, &trace.Outbound{Event: trace.EventAttempt, Entry: it.e.ID, Domain: env.Domain, Route: route,
			Stage: "route", Error: err.Error(), Status: status, Attempt: attemptNo, Rcpts: addrs(env.Rcpts)})
		return rs, recs
	}
	// Until a server takes the transaction, every recipient waits with
	// the last server's failure; if every server refused for good, the
	// recipients fail.
	setAll(result{state: stateDeferred, status: "4.4.1", reply: "no server was tried"})
	allPermanent := true
	for _, t := range targets {
		if ctx.Err() != nil {
			allPermanent = false
			setAll(result{state: stateDeferred, status: "4.3.2", reply: "delivery interrupted (shutdown or drop)"})
			break
		}
		o := q.tryTarget(ctx, it, t, attemptNo, rs)
		recs = append(recs, o.rec)
		if o.done {
			return rs, recs
		}
		allPermanent = allPermanent && o.permanent
		r := result{state: stateDeferred, status: o.status, reply: o.text, remote: o.remote}
		setAll(r)
	}
	if allPermanent && len(targets) > 0 {
		for i := range rs {
			rs[i].state = stateFailed
			if rs[i].status != "" && rs[i].status[0] != '5' {
				rs[i].status = "5" + rs[i].status[1:]
			}
		}
	}
	return rs, recs
}

// hostOutcome is what trying one server gave.
type hostOutcome struct {
	rec *trace.Outbound
	// done: the server decided (some or all recipients have their
	// outcome in rs); no other server is tried in this attempt.
	done bool
	// Otherwise why the server could not be used: permanent (5xx before
	// the transaction, or a policy that can never be met), status, text
	// and the server.
	permanent bool
	status    string
	text      string
	remote    string
}

// tryTarget connects to one server and, if it can, runs the
// transaction, filling rs for the recipients it decided.
func (q *Queue) tryTarget(ctx context.Context, it *item, t target, attemptNo int, rs []result) hostOutcome {
	env := it.env
	start := q.now()
	rec := &trace.Outbound{Event: trace.EventAttempt, Entry: it.e.ID, Domain: env.Domain, Route: t.route,
		Host: t.host, Port: t.port, Attempt: attemptNo, Rcpts: addrs(env.Rcpts)}
	if t.pref >= 0 {
		rec.MXPref = t.pref
	}
	out := hostOutcome{rec: rec, remote: t.host}
	finish := func() hostOutcome {
		rec.Duration = q.now().Sub(start)
		if !out.done {
			rec.Status = out.status
			if rec.Error == "" && rec.Reply == "" {
				rec.Error = out.text
			}
		}
		return out
	}
	fail := func(stage, status, text string, permanent bool) hostOutcome {
		rec.Stage = stage
		out.status, out.text, out.permanent = status, text, permanent
		return finish()
	}
	failReply := func(stage string, r *reply) hostOutcome {
		rec.Stage, rec.Reply = stage, r.String()
		out.status, out.text, out.permanent = r.status(), r.String(), r.permanent()
		return finish()
	}

	req, err := q.tlsRequirement(ctx, t, env)
	if err != nil {
		return fail("tls-policy", "4.7.5", "TLS policy: "+err.Error(), false)
	}
	rec.Policy = req.Policy
	if req.Skip != "" {
		return fail("tls-policy", "4.7.5", req.Skip, false)
	}
	if env.RequireTLS && !(req.Required && req.Config != nil) {
		// RFC 8689 §4.2.1: only over TLS verified by MTA-STS or DANE.
		return fail("tls-policy", "5.7.30", "REQUIRETLS: no MTA-STS or DANE policy verifies "+t.host, true)
	}
	var report TLSResult
	report.Host = t.host
	defer func() {
		if req.Report != nil {
			req.Report(report)
		}
	}()

	c, verified, err := q.connect(ctx, t, req, &report, rec)
	if err != nil {
		var r *replyError
		if errors.As(err, &r) {
			return failReply(r.stage, r.r)
		}
		var pe *policyError
		if errors.As(err, &pe) {
			return fail(pe.stage, pe.status, pe.text, pe.permanent)
		}
		return fail(stageOf(err), "4.4.1", err.Error(), false)
	}
	defer c.close(true)
	stopClose := context.AfterFunc(ctx, func() { c.raw.Close() })
	defer stopClose()
	rec.Verified = verified
	if c.tls != nil {
		rec.TLS = tls.VersionName(c.tls.Version)
	} else if rec.Policy == PolicySTARTTLS || rec.Policy == "" {
		rec.Policy = PolicyNone
	}

	// The message's own needs.
	if env.RequireTLS && !c.has("REQUIRETLS") {
		return fail("ehlo", "5.7.30", "REQUIRETLS: "+t.host+" does not offer REQUIRETLS (RFC 8689)", true)
	}
	if env.UTF8 && !c.has("SMTPUTF8") {
		return q.decideAll(rs, env, result{state: stateFailed, status: "5.6.7", remote: t.host,
			reply: t.host + " does not offer SMTPUTF8, which the message needs (RFC 6531 §3.2)"}, rec, &out, "ehlo", finish)
	}
	if limit := c.maxSize(); limit > 0 && env.Size > limit {
		return q.decideAll(rs, env, result{state: stateFailed, status: "5.3.4", remote: t.host,
			reply: fmt.Sprintf("the message (%d bytes) is larger than %s accepts (%d bytes)", env.Size, t.host, limit)}, rec, &out, "ehlo", finish)
	}

	// One transaction per batch of recipients, on this connection.
	for lo := 0; lo < len(env.Rcpts); lo += DefaultMaxRecipients {
		hi := min(lo+DefaultMaxRecipients, len(env.Rcpts))
		tx := q.transactionFor(c, env, env.Rcpts[lo:hi])
		body, err := q.openBody(ctx, it.e.ID)
		if err != nil {
			// The body is local: nothing the server did.
			for i := lo; i < len(env.Rcpts); i++ {
				rs[i] = result{state: stateDeferred, status: "4.3.0", reply: "local error reading the queued message"}
			}
			q.log.Error("queue: open body", "entry", it.e.ID, "err", err)
			rec.Stage, rec.Error = "data", "local error reading the queued message"
			out.done = true
			return finish()
		}
		res := c.send(tx, body)
		body.Close()
		rec.Stage = res.stage
		if lo == 0 && !q.decided(res) {
			// The server did not get as far as the transaction: another
			// server may.
			if res.err != nil {
				return fail(res.stage, "4.4.2", res.err.Error(), false)
			}
			return failReply(res.stage, res.mail)
		}
		q.applyTx(res, rs[lo:hi], t.host, c.has("DSN"), rec)
		out.done = true
		if res.err != nil {
			// The connection broke: the rest waits for the next attempt.
			for i := hi; i < len(env.Rcpts); i++ {
				rs[i] = result{state: stateDeferred, status: "4.4.2", reply: res.err.Error(), remote: t.host}
			}
			return finish()
		}
		if hi < len(env.Rcpts) {
			if r, err := c.cmd("RSET", commandTimeout); err != nil || r.code != 250 {
				for i := hi; i < len(env.Rcpts); i++ {
					rs[i] = result{state: stateDeferred, status: "4.4.2", reply: "RSET refused", remote: t.host}
				}
				return finish()
			}
		}
	}
	return finish()
}

// decideAll sets every recipient's outcome and ends the attempt.
func (q *Queue) decideAll(rs []result, env *envelope, r result, rec *trace.Outbound, out *hostOutcome, stage string, finish func() hostOutcome) hostOutcome {
	for i := range rs {
		rs[i] = r
	}
	rec.Stage, rec.Error, rec.Status = stage, r.reply, r.status
	out.done = true
	return finish()
}

// decided reports whether the server answered the transaction itself:
// MAIL was accepted, or refused for good. Anything else (a connection
// lost before, MAIL refused for now) leaves the recipients to the next
// server.
func (q *Queue) decided(res txResult) bool {
	if res.mail == nil {
		return false
	}
	return res.mail.ok() || res.mail.permanent()
}

// applyTx records each recipient's outcome of one transaction.
func (q *Queue) applyTx(res txResult, rs []result, host string, dsn bool, rec *trace.Outbound) {
	set := func(i int, r *reply, fallback string) {
		switch {
		case r == nil:
			rs[i] = result{state: stateDeferred, status: "4.4.2", reply: fallback, remote: host}
		case r.ok():
			rs[i] = result{state: stateSent, status: r.status(), reply: r.String(), remote: host, passed: dsn}
		case r.permanent():
			rs[i] = result{state: stateFailed, status: r.status(), reply: r.String(), remote: host}
		default:
			rs[i] = result{state: stateDeferred, status: r.status(), reply: r.String(), remote: host}
		}
	}
	lost := "connection lost"
	if res.err != nil {
		lost = res.err.Error()
		rec.Error = lost
	}
	var deciding *reply
	accepted := 0
	for i := range rs {
		rr := res.rcpts[i]
		switch {
		case res.mail == nil || !res.mail.ok():
			set(i, res.mail, lost)
		case rr == nil || !rr.ok():
			set(i, rr, lost)
		case res.data != nil && res.data.code != 354:
			set(i, res.data, lost)
		default:
			set(i, res.final, lost)
		}
		if rr != nil && rr.ok() {
			accepted++
		}
	}
	switch {
	case res.mail != nil && !res.mail.ok():
		deciding = res.mail
	case accepted == 0:
		for _, rr := range res.rcpts {
			if rr != nil {
				deciding = rr
				break
			}
		}
	case res.data != nil && res.data.code != 354:
		deciding = res.data
	default:
		deciding = res.final
	}
	if deciding != nil {
		rec.Reply = deciding.String()
		rec.Status = deciding.status()
	}
}

// transactionFor builds MAIL and RCPT for a batch of recipients, with
// the parameters the server offers (RFC 1870 SIZE, RFC 6152 8BITMIME,
// RFC 6531 SMTPUTF8, RFC 8689 REQUIRETLS, RFC 3461 DSN).
func (q *Queue) transactionFor(c *client, env *envelope, rcpts []*rcpt) transaction {
	var b strings.Builder
	b.WriteString("MAIL FROM:<")
	b.WriteString(env.From)
	b.WriteString(">")
	if c.has("SIZE") {
		b.WriteString(" SIZE=" + strconv.FormatInt(env.Size, 10))
	}
	if c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if env.UTF8 {
		b.WriteString(" SMTPUTF8")
	}
	if env.RequireTLS {
		b.WriteString(" REQUIRETLS")
	}
	dsn := c.has("DSN")
	if dsn {
		if env.Ret != "" {
			b.WriteString(" RET=" + env.Ret)
		}
		if env.EnvID != "" {
			b.WriteString(" ENVID=" + xtext(env.EnvID))
		}
	}
	tx := transaction{mail: b.String()}
	for _, r := range rcpts {
		line := "RCPT TO:<" + r.Addr + ">"
		if dsn {
			if len(r.Notify) > 0 {
				line += " NOTIFY=" + strings.Join(r.Notify, ",")
			}
			if r.ORcpt != "" {
				if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && isPrintableASCII(addr) {
					line += " ORCPT=" + typ + ";" + xtext(addr)
				}
			}
		}
		tx.rcpts = append(tx.rcpts, line)
	}
	return tx
}

// xtext encodes s (RFC 3461 §4): "+" and "=" and anything not printable
// ASCII as "+XX".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// replyError is a server's refusal before the transaction.
type replyError struct {
	stage string
	r     *reply
}

func (e *replyError) Error() string { return e.stage + ": " + e.r.String() }

// policyError is a TLS requirement the server did not meet.
type policyError struct {
	stage, status, text string
	permanent           bool
}

func (e *policyError) Error() string { return e.text }

// stageError is a connection failure at a stage.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stageOf(err error) string {
	var se *stageError
	if errors.As(err, &se) {
		return se.stage
	}
	return "connect"
}

// tlsRequirement asks the TLS policy about a target; the smarthost has
// its own, fixed requirement.
func (q *Queue) tlsRequirement(ctx context.Context, t target, env *envelope) (TLSRequirement, error) {
	if t.route == routeSmarthost {
		sh := q.opt.Smarthost
		if sh.TLS == SmarthostNoTLS {
			return TLSRequirement{Policy: PolicyNone}, nil
		}
		return TLSRequirement{Policy: "smarthost", Required: true,
			Config: &tls.Config{ServerName: t.host, RootCAs: sh.RootCAs, MinVersion: tls.VersionTLS12}}, nil
	}
	if q.opt.TLSPolicy == nil {
		return TLSRequirement{Policy: PolicySTARTTLS}, nil
	}
	return q.opt.TLSPolicy.Require(ctx, TLSQuery{
		Domain: env.Domain, Host: t.host, Port: t.port, MXAuthentic: t.authentic, Implicit: t.implicit,
		Transport: t.route == routeTransport, RequireTLS: env.RequireTLS, TLSOptional: env.TLSOptional,
	})
}

// connect dials t, reads the greeting, says EHLO, upgrades to TLS when
// the server offers it or the requirement demands it (falling back to
// plaintext once when opportunistic TLS fails), and authenticates to
// the smarthost. It reports whether the certificate was verified.
func (q *Queue) connect(ctx context.Context, t target, req TLSRequirement, report *TLSResult, rec *trace.Outbound) (*client, bool, error) {
	c, verified, err := q.connectOnce(ctx, t, req, report, rec, false)
	var he *handshakeError
	if errors.As(err, &he) && !req.Required {
		// RFC 7435 §3 (opportunistic security): a failed handshake is
		// no reason to give up; plaintext is what we would have sent to
		// a server without STARTTLS.
		rec.Error = "opportunistic TLS failed (" + he.err.Error() + "); retried without TLS"
		c, verified, err = q.connectOnce(ctx, t, req, report, rec, true)
	}
	return c, verified, err
}

// handshakeError is a failed STARTTLS handshake.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }

func (q *Queue) connectOnce(ctx context.Context, t target, req TLSRequirement, report *TLSResult, rec *trace.Outbound, plain bool) (*client, bool, error) {
	raw, err := q.opt.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, &stageError{"connect", err}
	}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		rec.IP = ta.IP.String()
		report.IP = rec.IP
	}
	raw = &boundedConn{Conn: raw}
	c := newClient(raw)
	ok := false
	defer func() {
		if !ok {
			c.close(false)
		}
	}()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	verified := false
	cfg := req.Config
	if cfg == nil {
		cfg = opportunisticTLS(t.host, &verified)
	} else {
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = t.host
		}
	}
	implicit := t.route == routeSmarthost && q.opt.Smarthost.TLS == SmarthostImplicitTLS
	if implicit {
		tc := tls.Client(raw, cfg)
		raw.SetDeadline(time.Now().Add(tlsTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			report.Err = err
			return nil, false, &policyError{"tls", "4.7.5", "TLS handshake with " + t.host + ": " + err.Error(), false}
		}
		raw.SetDeadline(time.Time{})
		c.useTLS(tc)
		report.Version = c.tls.Version
		verified = req.Config != nil
	}
	r, err := c.greet()
	if err != nil {
		return nil, false, &stageError{"greeting", err}
	}
	if r.code != 220 {
		return nil, false, &replyError{"greeting", r}
	}
	if r, err = c.hello(q.opt.Hostname); err != nil {
		return nil, false, &stageError{"ehlo", err}
	}
	if r.code != 250 {
		return nil, false, &replyError{"ehlo", r}
	}
	if !implicit && req.Policy != PolicyNone {
		offered := c.has("STARTTLS")
		report.Offered = offered
		switch {
		case offered && !plain:
			r, err := c.startTLS(ctx, cfg)
			if err != nil {
				report.Err = err
				if req.Required {
					return nil, false, &policyError{"starttls", "4.7.5", "TLS with " + t.host + " failed: " + err.Error(), false}
				}
				return nil, false, &handshakeError{err}
			}
			if r.code != 220 {
				if req.Required {
					return nil, false, &replyError{"starttls", r}
				}
				// Opportunistic: go on in the clear on this connection.
				rec.Error = "STARTTLS refused: " + r.String()
				break
			}
			report.Version = c.tls.Version
			if req.Config != nil {
				verified = true
			}
			if r, err = c.hello(q.opt.Hostname); err != nil {
				return nil, false, &stageError{"ehlo", err}
			}
			if r.code != 250 {
				return nil, false, &replyError{"ehlo", r}
			}
		case req.Required:
			why := "does not offer STARTTLS"
			if offered {
				why = "lost TLS"
			}
			return nil, false, &policyError{"starttls", "4.7.5", fmt.Sprintf("%s policy requires TLS, and %s %s", req.Policy, t.host, why), false}
		}
	}
	if t.route == routeSmarthost && q.opt.Smarthost.Username != "" {
		if c.tls == nil || !verified {
			return nil, false, &policyError{"auth", "4.7.5", "smarthost " + t.host + ": no verified TLS, so no AUTH", false}
		}
		r, err := c.auth(q.opt.Smarthost.Username, q.opt.Smarthost.Password)
		if err != nil {
			return nil, false, &stageError{"auth", err}
		}
		if r.code != 235 {
			// A refused login is the operator's to fix, not the sender's:
			// the mail waits (4.7.x) rather than bounce.
			return nil, false, &policyError{"auth", "4.7.8", "smarthost " + t.host + " refused AUTH: " + r.String(), false}
		}
	}
	ok = true
	return c, verified, nil
}

// opportunisticTLS is the configuration for opportunistic STARTTLS: any
// certificate is taken (RFC 7435; an attacker who can strip TLS can also
// present a certificate), and whether it would have verified goes to
// the trace through verified.
func opportunisticTLS(host string, verified *bool) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10, // better than plaintext
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			opts := x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			*verified = err == nil
			return nil
		},
	}
}

// boundedConn bounds what a server may send between two of our writes
// (maxUnanswered): a reply, an EHLO list, a TLS handshake's
// certificates. A server that sends more is cut off.
type boundedConn struct {
	net.Conn
	read int64
}

const maxUnanswered = 1 << 20

var errTooMuch = errors.New("server sent too much without being asked")

func (b *boundedConn) Read(p []byte) (int, error) {
	if b.read >= maxUnanswered {
		return 0, errTooMuch
	}
	if int64(len(p)) > maxUnanswered-b.read {
		p = p[:maxUnanswered-b.read]
	}
	n, err := b.Conn.Read(p)
	b.read += int64(n)
	return n, err
}

func (b *boundedConn) Write(p []byte) (int, error) {
	b.read = 0
	return b.Conn.Write(p)
}

// openBody opens an entry's body for reading in the clear.
func (q *Queue) openBody(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, _, err := q.st.OpenQueueBody(ctx, id)
	if err != nil {
		return nil, err
	}
	br, err := q.seal.newBodyReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &bodyReadCloser{bodyReader: br, c: rc}, nil
}

type bodyReadCloser struct {
	*bodyReader
	c io.Closer
}

func (b *bodyReadCloser) Close() error {
	b.wipe()
	return b.c.Close()
}

// conclude commits an attempt's outcome: delivered and failed
// recipients leave the entry (which goes when none is left), the others
// wait for the next attempt; notices go to the sender; the trace gets
// the attempt. The commit runs even if the delivery was cut off.
func (q *Queue) conclude(it *item, rs []result, recs []*trace.Outbound, start time.Time) {
	now := q.now()
	env := it.env
	attemptNo := it.e.Attempts + 1
	var sent, failed, deferred []int
	for i, r := range rs {
		switch r.state {
		case stateSent:
			sent = append(sent, i)
		case stateFailed:
			failed = append(failed, i)
		default:
			deferred = append(deferred, i)
		}
	}
	var c store.QueueChange
	q.addTraces(&c, env.Msg, start, recs...)
	expired := len(deferred) > 0 && now.Sub(it.e.Created) >= q.opt.Lifetime
	var next time.Time
	if len(deferred) > 0 && !expired {
		next = now.Add(q.backoff(attemptNo))
		if end := it.e.Created.Add(q.opt.Lifetime); next.After(end) {
			// The last attempt is at the end of the lifetime.
			next = end
			if next.Before(now.Add(time.Second)) {
				next = now.Add(time.Second)
			}
		}
	}
	// One summary record per outcome and distinct reply, so that every
	// reply the remote gave is in the trace.
	summary := func(event string, idx []int) {
		var order []string
		groups := map[string][]int{}
		for _, i := range idx {
			k := rs[i].status + "\x00" + rs[i].reply + "\x00" + rs[i].remote
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], i)
		}
		for _, k := range order {
			g := groups[k]
			r := rs[g[0]]
			o := &trace.Outbound{Event: event, Entry: it.e.ID, Domain: env.Domain, Attempt: attemptNo,
				Host: r.remote, Status: r.status, Reply: r.reply, Duration: now.Sub(start), Rcpts: addrs(pick(env.Rcpts, g))}
			if event == trace.EventDeferred {
				o.Next = next
			}
			q.addTraces(&c, env.Msg, now, o)
		}
	}
	summary(trace.EventDelivered, sent)
	if expired {
		for _, i := range deferred {
			last := rs[i].reply
			rs[i] = result{state: stateFailed, status: "5.4.7", remote: rs[i].remote,
				reply: "delivery time expired after " + q.opt.Lifetime.String() + "; last failure: " + last}
			failed = append(failed, i)
		}
		q.addTraces(&c, env.Msg, now, &trace.Outbound{Event: trace.EventExpired, Entry: it.e.ID, Domain: env.Domain,
			Rcpts: addrs(pick(env.Rcpts, deferred)), Status: "5.4.7", Attempt: attemptNo})
		deferred = nil
	}
	summary(trace.EventFailed, failed)
	summary(trace.EventDeferred, deferred)

	// Notices for the sender (RFC 3461): failures, successes the next
	// server will not report, and one delay notice.
	var ns []notice
	if env.From != "" {
		for _, i := range failed {
			if wantsNotice(env.Rcpts[i].Notify, "FAILURE") {
				ns = append(ns, notice{action: "failed", rcpt: env.Rcpts[i], res: rs[i]})
			}
		}
		for _, i := range sent {
			if !rs[i].passed && wantsNotice(env.Rcpts[i].Notify, "SUCCESS") {
				ns = append(ns, notice{action: "relayed", rcpt: env.Rcpts[i], res: rs[i]})
			}
		}
		if len(deferred) > 0 && !env.Warned && q.opt.DelayWarning > 0 && now.Sub(it.e.Created) >= q.opt.DelayWarning {
			env.Warned = true
			for _, i := range deferred {
				if wantsNotice(env.Rcpts[i].Notify, "DELAY") {
					ns = append(ns, notice{action: "delayed", rcpt: env.Rcpts[i], res: rs[i], until: it.e.Created.Add(q.opt.Lifetime)})
				}
			}
		}
	}
	if len(ns) > 0 {
		q.notify(&c, it, ns, now)
	}

	if len(deferred) == 0 {
		c.Remove = []string{it.e.ID}
	} else {
		env.Rcpts = pick(env.Rcpts, deferred)
		env.Last = rs[deferred[0]].reply
		meta, err := q.seal.encodeEnvelope(it.e.ID, env)
		if err != nil {
			q.log.Error("queue: seal envelope", "entry", it.e.ID, "err", err)
			q.hold(it.e.ID, now.Add(holdAfterFailure))
			return
		}
		c.Update = []store.QueueUpdate{{ID: it.e.ID, Next: next, Attempts: attemptNo, Meta: meta}}
	}

	q.mu.Lock()
	dropped := it.dropped
	q.mu.Unlock()
	if dropped {
		return // Drop removes the entry
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	delivered, err := q.st.UpdateQueue(ctx, c)
	if err != nil {
		q.log.Error("queue: commit attempt", "entry", it.e.ID, "err", err)
		q.hold(it.e.ID, now.Add(holdAfterFailure))
		return
	}
	if len(delivered) > 0 && q.opt.OnDeliver != nil {
		q.opt.OnDeliver(delivered)
	}
	if len(c.Add) > 0 {
		q.poke() // a notice for a remote sender is due now
	}
	result := "deferred"
	switch {
	case len(deferred) == 0 && len(failed) == 0:
		result = "delivered"
	case len(deferred) == 0:
		result = "done"
	}
	q.log.Info("delivery attempt", "entry", it.e.ID, "domain", env.Domain, "attempt", attemptNo,
		"sent", len(sent), "failed", len(failed), "deferred", len(deferred), "result", result,
		"duration", now.Sub(start))
}

// pick returns rs at the indexes.
func pick(rs []*rcpt, idx []int) []*rcpt {
	out := make([]*rcpt, len(idx))
	for i, j := range idx {
		out[i] = rs[j]
	}
	return out
}
