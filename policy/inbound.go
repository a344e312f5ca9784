package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/language"

	"github.com/sealmail/sealmail/store"
)

// The inbound verdict rules. server/smtp/inbound gathers the evidence
// (DNS checks, list lookups, signatures, the spam classifier's score);
// these rules alone decide what it means, so that every verdict is one
// function of metadata, written down once and traced with its reasons.

// Action is what happens to a message, or to one recipient of it.
type Action uint8

const (
	Accept Action = iota // deliver to the inbox
	Junk                 // deliver to the account's \Junk mailbox
	Reject               // refuse permanently (5xx)
	Defer                // refuse for now (4xx); the sender retries
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Junk:
		return "junk"
	case Reject:
		return "reject"
	case Defer:
		return "defer"
	}
	return "unknown"
}

// Cause says which check decided a Reject or Defer, so that the server
// can answer with the right reply.
type Cause string

const (
	CauseNone     Cause = ""
	CauseDeny     Cause = "deny"     // a deny list entry
	CauseList     Cause = "dnsbl"    // DNS block lists
	CauseCountry  Cause = "country"  // a refused country
	CauseSPF      Cause = "spf"      // SPF fail
	CauseDMARC    Cause = "dmarc"    // DMARC p=reject
	CauseSpam     Cause = "spam"     // the spam score
	CauseDNS      Cause = "dns"      // a DNS failure kept a check from deciding
	CauseGreylist Cause = "greylist" // greylisting
)

// MarkAction is what a failed authentication check does: refuse, file
// in Junk, or only mark (the Authentication-Results field says it).
type MarkAction string

const (
	MarkReject MarkAction = "reject"
	MarkJunk   MarkAction = "junk"
	MarkOnly   MarkAction = "mark"
)

// InboundOptions are the verdict rules. The zero value is the default
// of every field, as each comment says.
type InboundOptions struct {
	// SPFFail is what an SPF fail of a foreign sender domain does
	// (RFC 7208 §8.4). "": MarkReject, as Postfix's SPF policy service
	// does. An SPF fail of one of our own domains is always refused.
	SPFFail MarkAction
	// DMARCReject is what a DMARC failure under p=reject does.
	// "": MarkReject.
	DMARCReject MarkAction
	// DMARCQuarantine is what a DMARC failure under p=quarantine does;
	// MarkReject is not allowed. "": MarkJunk.
	DMARCQuarantine MarkAction
	// DMARCMarkOnly are our domains (canonical) whose recipients get
	// DMARC failures marked only, whatever the sender's policy.
	DMARCMarkOnly []string
	// ListReject is the score of block lists and countries at RCPT from
	// which a client is refused. 0: DefaultListReject.
	ListReject float64
	// JunkScore and RejectScore are the total scores (lists, country,
	// SPF softfail, content) from which a message goes to Junk and is
	// refused. 0: DefaultJunkScore, DefaultRejectScore.
	JunkScore, RejectScore float64
	// SpamWeight is the points the classifier adds at spam probability 1
	// (and takes away at 0); 0.5 adds nothing. 0: DefaultSpamWeight.
	SpamWeight float64
	// SoftFailScore is what an SPF softfail adds. 0: DefaultSoftFailScore;
	// negative: nothing.
	SoftFailScore float64
	// RefuseCountries are ISO 3166-1 alpha-2 codes whose clients are
	// refused at RCPT.
	RefuseCountries []string
	// CountryScores add points to clients of a country: "CC:points".
	CountryScores []string
}

// Defaults of InboundOptions.
const (
	DefaultListReject    = 10
	DefaultJunkScore     = 5
	DefaultRejectScore   = 15
	DefaultSpamWeight    = 10
	DefaultSoftFailScore = 1
)

// Inbound applies the verdict rules; immutable and safe for concurrent
// use.
type Inbound struct {
	opt       InboundOptions
	markOnly  map[string]bool    // immutable
	refuse    map[string]bool    // immutable; alpha-2
	countryPt map[string]float64 // immutable; alpha-2
}

// NewInbound validates opt and returns the rules.
func NewInbound(opt InboundOptions) (*Inbound, error) {
	p := &Inbound{markOnly: map[string]bool{}, refuse: map[string]bool{}, countryPt: map[string]float64{}}
	for _, f := range []struct {
		name string
		v    *MarkAction
		def  MarkAction
	}{{"SPFFail", &opt.SPFFail, MarkReject}, {"DMARCReject", &opt.DMARCReject, MarkReject}, {"DMARCQuarantine", &opt.DMARCQuarantine, MarkJunk}} {
		switch *f.v {
		case "":
			*f.v = f.def
		case MarkReject, MarkJunk, MarkOnly:
		default:
			return nil, fmt.Errorf("policy: %s: want reject, junk or mark, got %q", f.name, *f.v)
		}
	}
	if opt.DMARCQuarantine == MarkReject {
		return nil, errors.New("policy: DMARCQuarantine: p=quarantine asks for Junk, not refusal; want junk or mark")
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opt.ListReject, DefaultListReject)
	def(&opt.JunkScore, DefaultJunkScore)
	def(&opt.RejectScore, DefaultRejectScore)
	def(&opt.SpamWeight, DefaultSpamWeight)
	def(&opt.SoftFailScore, DefaultSoftFailScore)
	if opt.SoftFailScore < 0 {
		opt.SoftFailScore = 0
	}
	if opt.ListReject < 0 || opt.SpamWeight < 0 || opt.JunkScore >= opt.RejectScore {
		return nil, fmt.Errorf("policy: scores: want ListReject and SpamWeight ≥ 0 and JunkScore (%g) below RejectScore (%g)", opt.JunkScore, opt.RejectScore)
	}
	for _, d := range opt.DMARCMarkOnly {
		cd, err := NormalizeDomain(d)
		if err != nil {
			return nil, fmt.Errorf("policy: DMARCMarkOnly: %w", err)
		}
		p.markOnly[cd] = true
	}
	for _, c := range opt.RefuseCountries {
		cc, err := ParseCountry(c)
		if err != nil {
			return nil, fmt.Errorf("policy: RefuseCountries: %w", err)
		}
		p.refuse[cc] = true
	}
	for _, s := range opt.CountryScores {
		c, pts, ok := strings.Cut(s, ":")
		cc, err := ParseCountry(c)
		if err != nil || !ok {
			return nil, fmt.Errorf("policy: CountryScores: %q: want CC:points with an ISO 3166-1 alpha-2 code", s)
		}
		v, err := strconv.ParseFloat(pts, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("policy: CountryScores: %q: bad points", s)
		}
		p.countryPt[cc] = v
	}
	p.opt = opt
	return p, nil
}

// UsesCountries reports whether any rule looks at the client's country,
// so that the country zone needs asking.
func (p *Inbound) UsesCountries() bool { return len(p.refuse) > 0 || len(p.countryPt) > 0 }

// ListReject returns the list score from which a client is refused.
func (p *Inbound) ListReject() float64 { return p.opt.ListReject }

// ParseCountry returns the canonical ISO 3166-1 alpha-2 code of c (any
// case), or an error if c names no country.
func ParseCountry(c string) (string, error) {
	r, err := language.ParseRegion(strings.TrimSpace(c))
	if err != nil || !r.IsCountry() || len(r.String()) != 2 {
		return "", fmt.Errorf("policy: %q is not an ISO 3166-1 alpha-2 country code", c)
	}
	return r.String(), nil
}

// CountryFromNumeric returns the alpha-2 code of an ISO 3166-1 numeric
// code (what country DNS zones answer), or "" if it names no country.
func CountryFromNumeric(n int) string {
	r, err := language.EncodeM49(n)
	if err != nil || !r.IsCountry() || len(r.String()) != 2 {
		return ""
	}
	return r.String()
}

// RuleRef names the list entry that matched.
type RuleRef struct {
	ID     uint64
	Owner  string // "" for the organisation's
	Action store.FilterAction
	Kind   store.FilterKind
	Value  string
}

func (r RuleRef) String() string {
	who := "organisation"
	if r.Owner != "" {
		who = r.Owner
	}
	return fmt.Sprintf("#%d %s %s %s (%s)", r.ID, r.Action, r.Kind, r.Value, who)
}

// ListHit is a DNS list that answered for the client or a domain.
type ListHit struct {
	Zone   string
	Target string  // what was looked up: the client IP or a domain
	Weight float64 // from the configuration; negative for allow lists
	Answer string  // the A record, e.g. 127.0.0.2
}

// SPF results (RFC 7208 §2.6), as the SPF library names them.
const (
	SPFNone      = "none"
	SPFNeutral   = "neutral"
	SPFPass      = "pass"
	SPFFail      = "fail"
	SPFSoftFail  = "softfail"
	SPFTempError = "temperror"
	SPFPermError = "permerror"
)

// ClientEvidence is what is known of a client and its sender at RCPT.
type ClientEvidence struct {
	IP string
	// SPF is the result for the MAIL FROM domain (or the HELO name for
	// the null sender), SPFDomain that domain; SPFOwn says it is one of
	// ours.
	SPF       string
	SPFDomain string
	SPFOwn    bool
	// Lists are the DNS lists that answered (block and allow lists).
	Lists []ListHit
	// ListFailures are the zones that could not be asked (DNS failure),
	// with their weights.
	ListFailures []ListHit
	// Country is the client's ISO 3166-1 alpha-2 code, "" if unknown;
	// CountryFailed says the country zone could not be asked.
	Country       string
	CountryFailed bool
}

// RecipientEvidence is what the lists say for one recipient.
type RecipientEvidence struct {
	Account string // the receiving account
	// OrgDeny, UserAllow, UserDeny, OrgAllow are the first matching
	// rules of each kind; allow rules that name a sender count only when
	// the sender is authenticated (the caller checks).
	OrgDeny, UserAllow, UserDeny, OrgAllow *RuleRef
}

// Reason is one check behind a verdict, for the delivery trace: what
// was checked, its outcome, details without content, and the points it
// added.
type Reason struct {
	Check, Result, Detail string
	Score                 float64
}

// Verdict is a decision with its reasons.
type Verdict struct {
	Action  Action
	Cause   Cause  // for Reject and Defer
	Detail  string // for the reply: list names, a domain; never content
	Score   float64
	Allowed *RuleRef // the allow entry in force, if any
	Reasons []Reason
}

func (v *Verdict) add(check, result, detail string, score float64) {
	v.Reasons = append(v.Reasons, Reason{Check: check, Result: result, Detail: detail, Score: score})
	v.Score += score
}

// listed reports the zones that weigh for the client: their names and
// the sum of their weights, country included.
func (p *Inbound) clientScore(e *ClientEvidence, v *Verdict) (zones []string) {
	for _, h := range e.Lists {
		result := "listed"
		if h.Weight < 0 {
			result = "allowlisted"
		}
		v.add("dnsbl", result, fmt.Sprintf("%s: %s (%s)", h.Zone, h.Target, h.Answer), h.Weight)
		if h.Weight > 0 {
			zones = append(zones, h.Zone)
		}
	}
	for _, h := range e.ListFailures {
		v.add("dnsbl", "temperror", h.Zone, 0)
	}
	if e.Country != "" {
		v.add("country", e.Country, "", p.countryPt[e.Country])
	} else if e.CountryFailed {
		v.add("country", "temperror", "", 0)
	}
	return zones
}

// Rcpt decides one recipient at RCPT time. The order: the
// organisation's deny list, then SPF fail of our own domains (no allow
// entry passes it), a recipient's allow entry, the recipient's deny
// list, the organisation's allow list; then, unless an allow entry is in
// force, SPF, refused countries and the block lists, where a DNS
// failure that could have refused defers instead.
func (p *Inbound) Rcpt(e *ClientEvidence, r *RecipientEvidence) Verdict {
	var v Verdict
	zones := p.clientScore(e, &v)
	if e.SPF != "" {
		v.add("spf", e.SPF, e.SPFDomain, 0)
	}
	if r.OrgDeny != nil {
		v.add("deny", "match", r.OrgDeny.String(), 0)
		v.Action, v.Cause = Reject, CauseDeny
		return v
	}
	if e.SPFOwn && e.SPF == SPFFail {
		v.Action, v.Cause, v.Detail = Reject, CauseSPF, e.SPFDomain
		return v
	}
	switch {
	case r.UserAllow != nil:
		v.Allowed = r.UserAllow
	case r.UserDeny != nil:
		v.add("deny", "match", r.UserDeny.String(), 0)
		v.Action, v.Cause = Reject, CauseDeny
		return v
	case r.OrgAllow != nil:
		v.Allowed = r.OrgAllow
	}
	if v.Allowed != nil {
		v.add("allow", "match", v.Allowed.String(), 0)
		return v
	}
	switch e.SPF {
	case SPFTempError:
		v.Action, v.Cause, v.Detail = Defer, CauseDNS, "SPF"
		return v
	case SPFFail:
		if p.opt.SPFFail == MarkReject {
			v.Action, v.Cause, v.Detail = Reject, CauseSPF, e.SPFDomain
			return v
		}
	case SPFSoftFail:
		v.add("spf", "score", "softfail", p.opt.SoftFailScore)
	}
	if p.refuse[e.Country] {
		v.Action, v.Cause, v.Detail = Reject, CauseCountry, e.Country
		return v
	}
	if e.CountryFailed && len(p.refuse) > 0 {
		v.Action, v.Cause, v.Detail = Defer, CauseDNS, "country zone"
		return v
	}
	if v.Score >= p.opt.ListReject {
		v.Action, v.Cause, v.Detail = Reject, CauseList, strings.Join(zones, ", ")
		return v
	}
	// A zone that did not answer could have refused on its own.
	for _, h := range e.ListFailures {
		if v.Score+h.Weight >= p.opt.ListReject {
			v.Action, v.Cause, v.Detail = Defer, CauseDNS, h.Zone
			return v
		}
	}
	return v
}

// DMARC results (RFC 7489 §11.2).
const (
	DMARCNone      = "none"
	DMARCPass      = "pass"
	DMARCFail      = "fail"
	DMARCTempError = "temperror"
	DMARCPermError = "permerror"
)

// MessageEvidence is what is known once the message has arrived.
type MessageEvidence struct {
	// RcptScore is the score Rcpt found for the client (lists, country,
	// SPF softfail); RcptReasons its reasons.
	RcptScore   float64
	RcptReasons []Reason
	SPF         string // as in ClientEvidence
	SPFDomain   string
	// DKIM results per signature: "pass", "fail", "temperror",
	// "permerror", with their domains.
	DKIM []DKIMResult
	// DMARC is the result for the From domain; DMARCPolicy the policy
	// in force ("none", "quarantine", "reject"; "" without a record),
	// DMARCDomain the From domain. DMARCSampled is false when pct= left
	// this message out of the policy.
	DMARC        string
	DMARCPolicy  string
	DMARCDomain  string
	DMARCSampled bool
	// DomainLists are DNS domain lists that answered for the From or
	// envelope domains.
	DomainLists []ListHit
	// Failures names checks that could not decide for a DNS failure and
	// whose outcome could have refused the message.
	Failures []string
}

// DKIMResult is one signature's outcome.
type DKIMResult struct {
	Domain, Selector, Result string
}

// SpamScore is the classifier's judgement of a message for one
// recipient: never any token's text.
type SpamScore struct {
	Probability float64 // 0 ham … 1 spam
	// Top are the weights (token spam probabilities) that decided most,
	// strongest first, with the class of each token (header, body, url,
	// …), not its text.
	Top []TokenWeight
	// Tokens is how many distinct tokens the message had; Known how
	// many any model had seen.
	Tokens, Known int
	// Trained is how many messages the models were trained with (spam
	// and ham), personal and organisation together.
	TrainedSpam, TrainedHam int
}

// TokenWeight is one token's weight, without its text.
type TokenWeight struct {
	Class  string
	Weight float64
}

// Data decides one recipient once the message has arrived: rcpt is
// the verdict Rcpt gave it (its Allowed entry, if any), domain the
// recipient's domain, allowed an allow entry that DKIM has since
// authenticated (may be nil), spam the classifier's score (nil if it
// did not run).
func (p *Inbound) Data(e *MessageEvidence, rcpt Verdict, domain string, allowed *RuleRef, spam *SpamScore) Verdict {
	v := Verdict{Score: e.RcptScore, Allowed: rcpt.Allowed, Reasons: slices.Clone(e.RcptReasons)}
	if v.Allowed == nil {
		v.Allowed = allowed
	}
	for _, d := range e.DKIM {
		v.add("dkim", d.Result, d.Domain+" s="+d.Selector, 0)
	}
	if e.DMARC != "" {
		detail := e.DMARCDomain
		if e.DMARCPolicy != "" {
			detail += " p=" + e.DMARCPolicy
		}
		v.add("dmarc", e.DMARC, detail, 0)
	}
	for _, h := range e.DomainLists {
		v.add("dnsbl", "listed", fmt.Sprintf("%s: %s (%s)", h.Zone, h.Target, h.Answer), h.Weight)
	}
	if len(e.Failures) > 0 {
		v.Action, v.Cause, v.Detail = Defer, CauseDNS, strings.Join(e.Failures, ", ")
		return v
	}
	action := Accept
	worse := func(a Action) {
		if a > action {
			action = a
		}
	}
	if e.DMARC == DMARCFail && e.DMARCSampled && !p.markOnly[domain] {
		switch e.DMARCPolicy {
		case "reject":
			worse(markToAction(p.opt.DMARCReject))
			if p.opt.DMARCReject == MarkReject {
				v.Cause, v.Detail = CauseDMARC, e.DMARCDomain
			}
		case "quarantine":
			worse(markToAction(p.opt.DMARCQuarantine))
		}
	}
	if e.SPF == SPFFail && v.Allowed == nil {
		worse(markToAction(p.opt.SPFFail)) // reject was refused at RCPT already
	}
	if spam != nil {
		pts := p.opt.SpamWeight * (spam.Probability - 0.5) * 2
		var top []string
		for _, w := range spam.Top {
			top = append(top, fmt.Sprintf("%s:%.3f", w.Class, w.Weight))
		}
		v.add("spam", fmt.Sprintf("p=%.4f", spam.Probability),
			fmt.Sprintf("tokens=%d known=%d trained=%d/%d top=%s", spam.Tokens, spam.Known, spam.TrainedSpam, spam.TrainedHam, strings.Join(top, ",")),
			math.Round(pts*1000)/1000)
	}
	if v.Allowed != nil {
		// An allow entry passes content scoring and lists, not a
		// DMARC verdict of the sender's own domain.
		v.add("allow", "match", v.Allowed.String(), 0)
	} else {
		switch {
		case v.Score >= p.opt.RejectScore:
			worse(Reject)
			if v.Cause == CauseNone {
				v.Cause, v.Detail = CauseSpam, fmt.Sprintf("%.1f", v.Score)
			}
		case v.Score >= p.opt.JunkScore:
			worse(Junk)
		}
	}
	v.Action = action
	if action != Reject {
		v.Cause, v.Detail = CauseNone, ""
	}
	return v
}

// Thresholds returns the junk and reject scores, for the X-Spam-Status
// field.
func (p *Inbound) Thresholds() (junk, reject float64) { return p.opt.JunkScore, p.opt.RejectScore }

func markToAction(m MarkAction) Action {
	switch m {
	case MarkReject:
		return Reject
	case MarkJunk:
		return Junk
	}
	return Accept
}
