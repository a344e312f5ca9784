package tlspolicy

import (
	"container/list"
	"context"
	"crypto/cipher"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/resolver"
)

// Resolver is the DNS the policies need; *resolver.Resolver has it. Its
// errors must tell resolver.ErrNotFound from resolver.ErrTemporary, and
// its answers carry the resolver's DNSSEC validation (Authentic).
type Resolver interface {
	TXT(ctx context.Context, name string) ([]string, error)
	TLSA(ctx context.Context, name string) (resolver.TLSAResult, error)
	IP(ctx context.Context, host string) (resolver.IPResult, error)
}

// DefaultCacheEntries bounds the MTA-STS policy cache (domains).
const DefaultCacheEntries = 10000

// Options configures New.
type Options struct {
	// Resolver looks up MTA-STS records, TLSA records and the addresses
	// of policy hosts. Required.
	Resolver Resolver
	// NoDANE turns DANE off (dns.dnssec: false): for a resolver whose
	// DNSSEC validation (the AD bit) cannot be trusted, because the
	// path to it is not. The zero value uses DANE wherever the resolver
	// says the MX and TLSA answers are validated.
	NoDANE bool
	// RootCAs verifies MTA-STS policy hosts and, under MTA-STS or
	// REQUIRETLS, MX hosts (PKIX). nil means the system's roots.
	RootCAs *x509.CertPool
	// FetchTimeout bounds one MTA-STS policy fetch. 0 means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// CacheEntries bounds the policy cache. 0 means DefaultCacheEntries.
	CacheEntries int
	// CacheFile keeps the policy cache across restarts, sealed under
	// CacheKey (see persist.go); it is read by New and written at most
	// every 30 s and by Close. "" keeps policies in memory only.
	CacheFile string
	// CacheKey is the 32-byte secret the cache file is sealed under (the
	// server key). Required with CacheFile.
	CacheKey []byte
	// PolicyPort is the TCP port policy hosts are fetched from. 0 means
	// 443; tests serve policies elsewhere.
	PolicyPort int
	// Dial connects to policy hosts. nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger gets MTA-STS testing-mode reports (warnings) and fetch
	// failures (info). nil discards.
	Logger *slog.Logger
	// Now is the clock, for tests. nil means time.Now.
	Now func() time.Time
}

// Policies decides the TLS of outbound delivery: it implements the
// delivery engine's queue.TLSPolicy with DANE, MTA-STS and REQUIRETLS
// (see doc.go). Safe for concurrent use.
type Policies struct {
	res          Resolver                                                          // immutable
	noDANE       bool                                                              // immutable
	roots        *x509.CertPool                                                    // immutable; nil: system
	fetchTimeout time.Duration                                                     // immutable
	dial         func(ctx context.Context, network, addr string) (net.Conn, error) // immutable
	http         *http.Client                                                      // immutable
	log          *slog.Logger                                                      // immutable
	now          func() time.Time                                                  // immutable
	cache        *policyCache
	cacheFile    string      // immutable; "" for none
	cacheAEAD    cipher.AEAD // immutable; nil without cacheFile
	dirty        atomic.Bool // the cache changed since it was saved

	saveMu   sync.Mutex
	lastSave time.Time // guarded by saveMu

	mu       sync.Mutex
	fetching map[string]*fetchCall // guarded by mu
}

var _ queue.TLSPolicy = (*Policies)(nil)

// New returns Policies.
func New(opt Options) (*Policies, error) {
	if opt.Resolver == nil {
		return nil, errors.New("tlspolicy: no resolver")
	}
	if opt.FetchTimeout < 0 || opt.CacheEntries < 0 || opt.PolicyPort < 0 || opt.PolicyPort > 65535 {
		return nil, errors.New("tlspolicy: negative or out-of-range option")
	}
	p := &Policies{
		res: opt.Resolver, noDANE: opt.NoDANE, roots: opt.RootCAs, fetchTimeout: opt.FetchTimeout,
		dial: opt.Dial, log: opt.Logger, now: opt.Now, fetching: map[string]*fetchCall{},
	}
	if p.fetchTimeout == 0 {
		p.fetchTimeout = DefaultFetchTimeout
	}
	if p.dial == nil {
		d := &net.Dialer{Timeout: p.fetchTimeout}
		p.dial = d.DialContext
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	n := opt.CacheEntries
	if n == 0 {
		n = DefaultCacheEntries
	}
	p.cache = newPolicyCache(n)
	if opt.CacheFile != "" {
		aead, err := newCacheAEAD(opt.CacheKey)
		if err != nil {
			return nil, err
		}
		p.cacheFile, p.cacheAEAD = opt.CacheFile, aead
		if err := p.loadCache(p.now()); err != nil {
			// A lost cache costs some protection, not mail: start empty.
			p.log.Warn("tlspolicy: MTA-STS policy cache "+opt.CacheFile+" not loaded; starting without it", "err", err)
		}
		p.lastSave = p.now()
	}
	port := opt.PolicyPort
	if port == 0 {
		port = 443
	}
	p.http = p.newHTTPClient(port)
	return p, nil
}

// Policy names for the trace, beyond queue's four.
const (
	PolicyMTASTSTesting = "MTA-STS testing"                                           // testing mode: opportunistic, reported
	PolicyDNSSECPKIX    = "DNSSEC MX + PKIX"                                          // REQUIRETLS over a DNSSEC-signed MX without TLSA
	PolicyTransportPKIX = "PKIX (transport)"                                          // REQUIRETLS to a configured transport host
	PolicyDANEUnauth    = "DANE (TLS required, no usable TLSA record)"                // RFC 7672 §2.2
	PolicyTLSOptional   = "STARTTLS (TLS-Required: No)"                               // RFC 8689 §5
	PolicyUnverifiable  = "none verifies (no DANE, no MTA-STS, MX not DNSSEC-signed)" // REQUIRETLS cannot be met
)

// Require implements queue.TLSPolicy; doc.go gives the order of the
// decision.
func (p *Policies) Require(ctx context.Context, q queue.TLSQuery) (queue.TLSRequirement, error) {
	opportunistic := queue.TLSRequirement{Policy: queue.PolicySTARTTLS}
	if q.Domain == "" {
		return opportunistic, nil
	}
	if q.Transport {
		// A route the operator configured is not the recipient's MX:
		// DANE and MTA-STS, which name MX hosts, do not apply. REQUIRETLS
		// still needs verified TLS: PKIX for the configured host name.
		if q.RequireTLS {
			return queue.TLSRequirement{Policy: PolicyTransportPKIX, Required: true, Config: p.pkixConfig(q.Host)}, nil
		}
		return opportunistic, nil
	}
	if q.TLSOptional && !q.RequireTLS {
		// RFC 8689 §5: the sender asks that DANE and MTA-STS not stop
		// this message; TLS is still used when offered.
		return queue.TLSRequirement{Policy: PolicyTLSOptional}, nil
	}

	recs, present, err := p.tlsa(ctx, q)
	if err != nil {
		return queue.TLSRequirement{}, err
	}
	if len(recs) > 0 {
		return queue.TLSRequirement{Policy: queue.PolicyDANE, Required: true, Config: p.daneConfig(q.Host, q.Domain, recs)}, nil
	}

	if pol := p.mtasts(ctx, q.Domain); pol != nil {
		switch pol.Mode {
		case ModeEnforce:
			if !pol.Matches(q.Host) {
				return queue.TLSRequirement{Policy: queue.PolicyMTASTS,
					Skip: fmt.Sprintf("MTA-STS: %s is not an MX host of %s's policy (enforce)", q.Host, q.Domain)}, nil
			}
			return queue.TLSRequirement{Policy: queue.PolicyMTASTS, Required: true, Config: p.pkixConfig(q.Host)}, nil
		case ModeTesting:
			if q.RequireTLS && pol.Matches(q.Host) {
				return queue.TLSRequirement{Policy: PolicyMTASTSTesting, Required: true, Config: p.pkixConfig(q.Host)}, nil
			}
			if !q.RequireTLS {
				return p.testing(q, pol), nil
			}
		}
	}

	if q.RequireTLS {
		if q.MXAuthentic {
			// RFC 8689 §4.2.1: an MX host from a DNSSEC-validated answer,
			// with a certificate valid for its name.
			return queue.TLSRequirement{Policy: PolicyDNSSECPKIX, Required: true, Config: p.pkixConfig(q.Host)}, nil
		}
		// Nothing can verify this host: an unverified requirement, which
		// the engine refuses for a REQUIRETLS message (5.7.30, a
		// permanent failure: it bounces, RFC 8689 §4.2.1).
		return queue.TLSRequirement{Policy: PolicyUnverifiable}, nil
	}
	if present {
		// RFC 7672 §2.2: TLSA records exist, none usable: TLS is still
		// mandatory, without authentication.
		return queue.TLSRequirement{Policy: PolicyDANEUnauth, Required: true}, nil
	}
	return opportunistic, nil
}

// tlsa returns the usable TLSA records of q's host, and whether any
// (usable or not) exist, when DANE applies (RFC 7672 §2.2): DANE is on,
// and the MX answer, the host's addresses and the TLSA answer are all
// DNSSEC-validated. A failed lookup is an error: the host cannot be
// used now (§2.2.1), and the engine tries the next.
func (p *Policies) tlsa(ctx context.Context, q queue.TLSQuery) ([]resolver.TLSA, bool, error) {
	if p.noDANE || !q.MXAuthentic {
		return nil, false, nil
	}
	ips, err := p.res.IP(ctx, q.Host)
	if errors.Is(err, resolver.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("DANE: addresses of %s: %w", q.Host, err)
	}
	if !ips.Authentic {
		return nil, false, nil
	}
	port := q.Port
	if port == 0 {
		port = 25
	}
	res, err := p.res.TLSA(ctx, "_"+strconv.Itoa(port)+"._tcp."+q.Host)
	if errors.Is(err, resolver.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("DANE: TLSA records of %s: %w", q.Host, err)
	}
	if !res.Authentic || len(res.Records) == 0 {
		return nil, false, nil
	}
	return usable(res.Records), true, nil
}

// pkixConfig verifies the server's certificate for host against the
// roots (RFC 8461 §4.2, RFC 6125), TLS 1.2 at least.
func (p *Policies) pkixConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: p.roots, MinVersion: tls.VersionTLS12}
}

// testing is an MTA-STS testing-mode requirement (RFC 8461 §5):
// delivery stays opportunistic, and what the policy would have refused
// is reported (logged) after the attempt: a host not in the policy, no
// STARTTLS, or a certificate that does not verify for the host.
func (p *Policies) testing(q queue.TLSQuery, pol *Policy) queue.TLSRequirement {
	var (
		mu      sync.Mutex
		certErr error
	)
	cfg := &tls.Config{
		ServerName:         q.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // opportunistic: VerifyConnection only records
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := verifyPKIX(cs.PeerCertificates, q.Host, p.roots, p.now())
			mu.Lock()
			certErr = err
			mu.Unlock()
			return nil
		},
	}
	report := func(r queue.TLSResult) {
		mu.Lock()
		cerr := certErr
		mu.Unlock()
		var why string
		switch {
		case !pol.Matches(q.Host):
			why = "not an MX host of the policy"
		case r.IP == "":
			return // no connection: nothing to judge
		case !r.Offered:
			why = "no STARTTLS offered"
		case r.Err != nil:
			why = "TLS failed: " + r.Err.Error()
		case cerr != nil:
			why = "certificate does not verify: " + cerr.Error()
		default:
			return
		}
		p.log.Warn("tlspolicy: MTA-STS testing policy of "+q.Domain+" would refuse "+q.Host+": "+why+" (delivered anyway)",
			"remote", q.Host, "domain", q.Domain)
	}
	return queue.TLSRequirement{Policy: PolicyMTASTSTesting, Config: cfg, Report: report}
}

// verifyPKIX verifies a presented chain for host as crypto/tls would.
func verifyPKIX(chain []*x509.Certificate, host string, roots *x509.CertPool, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now})
	return err
}

// policyCache is a bounded LRU of policy entries by domain.
type policyCache struct {
	mu    sync.Mutex
	max   int                      // immutable
	items map[string]*list.Element // guarded by mu; values *policyEntry
	lru   *list.List               // guarded by mu; front most recent
}

func newPolicyCache(max int) *policyCache {
	return &policyCache{max: max, items: map[string]*list.Element{}, lru: list.New()}
}

func (c *policyCache) get(domain string) *policyEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[domain]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*policyEntry)
}

// all returns every entry, most recent first.
func (c *policyCache) all() []*policyEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*policyEntry, 0, c.lru.Len())
	for el := c.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*policyEntry))
	}
	return out
}

func (c *policyCache) put(e *policyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.domain]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.domain] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*policyEntry).domain)
	}
}
