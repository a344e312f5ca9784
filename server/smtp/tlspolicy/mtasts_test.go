package tlspolicy

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/smtp/queue"
)

func TestParseTXT(t *testing.T) {
	for _, tc := range []struct {
		recs []string
		id   string // "" for an error
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{[]string{"v=STSv1;id=abc"}, "abc"},
		{[]string{"v=STSv1; id=abc; ext=1;"}, "abc"},
		{[]string{"v=spf1 -all", "v=STSv1; id=abc"}, "abc"},
		{[]string{"v=STSv1; id=abc", "v=STSv1; id=def"}, ""}, // two records: none
		{[]string{"v=STSv1;"}, ""},
		{[]string{"id=abc; v=STSv1"}, ""},
		{[]string{"v=STSv1; id=ab-c"}, ""},
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, ""},
		{[]string{"v=STSv1; id=a; id=b"}, ""},
		{[]string{"v=STSv10; id=abc"}, ""},
		{nil, ""},
	} {
		id, err := ParseTXT(tc.recs)
		if id != tc.id || (err == nil) != (tc.id != "") {
			t.Errorf("%q: id %q, err %v; want %q", tc.recs, id, err, tc.id)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	good := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"
	p, err := ParsePolicy([]byte(good))
	if err != nil || p.Mode != ModeEnforce || p.MaxAge != 7*24*time.Hour || len(p.MX) != 2 {
		t.Fatalf("%+v %v", p, err)
	}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "a.example.net": true,
		"example.net": false, "a.b.example.net": false, "mail.example.org": false, ".example.net": false,
	} {
		if p.Matches(host) != want {
			t.Errorf("Matches(%q) = %v", host, !want)
		}
	}
	for name, body := range map[string]string{
		"LF only, any order, unknown keys, spaces": "mode:testing\nfoo: bar\nmax_age:   86400  \nmx: MX.Example.COM.\nversion: STSv1\n",
		"none without mx":                          "version: STSv1\nmode: none\nmax_age: 0\n",
		"first of a repeated key":                  "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\n",
	} {
		if _, err := ParsePolicy([]byte(body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, body := range map[string]string{
		"no version":     "mode: enforce\nmx: a.example\nmax_age: 1\n",
		"bad version":    "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
		"bad mode":       "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
		"no mx":          "version: STSv1\nmode: enforce\nmax_age: 1\n",
		"max_age big":    "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
		"max_age sign":   "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
		"max_age digits": "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n",
		"bad mx":         "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
		"bare mx":        "version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 1\n",
		"wild twice":     "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
		"no colon":       "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n",
		"too large":      "version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.example\n" + strings.Repeat("x: y\n", 14000),
	} {
		if p, err := ParsePolicy([]byte(body)); err == nil {
			t.Errorf("%s: accepted %+v", name, p)
		}
	}
}

const enforcePolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"

// TestMTASTSEnforce: an enforce policy, fetched over HTTPS from a server
// with a test CA's certificate, makes delivery to a plaintext-only sink
// fail, skips an MX the policy does not list, and delivers over TLS to
// a sink with a valid certificate, not to one whose certificate names
// another host.
func TestMTASTSEnforce(t *testing.T) {
	e := newEnv(t)
	ps := startPolicyServer(t, e.ca, "example.test", enforcePolicy)
	e.publishPolicy(t, "1")
	p := e.policies(t, ps.port(), false)

	plain := startSink(t, nil, false)
	o := deliver(t, p, mxQuery(), plain)
	if o.req.Policy != queue.PolicyMTASTS || !o.req.Required || o.err == nil || !strings.Contains(o.err.Error(), "STARTTLS not offered") {
		t.Fatalf("plaintext sink under enforce: %+v", o)
	}
	if plain.messages() != 0 {
		t.Fatal("the plaintext sink got the message")
	}

	q := mxQuery()
	q.Host = "backup.example.test"
	o = deliver(t, p, q, plain)
	if !o.skipped || !strings.Contains(o.req.Skip, "not an MX host") || plain.messages() != 0 {
		t.Fatalf("unlisted MX under enforce: %+v", o)
	}

	good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	tlsSink := startSink(t, &good, false)
	o = deliver(t, p, mxQuery(), tlsSink)
	if o.err != nil || !o.tls || tlsSink.messages() != 1 {
		t.Fatalf("valid TLS sink under enforce: %+v", o)
	}

	wrong := e.ca.issue(t, time.Now().Add(-time.Hour), "other.example.test")
	wrongSink := startSink(t, &wrong, false)
	o = deliver(t, p, mxQuery(), wrongSink)
	if o.err == nil || !strings.Contains(o.err.Error(), "TLS") || wrongSink.messages() != 0 {
		t.Fatalf("wrong certificate under enforce: %+v", o)
	}
	foreign := newCA(t, "Other CA").issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	foreignSink := startSink(t, &foreign, false)
	if o := deliver(t, p, mxQuery(), foreignSink); o.err == nil || foreignSink.messages() != 0 {
		t.Fatalf("untrusted CA under enforce: %+v", o)
	}
	if ps.count() != 1 {
		t.Errorf("policy fetched %d times, want once (cached)", ps.count())
	}
}

// TestMTASTSTesting: a testing policy delivers to a plaintext sink, and
// reports (logs) that enforce would have refused it.
func TestMTASTSTesting(t *testing.T) {
	e := newEnv(t)
	ps := startPolicyServer(t, e.ca, "example.test", strings.Replace(enforcePolicy, "enforce", "testing", 1))
	e.publishPolicy(t, "1")
	p := e.policies(t, ps.port(), false)
	plain := startSink(t, nil, false)
	o := deliver(t, p, mxQuery(), plain)
	if o.err != nil || o.req.Policy != PolicyMTASTSTesting || o.req.Required || plain.messages() != 1 {
		t.Fatalf("testing policy, plaintext sink: %+v", o)
	}
	if log := e.logged(); !strings.Contains(log, "would refuse mx.example.test: no STARTTLS offered") {
		t.Errorf("no report in the log:\n%s", log)
	}
	// A certificate that does not verify is delivered to, and reported.
	self := newCA(t, "Self").issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	selfSink := startSink(t, &self, false)
	if o := deliver(t, p, mxQuery(), selfSink); o.err != nil || !o.tls || selfSink.messages() != 1 {
		t.Fatalf("testing policy, untrusted certificate: %+v", o)
	}
	if log := e.logged(); !strings.Contains(log, "certificate does not verify") {
		t.Errorf("no certificate report in the log:\n%s", log)
	}
	// A good certificate is not reported.
	before := e.logged()
	good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	if o := deliver(t, p, mxQuery(), startSink(t, &good, false)); o.err != nil {
		t.Fatal(o.err)
	}
	if e.logged() != before {
		t.Errorf("a good delivery was reported:\n%s", strings.TrimPrefix(e.logged(), before))
	}
}

// TestMTASTSFetchRules: what makes a fetched policy unusable (redirects,
// other statuses and media types, oversize bodies, an untrusted
// certificate) leaves the domain without a policy; and the cache: a
// policy stays in force when the server fails or the TXT record goes,
// a new id fetches again, max_age ends it.
func TestMTASTSFetchRules(t *testing.T) {
	e := newEnv(t)
	ps := startPolicyServer(t, e.ca, "example.test", enforcePolicy)
	plain := startSink(t, nil, false)
	for name, h := range map[string]http.HandlerFunc{
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://mta-sts.example.test/other.txt", http.StatusMovedPermanently)
		},
		"status 404": func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
		"text/html": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, enforcePolicy)
		},
		"too large": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, enforcePolicy+strings.Repeat("x: y\n", 14000))
		},
	} {
		ps.setHandler(h)
		e.publishPolicy(t, "1")
		p := e.policies(t, ps.port(), false)
		if o := deliver(t, p, mxQuery(), plain); o.err != nil || o.req.Policy != queue.PolicySTARTTLS {
			t.Errorf("%s: %+v", name, o)
		}
	}
	// A policy host whose certificate the roots do not trust.
	ps.setPolicy(enforcePolicy)
	other := newCA(t, "Other CA")
	p, err := New(Options{Resolver: e.res, RootCAs: other.pool, PolicyPort: ps.port(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if o := deliver(t, p, mxQuery(), plain); o.req.Policy != queue.PolicySTARTTLS {
		t.Errorf("untrusted policy host: %+v", o)
	}

	// The cache.
	p = e.policies(t, ps.port(), false)
	n := ps.count()
	if o := deliver(t, p, mxQuery(), plain); !o.req.Required {
		t.Fatalf("policy not in force: %+v", o)
	}
	// The policy server fails: the cached policy stays.
	ps.setHandler(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	e.publishPolicy(t, "2") // a new id makes it try
	if o := deliver(t, p, mxQuery(), plain); !o.req.Required {
		t.Errorf("failed refetch dropped the cached policy: %+v", o)
	}
	if ps.count() != n+2 {
		t.Errorf("%d fetches, want %d", ps.count()-n, 2)
	}
	// …and is not retried at once.
	deliver(t, p, mxQuery(), plain)
	if ps.count() != n+2 {
		t.Errorf("failed fetch retried at once")
	}
	// The TXT record goes: the cached policy stays.
	e.dns.Replace("_mta-sts.example.test", 16)
	if o := deliver(t, p, mxQuery(), plain); !o.req.Required {
		t.Errorf("withdrawn TXT record dropped the cached policy: %+v", o)
	}
	// A new policy (testing) under a new id, after the retry delay.
	ps.setPolicy(strings.Replace(enforcePolicy, "enforce", "testing", 1))
	e.publishPolicy(t, "3")
	e.clock.Advance(failedFetchTTL + time.Second)
	if o := deliver(t, p, mxQuery(), plain); o.req.Policy != PolicyMTASTSTesting || o.err != nil {
		t.Errorf("new policy not fetched: %+v", o)
	}
	// max_age (one day) ends it when the record is gone.
	e.dns.Replace("_mta-sts.example.test", 16)
	e.clock.Advance(25 * time.Hour)
	if o := deliver(t, p, mxQuery(), plain); o.req.Policy != queue.PolicySTARTTLS {
		t.Errorf("expired policy still in force: %+v", o)
	}
	// Concurrent deliveries to a new domain share one fetch.
	ps.setPolicy(enforcePolicy)
	e.publishPolicy(t, "4")
	p = e.policies(t, ps.port(), false)
	before := ps.count()
	ps.setHandler(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, enforcePolicy)
	})
	done := make(chan queue.TLSRequirement)
	for range 5 {
		go func() {
			r, _ := p.Require(ctxBg, mxQuery())
			done <- r
		}()
	}
	for range 5 {
		if r := <-done; !r.Required {
			t.Errorf("concurrent: %+v", r)
		}
	}
	if got := ps.count() - before; got != 1 {
		t.Errorf("5 concurrent deliveries fetched %d times", got)
	}
}

// TestPolicyCacheFile: policies survive a restart in the sealed cache
// file, so an attacker who then suppresses the TXT record and the policy
// host cannot downgrade delivery; the file names no domain in the clear,
// another key cannot read it, and expired policies are not loaded.
func TestPolicyCacheFile(t *testing.T) {
	e := newEnv(t)
	ps := startPolicyServer(t, e.ca, "example.test", enforcePolicy)
	e.publishPolicy(t, "1")
	key := make([]byte, 32)
	rand.Read(key)
	file := filepath.Join(t.TempDir(), "mta-sts.cache")
	open := func(key []byte) *Policies {
		t.Helper()
		p, err := New(Options{Resolver: e.res, RootCAs: e.ca.pool, PolicyPort: ps.port(), Now: e.clock.Now,
			CacheFile: file, CacheKey: key, Logger: slog.New(slog.NewTextHandler(e.log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := startSink(t, nil, false)
	p := open(key)
	if o := deliver(t, p, mxQuery(), plain); !o.req.Required {
		t.Fatalf("first delivery: %+v", o)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("example.test")) || bytes.Contains(b, []byte("enforce")) {
		t.Error("the cache file shows the domain or policy in the clear")
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v", fi.Mode().Perm())
	}

	// Restart under attack: no TXT record, no policy host.
	e.dns.Replace("_mta-sts.example.test", 16)
	ps.setHandler(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", 503) })
	fetches := ps.count()
	e.clock.Advance(time.Hour)
	if o := deliver(t, open(key), mxQuery(), plain); !o.req.Required || o.req.Policy != queue.PolicyMTASTS || plain.messages() != 0 {
		t.Fatalf("after a restart under attack: %+v", o)
	}
	if ps.count() != fetches {
		t.Error("the cached policy was fetched again")
	}
	// Another key: the file does not open; no policy, a warning.
	other := make([]byte, 32)
	rand.Read(other)
	if o := deliver(t, open(other), mxQuery(), plain); o.req.Required {
		t.Fatalf("a cache sealed under another key was used: %+v", o)
	}
	if !strings.Contains(e.logged(), "not loaded") {
		t.Errorf("no warning about the unreadable cache:\n%s", e.logged())
	}
	// After max_age (one day) the saved policy is not loaded.
	e.clock.Advance(24 * time.Hour)
	if o := deliver(t, open(key), mxQuery(), plain); o.req.Required {
		t.Fatalf("an expired saved policy was used: %+v", o)
	}
	if _, err := New(Options{Resolver: e.res, CacheFile: file, CacheKey: []byte("short")}); err == nil {
		t.Error("a short cache key was accepted")
	}
}
