package keyserver

import (
	"strings"
	"testing"
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
		{"_submissions._tcp.example.org.", "3600", "IN", "SRV", "0", "1", "465", "mail.example.org."},
		{"_submission._tcp.example.org.", "3600", "IN", "SRV", "10", "1", "587", "smtp.example.org."},
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
