package keyserver

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sealmail/sealmail/policy"
)

// dnsTTL is the TTL printed with every record: one hour, short enough to
// fix mistakes quickly.
const dnsTTL = "3600"

// DNSRecords returns the zone-file lines an operator publishes for domain
// (what `sealmail dns DOMAIN` prints): MX; SPF (RFC 7208); a DKIM key
// record per published selector (RFC 6376 §3.6.2, opt.DKIM); DMARC (RFC
// 7489 §6.1); the openpgpkey. name, and autoconfig. and mta-sts. when
// those are served, as CNAMEs to opt.Hostname; the _mta-sts (RFC 8461
// §3.1) and _smtp._tls (RFC 8460 §3) TXT records; and RFC 6186/8314 SRV
// records for the configured IMAP, submission and POP3 endpoints (POP3 at
// a lower preference than IMAP), with "." targets (RFC 6186 §3.4: not
// offered) for POP3 when it is not.
// Names are absolute (trailing dot), ready to paste into a zone file.
//
// It refuses a domain that is not among opt.Domains (when any are given)
// and options New would refuse.
func DNSRecords(domain string, opt Options) (string, error) {
	cfg, err := opt.validate()
	if err != nil {
		return "", err
	}
	d, err := policy.NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("keyserver: dns: %w", err)
	}
	if len(cfg.domains) > 0 && !slices.Contains(cfg.domains, d) {
		return "", fmt.Errorf("keyserver: dns: %s is not a configured domain", d)
	}
	if cfg.hostname == "" {
		return "", fmt.Errorf("keyserver: dns: Hostname is required")
	}
	host := cfg.hostname + "."
	rua := cfg.tlsrpt
	if rua == "" {
		rua = "postmaster@" + d
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "; DNS records for %s, served by sealmail on %s.\n", d, cfg.hostname)
	if policy.IsIDN(d) {
		fmt.Fprintf(&b, "; %s is %s in DNS (IDNA A-labels).\n", policy.DisplayDomain(d), d)
	}
	fmt.Fprintf(&b, "; %s needs A and/or AAAA records for this server, and matching PTR records.\n", cfg.hostname)
	tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
	rec := func(name, typ, data string) {
		fmt.Fprintf(tw, "%s.\t%s\tIN\t%s\t%s\n", name, dnsTTL, typ, data)
	}
	rec(d, "MX", "10 "+host)
	spf := cfg.spf
	if spf == "" {
		spf = "v=spf1 mx -all"
	}
	rec(d, "TXT", txtData(spf))
	var retired []string
	for _, k := range cfg.dkim {
		if k.Domain != d {
			continue
		}
		if k.Status == "retired" {
			retired = append(retired, k.Selector)
			continue
		}
		rec(k.Selector+"._domainkey."+d, "TXT", txtData(k.Record))
	}
	dmarc := cfg.dmarcrpt
	if dmarc == "" {
		dmarc = "postmaster@" + d
	}
	rec("_dmarc."+d, "TXT", txtData("v=DMARC1; p=reject; rua=mailto:"+dmarc))
	rec("openpgpkey."+d, "CNAME", host)
	if cfg.autoconfigEnabled() {
		rec("autoconfig."+d, "CNAME", host)
	}
	if cfg.mtasts != nil {
		rec("mta-sts."+d, "CNAME", host)
		rec("_mta-sts."+d, "TXT", strconv.Quote("v=STSv1; id="+mtastsID(mtastsText(cfg.mtasts))+";"))
	}
	rec("_smtp._tls."+d, "TXT", strconv.Quote("v=TLSRPTv1; rua=mailto:"+rua))
	// RFC 8314 §5.1: implicit TLS is preferred, so it gets priority 0.
	for _, e := range cfg.imap {
		name, prio := "_imaps._tcp.", "0"
		if e.TLS == StartTLS {
			name, prio = "_imap._tcp.", "10"
		}
		rec(name+d, "SRV", prio+" 1 "+strconv.Itoa(e.Port)+" "+e.Host+".")
	}
	// POP3 after IMAP: a client that can do both should take IMAP (RFC
	// 6186 §3.4 compares priorities across the services).
	for _, e := range cfg.pop3 {
		name, prio := "_pop3s._tcp.", "20"
		if e.TLS == StartTLS {
			name, prio = "_pop3._tcp.", "30"
		}
		rec(name+d, "SRV", prio+" 1 "+strconv.Itoa(e.Port)+" "+e.Host+".")
	}
	for _, e := range cfg.submission {
		name, prio := "_submissions._tcp.", "0"
		if e.TLS == StartTLS {
			name, prio = "_submission._tcp.", "10"
		}
		rec(name+d, "SRV", prio+" 1 "+strconv.Itoa(e.Port)+" "+e.Host+".")
	}
	if len(cfg.pop3) == 0 {
		rec("_pop3._tcp."+d, "SRV", "0 0 0 .")
		rec("_pop3s._tcp."+d, "SRV", "0 0 0 .")
	}
	if err := tw.Flush(); err != nil {
		return "", fmt.Errorf("keyserver: dns: %w", err)
	}
	for _, k := range cfg.dkim {
		if k.Domain == d && k.Status == "pending" {
			fmt.Fprintf(&b, "; DKIM selector %s is new: publish it now; sealmail signs with it once it sees it in DNS\n", k.Selector)
			fmt.Fprintf(&b, "; (or at once with: sealmail dkim activate %s).\n", d)
		}
	}
	for _, sel := range retired {
		fmt.Fprintf(&b, "; DKIM selector %s is retired: remove %s._domainkey.%s (or publish it with an empty p= to revoke it).\n", sel, sel, d)
	}
	b.WriteString("; DMARC p=reject: mail claiming to be from " + d + " that neither SPF nor DKIM vouches for is refused.\n")
	b.WriteString("; Start with p=none if other services send mail as " + d + " and you have not listed them yet.\n")
	if !cfg.autoconfigEnabled() {
		b.WriteString("; Autoconfig needs both IMAP and submission endpoints: no autoconfig. name.\n")
	}
	if cfg.mtasts == nil {
		b.WriteString("; MTA-STS is not configured: no mta-sts. name and no _mta-sts record.\n")
	}
	if d != cfg.hostname {
		fmt.Fprintf(&b, "; The WKD direct method is https://%s/.well-known/openpgpkey/: proxy or redirect it\n", d)
		fmt.Fprintf(&b, "; to this server if %s's web server is elsewhere; clients try openpgpkey.%s first.\n", d, d)
	}
	return b.String(), nil
}

// txtData renders a TXT record's text as zone-file strings of at most
// 255 bytes each (RFC 1035 §3.3.14), which receivers join (RFC 7208
// §3.3, RFC 6376 §3.6.2.2). text is printable ASCII without quotes or
// backslashes (validate checks).
func txtData(text string) string {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, `"`+text[:255]+`"`)
		text = text[255:]
	}
	return strings.Join(append(parts, `"`+text+`"`), " ")
}
