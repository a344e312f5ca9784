package keyserver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// KeyLookup is what the keyserver needs from the store: the public view of
// one account (no wrapped key, no slots) by its canonical address
// ("local@domain", lower case). It returns an error wrapping
// store.ErrNotFound for unknown addresses. *badgerstore.DB satisfies it.
type KeyLookup interface {
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
}

// AccountLister is an optional ability of a KeyLookup. When present, WKD
// requests without the "l" query parameter are answered too: the handler
// keeps an index from hash to address, rebuilt from PublicAccounts at most
// once per indexTTL. Without it such requests get 404; GnuPG, Thunderbird and
// Sequoia always send "l".
type AccountLister interface {
	PublicAccounts(ctx context.Context) ([]store.PublicAccount, error)
}

// TLSMode is how a client protects a connection to a mail endpoint.
type TLSMode uint8

const (
	// ImplicitTLS: TLS from the first byte (RFC 8314: IMAPS 993,
	// submissions 465). Thunderbird's socketType "SSL".
	ImplicitTLS TLSMode = iota + 1
	// StartTLS: plain connect, then a mandatory STARTTLS (IMAP 143,
	// submission 587). Thunderbird's socketType "STARTTLS".
	StartTLS
)

func (m TLSMode) String() string {
	switch m {
	case ImplicitTLS:
		return "implicit-tls"
	case StartTLS:
		return "starttls"
	}
	return "unset"
}

// Endpoint is a mail service as clients reach it from outside: its public
// host name and port, which may differ from the listen address (NAT, a
// proxy). sealmail never offers plaintext authentication, so there is no
// plaintext mode.
type Endpoint struct {
	Host string  // "" means Options.Hostname
	Port int     // 1..65535; required
	TLS  TLSMode // required
}

// MTASTSPolicy is the RFC 8461 policy served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt for every domain.
type MTASTSPolicy struct {
	// Mode is "enforce", "testing" or "none" (RFC 8461 §5). "none" is
	// published to withdraw an earlier policy.
	Mode string
	// MX lists the MX host patterns senders may deliver to: host names,
	// or "*.example.org" to match one label. Required unless Mode is "none".
	MX []string
	// MaxAge is how long senders cache the policy, rounded down to whole
	// seconds; 0 means one week. At most 31557600 s (RFC 8461 §3.2).
	MaxAge time.Duration
}

// DKIMKey is one DKIM selector as DNSRecords publishes it.
type DKIMKey struct {
	Domain   string // in any form policy.NormalizeDomain accepts
	Selector string
	Record   string // the key record (RFC 6376 §3.6.1): "v=DKIM1; k=ed25519; p=…"
	// Status is "pending", "active", "retiring" or "retired" (see
	// server/smtp/dkim); a retired selector is listed as removable, not
	// published.
	Status string
}

// Options configures New. The zero value serves nothing but 404s: every
// service is off until its fields are set.
type Options struct {
	// Keys finds accounts for the Web Key Directory. nil disables WKD.
	Keys KeyLookup
	// Hostname is the mail server's own name (the MX target, and the
	// default endpoint host). Required when IMAP or Submission is set.
	Hostname string
	// Domains are the mail domains served, in any form
	// policy.NormalizeDomain accepts (U-labels or A-labels); requests match
	// them in canonical form.
	// Requests for any other host get 404.
	Domains []string
	// IMAP and Submission are the endpoints autoconfig (config-v1.1.xml)
	// describes, in order of preference. Autoconfig is served only when
	// both have at least one endpoint, as Thunderbird refuses a file
	// without an outgoing server.
	IMAP       []Endpoint
	Submission []Endpoint
	// POP3 are POP3 endpoints autoconfig offers after the IMAP ones, as
	// alternatives, and DNSRecords publishes with a lower preference
	// than IMAP's (RFC 6186 §3.4). nil: none.
	POP3 []Endpoint
	// MTASTS, if non-nil, is served as mta-sts.txt; nil serves none.
	MTASTS *MTASTSPolicy
	// TLSReportAddress receives RFC 8460 TLS reports; DNSRecords puts it in
	// the _smtp._tls record. "" means postmaster@<domain>.
	TLSReportAddress string
	// DMARCReportAddress receives DMARC aggregate reports; DNSRecords
	// puts it in the _dmarc record. "" means postmaster@<domain>.
	DMARCReportAddress string
	// SPF is the SPF record DNSRecords prints for every domain (RFC 7208),
	// for sites whose mail also leaves through other hosts. "" means
	// "v=spf1 mx -all": only the domain's MX hosts (this server) send.
	SPF string
	// DKIM are the DKIM selectors of the domains (any domain's; each
	// domain's are printed with it), from server/smtp/dkim through
	// cmd/sealmail. Only DNSRecords uses them.
	DKIM []DKIMKey
	// Logger gets one debug line per request and warnings; nil discards.
	Logger *slog.Logger
}

// maxAgeLimit is RFC 8461 §3.2's upper bound for max_age.
const maxAgeLimit = 31557600 * time.Second

// defaultMaxAge is one week, a common MTA-STS max_age.
const defaultMaxAge = 7 * 24 * time.Hour

// config is Options validated and normalised. Immutable after New.
type config struct {
	keys       KeyLookup
	hostname   string
	domains    []string // lower case, no trailing dot, sorted, unique
	imap       []Endpoint
	submission []Endpoint
	pop3       []Endpoint
	mtasts     *MTASTSPolicy // Mode lower case, MX lower case, MaxAge set
	tlsrpt     string
	dmarcrpt   string
	spf        string
	dkim       []DKIMKey // Domain canonical
	log        *slog.Logger
}

func (o Options) validate() (*config, error) {
	c := &config{keys: o.Keys, log: o.Logger, tlsrpt: o.TLSReportAddress, dmarcrpt: o.DMARCReportAddress, spf: o.SPF}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if o.Hostname != "" {
		h, err := policy.NormalizeDomain(o.Hostname)
		if err != nil {
			return nil, fmt.Errorf("keyserver: hostname: %w", err)
		}
		c.hostname = h
	}
	for _, d := range o.Domains {
		n, err := policy.NormalizeDomain(d)
		if err != nil {
			return nil, fmt.Errorf("keyserver: domain: %w", err)
		}
		c.domains = append(c.domains, n)
	}
	slices.Sort(c.domains)
	c.domains = slices.Compact(c.domains)

	var err error
	if c.imap, err = c.endpoints("IMAP", o.IMAP); err != nil {
		return nil, err
	}
	if c.submission, err = c.endpoints("Submission", o.Submission); err != nil {
		return nil, err
	}
	if c.pop3, err = c.endpoints("POP3", o.POP3); err != nil {
		return nil, err
	}
	if o.MTASTS != nil {
		if c.mtasts, err = validateMTASTS(*o.MTASTS); err != nil {
			return nil, err
		}
	}
	if c.tlsrpt != "" {
		a, err := policy.CanonicalAddress(c.tlsrpt)
		if err != nil {
			return nil, fmt.Errorf("keyserver: TLS report address: %w", err)
		}
		c.tlsrpt = a
	}
	if c.dmarcrpt != "" {
		a, err := policy.CanonicalAddress(c.dmarcrpt)
		if err != nil {
			return nil, fmt.Errorf("keyserver: DMARC report address: %w", err)
		}
		c.dmarcrpt = a
	}
	if c.spf != "" && (!strings.HasPrefix(c.spf, "v=spf1") || !printableASCII(c.spf)) {
		return nil, fmt.Errorf("keyserver: SPF record %q: want printable ASCII starting with v=spf1", c.spf)
	}
	for _, k := range o.DKIM {
		d, err := policy.NormalizeDomain(k.Domain)
		if err != nil {
			return nil, fmt.Errorf("keyserver: DKIM key domain: %w", err)
		}
		if !validSelector(k.Selector) || !strings.HasPrefix(k.Record, "v=DKIM1;") || !printableASCII(k.Record) {
			return nil, fmt.Errorf("keyserver: DKIM key %q of %s: bad selector or record", k.Selector, d)
		}
		switch k.Status {
		case "pending", "active", "retiring", "retired":
		default:
			return nil, fmt.Errorf("keyserver: DKIM key %q of %s: status %q", k.Selector, d, k.Status)
		}
		k.Domain = d
		c.dkim = append(c.dkim, k)
	}
	return c, nil
}

func (c *config) endpoints(what string, eps []Endpoint) ([]Endpoint, error) {
	var out []Endpoint
	for _, e := range eps {
		if e.Port < 1 || e.Port > 65535 {
			return nil, fmt.Errorf("keyserver: %s endpoint: port %d out of range", what, e.Port)
		}
		if e.TLS != ImplicitTLS && e.TLS != StartTLS {
			return nil, fmt.Errorf("keyserver: %s endpoint: TLS mode not set", what)
		}
		if e.Host == "" {
			if c.hostname == "" {
				return nil, fmt.Errorf("keyserver: %s endpoint: no host and no Hostname", what)
			}
			e.Host = c.hostname
		} else {
			h, err := policy.NormalizeDomain(e.Host)
			if err != nil {
				return nil, fmt.Errorf("keyserver: %s endpoint host: %w", what, err)
			}
			e.Host = h
		}
		out = append(out, e)
	}
	return out, nil
}

// Validate reports what New would refuse in p (cmd/sealmail checks
// mta_sts.* with it).
func (p MTASTSPolicy) Validate() error {
	_, err := validateMTASTS(p)
	return err
}

func validateMTASTS(p MTASTSPolicy) (*MTASTSPolicy, error) {
	if p.MaxAge < 0 || (p.MaxAge != 0 && p.MaxAge < time.Second) {
		return nil, fmt.Errorf("keyserver: MTA-STS max age %v out of range", p.MaxAge)
	}
	out := &MTASTSPolicy{Mode: strings.ToLower(p.Mode), MaxAge: p.MaxAge.Truncate(time.Second)}
	switch out.Mode {
	case "enforce", "testing", "none":
	default:
		return nil, fmt.Errorf("keyserver: MTA-STS mode %q: want enforce, testing or none", p.Mode)
	}
	if out.MaxAge == 0 {
		out.MaxAge = defaultMaxAge
	}
	if out.MaxAge < time.Second || out.MaxAge > maxAgeLimit {
		return nil, fmt.Errorf("keyserver: MTA-STS max age %v out of range", p.MaxAge)
	}
	for _, mx := range p.MX {
		// RFC 8461 §4.1: a pattern is a host name, or "*." and one.
		wild, host := "", mx
		if h, ok := strings.CutPrefix(mx, "*."); ok {
			wild, host = "*.", h
		}
		m, err := policy.NormalizeDomain(host)
		if err != nil {
			return nil, fmt.Errorf("keyserver: MTA-STS mx: %w", err)
		}
		out.MX = append(out.MX, wild+m)
	}
	if len(out.MX) == 0 && out.Mode != "none" {
		return nil, fmt.Errorf("keyserver: MTA-STS mode %s needs at least one mx", out.Mode)
	}
	return out, nil
}

// autoconfigEnabled reports whether config-v1.1.xml is served.
func (c *config) autoconfigEnabled() bool {
	return len(c.imap) > 0 && len(c.submission) > 0
}

// printableASCII: what may go into a quoted TXT string unescaped.
func printableASCII(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// validSelector: DNS labels of letters, digits and hyphens (RFC 6376
// §3.1).
func validSelector(s string) bool {
	if s == "" || len(s) > 63*2 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
