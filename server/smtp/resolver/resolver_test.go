package resolver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
)

func newResolver(t *testing.T, srv *dnstest.Server, opt resolver.Options) *resolver.Resolver {
	t.Helper()
	opt.Server = srv.Addr
	if opt.Timeout == 0 {
		opt.Timeout = 300 * time.Millisecond
	}
	r, err := resolver.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLookups(t *testing.T) {
	srv := dnstest.Start(t,
		"example.org. 300 IN MX 20 mx2.example.org.",
		"example.org. 300 IN MX 10 MX1.example.org.",
		`example.org. 300 IN TXT "v=spf1 " "ip4:192.0.2.1 -all"`,
		"mx1.example.org. 300 IN A 192.0.2.1",
		"mx1.example.org. 300 IN AAAA 2001:db8::1",
		"v4only.example.org. 300 IN A 192.0.2.2",
		"alias.example.org. 300 IN CNAME mx1.example.org.",
		"1.2.0.192.in-addr.arpa. 300 IN PTR mx1.example.org.",
		"_25._tcp.mx1.example.org. 300 IN TLSA 3 1 1 0A0B0C0D",
		"2.0.0.127.zen.test. 300 IN A 127.0.0.2",
	)
	r := newResolver(t, srv, resolver.Options{})
	ctx := context.Background()

	mx, err := r.MX(ctx, "Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	if len(mx.Records) != 2 || mx.Records[0].Host != "mx1.example.org." || mx.Records[0].Pref != 10 || mx.Records[1].Pref != 20 {
		t.Fatalf("MX = %+v %+v", mx.Records[0], mx.Records[1])
	}
	if mx.Authentic {
		t.Error("MX authentic without AD")
	}
	txt, err := r.TXT(ctx, "example.org")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 ip4:192.0.2.1 -all" {
		t.Fatalf("TXT = %q, %v", txt, err)
	}
	ips, err := r.IP(ctx, "mx1.example.org")
	if err != nil || len(ips.IPs) != 2 || !ips.IPs[0].Equal(net.ParseIP("192.0.2.1")) || !ips.IPs[1].Equal(net.ParseIP("2001:db8::1")) {
		t.Fatalf("IP = %v, %v", ips.IPs, err)
	}
	ips, err = r.IP(ctx, "v4only.example.org")
	if err != nil || len(ips.IPs) != 1 {
		t.Fatalf("IP v4 only = %v, %v", ips.IPs, err)
	}
	ips, err = r.IP(ctx, "alias.example.org")
	if err != nil || len(ips.IPs) != 2 {
		t.Fatalf("IP through CNAME = %v, %v", ips.IPs, err)
	}
	names, err := r.PTR(ctx, net.ParseIP("192.0.2.1"))
	if err != nil || len(names) != 1 || names[0] != "mx1.example.org." {
		t.Fatalf("PTR = %v, %v", names, err)
	}
	tlsa, err := r.TLSA(ctx, "_25._tcp.mx1.example.org")
	if err != nil || len(tlsa.Records) != 1 || tlsa.Records[0].Usage != 3 || string(tlsa.Records[0].Data) != "\x0a\x0b\x0c\x0d" {
		t.Fatalf("TLSA = %+v, %v", tlsa, err)
	}
	a, err := r.A(ctx, "2.0.0.127.zen.test")
	if err != nil || len(a) != 1 || !a[0].Equal(net.ParseIP("127.0.0.2")) {
		t.Fatalf("A = %v, %v", a, err)
	}
}

func TestNotFoundAndTemporary(t *testing.T) {
	srv := dnstest.Start(t,
		"example.org. 300 IN A 192.0.2.1",
		"broken.example.org. 300 IN A 192.0.2.9",
		"slow.example.org. 300 IN A 192.0.2.8",
	)
	srv.Fail("broken.example.org", dns.RcodeServerFailure)
	srv.Silence("slow.example.org", true)
	r := newResolver(t, srv, resolver.Options{Timeout: 100 * time.Millisecond, Attempts: 2})
	ctx := context.Background()

	// NXDOMAIN and NODATA are ErrNotFound, never ErrTemporary.
	for _, name := range []string{"nx.example.org", "example.org"} {
		_, err := r.MX(ctx, name)
		if !errors.Is(err, resolver.ErrNotFound) || errors.Is(err, resolver.ErrTemporary) {
			t.Errorf("MX %s: %v, want ErrNotFound", name, err)
		}
	}
	// SERVFAIL and silence are ErrTemporary, never ErrNotFound.
	for _, name := range []string{"broken.example.org", "slow.example.org"} {
		_, err := r.TXT(ctx, name)
		if !errors.Is(err, resolver.ErrTemporary) || errors.Is(err, resolver.ErrNotFound) {
			t.Errorf("TXT %s: %v, want ErrTemporary", name, err)
		}
	}
	// Half an address answer is no answer.
	srv.Fail("broken.example.org", 0)
	if err := srv.Add("half.example.org. 300 IN A 192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	srv.Silence("half.example.org", true)
	if _, err := r.IP(ctx, "half.example.org"); !errors.Is(err, resolver.ErrTemporary) {
		t.Errorf("IP with a silent server: %v, want ErrTemporary", err)
	}
	// The net.Resolver-shaped methods give *net.DNSError that libraries
	// read, and still match the sentinels.
	_, err := r.LookupTXT(ctx, "nx.example.org")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound || !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("LookupTXT NXDOMAIN: %#v", err)
	}
	_, err = r.LookupMX(ctx, "broken.example.org") // NODATA once SERVFAIL is lifted
	if !errors.As(err, &de) || !de.IsNotFound || !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("LookupMX NODATA: %#v", err)
	}
	srv.Fail("broken.example.org", dns.RcodeRefused)
	_, err = r.LookupIPAddr(ctx, "broken.example.org")
	if !errors.As(err, &de) || !de.IsTemporary || !errors.Is(err, resolver.ErrTemporary) {
		t.Errorf("LookupIPAddr REFUSED: %#v", err)
	}
}

func TestCache(t *testing.T) {
	srv := dnstest.Start(t, "example.org. 30 IN TXT \"one\"")
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	r := newResolver(t, srv, resolver.Options{Now: clock})
	ctx := context.Background()

	for range 5 {
		if txt, err := r.TXT(ctx, "example.org"); err != nil || txt[0] != "one" {
			t.Fatal(txt, err)
		}
	}
	if n := srv.Queries(); n != 1 {
		t.Fatalf("5 lookups made %d queries, want 1", n)
	}
	if err := srv.Replace("example.org.", dns.TypeTXT, "example.org. 30 IN TXT \"two\""); err != nil {
		t.Fatal(err)
	}
	advance(29 * time.Second)
	if txt, _ := r.TXT(ctx, "example.org"); txt[0] != "one" {
		t.Fatalf("before the TTL: %q", txt)
	}
	advance(2 * time.Second)
	if txt, _ := r.TXT(ctx, "example.org"); txt[0] != "two" {
		t.Fatalf("after the TTL: %q", txt)
	}
	// Negative answers are cached for the SOA's negative TTL (60 s).
	before := srv.Queries()
	for range 3 {
		if _, err := r.TXT(ctx, "nx.example.org"); !errors.Is(err, resolver.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := srv.Queries() - before; n != 1 {
		t.Fatalf("3 negative lookups made %d queries, want 1", n)
	}
	// Temporary failures are not cached.
	srv.Fail("fail.example.org", dns.RcodeServerFailure)
	before = srv.Queries()
	r.TXT(ctx, "fail.example.org")
	r.TXT(ctx, "fail.example.org")
	if n := srv.Queries() - before; n != 2 {
		t.Fatalf("2 failing lookups made %d queries, want 2 (SERVFAIL is not retried within a query, and not cached)", n)
	}
}

func TestCacheBound(t *testing.T) {
	srv := dnstest.Start(t)
	for i := range 10 {
		if err := srv.Add(strings.Replace("hX.example.org. 300 IN A 192.0.2.1", "X", string(rune('a'+i)), 1)); err != nil {
			t.Fatal(err)
		}
	}
	r := newResolver(t, srv, resolver.Options{CacheEntries: 3})
	ctx := context.Background()
	for i := range 10 {
		r.A(ctx, string(rune('a'+i))+"h.example.org")
	}
	before := srv.Queries()
	r.A(ctx, "ah.example.org") // evicted long ago
	if srv.Queries() == before {
		t.Fatal("an entry beyond the bound was still cached")
	}
}

func TestConcurrentQueriesShareOneExchange(t *testing.T) {
	srv := dnstest.Start(t, "example.org. 300 IN TXT \"x\"")
	r := newResolver(t, srv, resolver.Options{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := r.TXT(context.Background(), "example.org"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.Queries(); n > 2 {
		t.Fatalf("50 concurrent lookups made %d queries", n)
	}
}

func TestAuthenticAndTruncation(t *testing.T) {
	srv := dnstest.Start(t,
		"_25._tcp.mx.example.org. 300 IN TLSA 3 1 1 AABB",
		"example.org. 300 IN MX 10 mx.example.org.",
	)
	srv.SetAuthentic(true)
	srv.SetTruncate(true) // every UDP answer is truncated: TCP must be used
	r := newResolver(t, srv, resolver.Options{})
	tlsa, err := r.TLSA(context.Background(), "_25._tcp.mx.example.org")
	if err != nil || !tlsa.Authentic || len(tlsa.Records) != 1 {
		t.Fatalf("TLSA over TCP = %+v, %v", tlsa, err)
	}
	mx, err := r.MX(context.Background(), "example.org")
	if err != nil || !mx.Authentic {
		t.Fatalf("MX = %+v, %v", mx, err)
	}
}

func TestCallerContext(t *testing.T) {
	srv := dnstest.Start(t, "slow.example.org. 300 IN A 192.0.2.1")
	srv.Silence("slow.example.org", true)
	r := newResolver(t, srv, resolver.Options{Timeout: 5 * time.Second, Attempts: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.A(ctx, "slow.example.org"); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, resolver.ErrTemporary) {
		t.Fatalf("cancelled lookup: %v, want ErrTemporary", err)
	}
}

func TestServerSetting(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:53", "192.0.2.1", "[::1]:5353", "::1"} {
		if err := resolver.CheckServer(ok); err != nil {
			t.Errorf("CheckServer(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"dns.example:53", "127.0.0.1:", ":53", "nonsense"} {
		if err := resolver.CheckServer(bad); err == nil {
			t.Errorf("CheckServer(%q) accepted", bad)
		}
	}
	if _, err := resolver.New(resolver.Options{Server: "192.0.2.1"}); err != nil {
		t.Error(err)
	}
}

func TestBadNames(t *testing.T) {
	srv := dnstest.Start(t)
	r := newResolver(t, srv, resolver.Options{})
	for _, name := range []string{strings.Repeat("a", 64) + ".example", "a..b", strings.Repeat("abc.", 70)} {
		if _, err := r.TXT(context.Background(), name); !errors.Is(err, resolver.ErrNotFound) {
			t.Errorf("TXT %q: %v, want ErrNotFound", name, err)
		}
	}
	if srv.Queries() != 0 {
		t.Errorf("bad names reached the server")
	}
}
