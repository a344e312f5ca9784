package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/sink"
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
	// TLS-RPT (RFC 8460 §3), where receivers report failed TLS to us.
	if got := zone["_smtp._tls.example.org."]; got != "v=TLSRPTv1; rua=mailto:postmaster@example.org" {
		t.Errorf("TLS-RPT record %q", got)
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

// TestSendingSigned (issue 12, deliverability) runs the real binary:
// mail alice submits reaches a remote sink with an RSA and an Ed25519
// DKIM signature that go-msgauth verifies against the records `dkim list`
// gives, and an Autocrypt header with her key; --autocrypt=false drops
// the header; a rotation (rotate, activate) reaches the running server,
// which signs the next message with the new keys.
func TestSendingSigned(t *testing.T) {
	sk := startSink(t, sink.Options{KeepData: true})
	te := newTestEnv(t)
	te.env = append(te.env, "SEALMAIL_OUTBOUND_TRANSPORTS=remote.test="+sk.Addr)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	var us []userInfo
	if err := json.Unmarshal([]byte(te.ok("", "user", "list", "--json").stdout), &us); err != nil || len(us) != 1 {
		t.Fatalf("user list: %v", err)
	}
	send := func(n int) sink.Message {
		t.Helper()
		msg := fmt.Sprintf("From: Alice <alice@example.org>\r\nTo: x@remote.test\r\nSubject: signed %d\r\n\r\nSigned mail.\r\n", n)
		if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org", []string{"x@remote.test"}, msg); err != nil {
			t.Fatalf("submit: %v\n%s", err, s.logs())
		}
		if got := sk.Wait(n, 3*time.Minute); got != n {
			t.Fatalf("the sink got %d messages, want %d\n%s", got, n, s.logs())
		}
		return sk.Messages()[n-1]
	}
	// verify checks the message's signatures against the records of
	// every selector, and returns the selectors that signed.
	verify := func(m sink.Message) []string {
		t.Helper()
		txt := map[string]string{}
		for _, sel := range listDKIM(t, te) {
			txt[sel.DNSName] = sel.Record
		}
		vs, err := msgauth.VerifyWithOptions(bytes.NewReader(m.Data), &msgauth.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return []string{txt[name]}, nil },
		})
		if err != nil || len(vs) != 2 {
			t.Fatalf("verify: %v, %d signatures\n%s", err, len(vs), m.Data)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "example.org" {
				t.Fatalf("signature of %s: %v", v.Domain, v.Err)
			}
		}
		var sels []string
		for _, line := range strings.Split(strings.ReplaceAll(string(m.Data), "\r\n ", " "), "\r\n") {
			if _, rest, ok := strings.Cut(line, " s="); ok && strings.HasPrefix(line, "DKIM-Signature:") {
				sel, _, _ := strings.Cut(rest, ";")
				sels = append(sels, sel)
			}
		}
		return sels
	}
	autocryptKey := func(m sink.Message) string {
		hdr, _, _ := strings.Cut(strings.ReplaceAll(string(m.Data), "\r\n ", ""), "\r\n\r\n")
		for _, line := range strings.Split(hdr, "\r\n") {
			if v, ok := strings.CutPrefix(line, "Autocrypt: addr=alice@example.org; keydata="); ok {
				raw, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("keydata: %v", err)
				}
				e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(raw)))
				if err != nil {
					t.Fatalf("keydata: %v", err)
				}
				return fmt.Sprintf("%x", e.PrimaryKey.Fingerprint)
			}
		}
		return ""
	}

	m1 := send(1)
	first := verify(m1)
	if fpr := autocryptKey(m1); fpr != us[0].Fingerprint {
		t.Errorf("Autocrypt key %q, want alice's %s\n%s", fpr, us[0].Fingerprint, m1.Data)
	}
	te.ok("", "user", "set", "alice@example.org", "--autocrypt=false")
	m2 := send(2)
	verify(m2)
	if fpr := autocryptKey(m2); fpr != "" {
		t.Errorf("Autocrypt header after --autocrypt=false")
	}
	// Rotation while the server runs.
	te.ok("", "dkim", "rotate", "example.org")
	te.ok("", "dkim", "activate", "example.org", "--force")
	third := verify(send(3))
	if strings.Join(third, " ") == strings.Join(first, " ") {
		t.Errorf("still signed with %v after the rotation", third)
	}
	for _, sel := range third {
		if !strings.HasPrefix(sel, "rsa-") && !strings.HasPrefix(sel, "ed-") || slices.Contains(first, sel) {
			t.Errorf("selector %s after rotation (before: %v)", sel, first)
		}
	}
}
