package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"

	"github.com/sealmail/sealmail/server/smtp/resolver"
)

// Routes: how a destination domain is reached.
const (
	routeMX        = "mx"
	routeSmarthost = "smarthost"
	routeTransport = "transport"
)

// maxTargets bounds the addresses one attempt connects to.
const maxTargets = 10

// route returns how mail for domain goes, and the key its concurrency
// and rate limits count under.
func (q *Queue) route(domain string) (kind, key string) {
	switch {
	case q.opt.Smarthost != nil:
		return routeSmarthost, routeSmarthost
	case q.opt.Transports[domain] != "":
		return routeTransport, routeTransport + ":" + q.opt.Transports[domain]
	}
	return routeMX, routeMX + ":" + domain
}

// target is one server an attempt may try.
type target struct {
	route     string
	host      string // host name (for TLS and the trace), or an IP literal
	addr      string // what to dial: ip:port, or host:port for the dialer to resolve
	port      int
	pref      int  // MX preference; -1 without MX
	authentic bool // the MX answer was validated (DNSSEC)
	implicit  bool // no MX: the domain's own address (RFC 5321 §5.1)
}

// failure is a permanent verdict on a destination: it cannot take mail.
type failure struct {
	status string // enhanced status code
	text   string
}

// targets returns the servers to try for domain, in order. A failure
// means the destination cannot take mail at all (null MX, no such
// domain, a routing loop); an error that it cannot be known now.
func (q *Queue) targets(ctx context.Context, domain string) ([]target, *failure, error) {
	kind, _ := q.route(domain)
	switch kind {
	case routeSmarthost:
		hp, _ := splitHostPort(q.opt.Smarthost.Addr) // validated
		return []target{{route: kind, host: hp.host, addr: hp.String(), port: hp.port, pref: -1}}, nil, nil
	case routeTransport:
		hp, _ := splitHostPort(q.opt.Transports[domain]) // validated
		return []target{{route: kind, host: hp.host, addr: hp.String(), port: hp.port, pref: -1}}, nil, nil
	}
	mx, err := q.opt.Resolver.MX(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		// RFC 5321 §5.1: no MX records, so the domain itself is the
		// host, if it has an address.
		ips, err := q.opt.Resolver.IP(ctx, domain)
		if errors.Is(err, resolver.ErrNotFound) {
			return nil, &failure{"5.1.2", "the domain " + domain + " has no MX and no address records"}, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("address lookup of %s: %w", domain, err)
		}
		return q.addrTargets(ips.IPs, target{route: kind, host: domain, pref: -1, implicit: true}, nil), nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("MX lookup of %s: %w", domain, err)
	}
	recs := mx.Records
	// RFC 7505: a null MX (one record, host ".") says the domain takes
	// no mail. A "." among other records is ignored.
	var hosts []*net.MX
	for _, r := range recs {
		if h := strings.TrimSuffix(r.Host, "."); h != "" {
			hosts = append(hosts, &net.MX{Host: h, Pref: r.Pref})
		}
	}
	if len(hosts) == 0 {
		return nil, &failure{"5.1.10", "the domain " + domain + " accepts no mail (null MX, RFC 7505)"}, nil
	}
	// Shuffle hosts of equal preference (RFC 5321 §5.1); the resolver
	// returns them sorted by preference.
	for i := 0; i < len(hosts); {
		j := i
		for j < len(hosts) && hosts[j].Pref == hosts[i].Pref {
			j++
		}
		group := hosts[i:j]
		rand.Shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	// RFC 5321 §5.1: if this host is among the MXs, only the more
	// preferred ones may be tried; none left is a loop.
	for i, h := range hosts {
		if h.Host == q.opt.Hostname {
			hosts = hosts[:i]
			for len(hosts) > 0 && hosts[len(hosts)-1].Pref >= h.Pref {
				hosts = hosts[:len(hosts)-1]
			}
			if len(hosts) == 0 {
				return nil, &failure{"5.4.6", "mail for " + domain + " loops back to this server (it is the best MX)"}, nil
			}
			break
		}
	}
	var out []target
	var lastErr error
	for _, h := range hosts {
		if len(out) >= maxTargets {
			break
		}
		ips, err := q.opt.Resolver.IP(ctx, h.Host)
		if err != nil {
			lastErr = fmt.Errorf("address lookup of MX %s: %w", h.Host, err)
			continue
		}
		out = q.addrTargets(ips.IPs, target{route: kind, host: h.Host, pref: int(h.Pref), authentic: mx.Authentic}, out)
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = errors.New("no MX host has an address")
		}
		return nil, nil, lastErr
	}
	return out, nil, nil
}

// addrTargets appends t once per address, up to maxTargets.
func (q *Queue) addrTargets(ips []net.IP, t target, out []target) []target {
	for _, ip := range ips {
		if len(out) >= maxTargets {
			break
		}
		t := t
		t.port = q.opt.MXPort
		t.addr = net.JoinHostPort(ip.String(), fmt.Sprint(t.port))
		out = append(out, t)
	}
	return out
}
