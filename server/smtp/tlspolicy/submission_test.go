package tlspolicy

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/server/smtp/autocrypt"
	"github.com/sealmail/sealmail/server/smtp/dkim"
	"github.com/sealmail/sealmail/server/smtp/queue"
	smtpsink "github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
)

// submitter is the real submission server of server/smtp in front of an
// engine, with the transforms cmd/sealmail installs (the Autocrypt
// header, then the DKIM signatures of example.org, whose records the
// env's DNS serves).
type submitter struct {
	t         *testing.T
	addr      string
	clientTLS *tls.Config
}

func startSubmission(t *testing.T, e *env, en *engine) *submitter {
	t.Helper()
	keys, err := dkim.Open(dkim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Ensure([]string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	recs, err := keys.Records("example.org")
	if err != nil || len(recs) != 2 {
		t.Fatalf("records: %v, %d", err, len(recs))
	}
	for _, s := range recs {
		if err := e.dns.Replace(s.DNSName(), 16, dkimTXT(s)); err != nil {
			t.Fatal(err)
		}
	}
	ac, err := autocrypt.New(autocrypt.Options{Accounts: en.db})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dkim.NewSigner(dkim.SignerOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	cert := e.ca.issue(t, time.Now().Add(-time.Hour), "mail.example.org")
	srv, err := smtpserver.New(smtpserver.Options{
		Hostname:  "mail.example.org",
		Domains:   []string{"example.org"},
		Store:     en.db,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		SpoolDir:  t.TempDir(),
		Logger:    slog.New(slog.NewTextHandler(en.logs, nil)),
		Submission: &smtpserver.SubmissionOptions{
			Accounts:   en.accts,
			Queue:      en.q,
			Transforms: []smtpserver.Transform{ac, signer},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(ctxBg) })
	return &submitter{t: t, addr: ln.Addr().String(),
		clientTLS: &tls.Config{RootCAs: e.ca.pool, ServerName: "mail.example.org"}}
}

// dkimTXT renders a selector's record as a zone-file line, its text
// split into strings of at most 255 bytes (RFC 1035 §3.3.14).
func dkimTXT(s dkim.Selector) string {
	txt := s.TXT()
	var parts []string
	for len(txt) > 255 {
		parts = append(parts, `"`+txt[:255]+`"`)
		txt = txt[255:]
	}
	parts = append(parts, `"`+txt+`"`)
	return s.DNSName() + ". 300 IN TXT " + strings.Join(parts, " ")
}

// send submits a message from alice to bob@example.test the way a mail
// program does (STARTTLS, AUTH PLAIN, MAIL with REQUIRETLS if asked) and
// returns the id the server accepted it under.
func (s *submitter) send(subject string, requireTLS bool) string {
	s.t.Helper()
	c, err := gosmtp.DialStartTLS(s.addr, s.clientTLS)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", alicePassword)); err != nil {
		s.t.Fatal(err)
	}
	if err := c.Mail("alice@example.org", &gosmtp.MailOptions{RequireTLS: requireTLS}); err != nil {
		s.t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test", nil); err != nil {
		s.t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		s.t.Fatal(err)
	}
	io.WriteString(w, "From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nSubject: "+subject+"\r\n\r\nHello, Bob.\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		s.t.Fatal(err)
	}
	_, id, ok := strings.Cut(resp.StatusText, "id ")
	if !ok {
		s.t.Fatalf("no id in %q", resp.StatusText)
	}
	c.Quit()
	return id
}

// checkSigned verifies msg's DKIM signatures with go-msgauth against the
// records in e's DNS: one Ed25519 and one RSA signature of example.org,
// both valid, and an Autocrypt header for alice under them.
func checkSigned(t *testing.T, e *env, msg []byte) {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return e.res.LookupTXT(ctxBg, name) },
	})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %v, %d signatures\n%s", err, len(vs), msg)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.org" {
			t.Errorf("signature of %s: %v", v.Domain, v.Err)
		}
		if !slices.Contains(v.HeaderKeys, "Autocrypt") && !slices.Contains(v.HeaderKeys, "autocrypt") {
			t.Errorf("the signature does not cover Autocrypt: %v", v.HeaderKeys)
		}
	}
	for _, alg := range []string{"a=ed25519-sha256", "a=rsa-sha256"} {
		if !bytes.Contains(msg, []byte(alg)) {
			t.Errorf("no %s signature", alg)
		}
	}
	if !bytes.Contains(msg, []byte("\r\nAutocrypt: addr=alice@example.org; keydata=")) {
		t.Errorf("no Autocrypt header:\n%s", msg)
	}
}

// TestSubmissionThroughPolicies is issue 12's path end to end over the
// real parts: a mail program submits to server/smtp's submission
// server, which signs (DKIM, Ed25519 and RSA) and adds Autocrypt; the
// queue's engine delivers by MX lookup through dnstest and asks
// Policies what TLS the MX needs; a go-smtp sink plays the MX. MTA-STS
// enforce delivers over verified TLS and refuses a plaintext-only MX;
// DANE delivers to a certificate no CA vouches for when TLSA matches it,
// and not otherwise; REQUIRETLS with nothing to verify bounces.
func TestSubmissionThroughPolicies(t *testing.T) {
	t.Run("mta-sts", func(t *testing.T) {
		e := newEnv(t)
		ps := startPolicyServer(t, e.ca, "example.test", enforcePolicy)
		e.publishPolicy(t, "1")
		good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
		sk, err := smtpsink.Start(smtpsink.Options{KeepData: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{good}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sk.Close() })
		en := startEngine(t, e, e.policies(t, ps.port(), false), sk.Addr)
		sub := startSubmission(t, e, en)

		tr := en.decided(sub.send("enforce, TLS", false))
		att := event(tr, trace.EventAttempt)
		if event(tr, trace.EventDelivered) == nil || att == nil || att.Policy != queue.PolicyMTASTS || !att.Verified {
			t.Fatalf("trace %s", traceText(tr))
		}
		ms := sk.Messages()
		if len(ms) != 1 || !ms[0].TLS {
			t.Fatalf("sink got %d messages", len(ms))
		}
		checkSigned(t, e, ms[0].Data)

		// The same MX without TLS: enforce keeps the message back and
		// the trace says why.
		sk.Close()
		plain, err := smtpsink.Start(smtpsink.Options{KeepData: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { plain.Close() })
		en2 := startEngine(t, e, e.policies(t, ps.port(), false), plain.Addr)
		sub2 := startSubmission(t, e, en2)
		tr = en2.decided(sub2.send("enforce, plaintext", false))
		att = event(tr, trace.EventAttempt)
		if event(tr, trace.EventDeferred) == nil || att == nil || att.Policy != queue.PolicyMTASTS || len(plain.Messages()) != 0 {
			t.Fatalf("trace %s; sink got %d", traceText(tr), len(plain.Messages()))
		}
		if !strings.Contains(att.Error+att.Reply, "STARTTLS") {
			t.Errorf("the trace does not say why: %+v", att)
		}
	})
	t.Run("dane", func(t *testing.T) {
		e := newEnv(t)
		e.dns.SetAuthentic(true)
		self := newCA(t, "nobody").issue(t, time.Now().Add(-time.Hour), "mx.example.test")
		sk, err := smtpsink.Start(smtpsink.Options{KeepData: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{self}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sk.Close() })
		_, port, _ := net.SplitHostPort(sk.Addr)
		name := "_" + port + "._tcp.mx.example.test"
		rr := func(data []byte) string {
			return strings.Replace(tlsaRR(3, 1, 1, data), "_25._tcp.mx.example.test", name, 1)
		}
		if err := e.dns.Add(rr(spkiSHA256(self))); err != nil {
			t.Fatal(err)
		}
		en := startEngine(t, e, e.policies(t, 0, false), sk.Addr)
		sub := startSubmission(t, e, en)
		tr := en.decided(sub.send("dane", false))
		att := event(tr, trace.EventAttempt)
		if event(tr, trace.EventDelivered) == nil || att == nil || att.Policy != queue.PolicyDANE || !att.Verified {
			t.Fatalf("trace %s", traceText(tr))
		}
		ms := sk.Messages()
		if len(ms) != 1 || !ms[0].TLS {
			t.Fatalf("sink got %d messages", len(ms))
		}
		checkSigned(t, e, ms[0].Data)

		// A TLSA record for another key: the MX is not given the mail.
		e.dns.Replace(name, 52, rr(make([]byte, 32)))
		tr = en.decided(sub.send("dane, wrong key", false))
		if event(tr, trace.EventDelivered) != nil || len(sk.Messages()) != 1 {
			t.Fatalf("mismatching TLSA delivered: %s", traceText(tr))
		}
	})
	t.Run("requiretls", func(t *testing.T) {
		e := newEnv(t)
		good := e.ca.issue(t, time.Now().Add(-time.Hour), "mx.example.test")
		sk, err := smtpsink.Start(smtpsink.Options{KeepData: true, RequireTLS: true,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{good}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sk.Close() })
		en := startEngine(t, e, e.policies(t, 0, false), sk.Addr)
		sub := startSubmission(t, e, en)
		// No DANE, no MTA-STS, an unsigned MX: nothing can verify the
		// MX, so a REQUIRETLS message bounces at once.
		tr := en.decided(sub.send("requiretls, unverifiable", true))
		if f := event(tr, trace.EventFailed); f == nil || f.Status != "5.7.30" || len(sk.Messages()) != 0 {
			t.Fatalf("trace %s", traceText(tr))
		}
		// Once the MX is DNSSEC-signed, PKIX for its name verifies it.
		e.dns.SetAuthentic(true)
		tr = en.decided(sub.send("requiretls, signed MX", true))
		if event(tr, trace.EventDelivered) == nil {
			t.Fatalf("trace %s", traceText(tr))
		}
		ms := sk.Messages()
		if len(ms) != 1 || !ms[0].RequireTLS || !ms[0].TLS {
			t.Fatalf("sink got %+v", ms)
		}
		checkSigned(t, e, ms[0].Data)
	})
}
