package resolver

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: the name does not exist or has no record of the type.
	ErrNotFound = errors.New("resolver: no such record")
	// ErrTemporary: no usable answer now; try again later.
	ErrTemporary = errors.New("resolver: temporary DNS failure")
)

// Defaults for the zero Options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultAttempts     = 2
	DefaultCacheEntries = 10000
	// MinTTL and MaxTTL clamp how long an answer is cached: a zero TTL
	// would defeat the cache under load, and a week-long one would keep a
	// changed record too long.
	MinTTL = 5 * time.Second
	MaxTTL = time.Hour
	// defaultNegativeTTL caches a negative answer that carries no SOA.
	defaultNegativeTTL = time.Minute
	// udpSize is the EDNS0 buffer size we announce (DNS flag day 2020:
	// 1232 bytes avoids IP fragmentation on every common path).
	udpSize = 1232
)

// Options configures a Resolver. The zero value asks the first
// nameserver of /etc/resolv.conf.
type Options struct {
	// Server is the recursive resolver, host:port (a bare IP means port
	// 53). "" means the first nameserver in /etc/resolv.conf, or
	// 127.0.0.1:53 if there is none.
	Server string
	// Timeout bounds one exchange. 0 means DefaultTimeout.
	Timeout time.Duration
	// Attempts is how often a query is tried before it is ErrTemporary.
	// 0 means DefaultAttempts.
	Attempts int
	// CacheEntries bounds the answer cache. 0 means DefaultCacheEntries;
	// negative disables caching.
	CacheEntries int
	// Logger receives one debug line per failed exchange. nil discards.
	Logger *slog.Logger
	// Now is the clock, for tests. nil means time.Now.
	Now func() time.Time
}

// Resolver asks one recursive DNS resolver, with deadlines and a cache.
// Its methods are safe for concurrent use.
type Resolver struct {
	server   string           // immutable
	udp, tcp *dns.Client      // immutable
	attempts int              // immutable
	maxCache int              // immutable; 0: no cache
	log      *slog.Logger     // immutable
	now      func() time.Time // immutable

	mu       sync.Mutex
	cache    map[cacheKey]*list.Element // guarded by mu; values are *entry
	lru      *list.List                 // guarded by mu; front is most recent
	inflight map[cacheKey]*call         // guarded by mu
}

type cacheKey struct {
	name  string // lower-case, fully qualified
	qtype uint16
}

// answer is what one query found.
type answer struct {
	rrs       []dns.RR // records of the name asked (or its CNAME chain)
	authentic bool     // the resolver set AD
	notFound  bool     // NXDOMAIN or NODATA
	ttl       time.Duration
}

type entry struct {
	key     cacheKey
	ans     *answer
	expires time.Time
}

type call struct {
	done chan struct{}
	ans  *answer
	err  error
}

// New returns a Resolver. It fails only if Options.Server is malformed.
func New(opt Options) (*Resolver, error) {
	server, err := serverAddr(opt.Server)
	if err != nil {
		return nil, err
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	attempts := opt.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	maxCache := opt.CacheEntries
	switch {
	case maxCache == 0:
		maxCache = DefaultCacheEntries
	case maxCache < 0:
		maxCache = 0
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	return &Resolver{
		server:   server,
		udp:      &dns.Client{Net: "udp", Timeout: timeout, UDPSize: udpSize},
		tcp:      &dns.Client{Net: "tcp", Timeout: timeout},
		attempts: attempts,
		maxCache: maxCache,
		log:      log,
		now:      now,
		cache:    make(map[cacheKey]*list.Element),
		lru:      list.New(),
		inflight: make(map[cacheKey]*call),
	}, nil
}

// CheckServer validates a dns.resolver setting: "" or host:port or an IP.
func CheckServer(s string) error {
	_, err := serverAddr(s)
	return err
}

func serverAddr(s string) (string, error) {
	if s == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return "127.0.0.1:53", nil
		}
		return net.JoinHostPort(conf.Servers[0], conf.Port), nil
	}
	if ip := net.ParseIP(s); ip != nil {
		return net.JoinHostPort(s, "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("resolver: server %q: want host:port or an IP address", s)
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("resolver: server %q: the host must be an IP address (a resolver cannot be found by name)", s)
	}
	return s, nil
}

// Server returns the address queries go to.
func (r *Resolver) Server() string { return r.server }

// query returns the answer for (name, qtype), from the cache or the
// server. A notFound answer comes with ErrNotFound.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	key := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	if _, ok := dns.IsDomainName(key.name); !ok || len(key.name) > 254 {
		return nil, &Error{Name: name, Type: dns.TypeToString[qtype], Kind: ErrNotFound, Cause: "not a domain name"}
	}
	r.mu.Lock()
	if el, ok := r.cache[key]; ok {
		e := el.Value.(*entry)
		if r.now().Before(e.expires) {
			r.lru.MoveToFront(el)
			r.mu.Unlock()
			return e.ans, result(e.ans, key)
		}
		r.lru.Remove(el)
		delete(r.cache, key)
	}
	if c, ok := r.inflight[key]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.ans, c.err
		case <-ctx.Done():
			return nil, key.err(ErrTemporary, ctx.Err().Error())
		}
	}
	c := &call{done: make(chan struct{})}
	r.inflight[key] = c
	r.mu.Unlock()
	// The exchange runs on a goroutine and a context of its own, so that
	// one caller giving up does not fail the others waiting for the same
	// answer; the attempts' timeouts bound it.
	go r.run(context.WithoutCancel(ctx), key, c)
	select {
	case <-c.done:
		return c.ans, c.err
	case <-ctx.Done():
		return nil, key.err(ErrTemporary, ctx.Err().Error())
	}
}

// run does the exchange of call c and publishes its outcome.
func (r *Resolver) run(ctx context.Context, key cacheKey, c *call) {
	c.ans, c.err = r.exchange(ctx, key)
	if c.ans != nil {
		c.err = result(c.ans, key)
	}
	r.mu.Lock()
	delete(r.inflight, key)
	if c.ans != nil && r.maxCache > 0 {
		r.storeLocked(key, c.ans)
	}
	r.mu.Unlock()
	close(c.done)
}

func result(a *answer, key cacheKey) error {
	if a.notFound {
		return key.err(ErrNotFound, "")
	}
	return nil
}

// Error is the error of a lookup: what was asked, which of ErrNotFound or
// ErrTemporary it is (errors.Is matches it), and why.
type Error struct {
	Name  string // the name asked
	Type  string // the record type, e.g. "MX"
	Kind  error  // ErrNotFound or ErrTemporary
	Cause string // what happened, e.g. "rcode SERVFAIL"; may be empty
}

func (e *Error) Error() string {
	kind := "no such record"
	if e.Kind == ErrTemporary {
		kind = "temporary DNS failure"
	}
	msg := "resolver: " + e.Name + " " + e.Type + ": " + kind
	if e.Cause != "" {
		msg += " (" + e.Cause + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Kind }

func (k cacheKey) err(kind error, cause string) *Error {
	return &Error{Name: k.name, Type: dns.TypeToString[k.qtype], Kind: kind, Cause: cause}
}

func (r *Resolver) storeLocked(key cacheKey, a *answer) {
	ttl := min(max(a.ttl, MinTTL), MaxTTL)
	r.cache[key] = r.lru.PushFront(&entry{key: key, ans: a, expires: r.now().Add(ttl)})
	for r.lru.Len() > r.maxCache {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.cache, old.Value.(*entry).key)
	}
}

// exchange asks the server, retrying, and turns the reply into an answer.
func (r *Resolver) exchange(ctx context.Context, key cacheKey) (*answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(key.name, key.qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true // ask for the validation status (RFC 6840 §5.7)
	m.SetEdns0(udpSize, false)
	var lastErr error
	for attempt := 0; attempt < r.attempts; attempt++ {
		reply, _, err := r.udp.ExchangeContext(ctx, m, r.server)
		if err == nil && reply.Truncated {
			reply, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
		}
		if err != nil {
			lastErr = err
			r.log.Debug("dns exchange failed", "name", key.name, "type", dns.TypeToString[key.qtype], "err", err)
			continue
		}
		if reply.Id != m.Id || len(reply.Question) != 1 || !strings.EqualFold(reply.Question[0].Name, key.name) || reply.Question[0].Qtype != key.qtype {
			lastErr = errors.New("reply does not match the question")
			continue
		}
		switch reply.Rcode {
		case dns.RcodeSuccess:
			return answerOf(reply, key), nil
		case dns.RcodeNameError:
			return &answer{notFound: true, ttl: negativeTTL(reply), authentic: reply.AuthenticatedData}, nil
		default:
			lastErr = fmt.Errorf("rcode %s", dns.RcodeToString[reply.Rcode])
			// SERVFAIL and REFUSED will not improve within this query.
			attempt = r.attempts
		}
	}
	return nil, key.err(ErrTemporary, lastErr.Error())
}

// answerOf keeps the answer records of the name asked and of the CNAME
// chain from it, in order.
func answerOf(reply *dns.Msg, key cacheKey) *answer {
	names := map[string]bool{key.name: true}
	// A CNAME chain may come in any order; follow it to a fixed point.
	for changed := true; changed; {
		changed = false
		for _, rr := range reply.Answer {
			if cn, ok := rr.(*dns.CNAME); ok && names[strings.ToLower(cn.Hdr.Name)] && !names[strings.ToLower(cn.Target)] {
				names[strings.ToLower(cn.Target)] = true
				changed = true
			}
		}
	}
	a := &answer{authentic: reply.AuthenticatedData, ttl: MaxTTL}
	for _, rr := range reply.Answer {
		h := rr.Header()
		if h.Rrtype != key.qtype || !names[strings.ToLower(h.Name)] {
			if h.Rrtype == dns.TypeCNAME && names[strings.ToLower(h.Name)] {
				a.ttl = min(a.ttl, time.Duration(h.Ttl)*time.Second)
			}
			continue
		}
		a.rrs = append(a.rrs, rr)
		a.ttl = min(a.ttl, time.Duration(h.Ttl)*time.Second)
	}
	if len(a.rrs) == 0 {
		a.notFound = true // NODATA
		a.ttl = negativeTTL(reply)
	}
	return a
}

// negativeTTL is RFC 2308 §5: the SOA's TTL, at most its MINIMUM.
func negativeTTL(reply *dns.Msg) time.Duration {
	for _, rr := range reply.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return defaultNegativeTTL
}
