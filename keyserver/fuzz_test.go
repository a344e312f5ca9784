package keyserver

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseWKDRequest checks the hash/query parser: it never panics, and
// whatever it accepts names exactly the address the hash stands for.
func FuzzParseWKDRequest(f *testing.F) {
	f.Add(aliceHash, "l=alice")
	f.Add(aliceHash, "l=Alice&x=1")
	f.Add(aliceHash, "")
	f.Add("iy9q119eutrkn8s1mk4r39qejnbu3n5q", "l=Joe.Doe")
	f.Add(WKDHash("äbc.ö"), "l=%C3%A4bc.%C3%B6")
	f.Add(aliceHash, "l=alice&l=bob")
	f.Add(strings.ToUpper(aliceHash), "l=%zz;")
	f.Fuzz(func(t *testing.T, hash, query string) {
		q, status := parseWKDRequest(hash, query)
		switch status {
		case 0:
			if !validHash(q.hash) || q.hash != hash {
				t.Fatalf("accepted bad hash %q", hash)
			}
			if q.local != "" && (!validLocal(q.local) || WKDHash(q.local) != hash) {
				t.Fatalf("accepted local %q for hash %q", q.local, hash)
			}
		case http.StatusBadRequest, http.StatusNotFound:
			if q != (wkdQuery{}) {
				t.Fatalf("refusal with data %+v", q)
			}
		default:
			t.Fatalf("status %d", status)
		}
	})
}

// FuzzHandler sends arbitrary request lines and Host headers, parsed by
// net/http as a server would, to a handler over a few accounts. It never
// panics, answers only with the expected statuses, and never serves a key
// but a published one of the domain the host belongs to.
func FuzzHandler(f *testing.F) {
	fx := newFixture(f, true)
	// Seeds: what GnuPG, Thunderbird and MTA-STS senders send, and attacks.
	f.Add("GET", "/.well-known/openpgpkey/example.org/hu/"+aliceHash+"?l=alice", "openpgpkey.example.org")
	f.Add("GET", "/.well-known/openpgpkey/hu/"+aliceHash+"?l=alice", "example.org")
	f.Add("HEAD", "/.well-known/openpgpkey/hu/"+aliceHash, "example.org:443")
	f.Add("GET", "/.well-known/openpgpkey/hu/"+bobHash+"?l=bob", "example.org")
	f.Add("GET", "/.well-known/openpgpkey/example.org/policy", "openpgpkey.example.org")
	f.Add("GET", "/mail/config-v1.1.xml?emailaddress=alice%40example.org", "autoconfig.example.org")
	f.Add("GET", "/.well-known/mta-sts.txt", "mta-sts.example.net")
	f.Add("GET", "/.well-known/openpgpkey/hu/../../etc/passwd", "example.org")
	f.Add("GET", "/.well-known/openpgpkey/example.net/hu/"+WKDHash("carol")+"?l=carol", "openpgpkey.example.org")
	f.Add("POST", "https://example.org/.well-known/openpgpkey/hu/"+aliceHash, "evil")
	f.Fuzz(func(t *testing.T, method, target, host string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http refuses it before any handler runs
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
		case 400, 404, 405:
			if rec.Body.String() != http.StatusText(rec.Code)+"\n" {
				t.Fatalf("refusal body %q", rec.Body.String())
			}
			return
		default:
			t.Fatalf("%q: status %d", raw, rec.Code)
		}
		if rec.Header().Get("Content-Type") != "application/octet-stream" {
			return
		}
		uids := uidsOf(t, rec.Body.Bytes())
		if len(uids) != 1 {
			t.Fatalf("%q: served UIDs %q", raw, uids)
		}
		rt := fx.h.routes[requestHost(req.Host)]
		want := map[string]string{"example.org": "alice@example.org", "example.net": "carol@example.net"}[rt.domain]
		if uids[0] != want {
			t.Fatalf("%q (host %q): served %s, want only %q", raw, req.Host, uids[0], want)
		}
	})
}
