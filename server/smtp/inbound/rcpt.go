package inbound

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"blitiri.com.ar/go/spf"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/store"
)

// Tx is the checks of one SMTP transaction, used by one goroutine.
type Tx struct {
	c        *Checker
	id       string     // the transaction id, for the trace
	ip       netip.Addr // invalid without a TCP peer
	trusted  bool       // the client is in Options.Trusted
	helo     string
	from     string // envelope sender, "" for <>
	fromDom  string // its domain, canonical; "" if none
	client   *policy.ClientEvidence
	rules    *ruleSet
	accepted []rcptState // recipients accepted, in order
	refused  []refusal   // recipients refused by policy
	done     bool        // End was called
}

type rcptState struct {
	rcpt     string
	accounts []string
	verdict  policy.Verdict
}

type refusal struct {
	rcpt    string
	reply   *Reply
	verdict policy.Verdict
}

// Begin starts the checks of a transaction: id is its transaction id,
// ip the client (may be nil), helo its HELO name, from the envelope
// sender ("" for <>). Nothing is asked yet.
func (c *Checker) Begin(id string, ip net.IP, helo, from string) *Tx {
	t := &Tx{c: c, id: id, helo: helo, from: from}
	if a, ok := netip.AddrFromSlice(ip); ok {
		t.ip = a.Unmap()
		for _, p := range c.opt.Trusted {
			t.trusted = t.trusted || p.Contains(t.ip)
		}
	}
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		if d, err := policy.NormalizeDomain(from[at+1:]); err == nil {
			t.fromDom = d
		}
	}
	return t
}

// Rcpt checks a recipient, which reaches accounts, before any data is
// read. It returns nil to accept it, or the reply refusing it.
func (t *Tx) Rcpt(ctx context.Context, rcpt string, accounts []string) *Reply {
	if t.trusted {
		t.accepted = append(t.accepted, rcptState{rcpt: rcpt, accounts: accounts,
			verdict: policy.Verdict{Reasons: []policy.Reason{{Check: "trusted", Result: "pass", Detail: t.ip.String()}}}})
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.c.opt.Timeout)
	defer cancel()
	if t.rules == nil && t.c.rules != nil {
		rs, err := t.c.rules.get(ctx, t.c.now())
		if err != nil {
			t.c.log.Error("inbound: allow and deny lists unreadable", "err", err)
			return t.refuse(rcpt, policy.Verdict{Action: policy.Defer, Cause: policy.CauseNone}, &Reply{451, "4.3.0", "Temporary local problem; try again later"})
		}
		t.rules = rs
	}
	if t.client == nil {
		t.client = t.clientEvidence(ctx)
	}
	// The strictest verdict of the recipient's accounts decides it.
	var worst policy.Verdict
	for i, a := range accounts {
		v := t.c.pol.Rcpt(t.client, t.recipientEvidence(a))
		if i == 0 || v.Action > worst.Action {
			worst = v
		}
	}
	if len(accounts) == 0 {
		worst = t.c.pol.Rcpt(t.client, t.recipientEvidence(""))
	}
	if worst.Action == policy.Accept && worst.Allowed == nil && t.c.grey.Enabled && worst.Score >= 0 {
		if gv, rep := t.greylist(ctx, rcpt); rep != nil {
			worst.Reasons = append(worst.Reasons, gv...)
			worst.Action, worst.Cause = policy.Defer, policy.CauseGreylist
			return t.refuse(rcpt, worst, rep)
		} else {
			worst.Reasons = append(worst.Reasons, gv...)
		}
	}
	if worst.Action == policy.Reject || worst.Action == policy.Defer {
		return t.refuse(rcpt, worst, replyFor(worst, t.ip.String()))
	}
	t.accepted = append(t.accepted, rcptState{rcpt: rcpt, accounts: accounts, verdict: worst})
	return nil
}

func (t *Tx) refuse(rcpt string, v policy.Verdict, rep *Reply) *Reply {
	t.refused = append(t.refused, refusal{rcpt: rcpt, reply: rep, verdict: v})
	return rep
}

// recipientEvidence finds the rules matching this transaction for
// account ("": the organisation's only).
func (t *Tx) recipientEvidence(account string) *policy.RecipientEvidence {
	r := &policy.RecipientEvidence{Account: account}
	if t.rules == nil {
		return r
	}
	spfOK := t.client.SPF == policy.SPFPass && t.client.SPFDomain == t.fromDom
	if o := t.rules.byOwner[""]; o != nil {
		r.OrgDeny = firstRef(o.deny.matchIP(t.ip), o.deny.matchSender(t.from))
		r.OrgAllow = t.allowRef(&o.allow, spfOK)
	}
	if account != "" {
		if o := t.rules.byOwner[account]; o != nil {
			r.UserDeny = firstRef(o.deny.matchIP(t.ip), o.deny.matchSender(t.from))
			r.UserAllow = t.allowRef(&o.allow, spfOK)
		}
	}
	return r
}

// allowRef is the allow rule in force: a network always, a sender only
// when SPF has authenticated the sender's domain.
func (t *Tx) allowRef(k *kindRules, spfOK bool) *policy.RuleRef {
	if r := k.matchIP(t.ip); r != nil {
		return r
	}
	if spfOK {
		return k.matchSender(t.from)
	}
	return nil
}

func firstRef(rs ...*policy.RuleRef) *policy.RuleRef {
	for _, r := range rs {
		if r != nil {
			return r
		}
	}
	return nil
}

// clientEvidence asks, in parallel, what the DNS says of the client and
// its sender: SPF, the IP lists, the envelope domain's lists, the
// country.
func (t *Tx) clientEvidence(ctx context.Context) *policy.ClientEvidence {
	e := &policy.ClientEvidence{IP: t.ip.String()}
	res := t.c.opt.Resolver
	if res == nil || !t.ip.IsValid() {
		return e
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	wg.Go(func() {
		r, dom := t.spf(ctx)
		mu.Lock()
		e.SPF, e.SPFDomain, e.SPFOwn = string(r), dom, t.c.own[dom]
		mu.Unlock()
	})
	for _, z := range t.c.opt.IPZones {
		wg.Go(func() {
			hit, failed := t.lookupZone(ctx, z, reverseIP(t.ip), t.ip.String())
			mu.Lock()
			defer mu.Unlock()
			if hit != nil {
				e.Lists = append(e.Lists, *hit)
			}
			if failed {
				e.ListFailures = append(e.ListFailures, policy.ListHit{Zone: z.Name, Target: t.ip.String(), Weight: z.Weight})
			}
		})
	}
	if t.fromDom != "" {
		for _, z := range t.c.opt.DomainZones {
			wg.Go(func() {
				hit, failed := t.lookupZone(ctx, z, t.fromDom, t.fromDom)
				mu.Lock()
				defer mu.Unlock()
				if hit != nil {
					e.Lists = append(e.Lists, *hit)
				}
				if failed {
					e.ListFailures = append(e.ListFailures, policy.ListHit{Zone: z.Name, Target: t.fromDom, Weight: z.Weight})
				}
			})
		}
	}
	if t.c.opt.CountryZone != "" && t.ip.Is4() {
		wg.Go(func() {
			cc, failed := t.country(ctx)
			mu.Lock()
			e.Country, e.CountryFailed = cc, failed
			mu.Unlock()
		})
	}
	wg.Wait()
	sortHits(e.Lists)
	sortHits(e.ListFailures)
	return e
}

// spf checks the MAIL FROM domain, or the HELO name for the null
// sender (RFC 7208 §2.3, §2.4), and returns the result and the domain
// it is about.
func (t *Tx) spf(ctx context.Context) (spf.Result, string) {
	helo := strings.TrimSuffix(t.helo, ".")
	sender, dom := t.from, t.fromDom
	if t.from == "" {
		d, err := policy.NormalizeDomain(helo)
		if err != nil {
			return spf.None, ""
		}
		sender, dom = "postmaster@"+d, d
	} else if dom == "" {
		return spf.None, ""
	}
	if at := strings.LastIndexByte(sender, '@'); at >= 0 {
		sender = sender[:at+1] + dom // A-label domain for DNS
	}
	r, err := spf.CheckHostWithSender(t.ip.AsSlice(), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(t.c.opt.Resolver))
	if err != nil && r == spf.TempError {
		t.c.log.Info("inbound: SPF temporary failure", "domain", dom, "err", err)
	}
	return r, dom
}

// lookupZone asks zone about target (a reversed address or a domain).
// Any answer in 127.0.0.0/8 but 127.255.255.0/24 (Spamhaus' codes for
// refused or over-limit queries, which say nothing of the target) is a
// hit. failed reports a DNS failure.
func (t *Tx) lookupZone(ctx context.Context, z Zone, name, target string) (hit *policy.ListHit, failed bool) {
	ips, err := t.c.opt.Resolver.A(ctx, name+"."+z.Name)
	if err != nil {
		if isNotFound(err) {
			return nil, false
		}
		t.c.log.Info("inbound: DNS list unreachable", "zone", z.Name, "err", err)
		return nil, true
	}
	for _, ip := range ips {
		ip4 := ip.To4()
		if ip4 == nil || ip4[0] != 127 {
			continue
		}
		if ip4[1] == 255 && ip4[2] == 255 {
			t.c.log.Warn("inbound: DNS list refuses our queries (check the resolver or the access key)", "zone", z.Name, "answer", ip4.String())
			return nil, false
		}
		return &policy.ListHit{Zone: z.Name, Target: target, Weight: z.Weight, Answer: ip4.String()}, false
	}
	return nil, false
}

// country asks the country zone for the client's ISO 3166-1 code.
func (t *Tx) country(ctx context.Context) (string, bool) {
	ips, err := t.c.opt.Resolver.A(ctx, reverseIP(t.ip)+"."+t.c.opt.CountryZone)
	if err != nil {
		if isNotFound(err) {
			return "", false
		}
		t.c.log.Info("inbound: country zone unreachable", "zone", t.c.opt.CountryZone, "err", err)
		return "", true
	}
	for _, ip := range ips {
		if ip4 := ip.To4(); ip4 != nil && ip4[0] == 127 {
			if cc := policy.CountryFromNumeric(int(ip4[2])<<8 | int(ip4[3])); cc != "" {
				return cc, false
			}
		}
	}
	return "", false
}

// reverseIP is the DNS list name of an address: reversed octets for
// IPv4, reversed nibbles for IPv6.
func reverseIP(ip netip.Addr) string {
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	const hex = "0123456789abcdef"
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		if i > 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

// isNotFound tells "no such record" from a failure: a *net.DNSError
// saying so, or the resolver's ErrNotFound.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound || errors.Is(err, resolver.ErrNotFound)
}

func sortHits(h []policy.ListHit) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Zone < h[j-1].Zone; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// clientNet is the greylisting identity of a client: its /24 (IPv4)
// or /64 (IPv6), since large senders retry from neighbouring addresses.
func clientNet(ip netip.Addr) string {
	bits := 24
	if !ip.Is4() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

func greyKey(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strings.ToLower(p)))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// greylist applies greylisting to one recipient: a client network that
// delivered AutoAllow times passes; a new triplet (network, sender,
// recipient) is deferred for Delay; one seen before Delay ago passes
// and counts. Keys are hashed. A store failure lets the mail through
// (greylisting only delays; it never decided to refuse).
func (t *Tx) greylist(ctx context.Context, rcpt string) ([]policy.Reason, *Reply) {
	st, g, now := t.c.opt.Store, t.c.grey, t.c.now()
	net := clientNet(t.ip)
	ck := greyKey("client", net)
	if g.AutoAllow > 0 {
		if e, err := st.Greylist(ctx, ck); err == nil && int(e.Passes) >= g.AutoAllow && now.Sub(e.Last) < g.Expire {
			return []policy.Reason{{Check: "greylist", Result: "pass", Detail: "client network auto-allowed"}}, nil
		}
	}
	tk := greyKey("triplet", net, t.from, rcpt)
	e, err := st.Greylist(ctx, tk)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && now.Sub(e.Last) >= g.Expire:
		if err := st.SetGreylist(ctx, tk, store.GreylistEntry{First: now, Last: now}); err != nil {
			t.c.log.Error("inbound: greylist", "err", err)
			return nil, nil
		}
		return []policy.Reason{{Check: "greylist", Result: "defer", Detail: "first attempt"}}, &Reply{451, "4.7.1", fmt.Sprintf("Greylisted; please try again in %d minutes", int(g.Delay.Minutes()+0.5))}
	case err != nil:
		t.c.log.Error("inbound: greylist", "err", err)
		return nil, nil
	case now.Sub(e.First) < g.Delay:
		return []policy.Reason{{Check: "greylist", Result: "defer", Detail: "retried too soon"}}, &Reply{451, "4.7.1", "Greylisted; please try again later"}
	}
	e.Last, e.Passes = now, e.Passes+1
	if err := st.SetGreylist(ctx, tk, e); err != nil {
		t.c.log.Error("inbound: greylist", "err", err)
	}
	if g.AutoAllow > 0 {
		ce, err := st.Greylist(ctx, ck)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if ce.First.IsZero() {
			ce.First = now
		}
		ce.Last, ce.Passes = now, ce.Passes+1
		if err := st.SetGreylist(ctx, ck, ce); err != nil {
			t.c.log.Error("inbound: greylist", "err", err)
		}
	}
	return []policy.Reason{{Check: "greylist", Result: "pass", Detail: fmt.Sprintf("waited %s", now.Sub(e.First).Round(1e9))}}, nil
}
