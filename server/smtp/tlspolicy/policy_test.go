package tlspolicy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/smtp/queue"
)

func tlsaRR(usage, selector, mtype int, data []byte) string {
	return "_25._tcp.mx.example.test. 300 IN TLSA " + strings.Join([]string{itoa(usage), itoa(selector), itoa(mtype)}, " ") +
		" " + hex.EncodeToString(data)
}

func itoa(n int) string { return string(rune('0' + n)) }

func spkiSHA256(c tls.Certificate) []byte {
	h := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return h[:]
}

// TestDANE: with DNSSEC-validated MX, address and TLSA answers, TLS is
// required and checked against the TLSA records (DANE-EE with a
// certificate no CA vouches for, DANE-TA with the CA the server sends);
// a mismatch fails; unvalidated answers, or DANE turned off, leave it
// out; DANE beats an MTA-STS policy that does not list the host.
func TestDANE(t *testing.T) {
	e := newEnv(t)
	e.dns.SetAuthentic(true)
	p := e.policies(t, 0, false)
	q := mxQuery()
	q.MXAuthentic = true

	self := newCA(t, "nobody").issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	sk := startSink(t, &self, false)
	set := func(rrs ...string) {
		t.Helper()
		if err := e.dns.Replace("_25._tcp.mx.example.test", 52, rrs...); err != nil {
			t.Fatal(err)
		}
	}

	// DANE-EE, SPKI, SHA-256: no CA, the name and dates do not matter.
	set(tlsaRR(3, 1, 1, spkiSHA256(self)))
	o := deliver(t, p, q, sk)
	if o.err != nil || o.req.Policy != queue.PolicyDANE || !o.req.Required || !o.tls {
		t.Fatalf("DANE-EE match: %+v", o)
	}
	expired := newCA(t, "nobody").issue(t, time.Now().Add(-72*time.Hour), "wrong.example")
	sk2 := startSink(t, &expired, false)
	h := sha512.Sum512(expired.Leaf.Raw)
	set(tlsaRR(3, 0, 2, h[:]))
	if o := deliver(t, p, q, sk2); o.err != nil || !o.tls {
		t.Fatalf("DANE-EE full certificate SHA-512, expired, other name: %+v", o)
	}
	// A record for another key: refused.
	set(tlsaRR(3, 1, 1, make([]byte, 32)))
	if o := deliver(t, p, q, sk); o.err == nil || !strings.Contains(o.err.Error(), "no TLSA record matches") {
		t.Fatalf("DANE-EE mismatch: %+v", o)
	}

	// DANE-TA: the CA certificate, sent in the chain.
	good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	sk3 := startSink(t, &good, false)
	set(tlsaRR(2, 0, 0, e.ca.cert.Raw))
	if o := deliver(t, p, q, sk3); o.err != nil || !o.tls {
		t.Fatalf("DANE-TA: %+v", o)
	}
	// The recipient domain is a reference identifier too.
	byDomain := e.ca.issue(t, time.Now().Add(-time.Hour), "example.test")
	if o := deliver(t, p, q, startSink(t, &byDomain, false)); o.err != nil {
		t.Fatalf("DANE-TA for the recipient domain: %+v", o)
	}
	// DANE-TA does check names and dates.
	other := e.ca.issue(t, time.Now().Add(-time.Hour), "other.example")
	if o := deliver(t, p, q, startSink(t, &other, false)); o.err == nil {
		t.Fatalf("DANE-TA with another name: %+v", o)
	}
	old := e.ca.issue(t, time.Now().Add(-72*time.Hour), "mx.example.test")
	if o := deliver(t, p, q, startSink(t, &old, false)); o.err == nil {
		t.Fatalf("DANE-TA expired: %+v", o)
	}
	// A plaintext-only server fails under DANE.
	plain := startSink(t, nil, false)
	if o := deliver(t, p, q, plain); o.err == nil || plain.messages() != 0 {
		t.Fatalf("DANE, plaintext sink: %+v", o)
	}

	// Only unusable records (PKIX-EE): TLS required, not verified.
	set(tlsaRR(1, 1, 1, spkiSHA256(self)))
	if o := deliver(t, p, q, sk2); o.err != nil || o.req.Policy != PolicyDANEUnauth || !o.req.Required {
		t.Fatalf("unusable TLSA: %+v", o)
	}
	if o := deliver(t, p, q, plain); o.err == nil {
		t.Fatalf("unusable TLSA, plaintext sink: %+v", o)
	}

	// DANE beats MTA-STS: the enforce policy lists another host only.
	set(tlsaRR(3, 1, 1, spkiSHA256(self)))
	ps := startPolicyServer(t, e.ca, "example.test", strings.Replace(enforcePolicy, "mx.example.test", "other.example.test", 1))
	e.publishPolicy(t, "1")
	withSTS := e.policies(t, ps.port(), false)
	if o := deliver(t, withSTS, q, sk); o.err != nil || o.req.Policy != queue.PolicyDANE {
		t.Fatalf("DANE with MTA-STS: %+v", o)
	}
	e.dns.Replace("_mta-sts.example.test", 16)

	// The MX answer not validated: no DANE.
	q2 := q
	q2.MXAuthentic = false
	if o := deliver(t, p, q2, plain); o.err != nil || o.req.Policy != queue.PolicySTARTTLS {
		t.Fatalf("insecure MX: %+v", o)
	}
	// DANE turned off.
	if o := deliver(t, e.policies(t, 0, true), q, plain); o.err != nil || o.req.Policy != queue.PolicySTARTTLS {
		t.Fatalf("NoDANE: %+v", o)
	}
	// The TLSA answer not validated: no DANE.
	e.dns.SetAuthentic(false)
	if r, err := p.tlsaOnly(q); err != nil || r {
		t.Fatalf("unvalidated TLSA: %v %v", r, err)
	}
	e.dns.SetAuthentic(true)
	// A TLSA lookup that fails: this host cannot be used now.
	e.dns.Fail("_25._tcp.mx.example.test", 2)
	if _, err := p.Require(ctxBg, q); err == nil || !strings.Contains(err.Error(), "TLSA") {
		t.Fatalf("TLSA SERVFAIL: %v", err)
	}
	e.dns.Fail("_25._tcp.mx.example.test", 0)
	// No TLSA record (authenticated denial): no DANE.
	e.dns.Replace("_25._tcp.mx.example.test", 52)
	if o := deliver(t, p, q, plain); o.err != nil || o.req.Policy != queue.PolicySTARTTLS {
		t.Fatalf("no TLSA: %+v", o)
	}
}

// tlsaOnly reports whether DANE applies to q.
func (p *Policies) tlsaOnly(q queue.TLSQuery) (bool, error) {
	_, present, err := p.tlsa(ctxBg, q)
	return present, err
}

// TestREQUIRETLS: a REQUIRETLS message goes only over verified TLS to a
// server that offers REQUIRETLS; a host that cannot be verified is
// skipped (so the message bounces); TLS-Required: No relaxes policies,
// REQUIRETLS wins over it.
func TestREQUIRETLS(t *testing.T) {
	e := newEnv(t)
	p := e.policies(t, 0, false)
	q := mxQuery()
	q.RequireTLS = true

	good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	withReq := startSink(t, &good, true)
	withoutReq := startSink(t, &good, false)
	plain := startSink(t, nil, false)

	// No DANE, no MTA-STS, MX not DNSSEC-signed: no way to verify, so
	// nothing is required, which the engine refuses (5.7.30).
	o := deliver(t, p, q, withReq)
	if o.err == nil || !strings.Contains(o.err.Error(), "5.7.30") || o.req.Policy != PolicyUnverifiable || withReq.messages() != 0 {
		t.Fatalf("unverifiable host: %+v", o)
	}
	// A DNSSEC-signed MX: PKIX for the host name.
	q.MXAuthentic = true
	o = deliver(t, p, q, withReq)
	if o.err != nil || o.req.Policy != PolicyDNSSECPKIX || !o.tls || withReq.messages() != 1 {
		t.Fatalf("DNSSEC MX, REQUIRETLS sink: %+v", o)
	}
	if o := deliver(t, p, q, withoutReq); o.err == nil || !strings.Contains(o.err.Error(), "REQUIRETLS not offered") {
		t.Fatalf("server without REQUIRETLS: %+v", o)
	}
	if o := deliver(t, p, q, plain); o.err == nil || plain.messages() != 0 {
		t.Fatalf("plaintext server: %+v", o)
	}
	self := newCA(t, "nobody").issue(t, time.Now().Add(-time.Hour), "mx.example.test")
	if o := deliver(t, p, q, startSink(t, &self, true)); o.err == nil {
		t.Fatalf("untrusted certificate: %+v", o)
	}
	// An MTA-STS policy listing the host verifies it, even in testing
	// mode.
	q.MXAuthentic = false
	ps := startPolicyServer(t, e.ca, "example.test", strings.Replace(enforcePolicy, "enforce", "testing", 1))
	e.publishPolicy(t, "1")
	withSTS := e.policies(t, ps.port(), false)
	if o := deliver(t, withSTS, q, withReq); o.err != nil || o.req.Policy != PolicyMTASTSTesting || !o.req.Required {
		t.Fatalf("REQUIRETLS under a testing policy: %+v", o)
	}
	other := q
	other.Host = "backup.example.test"
	if o := deliver(t, withSTS, other, withReq); o.err == nil || withReq.messages() != 2 {
		t.Fatalf("REQUIRETLS to a host the policy does not list: %+v", o)
	}
	// TLS-Required: No: policies relaxed, delivered in plaintext even
	// under enforce; with REQUIRETLS as well, REQUIRETLS wins.
	ps.setPolicy(enforcePolicy)
	e.publishPolicy(t, "2")
	relaxed := mxQuery()
	relaxed.TLSOptional = true
	strict := e.policies(t, ps.port(), false)
	if o := deliver(t, strict, relaxed, plain); o.err != nil || o.req.Policy != PolicyTLSOptional || plain.messages() != 1 {
		t.Fatalf("TLS-Required: No under enforce: %+v", o)
	}
	relaxed.RequireTLS = true
	if o := deliver(t, strict, relaxed, plain); o.err == nil || plain.messages() != 1 {
		t.Fatalf("REQUIRETLS with TLS-Required: No: %+v", o)
	}
	// A configured transport: PKIX for its name; without REQUIRETLS,
	// opportunistic whatever the domain publishes.
	tr := mxQuery()
	tr.Transport = true
	if o := deliver(t, strict, tr, plain); o.err != nil || o.req.Policy != queue.PolicySTARTTLS {
		t.Fatalf("transport: %+v", o)
	}
	tr.RequireTLS = true
	if o := deliver(t, strict, tr, withReq); o.err != nil || o.req.Policy != PolicyTransportPKIX || !o.tls {
		t.Fatalf("transport with REQUIRETLS: %+v", o)
	}
	// The smarthost (no domain) is opportunistic.
	if r, err := strict.Require(ctxBg, queue.TLSQuery{Host: "smarthost.example"}); err != nil || r.Required || r.Skip != "" {
		t.Fatalf("smarthost: %+v %v", r, err)
	}
}
