package inbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Resolver is what the checks need of DNS: server/smtp/resolver's
// Resolver, whose net.Resolver-shaped methods the SPF library and
// go-msgauth use, and whose A queries the block lists and the country
// zone answer. Errors must tell "no such record" (errors.Is
// resolver.ErrNotFound, *net.DNSError with IsNotFound) from failures.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	// A returns the IPv4 addresses of name; an error matching
	// resolver.ErrNotFound means none.
	A(ctx context.Context, name string) ([]net.IP, error)
}

// Store is what the checks read and write: the allow and deny lists and
// greylisting (store.FilterStore).
type Store interface {
	FilterRules(ctx context.Context) ([]store.FilterRule, error)
	Greylist(ctx context.Context, key []byte) (store.GreylistEntry, error)
	SetGreylist(ctx context.Context, key []byte, e store.GreylistEntry) error
}

// Classifier scores a message for each receiving account
// (server/filter). A nil score means it cannot judge yet.
type Classifier interface {
	Classify(ctx context.Context, msg io.Reader, accounts []string) ([]*policy.SpamScore, error)
}

// Tracer receives the delivery trace's records; it must not block
// (trace.Writer queues them).
type Tracer interface {
	Trace(r trace.Record)
}

// Zone is a DNS list: a block list (positive Weight) or an allow list
// (negative Weight), such as "zen.spamhaus.org" or, for Spamhaus DQS,
// "KEY.zen.dq.spamhaus.net".
type Zone struct {
	Name   string
	Weight float64
}

// ParseZone reads "zone[:weight]"; without a weight the zone refuses
// on its own (weight def).
func ParseZone(s string, def float64) (Zone, error) {
	name, w, hasW := strings.Cut(strings.TrimSpace(s), ":")
	z := Zone{Name: strings.ToLower(strings.TrimSuffix(name, ".")), Weight: def}
	if hasW {
		v, err := strconv.ParseFloat(w, 64)
		if err != nil || v != v || v > 1e6 || v < -1e6 {
			return Zone{}, fmt.Errorf("inbound: zone %q: bad weight", s)
		}
		z.Weight = v
	}
	if _, err := policy.NormalizeDomain(z.Name); err != nil {
		return Zone{}, fmt.Errorf("inbound: zone %q: %w", s, err)
	}
	return z, nil
}

// GreylistOptions configures greylisting. The zero value is off.
type GreylistOptions struct {
	Enabled bool
	// Delay is how long a new (client network, sender, recipient)
	// triplet is deferred. 0: 5 minutes (postgrey's default).
	Delay time.Duration
	// Expire is how long a triplet or an auto-allowed client is
	// remembered after its last use. 0: 35 days.
	Expire time.Duration
	// AutoAllow is how many delivered triplets let a client network skip
	// greylisting from then on. 0: 5; negative: never.
	AutoAllow int
}

// Defaults of GreylistOptions and Options.
const (
	DefaultGreylistDelay  = 5 * time.Minute
	DefaultGreylistExpire = 35 * 24 * time.Hour
	DefaultAutoAllow      = 5
	// DefaultTimeout bounds the checks of one step (a RCPT, or the end
	// of DATA) in all.
	DefaultTimeout = 30 * time.Second
	// maxDKIMSignatures bounds the signatures verified per message.
	maxDKIMSignatures = 5
)

// Options configures New. The zero value checks nothing that needs DNS
// and keeps no lists; every field says what its zero value means.
type Options struct {
	// Hostname is the authserv-id of the Authentication-Results fields
	// written (RFC 8601 §2.5), canonical. Fields from outside that claim
	// it are removed. Required.
	Hostname string
	// Domains are our own (canonical) domains: an SPF fail of one of
	// them is refused whatever the lists say.
	Domains []string
	// Resolver asks the DNS. nil: no SPF, DKIM, DMARC, DNS lists or
	// country checks (a warning is logged).
	Resolver Resolver
	// Store holds the allow and deny lists and greylisting. nil: none.
	Store Store
	// Classifier scores content. nil: no content scoring.
	Classifier Classifier
	// Tracer receives the delivery trace. nil: no trace.
	Tracer Tracer
	// Policy decides; nil: policy's defaults.
	Policy *policy.Inbound
	// IPZones are DNS lists asked for the client's address,
	// DomainZones for the envelope sender's and From domains.
	IPZones, DomainZones []Zone
	// CountryZone answers 127.0.x.y for a client of the country with
	// ISO 3166-1 numeric code x·256+y (zz.countries.nerd.dk style). "":
	// countries are unknown (and policy may not refuse any).
	CountryZone string
	// Greylist configures greylisting; off when zero.
	Greylist GreylistOptions
	// Trusted are client networks whose mail is not checked at all
	// (local tools on the loopback, an internal relay): no DNS checks,
	// lists, greylisting or scoring; forged Authentication-Results
	// fields are still removed. nil: none.
	Trusted []netip.Prefix
	// Timeout bounds the checks of one step. 0: DefaultTimeout.
	Timeout time.Duration
	// Logger receives logs. nil: discard.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Checker runs the inbound checks. It is safe for concurrent use; each
// SMTP transaction gets its own Tx.
type Checker struct {
	opt    Options          // immutable
	pol    *policy.Inbound  // immutable
	own    map[string]bool  // immutable; our domains
	rules  *rulesCache      // nil without a store
	log    *slog.Logger     // immutable
	now    func() time.Time // immutable
	grey   GreylistOptions  // immutable; defaults filled in
	hostID string           // immutable; Hostname, lower case
}

// New validates opt and returns a Checker.
func New(opt Options) (*Checker, error) {
	if opt.Hostname == "" {
		return nil, errors.New("inbound: Options.Hostname is required")
	}
	host, err := policy.NormalizeDomain(opt.Hostname)
	if err != nil {
		return nil, fmt.Errorf("inbound: Hostname: %w", err)
	}
	c := &Checker{opt: opt, pol: opt.Policy, own: map[string]bool{}, log: opt.Logger, now: opt.Now, hostID: host, grey: opt.Greylist}
	if c.pol == nil {
		if c.pol, err = policy.NewInbound(policy.InboundOptions{}); err != nil {
			return nil, err
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, d := range opt.Domains {
		cd, err := policy.NormalizeDomain(d)
		if err != nil {
			return nil, fmt.Errorf("inbound: Domains: %w", err)
		}
		c.own[cd] = true
	}
	for _, zs := range [][]Zone{opt.IPZones, opt.DomainZones} {
		for _, z := range zs {
			if _, err := policy.NormalizeDomain(z.Name); err != nil {
				return nil, fmt.Errorf("inbound: zone %q: %w", z.Name, err)
			}
		}
	}
	if opt.CountryZone != "" {
		if _, err := policy.NormalizeDomain(opt.CountryZone); err != nil {
			return nil, fmt.Errorf("inbound: CountryZone: %w", err)
		}
	} else if c.pol.UsesCountries() {
		return nil, errors.New("inbound: countries are refused or scored but no CountryZone is set")
	}
	if opt.Resolver == nil && (len(opt.IPZones) > 0 || len(opt.DomainZones) > 0 || opt.CountryZone != "") {
		return nil, errors.New("inbound: DNS lists or a country zone need a Resolver")
	}
	if opt.Greylist.Enabled && opt.Store == nil {
		return nil, errors.New("inbound: greylisting needs a Store")
	}
	if c.grey.Delay <= 0 {
		c.grey.Delay = DefaultGreylistDelay
	}
	if c.grey.Expire <= 0 {
		c.grey.Expire = DefaultGreylistExpire
	}
	if c.grey.AutoAllow == 0 {
		c.grey.AutoAllow = DefaultAutoAllow
	}
	if c.opt.Timeout <= 0 {
		c.opt.Timeout = DefaultTimeout
	}
	if opt.Store != nil {
		c.rules = &rulesCache{load: opt.Store.FilterRules}
	}
	if opt.Resolver == nil {
		c.log.Warn("inbound: no DNS resolver: SPF, DKIM, DMARC, DNS lists and countries are not checked")
	}
	return c, nil
}

// RulesChanged makes the next transaction read the allow and deny
// lists again (the CLI changed them through this process).
func (c *Checker) RulesChanged() {
	if c.rules != nil {
		c.rules.invalidate()
	}
}

// Reply is an SMTP reply the server sends for a refused recipient or
// message.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

func (r *Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// replyFor maps a verdict that refuses to its reply (RFC 3463 codes;
// RFC 7372 §3.2 for SPF and DMARC). The text names lists and domains,
// never a list entry or anything of the message.
func replyFor(v policy.Verdict, ip string) *Reply {
	switch v.Cause {
	case policy.CauseDNS:
		return &Reply{451, "4.4.3", "Temporary DNS failure checking the sender (" + v.Detail + "); try again later"}
	case policy.CauseGreylist:
		return &Reply{451, "4.7.1", "Greylisted; please try again later"}
	case policy.CauseDeny:
		return &Reply{554, "5.7.1", "Refused by local policy"}
	case policy.CauseList:
		return &Reply{554, "5.7.1", "Client host [" + ip + "] is listed by " + v.Detail}
	case policy.CauseCountry:
		return &Reply{554, "5.7.1", "Mail from your network is not accepted here"}
	case policy.CauseSPF:
		return &Reply{550, "5.7.23", "SPF check failed for " + v.Detail}
	case policy.CauseDMARC:
		return &Reply{550, "5.7.1", "Rejected by the DMARC policy of " + v.Detail}
	case policy.CauseSpam:
		return &Reply{554, "5.7.1", "Message looks like spam"}
	}
	if v.Action == policy.Defer {
		return &Reply{451, "4.7.1", "Try again later"}
	}
	return &Reply{554, "5.7.1", "Refused by local policy"}
}
