package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// MXResult is a domain's mail exchangers, lowest preference first.
type MXResult struct {
	Records   []*net.MX // Host is fully qualified, lower case
	Authentic bool      // validated by the resolver (DNSSEC)
}

// MX looks up a domain's MX records. A domain with no MX records gives
// ErrNotFound; RFC 5321 §5.1's fallback to the domain's own address is
// the caller's business.
func (r *Resolver) MX(ctx context.Context, domain string) (MXResult, error) {
	a, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return MXResult{}, err
	}
	res := MXResult{Authentic: a.authentic, Records: make([]*net.MX, 0, len(a.rrs))}
	for _, rr := range a.rrs {
		mx := rr.(*dns.MX)
		res.Records = append(res.Records, &net.MX{Host: strings.ToLower(mx.Mx), Pref: mx.Preference})
	}
	slices.SortStableFunc(res.Records, func(x, y *net.MX) int { return int(x.Pref) - int(y.Pref) })
	return res, nil
}

// TXT looks up a name's TXT records, each record's strings joined (RFC
// 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// IPResult is a host's addresses.
type IPResult struct {
	IPs       []net.IP // IPv4 first, then IPv6, in the order received
	Authentic bool     // both lookups validated by the resolver
}

// IP looks up a host's A and AAAA records. ErrNotFound only if it has
// neither; a temporary failure of either lookup is ErrTemporary, so that
// a check never decides on half an answer.
func (r *Resolver) IP(ctx context.Context, host string) (IPResult, error) {
	type res struct {
		a   *answer
		err error
	}
	aaaa := make(chan res, 1)
	go func() {
		a, err := r.query(ctx, host, dns.TypeAAAA)
		aaaa <- res{a, err}
	}()
	a4, err4 := r.query(ctx, host, dns.TypeA)
	r6 := <-aaaa
	for _, err := range []error{err4, r6.err} {
		if err != nil && !errors.Is(err, ErrNotFound) {
			return IPResult{}, err
		}
	}
	if err4 != nil && r6.err != nil {
		return IPResult{}, err4
	}
	out := IPResult{Authentic: true}
	for _, a := range []*answer{a4, r6.a} {
		if a == nil {
			continue
		}
		out.Authentic = out.Authentic && a.authentic
		for _, rr := range a.rrs {
			switch v := rr.(type) {
			case *dns.A:
				out.IPs = append(out.IPs, v.A)
			case *dns.AAAA:
				out.IPs = append(out.IPs, v.AAAA)
			}
		}
	}
	return out, nil
}

// A looks up a name's IPv4 addresses only (DNS block lists and country
// zones answer with 127.x.y.z).
func (r *Resolver) A(ctx context.Context, name string) ([]net.IP, error) {
	a, err := r.query(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	out := make([]net.IP, 0, len(a.rrs))
	for _, rr := range a.rrs {
		out = append(out, rr.(*dns.A).A)
	}
	return out, nil
}

// PTR looks up the names of an address (reverse DNS).
func (r *Resolver) PTR(ctx context.Context, ip net.IP) ([]string, error) {
	name, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, err
	}
	a, err := r.query(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		out = append(out, strings.ToLower(rr.(*dns.PTR).Ptr))
	}
	return out, nil
}

// TLSA is one TLSA record (RFC 6698 §2).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte // the certificate association data
}

// TLSAResult is the TLSA records of a service name such as
// "_25._tcp.mx.example.org".
type TLSAResult struct {
	Records   []TLSA
	Authentic bool // DANE may use them only if true (RFC 7672 §2.2)
}

// TLSA looks up the TLSA records of name.
func (r *Resolver) TLSA(ctx context.Context, name string) (TLSAResult, error) {
	a, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		return TLSAResult{Authentic: a != nil && a.authentic}, err
	}
	res := TLSAResult{Authentic: a.authentic}
	for _, rr := range a.rrs {
		t := rr.(*dns.TLSA)
		data, err := hexBytes(t.Certificate)
		if err != nil {
			continue // a malformed record is unusable (RFC 7672 §2.2)
		}
		res.Records = append(res.Records, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return res, nil
}

func hexBytes(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, errors.New("odd length")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, errors.New("not hex")
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// The methods below have the shapes of net.Resolver's, so that libraries
// that take a resolver interface (SPF, DKIM, DMARC) can use this one.
// Their errors are plain *net.DNSError values, as net.Resolver's are:
// blitiri.com.ar/go/spf and go-msgauth's dmarc tell "no record" from a
// temporary failure with a type assertion (err.(*net.DNSError)), which a
// type merely embedding net.DNSError would fail, turning both into
// permanent errors. UnwrapErr keeps the resolver's *Error, so errors.Is
// still matches ErrNotFound and ErrTemporary.

// LookupTXT is TXT with net.Resolver's shape.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, err := r.TXT(ctx, name)
	return txt, netError(err, name)
}

// LookupMX is MX with net.Resolver's shape.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	res, err := r.MX(ctx, name)
	return res.Records, netError(err, name)
}

// LookupIPAddr is IP with net.Resolver's shape.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	res, err := r.IP(ctx, host)
	if err != nil {
		return nil, netError(err, host)
	}
	out := make([]net.IPAddr, len(res.IPs))
	for i, ip := range res.IPs {
		out[i] = net.IPAddr{IP: ip}
	}
	return out, nil
}

// LookupAddr is PTR with net.Resolver's shape.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	names, err := r.PTR(ctx, ip)
	return names, netError(err, addr)
}

// netError turns a lookup error into the *net.DNSError net.Resolver
// would return, wrapping err.
func netError(err error, name string) error {
	if err == nil {
		return nil
	}
	e := &net.DNSError{UnwrapErr: err, Name: name, Err: "no such record"}
	if errors.Is(err, ErrNotFound) {
		e.IsNotFound = true
	} else {
		e.Err = "temporary DNS failure"
		e.IsTemporary = true
		e.IsTimeout = errors.Is(err, context.DeadlineExceeded)
	}
	return e
}
