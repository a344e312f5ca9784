package tlspolicy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/resolver"
)

// MTA-STS (RFC 8461) limits.
const (
	// maxPolicyBytes: RFC 8461 §3.3 lets senders refuse policies over
	// 64 KiB.
	maxPolicyBytes = 64 << 10
	// maxAgeLimit is RFC 8461 §3.2's upper bound for max_age.
	maxAgeLimit = 31557600
	// DefaultFetchTimeout bounds one policy fetch (connect, TLS, headers
	// and body).
	DefaultFetchTimeout = 20 * time.Second
	// failedFetchTTL is how long a failed fetch is not retried.
	failedFetchTTL = 5 * time.Minute
)

// Mode is an MTA-STS policy's mode (RFC 8461 §5).
type Mode string

const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode   Mode
	MX     []string // patterns, lower case: "mx.example.org" or "*.example.org"
	MaxAge time.Duration
}

// Matches reports whether host (lower case, no trailing dot) is one of
// the policy's MX patterns: equal, or for "*.rest" one more label in
// front of rest (RFC 8461 §4.1).
func (p *Policy) Matches(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, mx := range p.MX {
		if rest, ok := strings.CutPrefix(mx, "*."); ok {
			if label, tail, ok := strings.Cut(host, "."); ok && label != "" && tail == rest {
				return true
			}
			continue
		}
		if host == mx {
			return true
		}
	}
	return false
}

// ParseTXT parses the records of _mta-sts.DOMAIN (RFC 8461 §3.1) and
// returns the policy id. Records not starting with "v=STSv1" are
// ignored; anything but exactly one such record, well formed, is an
// error (the domain then has no policy).
func ParseTXT(records []string) (string, error) {
	var found []string
	for _, r := range records {
		if r == "v=STSv1" || strings.HasPrefix(r, "v=STSv1;") || strings.HasPrefix(r, "v=STSv1 ") {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("tlspolicy: %d STSv1 records", len(found))
	}
	id := ""
	for i, field := range strings.Split(found[0], ";") {
		field = strings.Trim(field, " \t")
		if field == "" {
			if i == 0 {
				return "", errors.New("tlspolicy: empty field")
			}
			continue
		}
		name, val, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return "", fmt.Errorf("tlspolicy: malformed field %q", field)
		}
		switch {
		case i == 0:
			if name != "v" || val != "STSv1" {
				return "", errors.New("tlspolicy: v=STSv1 must come first")
			}
		case name == "id":
			if id != "" {
				return "", errors.New("tlspolicy: two ids")
			}
			if !validID(val) {
				return "", fmt.Errorf("tlspolicy: bad id %q", val)
			}
			id = val
		}
	}
	if id == "" {
		return "", errors.New("tlspolicy: no id")
	}
	return id, nil
}

// validID: 1 to 32 letters and digits (RFC 8461 §3.1).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParsePolicy parses a policy body (RFC 8461 §3.2): "key: value" lines
// ended by LF or CRLF, in any order, unknown keys ignored. version must
// be STSv1, mode enforce, testing or none, max_age at most 31557600
// seconds, and at least one valid mx unless the mode is none. Of keys
// other than mx, the first occurrence counts.
func ParsePolicy(body []byte) (*Policy, error) {
	if len(body) > maxPolicyBytes {
		return nil, errors.New("tlspolicy: policy too large")
	}
	var (
		version, mode, maxAge string
		seen                  = map[string]bool{}
		p                     Policy
	)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1024), maxPolicyBytes+1)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("tlspolicy: malformed line %q", truncate(line))
		}
		key = strings.TrimSpace(key)
		val = strings.Trim(val, " \t")
		if key == "mx" {
			mx, err := parseMXPattern(val)
			if err != nil {
				return nil, err
			}
			p.MX = append(p.MX, mx)
			continue
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		switch key {
		case "version":
			version = val
		case "mode":
			mode = val
		case "max_age":
			maxAge = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tlspolicy: %w", err)
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("tlspolicy: version %q", truncate(version))
	}
	switch Mode(mode) {
	case ModeEnforce, ModeTesting, ModeNone:
		p.Mode = Mode(mode)
	default:
		return nil, fmt.Errorf("tlspolicy: mode %q", truncate(mode))
	}
	if maxAge == "" || len(maxAge) > 10 || strings.TrimLeft(maxAge, "0123456789") != "" {
		return nil, fmt.Errorf("tlspolicy: max_age %q", truncate(maxAge))
	}
	n, err := strconv.ParseUint(maxAge, 10, 64)
	if err != nil || n > maxAgeLimit {
		return nil, fmt.Errorf("tlspolicy: max_age %q", truncate(maxAge))
	}
	p.MaxAge = time.Duration(n) * time.Second
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return nil, errors.New("tlspolicy: no mx")
	}
	return &p, nil
}

// parseMXPattern checks one mx value: a host name, or "*." and one.
func parseMXPattern(v string) (string, error) {
	host := strings.TrimSuffix(strings.ToLower(v), ".")
	name := host
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		name = rest
	}
	if name == "" || len(name) > 253 || !strings.Contains(name, ".") {
		return "", fmt.Errorf("tlspolicy: bad mx %q", truncate(v))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("tlspolicy: bad mx %q", truncate(v))
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("tlspolicy: bad mx %q", truncate(v))
			}
		}
	}
	return host, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// policyEntry is what the cache knows of one domain.
type policyEntry struct {
	domain  string
	policy  *Policy   // nil: none (a fetch failed and none was cached)
	id      string    // the id (TXT) of policy
	fetched time.Time // when policy was fetched
	expires time.Time // fetched + max_age (at least minPolicyAge)
	retry   time.Time // a fetch failed: not again before this
}

// minPolicyAge is the shortest time a fetched policy is kept, whatever
// its max_age: a max_age of 0 would make every delivery attempt fetch.
const minPolicyAge = time.Minute

func (e *policyEntry) valid(now time.Time) bool { return e.policy != nil && now.Before(e.expires) }

// fresh: the cached policy still has id and less than half its life
// behind it, so it is used without fetching (RFC 8461 §5.1 suggests
// refreshing a policy before it expires).
func (e *policyEntry) fresh(id string, now time.Time) bool {
	return e.valid(now) && e.id == id && now.Before(e.fetched.Add(e.expires.Sub(e.fetched)/2))
}

// mtasts returns the MTA-STS policy in force for domain, nil if none
// (RFC 8461 §5.1). A cached policy is used while it is valid; a changed
// id in DNS, or a cached policy past half its life, makes it be fetched
// again, and a failed fetch keeps the cached policy (and is not retried
// for failedFetchTTL). A domain whose TXT record is missing or cannot be
// looked up now keeps its cached policy, or has none: failing to find a
// policy never blocks delivery (§3.3).
func (p *Policies) mtasts(ctx context.Context, domain string) *Policy {
	now := p.now()
	cached := p.cache.get(domain)
	txts, err := p.res.TXT(ctx, "_mta-sts."+domain)
	var id string
	switch {
	case err == nil:
		id, err = ParseTXT(txts)
		if err != nil {
			p.log.Debug("tlspolicy: MTA-STS record", "domain", domain, "err", err)
		}
	case errors.Is(err, resolver.ErrNotFound):
	default:
		p.log.Debug("tlspolicy: MTA-STS record lookup", "domain", domain, "err", err)
	}
	if cached != nil && (id == "" || cached.fresh(id, now) || now.Before(cached.retry)) {
		if cached.valid(now) {
			return cached.policy
		}
		return nil
	}
	if id == "" {
		return nil
	}
	pol, err := p.fetchShared(ctx, domain)
	if err != nil {
		p.log.Info("tlspolicy: MTA-STS policy fetch failed", "domain", domain, "err", err)
		e := &policyEntry{domain: domain, retry: now.Add(failedFetchTTL)}
		if cached != nil && cached.valid(now) {
			e.policy, e.id, e.fetched, e.expires = cached.policy, cached.id, cached.fetched, cached.expires
		}
		p.cache.put(e)
		if e.valid(now) {
			return e.policy
		}
		return nil
	}
	p.cache.put(&policyEntry{domain: domain, policy: pol, id: id, fetched: now, expires: now.Add(max(pol.MaxAge, minPolicyAge))})
	p.dirty.Store(true)
	if err := p.saveCache(false); err != nil {
		p.log.Warn("tlspolicy: save MTA-STS policy cache", "err", err)
	}
	return pol
}

// fetchShared fetches domain's policy, sharing one fetch among callers
// that ask at the same time.
func (p *Policies) fetchShared(ctx context.Context, domain string) (*Policy, error) {
	p.mu.Lock()
	if c, ok := p.fetching[domain]; ok {
		p.mu.Unlock()
		select {
		case <-c.done:
			return c.pol, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &fetchCall{done: make(chan struct{})}
	p.fetching[domain] = c
	p.mu.Unlock()
	// The fetch is not bound to this caller's context, which may end
	// while others wait; FetchTimeout bounds it.
	c.pol, c.err = p.fetch(context.WithoutCancel(ctx), domain)
	p.mu.Lock()
	delete(p.fetching, domain)
	p.mu.Unlock()
	close(c.done)
	return c.pol, c.err
}

type fetchCall struct {
	done chan struct{}
	pol  *Policy
	err  error
}

// fetch gets https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461
// §3.3): PKIX-valid certificate for mta-sts.DOMAIN, no redirects, status
// 200, text/plain, at most 64 KiB, within FetchTimeout; no HTTP caching.
func (p *Policies) fetch(ctx context.Context, domain string) (*Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, p.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://mta-sts."+domain+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "sealmail")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("content type %q, want text/plain", truncate(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxPolicyBytes {
		return nil, errors.New("policy larger than 64 KiB")
	}
	return ParsePolicy(body)
}

// newHTTPClient is the policy fetcher's client: HTTP/1.1 over TLS 1.2+
// verified against roots, no proxy, no redirects, no keep-alive, small
// header limit, host names resolved through the resolver and dialled on
// port (443 but in tests).
func (p *Policies) newHTTPClient(port int) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := p.res.IP(ctx, host)
		if err != nil {
			return nil, err
		}
		var last error
		for _, ip := range ips.IPs {
			conn, err := p.dial(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
			if err == nil {
				return conn, nil
			}
			last = err
		}
		if last == nil {
			last = fmt.Errorf("no address for %s", host)
		}
		return nil, last
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSClientConfig:        p.pkixConfig(""),
		TLSHandshakeTimeout:    p.fetchTimeout,
		ResponseHeaderTimeout:  p.fetchTimeout,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      false,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // RFC 8461 §3.3: redirects MUST NOT be followed
		},
	}
}
