package keyserver

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/sealmail/sealmail/policy"
)

// dnsTTL is the TTL printed with every record: one hour, short enough to
// fix mistakes quickly.
const dnsTTL = "3600"

// DNSRecords returns the zone-file lines an operator publishes for domain
// (what `sealmail dns DOMAIN` prints): MX; the openpgpkey. name, and
// autoconfig. and mta-sts. when those are served, as CNAMEs to
// opt.Hostname; the _mta-sts (RFC 8461
// §3.1) and _smtp._tls (RFC 8460 §3) TXT records; and RFC 6186/8314 SRV
// records for the configured IMAP and submission endpoints. Names are
// absolute (trailing dot), ready to paste into a zone file.
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
	for _, e := range cfg.submission {
		name, prio := "_submissions._tcp.", "0"
		if e.TLS == StartTLS {
			name, prio = "_submission._tcp.", "10"
		}
		rec(name+d, "SRV", prio+" 1 "+strconv.Itoa(e.Port)+" "+e.Host+".")
	}
	if err := tw.Flush(); err != nil {
		return "", fmt.Errorf("keyserver: dns: %w", err)
	}
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
