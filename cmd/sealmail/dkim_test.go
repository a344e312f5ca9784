package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
)

// listDKIM returns `dkim list --json`.
func listDKIM(t *testing.T, te *testEnv, args ...string) []dkimSelectorJSON {
	t.Helper()
	var out []dkimSelectorJSON
	r := te.ok("", append([]string{"dkim", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("dkim list --json: %v\n%s", err, r.stdout)
	}
	return out
}

func statuses(sels []dkimSelectorJSON, domain string) map[string]string {
	m := map[string]string{}
	for _, s := range sels {
		if s.Domain == domain {
			m[s.Selector] = s.Status
		}
	}
	return m
}

// zoneRecords parses zone-file text and returns the TXT data by name.
func zoneRecords(t *testing.T, zone string) map[string]string {
	t.Helper()
	out := map[string]string{}
	zp := dns.NewZoneParser(strings.NewReader(zone), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if txt, ok := rr.(*dns.TXT); ok {
			out[rr.Header().Name] = strings.Join(txt.Txt, "")
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone: %v\n%s", err, zone)
	}
	return out
}

// TestDKIMCommands (issue 12, deliverability): serve makes DKIM keys for
// every domain at its first start; dns prints their records; dkim rotate
// makes pending keys, which dkim activate turns on only once they are
// published (checked through dns.resolver) or with --force; the old ones
// are then retiring and still printed by dns.
func TestDKIMCommands(t *testing.T) {
	te := newTestEnv(t)
	r := te.ok("", "dns", "example.org")
	if !strings.Contains(r.stdout, "example.org has no DKIM key yet") {
		t.Errorf("dns before the first start:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(te.dataDir, "dkim")); !os.IsNotExist(err) {
		t.Errorf("dns created the key directory: %v", err)
	}
	te.fails(exitError, "not a configured domain", "", "dkim", "rotate", "example.com")

	s := te.serve()
	sels := listDKIM(t, te)
	if len(sels) != 4 {
		t.Fatalf("%d selectors after the first start, want 4 (two domains, two keys): %+v", len(sels), sels)
	}
	for _, sel := range sels {
		if sel.Status != "active" || (sel.Algorithm != "ed25519" && sel.Algorithm != "rsa") {
			t.Errorf("selector %+v", sel)
		}
	}
	for _, p := range []string{"dkim", filepath.Join("dkim", "example.org")} {
		if fi, err := os.Stat(filepath.Join(te.dataDir, p)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	zone := zoneRecords(t, te.ok("", "dns", "example.org").stdout)
	for _, sel := range sels {
		if sel.Domain != "example.org" {
			continue
		}
		if got := zone[sel.DNSName+"."]; got != sel.Record {
			t.Errorf("dns prints %q for %s, want %q", got, sel.DNSName, sel.Record)
		}
	}
	if !strings.HasPrefix(zone["_dmarc.example.org."], "v=DMARC1;") || zone["example.org."] != "v=spf1 mx -all" {
		t.Errorf("no DMARC or SPF record: %v", zone)
	}

	// Rotation, with a DNS server the CLI asks.
	ns := dnstest.Start(t)
	te.setenv("SEALMAIL_DNS_RESOLVER=" + ns.Addr)
	r = te.ok("", "dkim", "rotate", "example.org")
	if !strings.Contains(r.stdout, "pending") {
		t.Errorf("rotate said:\n%s", r.stdout)
	}
	te.fails(exitError, "already pending", "", "dkim", "rotate", "example.org")
	sels = listDKIM(t, te, "example.org")
	var pending []dkimSelectorJSON
	for _, sel := range sels {
		if sel.Status == "pending" {
			pending = append(pending, sel)
		}
	}
	if len(pending) != 2 || len(sels) != 4 {
		t.Fatalf("after rotate: %+v", sels)
	}
	// The pending records are in dns's output, to publish before use.
	zone = zoneRecords(t, te.ok("", "dns", "example.org").stdout)
	for _, p := range pending {
		if zone[p.DNSName+"."] != p.Record {
			t.Errorf("dns does not print pending %s", p.DNSName)
		}
	}
	te.fails(exitError, "not published yet", "", "dkim", "activate", "example.org")
	for _, p := range pending {
		ns.Add(p.DNSName + ". 300 IN TXT " + zoneTXT(p.Record))
	}
	r = te.ok("", "dkim", "activate", "example.org")
	if strings.Count(r.stdout, "signs now") != 2 {
		t.Errorf("activate said:\n%s", r.stdout)
	}
	st := statuses(listDKIM(t, te, "example.org"), "example.org")
	retiring := 0
	for _, p := range pending {
		if st[p.Selector] != "active" {
			t.Errorf("%s is %s after activate", p.Selector, st[p.Selector])
		}
	}
	for _, v := range st {
		if v == "retiring" {
			retiring++
		}
	}
	if retiring != 2 {
		t.Errorf("after activate: %v", st)
	}
	// Retiring keys stay in dns's output.
	if n := len(zoneRecords(t, te.ok("", "dns", "example.org").stdout)); n != 2+4+1 {
		t.Errorf("dns prints %d TXT records during the grace period, want 7 (SPF, DMARC, TLS-RPT, 4 DKIM)", n)
	}
	te.fails(exitError, "no pending DKIM key", "", "dkim", "activate", "example.org")
	// --force does not look at DNS.
	te.ok("", "dkim", "rotate", "localhost")
	te.ok("", "dkim", "activate", "localhost", "--force")

	// A restart keeps the keys.
	if err := s.stop(t, 15); err != nil {
		t.Fatal(err)
	}
	te.serve()
	if n := len(listDKIM(t, te)); n != 8 {
		t.Errorf("%d selectors after a restart, want 8", n)
	}
	table := te.ok("", "dkim", "list").stdout
	if !strings.Contains(table, "retiring") || !strings.Contains(table, "SELECTOR") {
		t.Errorf("dkim list:\n%s", table)
	}
}

// TestUserSetAutocrypt: --autocrypt=false turns the header off, with the
// server running (control socket) or not; user list --json shows it.
func TestUserSetAutocrypt(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	autocrypt := func() bool {
		var us []userInfo
		if err := json.Unmarshal([]byte(te.ok("", "user", "list", "--json").stdout), &us); err != nil || len(us) != 1 {
			t.Fatalf("user list: %v %v", us, err)
		}
		return us[0].Autocrypt
	}
	if !autocrypt() {
		t.Fatal("new account has Autocrypt off")
	}
	if r := te.ok("", "user", "set", "alice@example.org", "--autocrypt=false"); !strings.Contains(r.stdout, "Autocrypt header on outgoing mail: no") {
		t.Errorf("set said %q", r.stdout)
	}
	if autocrypt() {
		t.Error("still on")
	}
	te.serve()
	te.ok("", "user", "set", "alice@example.org", "--autocrypt=true")
	if !autocrypt() {
		t.Error("still off after --autocrypt=true through the server")
	}
	te.fails(exitUsage, "--autocrypt: want true or false", "", "user", "set", "alice@example.org", "--autocrypt=maybe")
	te.fails(exitError, "no account", "", "user", "set", "bob@example.org", "--autocrypt=false")
}
