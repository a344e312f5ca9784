package keyserver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/store"
)

const (
	aliceHash = "kei1q4tipxxu1yj79k9kfukdhfy631xe" // alice
	bobHash   = "jycbiujnsxs47xrkethgtj69xuunurok" // bob (checked in TestFixtureHashes)
)

func TestFixtureHashes(t *testing.T) {
	if WKDHash("alice") != aliceHash || WKDHash("bob") != bobHash {
		t.Fatalf("fixture hashes wrong: alice %s bob %s", WKDHash("alice"), WKDHash("bob"))
	}
}

// fixture is a handler over two domains with alice (published) and bob
// (not published) in example.org and carol (published) in example.net.
type fixture struct {
	h                 *Handler
	keys              *mapKeys
	alice, bob, carol []byte // stored public keys
}

func testOptions(keys KeyLookup) Options {
	return Options{
		Keys:       keys,
		Hostname:   "mail.example.org",
		Domains:    []string{"Example.org", "example.net."},
		IMAP:       []Endpoint{{Port: 993, TLS: ImplicitTLS}, {Port: 143, TLS: StartTLS}},
		Submission: []Endpoint{{Port: 465, TLS: ImplicitTLS}, {Host: "smtp.example.org", Port: 587, TLS: StartTLS}},
		POP3:       []Endpoint{{Port: 995, TLS: ImplicitTLS}, {Port: 110, TLS: StartTLS}},
		MTASTS:     &MTASTSPolicy{Mode: "enforce", MX: []string{"mail.example.org"}},
	}
}

func newFixture(t testing.TB, lister bool) *fixture {
	t.Helper()
	f := &fixture{
		alice: publicBytes(t, newEntity(t, "alice@example.org", "alice@example.net")),
		bob:   publicBytes(t, newEntity(t, "bob@example.org")),
		carol: publicBytes(t, newEntity(t, "carol@example.net")),
	}
	f.keys = &mapKeys{accts: map[string]store.PublicAccount{
		"alice@example.org": {Address: "alice@example.org", PublicKey: f.alice, PublishWKD: true},
		"bob@example.org":   {Address: "bob@example.org", PublicKey: f.bob, PublishWKD: false},
		"carol@example.net": {Address: "carol@example.net", PublicKey: f.carol, PublishWKD: true},
	}}
	var kl KeyLookup = f.keys
	if lister {
		kl = listKeys{f.keys}
	}
	h, err := New(testOptions(kl))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.h = h
	return f
}

func (f *fixture) do(method, host, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://"+host+"/", nil)
	req.Host = host
	req.RequestURI = target
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	req.URL = u
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// uidsOf returns the user ID addresses in a served key.
func uidsOf(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for _, p := range packets(t, b) {
		if u, ok := p.(*packet.UserId); ok {
			out = append(out, u.Email)
		}
	}
	return out
}

func TestWKDRequests(t *testing.T) {
	f := newFixture(t, false)
	adv := "/.well-known/openpgpkey/example.org/hu/"
	dir := "/.well-known/openpgpkey/hu/"
	for _, tc := range []struct {
		name, method, host, target string
		status                     int
		uid                        string // served key's only UID, if 200
	}{
		{"advanced", "GET", "openpgpkey.example.org", adv + aliceHash + "?l=alice", 200, "alice@example.org"},
		{"direct", "GET", "example.org", dir + aliceHash + "?l=alice", 200, "alice@example.org"},
		{"case in l", "GET", "example.org", dir + aliceHash + "?l=Alice", 200, "alice@example.org"},
		{"host case and port", "GET", "OpenPGPKey.Example.ORG:443", adv + aliceHash + "?l=alice", 200, "alice@example.org"},
		{"host trailing dot", "GET", "example.org.", dir + aliceHash + "?l=alice", 200, "alice@example.org"},
		{"domain case in path", "GET", "openpgpkey.example.org", "/.well-known/openpgpkey/EXAMPLE.org/hu/" + aliceHash + "?l=alice", 200, "alice@example.org"},
		{"other domain's copy", "GET", "example.net", dir + aliceHash + "?l=alice", 404, ""},
		{"carol direct", "GET", "example.net", dir + WKDHash("carol") + "?l=carol", 200, "carol@example.net"},
		{"carol via example.org", "GET", "example.org", dir + WKDHash("carol") + "?l=carol", 404, ""},
		{"advanced other domain in path", "GET", "openpgpkey.example.org", "/.well-known/openpgpkey/example.net/hu/" + WKDHash("carol") + "?l=carol", 404, ""},
		{"advanced path on bare domain", "GET", "example.org", adv + aliceHash + "?l=alice", 404, ""},
		{"direct path on openpgpkey host", "GET", "openpgpkey.example.org", dir + aliceHash + "?l=alice", 404, ""},
		{"unpublished", "GET", "example.org", dir + bobHash + "?l=bob", 404, ""},
		{"unknown user", "GET", "example.org", dir + WKDHash("mallory") + "?l=mallory", 404, ""},
		{"unknown domain", "GET", "example.com", dir + aliceHash + "?l=alice", 404, ""},
		{"unknown openpgpkey domain", "GET", "openpgpkey.example.com", "/.well-known/openpgpkey/example.com/hu/" + aliceHash + "?l=alice", 404, ""},
		{"IP host", "GET", "127.0.0.1", dir + aliceHash + "?l=alice", 404, ""},
		{"IPv6 host", "GET", "[::1]:443", dir + aliceHash + "?l=alice", 404, ""},
		{"no host", "GET", "", dir + aliceHash + "?l=alice", 404, ""},
		{"upper-case hash", "GET", "example.org", dir + strings.ToUpper(aliceHash) + "?l=alice", 404, ""},
		{"short hash", "GET", "example.org", dir + aliceHash[:31] + "?l=alice", 404, ""},
		{"long hash", "GET", "example.org", dir + aliceHash + "y?l=alice", 404, ""},
		{"hash not alphabet", "GET", "example.org", dir + aliceHash[:31] + "l?l=alice", 404, ""},
		{"trailing slash", "GET", "example.org", dir + aliceHash + "/?l=alice", 404, ""},
		{"l for another hash", "GET", "example.org", dir + aliceHash + "?l=bob", 404, ""},
		{"l names another user", "GET", "example.org", dir + bobHash + "?l=alice", 404, ""},
		{"l with domain", "GET", "example.org", dir + WKDHash("alice@example.org") + "?l=alice@example.org", 404, ""},
		{"l too long", "GET", "example.org", dir + WKDHash(strings.Repeat("a", 65)) + "?l=" + strings.Repeat("a", 65), 404, ""},
		{"l control char", "GET", "example.org", dir + WKDHash("ali\x00ce") + "?l=ali%00ce", 404, ""},
		{"l twice", "GET", "example.org", dir + aliceHash + "?l=alice&l=alice", 400, ""},
		{"bad escape", "GET", "example.org", dir + aliceHash + "?l=%zz", 400, ""},
		{"oversized query", "GET", "example.org", dir + aliceHash + "?l=alice&x=" + strings.Repeat("x", maxQueryLen), 400, ""},
		{"no l, no lister", "GET", "example.org", dir + aliceHash, 404, ""},
		{"extra parameters ignored", "GET", "example.org", dir + aliceHash + "?x=1&l=alice", 200, "alice@example.org"},
		{"traversal", "GET", "example.org", "/.well-known/openpgpkey/hu/../hu/" + aliceHash + "?l=alice", 404, ""},
		{"traversal advanced", "GET", "openpgpkey.example.org", "/.well-known/openpgpkey/example.net/../example.org/hu/" + aliceHash + "?l=alice", 404, ""},
		{"double slash", "GET", "example.org", "/.well-known/openpgpkey//hu/" + aliceHash + "?l=alice", 404, ""},
		{"escaped slash", "GET", "openpgpkey.example.org", "/.well-known/openpgpkey/example.org%2Fhu/" + aliceHash + "?l=alice", 404, ""},
		{"escaped hash", "GET", "example.org", dir + "%6Bei1q4tipxxu1yj79k9kfukdhfy631xe?l=alice", 404, ""},
		{"hu listing", "GET", "example.org", dir, 404, ""},
		{"POST", "POST", "example.org", dir + aliceHash + "?l=alice", 405, ""},
		{"PUT", "PUT", "example.org", dir + aliceHash + "?l=alice", 405, ""},
		{"submission-address", "GET", "openpgpkey.example.org", "/.well-known/openpgpkey/example.org/submission-address", 404, ""},
		{"submission-address direct", "GET", "example.org", "/.well-known/openpgpkey/submission-address", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.method, tc.host, tc.target)
			if rec.Code != tc.status {
				t.Fatalf("%s %s %s: status %d, want %d", tc.method, tc.host, tc.target, rec.Code, tc.status)
			}
			if rec.Code != 200 {
				// Every refusal has the same fixed body: nothing echoed,
				// nothing revealed.
				if want := http.StatusText(rec.Code) + "\n"; rec.Body.String() != want {
					t.Fatalf("body %q, want %q", rec.Body.String(), want)
				}
				return
			}
			hdr := rec.Header()
			if hdr.Get("Content-Type") != "application/octet-stream" || hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("headers %v", hdr)
			}
			if uids := uidsOf(t, rec.Body.Bytes()); len(uids) != 1 || uids[0] != tc.uid {
				t.Fatalf("served UIDs %q, want only %s", uids, tc.uid)
			}
		})
	}
}

func TestWKDHead(t *testing.T) {
	f := newFixture(t, false)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice", nil)
	req.Host = "example.org"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	get := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(get.Body.Len()) || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("HEAD: status %d, %d body bytes, length %d (GET has %d), headers %v", resp.StatusCode, len(body), resp.ContentLength, get.Body.Len(), resp.Header)
	}
}

func TestWKDWithoutLocalPart(t *testing.T) {
	f := newFixture(t, true)
	rec := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if uids := uidsOf(t, rec.Body.Bytes()); len(uids) != 1 || uids[0] != "alice@example.org" {
		t.Fatalf("UIDs %q", uids)
	}
	for _, target := range []string{
		"/.well-known/openpgpkey/hu/" + bobHash,            // unpublished
		"/.well-known/openpgpkey/hu/" + WKDHash("carol"),   // other domain
		"/.well-known/openpgpkey/hu/" + WKDHash("mallory"), // unknown
	} {
		if rec := f.do("GET", "example.org", target); rec.Code != 404 {
			t.Errorf("%s: status %d, want 404", target, rec.Code)
		}
	}
	// Publication is read per request, not from the index.
	a := f.keys.accts["alice@example.org"]
	a.PublishWKD = false
	f.keys.accts["alice@example.org"] = a
	if rec := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash); rec.Code != 404 {
		t.Fatalf("after unpublishing: status %d", rec.Code)
	}
}

func TestWKDStoreFailure(t *testing.T) {
	f := newFixture(t, false)
	f.keys.fail.Store(true)
	rec := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice")
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "disk") || strings.Contains(rec.Body.String(), "/var") {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
}

func TestWKDBrokenStoredKey(t *testing.T) {
	f := newFixture(t, false)
	var logs bytes.Buffer
	o := testOptions(f.keys)
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	for name, key := range map[string][]byte{
		"other address's key": f.bob,
		"garbage":             []byte("\x99\x00\x01not a key"),
		"truncated":           f.alice[:len(f.alice)/2],
		"empty":               nil,
	} {
		a := f.keys.accts["alice@example.org"]
		a.PublicKey = key
		f.keys.accts["alice@example.org"] = a
		logs.Reset()
		rec := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice")
		if rec.Code != 404 || rec.Body.String() != "Not Found\n" {
			t.Fatalf("%s: status %d body %q, want the plain 404", name, rec.Code, rec.Body.String())
		}
		line := logs.String()
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "account=alice@example.org") || !strings.Contains(line, "err=") {
			t.Fatalf("%s: not logged as a warning with account and cause: %q", name, line)
		}
	}
}

func TestWKDPolicy(t *testing.T) {
	f := newFixture(t, false)
	for _, tc := range []struct {
		host, path string
		status     int
	}{
		{"openpgpkey.example.org", "/.well-known/openpgpkey/example.org/policy", 200},
		{"openpgpkey.example.net", "/.well-known/openpgpkey/example.net/policy", 200},
		{"example.org", "/.well-known/openpgpkey/policy", 200},
		{"openpgpkey.example.org", "/.well-known/openpgpkey/example.net/policy", 404},
		{"openpgpkey.example.com", "/.well-known/openpgpkey/example.com/policy", 404},
		{"example.com", "/.well-known/openpgpkey/policy", 404},
	} {
		rec := f.do("GET", tc.host, tc.path)
		if rec.Code != tc.status {
			t.Errorf("%s%s: status %d, want %d", tc.host, tc.path, rec.Code, tc.status)
			continue
		}
		if rec.Code == 200 && (!bytes.Equal(rec.Body.Bytes(), wkdPolicy) || rec.Header().Get("Access-Control-Allow-Origin") != "*") {
			t.Errorf("%s%s: body %q headers %v", tc.host, tc.path, rec.Body.String(), rec.Header())
		}
	}
	// Without a key source there is no WKD at all.
	h, err := New(Options{Domains: []string{"example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	if rec := f.do("GET", "example.org", "/.well-known/openpgpkey/policy"); rec.Code != 404 {
		t.Fatalf("policy without Keys: status %d", rec.Code)
	}
	if rec := f.do("GET", "example.org", "/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice"); rec.Code != 404 {
		t.Fatalf("key without Keys: status %d", rec.Code)
	}
}

func TestZeroOptionsServeNothing(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatalf("New(Options{}): %v", err)
	}
	f := &fixture{h: h}
	for _, tc := range [][2]string{
		{"example.org", "/.well-known/openpgpkey/policy"},
		{"autoconfig.example.org", "/mail/config-v1.1.xml"},
		{"mta-sts.example.org", "/.well-known/mta-sts.txt"},
		{"localhost", "/"},
	} {
		if rec := f.do("GET", tc[0], tc[1]); rec.Code != 404 {
			t.Errorf("%s%s: status %d", tc[0], tc[1], rec.Code)
		}
	}
}

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.org":                     "example.org",
		"Example.ORG":                     "example.org",
		"example.org:8443":                "example.org",
		"example.org.":                    "example.org",
		"example.org.:443":                "example.org",
		"":                                "",
		"127.0.0.1":                       "",
		"[::1]:443":                       "",
		"example.org:443:443":             "",
		"exa mple.org":                    "",
		"example..org":                    "",
		"-example.org":                    "",
		"ex_ample.org":                    "",
		"xn--bcher-kva.example":           "xn--bcher-kva.example",
		"bücher.example":                  "",
		strings.Repeat("a.", 130) + "org": "",
	} {
		if got := requestHost(in); got != want {
			t.Errorf("requestHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseWKDRequest(t *testing.T) {
	for _, tc := range []struct {
		hash, query string
		local       string
		status      int
	}{
		{aliceHash, "l=alice", "alice", 0},
		{aliceHash, "l=ALICE", "ALICE", 0},
		{aliceHash, "", "", 0},
		{aliceHash, "l=", "", 404},
		{aliceHash, "l=bob", "", 404},
		{aliceHash, "l=alice&l=alice", "", 400},
		{aliceHash, "l=%", "", 400},
		{aliceHash, "l=alice;x", "", 400},
		{aliceHash, strings.Repeat("x", maxQueryLen+1), "", 400},
		{strings.ToUpper(aliceHash), "l=alice", "", 404},
		{"", "l=alice", "", 404},
		{WKDHash("a/b"), "l=a%2Fb", "", 404},
		{WKDHash("a\xffb"), "l=a%FFb", "", 404},
		{WKDHash("äbc.ö"), "l=%C3%A4bc.%C3%B6", "äbc.ö", 0},
	} {
		q, status := parseWKDRequest(tc.hash, tc.query)
		if status != tc.status || q.local != tc.local {
			t.Errorf("parseWKDRequest(%q, %q) = %+v, %d; want local %q, %d", tc.hash, tc.query, q, status, tc.local, tc.status)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	good := testOptions(nil)
	for name, mutate := range map[string]func(o *Options){
		"bad hostname":        func(o *Options) { o.Hostname = "mail example.org" },
		"bad domain":          func(o *Options) { o.Domains = []string{"example.org/evil"} },
		"port zero":           func(o *Options) { o.IMAP = []Endpoint{{TLS: ImplicitTLS}} },
		"port too big":        func(o *Options) { o.Submission = []Endpoint{{Port: 70000, TLS: StartTLS}} },
		"no TLS mode":         func(o *Options) { o.IMAP = []Endpoint{{Port: 143}} },
		"bad endpoint host":   func(o *Options) { o.IMAP = []Endpoint{{Host: "<x>", Port: 993, TLS: ImplicitTLS}} },
		"no host at all":      func(o *Options) { o.Hostname = "" },
		"mta-sts bad mode":    func(o *Options) { o.MTASTS = &MTASTSPolicy{Mode: "strict", MX: []string{"mx.example.org"}} },
		"mta-sts no mx":       func(o *Options) { o.MTASTS = &MTASTSPolicy{Mode: "enforce"} },
		"mta-sts bad mx":      func(o *Options) { o.MTASTS = &MTASTSPolicy{Mode: "testing", MX: []string{"mx\r\nmode: none"}} },
		"mta-sts max age":     func(o *Options) { o.MTASTS = &MTASTSPolicy{Mode: "none", MaxAge: maxAgeLimit + 1e9} },
		"mta-sts sub-second":  func(o *Options) { o.MTASTS = &MTASTSPolicy{Mode: "none", MaxAge: 1} },
		"bad report address":  func(o *Options) { o.TLSReportAddress = "reports" },
		"report address crlf": func(o *Options) { o.TLSReportAddress = "a\r\n@example.org" },
	} {
		o := good
		mutate(&o)
		if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), "keyserver: ") {
			t.Errorf("%s: New error %v", name, err)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good options: %v", err)
	}
}

// BenchmarkWKDKey measures one key lookup and export (parse, filter,
// serialize) through the handler.
func BenchmarkWKDKey(b *testing.B) {
	f := newFixture(b, false)
	target := "/.well-known/openpgpkey/hu/" + aliceHash + "?l=alice"
	b.ReportAllocs()
	for b.Loop() {
		if rec := f.do("GET", "example.org", target); rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
