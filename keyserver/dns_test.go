package keyserver

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestDNSRecords(t *testing.T) {
	o := testOptions(nil)
	got, err := DNSRecords("Example.ORG", o)
	if err != nil {
		t.Fatal(err)
	}
	policyID := mtastsID([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"))
	for _, want := range [][]string{
		{"example.org.", "3600", "IN", "MX", "10", "mail.example.org."},
		{"openpgpkey.example.org.", "3600", "IN", "CNAME", "mail.example.org."},
		{"autoconfig.example.org.", "3600", "IN", "CNAME", "mail.example.org."},
		{"mta-sts.example.org.", "3600", "IN", "CNAME", "mail.example.org."},
		{"_mta-sts.example.org.", "3600", "IN", "TXT", `"v=STSv1;`, `id=` + policyID + `;"`},
		{"_smtp._tls.example.org.", "3600", "IN", "TXT", `"v=TLSRPTv1;`, `rua=mailto:postmaster@example.org"`},
		{"_imaps._tcp.example.org.", "3600", "IN", "SRV", "0", "1", "993", "mail.example.org."},
		{"_imap._tcp.example.org.", "3600", "IN", "SRV", "10", "1", "143", "mail.example.org."},
		{"_pop3s._tcp.example.org.", "3600", "IN", "SRV", "20", "1", "995", "mail.example.org."},
		{"_pop3._tcp.example.org.", "3600", "IN", "SRV", "30", "1", "110", "mail.example.org."},
		{"_submissions._tcp.example.org.", "3600", "IN", "SRV", "0", "1", "465", "mail.example.org."},
		{"_submission._tcp.example.org.", "3600", "IN", "SRV", "10", "1", "587", "smtp.example.org."},
		{"example.org.", "3600", "IN", "TXT", `"v=spf1`, "mx", `-all"`},
		{"_dmarc.example.org.", "3600", "IN", "TXT", `"v=DMARC1;`, "p=reject;", `rua=mailto:postmaster@example.org"`},
	} {
		found := false
		for line := range strings.SplitSeq(got, "\n") {
			if strings.Join(strings.Fields(line), " ") == strings.Join(want, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("missing record %q in\n%s", strings.Join(want, " "), got)
		}
	}
	// Every line is a comment or a record: paste-ready.
	for line := range strings.SplitSeq(strings.TrimSuffix(got, "\n"), "\n") {
		if !strings.HasPrefix(line, ";") && len(strings.Fields(line)) < 5 {
			t.Errorf("stray line %q", line)
		}
	}

	// A changed policy gets a new id; no policy, no MTA-STS names.
	o.MTASTS = &MTASTSPolicy{Mode: "testing", MX: []string{"mail.example.org"}}
	got2, err := DNSRecords("example.org", o)
	if err != nil || got2 == got || !strings.Contains(got2, "_mta-sts.example.org.") {
		t.Fatalf("changed policy: err %v, same output %v", err, got2 == got)
	}
	o.MTASTS = nil
	o.TLSReportAddress = "tls-reports@example.net"
	got3, err := DNSRecords("example.org", o)
	if err != nil || strings.Contains(got3, "mta-sts.example.org.") || !strings.Contains(got3, "rua=mailto:tls-reports@example.net") {
		t.Fatalf("no policy: err %v\n%s", err, got3)
	}
	// No submission endpoint, no autoconfig (New does not serve it).
	o.Submission = nil
	got4, err := DNSRecords("example.org", o)
	if err != nil || strings.Contains(got4, "autoconfig.example.org.") || strings.Contains(got4, "_submission") ||
		!strings.Contains(got4, "_imaps._tcp.example.org.") || !strings.Contains(got4, "openpgpkey.example.org.") {
		t.Fatalf("no submission: err %v\n%s", err, got4)
	}

	for name, tc := range map[string]struct {
		domain string
		opt    Options
	}{
		"unconfigured domain": {"example.com", testOptions(nil)},
		"bad domain":          {"example.org\n@ IN NS evil.", testOptions(nil)},
		"no hostname":         {"example.org", Options{Domains: []string{"example.org"}}},
		"bad options":         {"example.org", Options{Hostname: "a b"}},
	} {
		if _, err := DNSRecords(tc.domain, tc.opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// rsaRecord is a DKIM key record longer than one TXT string (an RSA-2048
// key), to check the split.
var rsaRecord = "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 9) + "QIDAQAB"

// TestDNSRecordsZone parses what `sealmail dns` prints with miekg/dns's
// zone parser: every line is valid zone data, and every record is there
// with its data intact (long TXT records split into strings and joined
// again).
func TestDNSRecordsZone(t *testing.T) {
	o := testOptions(nil)
	o.DKIM = []DKIMKey{
		{Domain: "example.org", Selector: "rsa-20261201", Record: rsaRecord, Status: "active"},
		{Domain: "Example.ORG", Selector: "ed-20261201", Record: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", Status: "active"},
		{Domain: "example.org", Selector: "ed-20261215", Record: "v=DKIM1; k=ed25519; p=AAAA", Status: "pending"},
		{Domain: "example.org", Selector: "ed-20261101", Record: "v=DKIM1; k=ed25519; p=BBBB", Status: "retiring"},
		{Domain: "example.org", Selector: "ed-20260101", Record: "v=DKIM1; k=ed25519; p=CCCC", Status: "retired"},
		{Domain: "example.net", Selector: "ed-20261201", Record: "v=DKIM1; k=ed25519; p=DDDD", Status: "active"},
	}
	o.POP3 = []Endpoint{{Port: 995, TLS: ImplicitTLS}}
	o.DMARCReportAddress = "dmarc@example.org"
	o.SPF = "v=spf1 mx include:_spf.relay.example -all"
	out, err := DNSRecords("example.org", o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{} // "name TYPE" → data
	zp := dns.NewZoneParser(strings.NewReader(out), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		key := h.Name + " " + dns.TypeToString[h.Rrtype]
		var data string
		switch v := rr.(type) {
		case *dns.TXT:
			data = strings.Join(v.Txt, "")
			for _, s := range v.Txt {
				if len(s) > 255 {
					t.Errorf("%s: TXT string of %d bytes", key, len(s))
				}
			}
		default:
			data = strings.TrimPrefix(rr.String(), h.String())
		}
		if h.Ttl != 3600 || h.Class != dns.ClassINET {
			t.Errorf("%s: ttl %d class %d", key, h.Ttl, h.Class)
		}
		got[key] = append(got[key], data)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("zone parser: %v\n%s", err, out)
	}
	for key, want := range map[string]string{
		"example.org. MX":                          "10 mail.example.org.",
		"example.org. TXT":                         o.SPF,
		"rsa-20261201._domainkey.example.org. TXT": rsaRecord,
		"ed-20261201._domainkey.example.org. TXT":  o.DKIM[1].Record,
		"ed-20261215._domainkey.example.org. TXT":  o.DKIM[2].Record,
		"ed-20261101._domainkey.example.org. TXT":  o.DKIM[3].Record,
		"_dmarc.example.org. TXT":                  "v=DMARC1; p=reject; rua=mailto:dmarc@example.org",
		"openpgpkey.example.org. CNAME":            "mail.example.org.",
		"autoconfig.example.org. CNAME":            "mail.example.org.",
		"mta-sts.example.org. CNAME":               "mail.example.org.",
		"_smtp._tls.example.org. TXT":              "v=TLSRPTv1; rua=mailto:postmaster@example.org",
		"_imaps._tcp.example.org. SRV":             "0 1 993 mail.example.org.",
		"_imap._tcp.example.org. SRV":              "10 1 143 mail.example.org.",
		"_submissions._tcp.example.org. SRV":       "0 1 465 mail.example.org.",
		"_submission._tcp.example.org. SRV":        "10 1 587 smtp.example.org.",
		"_pop3s._tcp.example.org. SRV":             "20 1 995 mail.example.org.",
	} {
		if !slices.Contains(got[key], want) {
			t.Errorf("%s: got %q, want %q", key, got[key], want)
		}
	}
	if _, ok := got["_mta-sts.example.org. TXT"]; !ok {
		t.Error("no _mta-sts record")
	}
	for key := range got {
		if strings.Contains(key, "ed-20260101") || strings.Contains(key, "example.net") {
			t.Errorf("published %s", key)
		}
	}
	if !strings.Contains(out, "; DKIM selector ed-20260101 is retired") || !strings.Contains(out, "; DKIM selector ed-20261215 is new") {
		t.Errorf("no notes on the pending and retired selectors:\n%s", out)
	}
	for name, k := range map[string]DKIMKey{
		"bad selector": {Domain: "example.org", Selector: "a b", Record: "v=DKIM1; p=A", Status: "active"},
		"quote":        {Domain: "example.org", Selector: "s", Record: `v=DKIM1; p="`, Status: "active"},
		"not DKIM":     {Domain: "example.org", Selector: "s", Record: "p=A", Status: "active"},
		"status":       {Domain: "example.org", Selector: "s", Record: "v=DKIM1; p=A", Status: "new"},
	} {
		o.DKIM = []DKIMKey{k}
		if _, err := DNSRecords("example.org", o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
