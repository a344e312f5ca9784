package inbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Plan is how the message is delivered once Data has accepted it.
type Plan struct {
	// Header is what every copy gets first after its Return-Path: the
	// Authentication-Results field (RFC 8601), folded, CRLF-terminated.
	Header []byte
	// Accounts has one entry per account, in the order Data got them.
	Accounts []AccountPlan
	// Strip are byte ranges of the message to leave out of every copy,
	// in increasing order: Authentication-Results fields from outside
	// claiming our authserv-id, and fields named like our verdict's
	// (X-Spam-*).
	Strip []Range
}

// AccountPlan is one account's copy.
type AccountPlan struct {
	Account string
	Junk    bool   // deliver to the account's \Junk mailbox
	Header  []byte // the X-Spam-* fields of this copy, after Header
	verdict policy.Verdict
}

// Range is a byte range [Start, End) of the message.
type Range struct{ Start, End int64 }

// Data checks the whole message, before it is sealed: DKIM, DMARC, the
// From domain's lists, the classifier; then policy decides each
// account. open returns a new reader of the message as the server keeps
// it (its own trace fields first); it is read two or three times, in
// full for DKIM. accounts are the receiving accounts, distinct. Data
// returns the plan, or the reply refusing the whole message: one
// reply answers DATA for every recipient, so the message is refused only
// when every account's verdict refuses (or one defers); otherwise an
// account whose verdict refuses gets its copy in Junk.
func (t *Tx) Data(ctx context.Context, open func() io.Reader, accounts []string) (*Plan, *Reply) {
	ctx, cancel := context.WithTimeout(ctx, t.c.opt.Timeout)
	defer cancel()
	if t.client == nil {
		t.client = &policy.ClientEvidence{IP: t.ip.String()}
	}
	fields, herr := readHeader(open())
	plan := &Plan{}
	var fromHdr []string
	signed := false
	for _, f := range fields {
		name := strings.ToLower(strings.TrimSpace(f.name))
		switch {
		case name == "dkim-signature":
			signed = true
		case name == "authentication-results" && authservID(f.value) == t.c.hostID:
			plan.Strip = append(plan.Strip, Range{f.start, f.end})
		case strings.HasPrefix(name, "x-spam-"):
			plan.Strip = append(plan.Strip, Range{f.start, f.end})
		case name == "from":
			fromHdr = append(fromHdr, f.value)
		}
	}
	if t.trusted {
		plan.Header = formatAR(t.c.hostID, nil)
		for _, a := range accounts {
			plan.Accounts = append(plan.Accounts, AccountPlan{Account: a, verdict: t.rcptVerdict(a)})
		}
		return plan, nil
	}
	e := &policy.MessageEvidence{SPF: t.client.SPF, SPFDomain: t.client.SPFDomain}
	var ar []authres.Result
	if t.client.SPF != "" {
		ar = append(ar, &authres.SPFResult{Value: authres.ResultValue(t.client.SPF), From: t.fromDomOrHelo()})
	}
	fromDom, fromAddr := headerFrom(fromHdr)
	var dkimPass []string
	if t.c.opt.Resolver != nil {
		var dkimTemp bool
		if signed || errors.Is(herr, errHeaderTooLarge) {
			e.DKIM, dkimPass, dkimTemp = t.verifyDKIM(ctx, open, herr)
		}
		for _, d := range e.DKIM {
			ar = append(ar, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Domain: d.Domain})
		}
		if fromDom != "" {
			t.dmarc(ctx, e, fromDom, dkimPass, dkimTemp)
			if e.DMARC != "" {
				ar = append(ar, &authres.DMARCResult{Value: authres.ResultValue(e.DMARC), From: fromDom})
			}
			for _, z := range t.c.opt.DomainZones {
				if fromDom == t.fromDom {
					break // asked at RCPT
				}
				hit, failed := t.lookupZone(ctx, z, fromDom, fromDom)
				if hit != nil {
					e.DomainLists = append(e.DomainLists, *hit)
				}
				if failed && z.Weight >= t.c.pol.ListReject() {
					e.Failures = append(e.Failures, z.Name)
				}
			}
		}
	}
	plan.Header = formatAR(t.c.hostID, ar)

	// An allow entry naming the From address or domain counts once DKIM
	// has authenticated that domain.
	var spams []*policy.SpamScore
	if t.c.opt.Classifier != nil {
		var err error
		if spams, err = t.c.opt.Classifier.Classify(ctx, open(), accounts); err != nil {
			t.c.log.Error("inbound: classifier", "err", err)
			spams = nil
		}
	}
	worst, best := policy.Accept, policy.Defer
	var rejected policy.Verdict
	junkT, rejectT := t.c.pol.Thresholds()
	for i, a := range accounts {
		rv := t.rcptVerdict(a)
		e.RcptScore, e.RcptReasons = rv.Score, rv.Reasons
		var allowed *policy.RuleRef
		if fromAddr != "" && dkimAligned(dkimPass, fromDom) && t.rules != nil {
			for _, owner := range []string{a, ""} {
				if o := t.rules.byOwner[owner]; o != nil && allowed == nil {
					allowed = o.allow.matchSender(fromAddr)
				}
			}
		}
		var sc *policy.SpamScore
		if i < len(spams) {
			sc = spams[i]
		}
		v := t.c.pol.Data(e, rv, domainOf(a), allowed, sc)
		worst, best = max(worst, v.Action), min(best, v.Action)
		if v.Action == policy.Reject && rejected.Action != policy.Reject {
			rejected = v
		}
		ap := AccountPlan{Account: a, Junk: v.Action == policy.Junk || v.Action == policy.Reject, verdict: v}
		status := "No"
		if ap.Junk {
			status = "Yes"
		}
		ap.Header = fmt.Appendf(nil, "X-Spam-Status: %s, score=%.1f required=%.1f reject=%.1f\r\n", status, v.Score, junkT, rejectT)
		if ap.Junk {
			ap.Header = append(ap.Header, "X-Spam-Flag: YES\r\n"...)
		}
		plan.Accounts = append(plan.Accounts, ap)
	}
	switch {
	case worst == policy.Defer:
		for _, ap := range plan.Accounts {
			if ap.verdict.Action == policy.Defer {
				return plan, replyFor(ap.verdict, t.ip.String())
			}
		}
	case best == policy.Reject:
		return plan, replyFor(rejected, t.ip.String())
	}
	return plan, nil
}

// rcptVerdict is the RCPT verdict of the recipient that reached account.
func (t *Tx) rcptVerdict(account string) policy.Verdict {
	for _, r := range t.accepted {
		for _, a := range r.accounts {
			if a == account {
				return r.verdict
			}
		}
	}
	return policy.Verdict{}
}

func (t *Tx) fromDomOrHelo() string {
	if t.fromDom != "" {
		return t.fromDom
	}
	return t.client.SPFDomain
}

// headerFrom returns the domain and address of the From field (RFC 7489
// §6.6.1): exactly one field with one address. Otherwise the domain is
// "" and DMARC does not apply.
func headerFrom(values []string) (domain, addr string) {
	if len(values) != 1 {
		return "", ""
	}
	list, err := mail.ParseAddressList(values[0])
	if err != nil || len(list) != 1 {
		return "", ""
	}
	at := strings.LastIndexByte(list[0].Address, '@')
	if at < 0 {
		return "", ""
	}
	d, err := policy.NormalizeDomain(list[0].Address[at+1:])
	if err != nil {
		return "", ""
	}
	return d, strings.ToLower(list[0].Address[:at+1]) + d
}

// verifyDKIM verifies up to maxDKIMSignatures signatures. It returns
// the results, the domains that passed, and whether any signature
// failed for a DNS failure.
func (t *Tx) verifyDKIM(ctx context.Context, open func() io.Reader, herr error) (res []policy.DKIMResult, pass []string, temp bool) {
	if errors.Is(herr, errHeaderTooLarge) {
		return []policy.DKIMResult{{Result: "permerror", Domain: "(header too large)"}}, nil, false
	}
	vs, err := dkim.VerifyWithOptions(open(), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return t.c.opt.Resolver.LookupTXT(ctx, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		t.c.log.Info("inbound: DKIM", "err", err)
		return nil, nil, false
	}
	for _, v := range vs {
		r := policy.DKIMResult{Domain: strings.ToLower(v.Domain), Result: "pass"}
		switch {
		case v.Err == nil:
			pass = append(pass, r.Domain)
		case dkim.IsTempFail(v.Err):
			r.Result, temp = "temperror", true
		case dkim.IsPermFail(v.Err):
			r.Result = "permerror"
		default:
			r.Result = "fail"
		}
		res = append(res, r)
	}
	return res, pass, temp
}

// orgDomain is a domain's organisational domain (RFC 7489 §3.2), by the
// public suffix list.
func orgDomain(d string) string {
	o, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return o
}

func aligned(a, b string, strict bool) bool {
	if a == "" || b == "" {
		return false
	}
	if strict {
		return a == b
	}
	return orgDomain(a) == orgDomain(b)
}

func dkimAligned(pass []string, from string) bool {
	for _, d := range pass {
		if aligned(d, from, false) {
			return true
		}
	}
	return false
}

// dmarc evaluates DMARC for the From domain (RFC 7489 §6.6): the
// policy record of the domain or else of its organisational domain, and
// alignment of SPF or DKIM. A DNS failure that leaves the result open
// where it could refuse is a failure (Defer).
func (t *Tx) dmarc(ctx context.Context, e *policy.MessageEvidence, from string, dkimPass []string, dkimTemp bool) {
	e.DMARCDomain = from
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return t.c.opt.Resolver.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(from, lookup)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(from); org != from {
			rec, err = dmarc.LookupWithOptions(org, lookup)
			sub = true
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		e.DMARC = policy.DMARCNone
		return
	case dmarc.IsTempFail(err):
		e.DMARC = policy.DMARCTempError
		e.Failures = append(e.Failures, "DMARC")
		return
	case err != nil:
		e.DMARC = policy.DMARCPermError
		return
	}
	e.DMARCPolicy = string(rec.Policy)
	if sub && rec.SubdomainPolicy != "" {
		e.DMARCPolicy = string(rec.SubdomainPolicy)
	}
	spfOK := e.SPF == policy.SPFPass && aligned(e.SPFDomain, from, rec.SPFAlignment == dmarc.AlignmentStrict)
	dkimOK := false
	for _, d := range dkimPass {
		if aligned(d, from, rec.DKIMAlignment == dmarc.AlignmentStrict) {
			dkimOK = true
		}
	}
	if spfOK || dkimOK {
		e.DMARC = policy.DMARCPass
		return
	}
	if (dkimTemp || e.SPF == policy.SPFTempError) && e.DMARCPolicy != "none" {
		e.DMARC = policy.DMARCTempError
		e.Failures = append(e.Failures, "DKIM")
		return
	}
	e.DMARC = policy.DMARCFail
	e.DMARCSampled = rec.Percent == nil || *rec.Percent >= 100 || rand.IntN(100) < *rec.Percent
}

// formatAR renders the Authentication-Results field (RFC 8601),
// folded at its result separators, every value from outside reduced to
// characters that cannot break the header.
func formatAR(host string, results []authres.Result) []byte {
	if len(results) == 0 {
		return []byte("Authentication-Results: " + host + "; none\r\n")
	}
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			r.From = headerSafe(r.From)
		case *authres.DKIMResult:
			r.Domain = headerSafe(r.Domain)
		case *authres.DMARCResult:
			r.From = headerSafe(r.From)
		}
	}
	v := authres.Format(host, results)
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	for i, part := range strings.Split(v, "; ") {
		if i > 0 {
			b.WriteString(";\r\n\t")
		}
		b.WriteString(strings.TrimSpace(part))
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// headerSafe keeps letters, digits and . - _ @ of a value from outside.
func headerSafe(s string) string {
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-_@", r):
			return r
		}
		return '_'
	}, s)
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// Outcome is how the transaction ended, for the trace.
type Outcome struct {
	// Reply is the reply to the message's data; nil if the transaction
	// ended before it (RSET, QUIT, a dropped connection).
	Reply *Reply
	// Plan is what Data returned (nil if it did not run);
	// Delivered says the copies were committed.
	Plan      *Plan
	Delivered bool
}

// End records the transaction in the delivery trace: one record for the
// recipients refused at RCPT, if any, and one for the message, if its
// data arrived. It is called once; later calls do nothing.
func (t *Tx) End(o Outcome) {
	if t.done || t.c.opt.Tracer == nil {
		t.done = true
		return
	}
	t.done = true
	rec := func(in *trace.Inbound) {
		in.IP, in.Helo, in.From = t.ipString(), headerSafe(t.helo), t.from
		t.c.opt.Tracer.Trace(trace.Record{Kind: store.TraceInbound, Time: t.c.now(), Ref: t.id, In: in})
	}
	if len(t.refused) > 0 {
		in := &trace.Inbound{Result: "refused", Reply: t.refused[0].reply.String()}
		if t.refused[0].verdict.Action == policy.Defer {
			in.Result = "deferred"
		}
		for _, f := range t.refused {
			in.Rcpts = append(in.Rcpts, f.rcpt)
			in.Reasons = append(in.Reasons, trace.Reason{Check: "rcpt", Result: f.verdict.Action.String(), Detail: f.rcpt + ": " + f.reply.String()})
			in.Reasons = appendNew(in.Reasons, f.verdict.Reasons)
		}
		rec(in)
	}
	if o.Reply == nil {
		return
	}
	in := &trace.Inbound{Reply: o.Reply.String()}
	for _, a := range t.accepted {
		in.Rcpts = append(in.Rcpts, a.rcpt)
	}
	switch {
	case o.Delivered:
		in.Result = "delivered"
	case o.Reply.Code >= 500:
		in.Result = "refused"
	default:
		in.Result = "deferred"
	}
	if o.Plan != nil {
		junk := 0
		for _, ap := range o.Plan.Accounts {
			if ap.Junk {
				junk++
			}
			in.Reasons = append(in.Reasons, trace.Reason{Check: "verdict", Result: ap.verdict.Action.String(),
				Detail: fmt.Sprintf("%s score=%.1f", ap.Account, ap.verdict.Score), Score: ap.verdict.Score})
			in.Reasons = appendNew(in.Reasons, ap.verdict.Reasons)
		}
		if o.Delivered && junk == len(o.Plan.Accounts) && junk > 0 {
			in.Result = "junk"
		}
	} else {
		for _, a := range t.accepted {
			in.Reasons = appendNew(in.Reasons, a.verdict.Reasons)
		}
	}
	rec(in)
}

// appendNew appends the reasons not in rs yet (several accounts share
// the client's reasons).
func appendNew(rs []trace.Reason, more []policy.Reason) []trace.Reason {
	n := len(rs)
	for _, m := range more {
		r := trace.Reason{Check: m.Check, Result: m.Result, Detail: m.Detail, Score: m.Score}
		if !slices.Contains(rs[:n], r) {
			rs = append(rs, r)
		}
	}
	return rs
}

func (t *Tx) ipString() string {
	if !t.ip.IsValid() {
		return ""
	}
	return t.ip.String()
}
