package smtp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"iter"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/filter"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Tests of the inbound checks over the real server: a local DNS server
// (dnstest) answers SPF, DKIM, DMARC, block list and country queries
// for the client 127.0.0.1.

// traces collects the delivery trace.
type traces struct {
	mu sync.Mutex
	rs []*trace.Inbound
}

func (tr *traces) Trace(r trace.Record) {
	if r.Kind != store.TraceInbound || r.In == nil || r.Ref == "" {
		panic("not an inbound trace record")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.rs = append(tr.rs, r.In)
}

// last returns the last record, failing if there is none.
func (tr *traces) last(t *testing.T) *trace.Inbound {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.rs) == 0 {
		t.Fatal("no trace record")
	}
	return tr.rs[len(tr.rs)-1]
}

// reason returns the first reason of r with check, or fails.
func reason(t *testing.T, r *trace.Inbound, check string) trace.Reason {
	t.Helper()
	for _, rs := range r.Reasons {
		if rs.Check == check {
			return rs
		}
	}
	t.Fatalf("trace record has no %q reason: %+v", check, r)
	return trace.Reason{}
}

// inboundZone is the test world's DNS.
var inboundZone = []string{
	// SPF: pass for 127.0.0.1, fail for it, and the DMARC policies.
	`good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	`bad.test. 300 IN TXT "v=spf1 -all"`,
	`soft.test. 300 IN TXT "v=spf1 ~all"`,
	`example.org. 300 IN TXT "v=spf1 -all"`, // ours: nobody outside sends as us
	`quarantine.test. 300 IN TXT "v=spf1 ~all"`,
	`_dmarc.quarantine.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
	`rejecting.test. 300 IN TXT "v=spf1 ~all"`,
	`_dmarc.rejecting.test. 300 IN TXT "v=DMARC1; p=reject"`,
	`_dmarc.signed.test. 300 IN TXT "v=DMARC1; p=reject"`,
	"nospf.test. 300 IN A 192.0.2.1",
}

type inboundEnv struct {
	*testEnv
	dns    *dnstest.Server
	traces *traces
	chk    *inbound.Checker
}

// newInboundEnv starts a server whose inbound checks ask a local DNS
// server; edit may change the checker's options.
func newInboundEnv(t *testing.T, edit func(*inbound.Options)) *inboundEnv {
	t.Helper()
	ds := dnstest.Start(t, inboundZone...)
	// No cache: tests change records between messages.
	res, err := resolver.New(resolver.Options{Server: ds.Addr, Timeout: time.Second, Attempts: 1, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ie := &inboundEnv{dns: ds, traces: &traces{}}
	ie.testEnv = newEnv(t, func(o *Options) {
		db := o.Store.(store.Store)
		opt := inbound.Options{
			Hostname: o.Hostname,
			Domains:  o.Domains,
			Resolver: res,
			Store:    db,
			Tracer:   ie.traces,
			IPZones:  []inbound.Zone{{Name: "zen.test", Weight: 10}, {Name: "small.test", Weight: 3}},
		}
		if edit != nil {
			edit(&opt)
		}
		c, err := inbound.New(opt)
		if err != nil {
			t.Fatal(err)
		}
		ie.chk = c
		o.Inbound = c
	})
	return ie
}

// send runs one transaction from sender to alice and returns the reply
// to RCPT (if not 250) or to the data.
func (ie *inboundEnv) send(sender, msg string) string {
	rc := dialRaw(ie.t, ie.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("MAIL FROM:<"+sender+">", "250 ")
	rc.send("RCPT TO:<alice@example.org>\r\n")
	if r := rc.reply(); !strings.HasPrefix(r, "250 ") {
		rc.cmd("QUIT", "221")
		return r
	}
	rc.cmd("DATA", "354")
	rc.send(msg + ".\r\n")
	r := rc.reply()
	rc.cmd("QUIT", "221")
	return r
}

func fromMsg(from, subject string) string {
	return "From: <" + from + ">\r\nTo: alice@example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@x.test>\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\nHello there\r\n"
}

func TestInboundSPF(t *testing.T) {
	ie := newInboundEnv(t, nil)
	if r := ie.send("a@bad.test", fromMsg("a@bad.test", "spf-fail")); !strings.HasPrefix(r, "550 5.7.23 ") {
		t.Errorf("SPF fail of a foreign domain: %q, want 550 5.7.23", r)
	}
	rec := ie.traces.last(t)
	if rec.Result != "refused" || rec.From != "a@bad.test" || rec.IP != "127.0.0.1" || reason(t, rec, "spf").Result != "fail" {
		t.Errorf("trace: %+v", rec)
	}
	// Our own domain, from outside, with its -all.
	if r := ie.send("ceo@example.org", fromMsg("ceo@example.org", "spoof")); !strings.HasPrefix(r, "550 5.7.23 ") {
		t.Errorf("SPF fail of our own domain: %q", r)
	}
	// A pass is delivered, with an Authentication-Results field of ours.
	if r := ie.send("a@good.test", fromMsg("a@good.test", "spf-pass")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("SPF pass: %q", r)
	}
	msgs := ie.inbox("alice@example.org")
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	if !strings.HasPrefix(msgs[0], "Return-Path: <a@good.test>\r\nAuthentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=good.test") {
		t.Errorf("copy starts:\n%s", msgs[0][:min(300, len(msgs[0]))])
	}
	if !strings.Contains(msgs[0], "\r\nX-Spam-Status: No, score=") {
		t.Errorf("no X-Spam-Status:\n%s", msgs[0])
	}
	if rec := ie.traces.last(t); rec.Result != "delivered" || !strings.HasPrefix(rec.Reply, "250 2.0.0") {
		t.Errorf("trace of a delivery: %+v", rec)
	}
	// SPF policy "mark" lets the fail through, marked.
	ie2 := newInboundEnv(t, func(o *inbound.Options) {
		o.Policy, _ = policy.NewInbound(policy.InboundOptions{SPFFail: policy.MarkOnly})
	})
	if r := ie2.send("a@bad.test", fromMsg("a@bad.test", "spf-mark")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("SPF fail with mark: %q", r)
	}
	if m := ie2.inbox("alice@example.org"); len(m) != 1 || !strings.Contains(m[0], "spf=fail smtp.mailfrom=bad.test") {
		t.Errorf("marked copy: %q", m)
	}
}

func TestInboundListsAndCountries(t *testing.T) {
	ie := newInboundEnv(t, func(o *inbound.Options) {
		o.CountryZone = "zz.countries.test"
		o.Policy, _ = policy.NewInbound(policy.InboundOptions{RefuseCountries: []string{"KP"}})
	})
	ie.dns.Add("1.0.0.127.zz.countries.test. 300 IN A 127.0.1.20") // 276: DE
	if r := ie.send("a@good.test", fromMsg("a@good.test", "clean")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("clean client: %q", r)
	}
	if c := reason(t, ie.traces.last(t), "country"); c.Result != "DE" {
		t.Errorf("country reason: %+v", c)
	}
	// Listed: refused at RCPT, naming the list, before any data.
	ie.dns.Add("1.0.0.127.zen.test. 300 IN A 127.0.0.2")
	if r := ie.send("a@good.test", fromMsg("a@good.test", "listed")); !strings.HasPrefix(r, "554 5.7.1 ") || !strings.Contains(r, "zen.test") {
		t.Errorf("listed client: %q, want 554 5.7.1 naming zen.test", r)
	}
	rec := ie.traces.last(t)
	if rec.Result != "refused" || !strings.Contains(reason(t, rec, "dnsbl").Detail, "zen.test") || reason(t, rec, "dnsbl").Score != 10 {
		t.Errorf("trace: %+v", rec)
	}
	// An allow-listed partner network passes the list.
	rule, err := ie.db.AddFilterRule(context.Background(), store.FilterRule{Action: store.FilterAllow, Kind: store.FilterCIDR, Value: "127.0.0.0/8", Note: "partner"})
	if err != nil {
		t.Fatal(err)
	}
	ie.chk.RulesChanged()
	if r := ie.send("a@good.test", fromMsg("a@good.test", "partner")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("allow-listed partner: %q", r)
	}
	if a := reason(t, ie.traces.last(t), "allow"); !strings.Contains(a.Detail, "127.0.0.0/8") {
		t.Errorf("allow reason: %+v", a)
	}
	ie.db.RemoveFilterRule(context.Background(), rule.ID)
	ie.dns.Replace("1.0.0.127.zen.test", dns.TypeA)
	// A refused country.
	ie.dns.Replace("1.0.0.127.zz.countries.test", dns.TypeA, "1.0.0.127.zz.countries.test. 300 IN A 127.0.1.152") // 408: KP
	ie2 := newInboundEnvSharing(t, ie)
	if r := ie2.send("a@good.test", fromMsg("a@good.test", "kp")); !strings.HasPrefix(r, "554 5.7.1 ") {
		t.Errorf("refused country: %q", r)
	}
	// A deny entry of the recipient.
	ctx := context.Background()
	if _, err := ie.db.AddFilterRule(ctx, store.FilterRule{Owner: "alice@example.org", Action: store.FilterDeny, Kind: store.FilterDomain, Value: "good.test"}); err != nil {
		t.Fatal(err)
	}
	ie.chk.RulesChanged()
	ie.dns.Replace("1.0.0.127.zz.countries.test", dns.TypeA)
	if r := ie.send("x@sub.good.test", fromMsg("x@sub.good.test", "denied")); !strings.HasPrefix(r, "554 5.7.1 ") {
		t.Errorf("denied sender domain: %q", r)
	}
	if d := reason(t, ie.traces.last(t), "deny"); !strings.Contains(d.Detail, "good.test") || !strings.Contains(d.Detail, "alice@example.org") {
		t.Errorf("deny reason: %+v", d)
	}
}

// newInboundEnvSharing is a second server, refusing KP, over the same
// DNS server.
func newInboundEnvSharing(t *testing.T, ie *inboundEnv) *inboundEnv {
	t.Helper()
	res, _ := resolver.New(resolver.Options{Server: ie.dns.Addr, Timeout: time.Second, Attempts: 1, CacheEntries: -1})
	out := &inboundEnv{dns: ie.dns, traces: &traces{}}
	out.testEnv = newEnv(t, func(o *Options) {
		pol, _ := policy.NewInbound(policy.InboundOptions{RefuseCountries: []string{"KP"}})
		c, err := inbound.New(inbound.Options{Hostname: o.Hostname, Domains: o.Domains, Resolver: res, Store: o.Store.(store.Store),
			Tracer: out.traces, CountryZone: "zz.countries.test", Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		out.chk = c
		o.Inbound = c
	})
	return out
}

func TestInboundDNSFailure(t *testing.T) {
	ie := newInboundEnv(t, nil)
	ie.dns.Fail("broken.test", dns.RcodeServerFailure)
	if r := ie.send("a@broken.test", fromMsg("a@broken.test", "servfail")); !strings.HasPrefix(r, "451 4.4.3 ") {
		t.Errorf("SPF lookup SERVFAIL: %q, want 451 4.4.3", r)
	}
	// A block list that could refuse on its own and does not answer.
	ie.dns.Silence("1.0.0.127.zen.test", true)
	if r := ie.send("a@good.test", fromMsg("a@good.test", "silent-list")); !strings.HasPrefix(r, "451 4.4.3 ") {
		t.Errorf("silent block list: %q, want 451 4.4.3", r)
	}
	if rec := ie.traces.last(t); rec.Result != "deferred" {
		t.Errorf("trace: %+v", rec)
	}
	ie.dns.Silence("1.0.0.127.zen.test", false)
	// DMARC's record unreadable, and nothing aligned: defer at the end
	// of the data.
	ie.dns.Fail("_dmarc.good.test", dns.RcodeServerFailure)
	if r := ie.send("a@nospf.test", fromMsg("someone@good.test", "dmarc-servfail")); !strings.HasPrefix(r, "451 4.4.3 ") {
		t.Errorf("DMARC lookup SERVFAIL: %q, want 451 4.4.3", r)
	}
	ie.expectEmpty()
}

func TestInboundDMARC(t *testing.T) {
	ie := newInboundEnv(t, nil)
	// quarantine: delivered to Junk.
	if r := ie.send("a@nospf.test", fromMsg("boss@quarantine.test", "dmarc-quarantine")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("DMARC quarantine: %q", r)
	}
	junk := ie.box("alice@example.org", "Junk")
	if len(junk) != 1 || len(ie.inbox("alice@example.org")) != 0 {
		t.Fatalf("quarantined message: %d in Junk, %d in INBOX", len(junk), len(ie.inbox("alice@example.org")))
	}
	if !strings.Contains(junk[0], "dmarc=fail header.from=quarantine.test") || !strings.Contains(junk[0], "X-Spam-Flag: YES") {
		t.Errorf("junk copy:\n%s", junk[0])
	}
	rec := ie.traces.last(t)
	if rec.Result != "junk" || reason(t, rec, "dmarc").Detail != "quarantine.test p=quarantine" {
		t.Errorf("trace: %+v", rec)
	}
	// reject: 550 5.7.1 at the end of the data.
	if r := ie.send("a@nospf.test", fromMsg("boss@rejecting.test", "dmarc-reject")); !strings.HasPrefix(r, "550 5.7.1 ") {
		t.Errorf("DMARC reject: %q", r)
	}
	// A site that only marks.
	ie2 := newInboundEnv(t, func(o *inbound.Options) {
		o.Policy, _ = policy.NewInbound(policy.InboundOptions{DMARCMarkOnly: []string{"example.org"}})
	})
	if r := ie2.send("a@nospf.test", fromMsg("boss@rejecting.test", "dmarc-mark")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("DMARC reject on a mark-only domain: %q", r)
	}
	if m := ie2.inbox("alice@example.org"); len(m) != 1 || !strings.Contains(m[0], "dmarc=fail") {
		t.Errorf("marked copy: %q", m)
	}
}

// TestInboundDKIM signs with a key the DNS publishes: DKIM passes and
// aligns, so DMARC passes although SPF says nothing.
func TestInboundDKIM(t *testing.T) {
	ie := newInboundEnv(t, nil)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ie.dns.Add(`sel._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"`)
	// A forged result claiming our hostname must not survive.
	msg := "Authentication-Results: mx.example.org; dkim=pass header.d=forged.test\r\n" +
		"X-Spam-Status: No, score=-100\r\n" + fromMsg("news@signed.test", "signed")
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "signed.test", Selector: "sel", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	if r := ie.send("news@nospf.test", signed.String()); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("signed message: %q", r)
	}
	m := ie.inbox("alice@example.org")
	if len(m) != 1 {
		t.Fatalf("%d messages", len(m))
	}
	if !strings.Contains(m[0], "dkim=pass header.d=signed.test") || !strings.Contains(m[0], "dmarc=pass header.from=signed.test") {
		t.Errorf("copy:\n%s", m[0])
	}
	if strings.Contains(m[0], "forged.test") || strings.Contains(m[0], "score=-100") {
		t.Errorf("a forged field survived:\n%s", m[0])
	}
	if strings.Count(m[0], "\nAuthentication-Results:") != 1 || strings.Count(m[0], "\nX-Spam-Status:") != 1 {
		t.Errorf("fields:\n%s", m[0])
	}
	rec := ie.traces.last(t)
	if reason(t, rec, "dkim").Result != "pass" || reason(t, rec, "dmarc").Result != "pass" {
		t.Errorf("trace: %+v", rec)
	}
	// Tampered after signing: DKIM fails, DMARC fails, p=reject refuses.
	tampered := strings.Replace(signed.String(), "Hello there", "Hello thief", 1)
	if r := ie.send("news@nospf.test", tampered); !strings.HasPrefix(r, "550 5.7.1 ") {
		t.Errorf("tampered signed message: %q", r)
	}
}

func TestInboundGreylist(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ie := newInboundEnv(t, func(o *inbound.Options) {
		o.Greylist = inbound.GreylistOptions{Enabled: true, AutoAllow: 2}
		o.Now = clock
	})
	if r := ie.send("a@good.test", fromMsg("a@good.test", "g1")); !strings.HasPrefix(r, "451 4.7.1 ") {
		t.Fatalf("first attempt: %q, want 451 4.7.1", r)
	}
	advance(time.Minute)
	if r := ie.send("a@good.test", fromMsg("a@good.test", "g1")); !strings.HasPrefix(r, "451 4.7.1 ") {
		t.Errorf("retry too soon: %q", r)
	}
	advance(5 * time.Minute)
	if r := ie.send("a@good.test", fromMsg("a@good.test", "g1")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("retry after the delay: %q", r)
	}
	if g := reason(t, ie.traces.last(t), "greylist"); g.Result != "pass" {
		t.Errorf("greylist reason: %+v", g)
	}
	// A second sender from the same network: greylisted once, then the
	// network has delivered twice and is allowed.
	if r := ie.send("b@good.test", fromMsg("b@good.test", "g2")); !strings.HasPrefix(r, "451 ") {
		t.Errorf("new triplet: %q", r)
	}
	advance(6 * time.Minute)
	if r := ie.send("b@good.test", fromMsg("b@good.test", "g2")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("new triplet after the delay: %q", r)
	}
	if r := ie.send("c@good.test", fromMsg("c@good.test", "g3")); !strings.HasPrefix(r, "250 ") {
		t.Errorf("auto-allowed network: %q", r)
	}
}

// TestInboundSpam scores content with the real classifier: a spammy
// message goes to Junk, a hammy one to INBOX, and the trace gives the
// score and its top weights without any token's text.
func TestInboundSpam(t *testing.T) {
	var fs *filter.Service
	ie := newInboundEnv(t, func(o *inbound.Options) {
		var err error
		fs, err = filter.New(filter.Options{Store: o.Store.(store.Store)})
		if err != nil {
			t.Fatal(err)
		}
		o.Classifier = fs
	})
	ctx := context.Background()
	seq := func(msgs ...string) iter.Seq2[io.Reader, error] {
		return func(yield func(io.Reader, error) bool) {
			for _, m := range msgs {
				if !yield(strings.NewReader(m), nil) {
					return
				}
			}
		}
	}
	spam := func(i int) string {
		return fmt.Sprintf("From: <deals@shop.test>\r\nSubject: cheap pills discount %d\r\n\r\nBuy cheap pills viagra pharmacy discount now http://pills.test/%d\r\n", i, i)
	}
	ham := func(i int) string {
		return fmt.Sprintf("From: <bob@good.test>\r\nSubject: project meeting %d\r\n\r\nCan we move the project meeting to Tuesday, agenda attached %d\r\n", i, i)
	}
	var spams, hams []string
	for i := range 10 {
		spams, hams = append(spams, spam(i)), append(hams, ham(i))
	}
	if _, err := fs.LearnOrg(ctx, true, seq(spams...)); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.LearnOrg(ctx, false, seq(hams...)); err != nil {
		t.Fatal(err)
	}
	if r := ie.send("deals@good.test", "From: <deals@good.test>\r\nSubject: cheap viagra pills\r\n\r\nDiscount pharmacy, buy cheap pills now http://pills.test/x\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("spam: %q", r)
	}
	rec := ie.traces.last(t)
	sp := reason(t, rec, "spam")
	if rec.Result != "junk" || !strings.HasPrefix(sp.Result, "p=0.9") || sp.Score < 8 || !strings.Contains(sp.Detail, "top=") {
		t.Errorf("spam trace: %+v", rec)
	}
	for _, word := range []string{"viagra", "pills", "pharmacy", "discount"} {
		for _, rs := range rec.Reasons {
			if strings.Contains(rs.Detail, word) || strings.Contains(rs.Result, word) {
				t.Errorf("the trace names token %q: %+v", word, rs)
			}
		}
	}
	if j := ie.box("alice@example.org", "Junk"); len(j) != 1 || !strings.Contains(j[0], "X-Spam-Status: Yes, score=") {
		t.Errorf("Junk: %q", j)
	}
	if r := ie.send("bob@good.test", ham(99)); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("ham: %q", r)
	}
	if in := ie.inbox("alice@example.org"); len(in) != 1 {
		t.Errorf("ham went elsewhere: %d in INBOX", len(in))
	}
}

// TestInboundTrusted: a trusted network skips every check (the listed
// client and the SPF fail pass), but forged fields are still removed.
func TestInboundTrusted(t *testing.T) {
	ie := newInboundEnv(t, func(o *inbound.Options) {
		o.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	ie.dns.Add("1.0.0.127.zen.test. 300 IN A 127.0.0.2")
	msg := "Authentication-Results: mx.example.org; spf=pass\r\n" + fromMsg("a@bad.test", "trusted")
	if r := ie.send("a@bad.test", msg); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("trusted client: %q", r)
	}
	m := ie.inbox("alice@example.org")
	if len(m) != 1 || strings.Count(m[0], "\nAuthentication-Results:") != 1 || !strings.Contains(m[0], "Authentication-Results: mx.example.org; none") {
		t.Errorf("copy: %q", m)
	}
	if r := reason(t, ie.traces.last(t), "trusted"); r.Detail != "127.0.0.1" {
		t.Errorf("trusted reason: %+v", r)
	}
}
