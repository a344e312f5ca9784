package resolver_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
)

// TestLibrariesReadErrors is a regression test: the SPF library and
// go-msgauth's DMARC lookup tell "no record" from "try again" by
// asserting err.(*net.DNSError). An error type that only embeds
// net.DNSError fails that assertion, and both libraries then call the
// outcome a permanent error: a domain without SPF became permerror
// instead of none, a DNS outage permerror instead of temperror (a
// silent accept of what might have been refused).
func TestLibrariesReadErrors(t *testing.T) {
	srv := dnstest.Start(t,
		`strict.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		"nospf.example. 300 IN A 192.0.2.9",
		`_dmarc.strict.example. 300 IN TXT "v=DMARC1; p=reject"`,
	)
	r := newResolver(t, srv, resolver.Options{CacheEntries: -1})
	ctx := context.Background()

	_, err := r.LookupTXT(ctx, "nospf.example")
	if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound || !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("LookupTXT NODATA: %#v, want a *net.DNSError that is not found and matches ErrNotFound", err)
	}

	check := func(domain string) spf.Result {
		res, _ := spf.CheckHostWithSender(net.ParseIP("192.0.2.1"), "client.example", "a@"+domain,
			spf.WithContext(ctx), spf.WithResolver(r))
		return res
	}
	for _, c := range []struct {
		domain string
		want   spf.Result
	}{
		{"strict.example", spf.Pass},
		{"nospf.example", spf.None}, // NODATA
		{"nx.example", spf.None},    // NXDOMAIN
		{"broken.example", spf.TempError},
	} {
		if c.domain == "broken.example" {
			srv.Fail("broken.example", dns.RcodeServerFailure)
		}
		if got := check(c.domain); got != c.want {
			t.Errorf("SPF for %s: %s, want %s", c.domain, got, c.want)
		}
	}

	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }}
	if rec, err := dmarc.LookupWithOptions("strict.example", lookup); err != nil || rec.Policy != dmarc.PolicyReject {
		t.Errorf("DMARC strict.example: %v, %v", rec, err)
	}
	if _, err := dmarc.LookupWithOptions("nospf.example", lookup); !errors.Is(err, dmarc.ErrNoPolicy) {
		t.Errorf("DMARC without a record: %v, want ErrNoPolicy", err)
	}
	srv.Fail("_dmarc.broken.example", dns.RcodeServerFailure)
	if _, err := dmarc.LookupWithOptions("broken.example", lookup); !dmarc.IsTempFail(err) {
		t.Errorf("DMARC with SERVFAIL: %v, want a temporary failure", err)
	}
}
