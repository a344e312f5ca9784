package tlspolicy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/server/smtp/queue"
	smtpsink "github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// engine is the delivery engine of server/smtp/queue over badger, with
// Policies as its TLS policy and MX hosts reached on a sink's port.
type engine struct {
	t     *testing.T
	q     *queue.Queue
	db    *badgerstore.DB
	accts *account.Service
	logs  *testutil.LogBuffer
}

// alicePassword is alice@example.org's password in the engine's store.
const alicePassword = "correct horse battery staple"

func startEngine(t *testing.T, e *env, p *Policies, sinkAddr string) *engine {
	t.Helper()
	db, err := badgerstore.Open(t.TempDir(), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accts, err := account.New(account.Options{Store: db, Domains: []string{"example.org"}, KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accts.Create(ctxBg, "alice@example.org", []byte(alicePassword)); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(sinkAddr)
	n, _ := strconv.Atoi(port)
	logs := &testutil.LogBuffer{}
	q, err := queue.New(queue.Options{
		Store: db, Key: bytes.Repeat([]byte{9}, queue.KeySize), Hostname: "mail.example.org",
		Domains: []string{"example.org"}, Resolver: e.res, TLSPolicy: p, MXPort: n,
		RetryBase: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(ctxBg, 30*time.Second)
		defer cancel()
		q.Shutdown(ctx)
		accts.Close()
		db.Close()
		if t.Failed() {
			t.Logf("queue log:\n%s", logs.String())
		}
	})
	return &engine{t: t, q: q, db: db, accts: accts, logs: logs}
}

// send queues a message from alice to bob@example.test and waits until
// the engine has decided it (delivered, deferred or failed); it returns
// the message's trace.
func (en *engine) send(id string, requireTLS bool) []*trace.Outbound {
	en.t.Helper()
	body := []byte("From: alice@example.org\r\nTo: bob@example.test\r\nSubject: " + id + "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nHello.\r\n")
	m := &queue.Message{ID: id, Account: "alice@example.org", From: "alice@example.org",
		Rcpts: []queue.Rcpt{{Addr: "bob@example.test"}}, Size: int64(len(body)), RequireTLS: requireTLS}
	p, err := en.q.Prepare(ctxBg, m, bytes.NewReader(body))
	if err != nil {
		en.t.Fatal(err)
	}
	if _, err := en.db.UpdateQueue(ctxBg, p.Change); err != nil {
		p.Discard()
		en.t.Fatal(err)
	}
	en.q.Committed(p)
	return en.decided(id)
}

// decided waits until the engine has decided message id (delivered,
// deferred or failed) and returns its trace.
func (en *engine) decided(id string) []*trace.Outbound {
	en.t.Helper()
	var out []*trace.Outbound
	deadline := time.Now().Add(2 * time.Minute) // keeps a broken test from hanging; no speed is judged
	for {
		d, err := en.q.Show(ctxBg, id)
		if err != nil {
			en.t.Fatal(err)
		}
		out = out[:0]
		decided := false
		for _, r := range d.Trace {
			if r.Out == nil {
				continue
			}
			out = append(out, r.Out)
			switch r.Out.Event {
			case trace.EventDelivered, trace.EventDeferred, trace.EventFailed:
				decided = true
			}
		}
		if decided {
			return out
		}
		if time.Now().After(deadline) {
			en.t.Fatalf("message %s not decided; trace %+v", id, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// traceText renders a trace for failure messages.
func traceText(tr []*trace.Outbound) string {
	var b strings.Builder
	for _, o := range tr {
		b.WriteString(fmt.Sprintf("\n  %+v", *o))
	}
	return b.String()
}

func event(tr []*trace.Outbound, ev string) *trace.Outbound {
	for _, o := range tr {
		if o.Event == ev {
			return o
		}
	}
	return nil
}

// TestThroughTheQueue runs Policies inside the real delivery engine
// (server/smtp/queue) against sinks reached by MX lookup: MTA-STS
// enforce keeps mail from a plaintext-only MX and the trace says why;
// testing delivers and logs; REQUIRETLS with nothing to verify bounces
// with 5.7.30; DANE delivers over TLS checked against TLSA.
func TestThroughTheQueue(t *testing.T) {
	t.Run("enforce", func(t *testing.T) {
		e := newEnv(t)
		ps := startPolicyServer(t, e.ca, "example.test", enforcePolicy)
		e.publishPolicy(t, "1")
		sk, err := smtpsink.Start(smtpsink.Options{KeepData: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sk.Close() })
		en := startEngine(t, e, e.policies(t, ps.port(), false), sk.Addr)
		tr := en.send("m1", false)
		att, def := event(tr, trace.EventAttempt), event(tr, trace.EventDeferred)
		if att == nil || def == nil || att.Policy != queue.PolicyMTASTS || len(sk.Messages()) != 0 {
			t.Fatalf("trace %s; sink got %d", traceText(tr), len(sk.Messages()))
		}
		if !strings.Contains(att.Error+att.Reply, "STARTTLS") {
			t.Errorf("the trace does not say why: %+v", att)
		}
	})
	t.Run("testing", func(t *testing.T) {
		e := newEnv(t)
		ps := startPolicyServer(t, e.ca, "example.test", strings.Replace(enforcePolicy, "enforce", "testing", 1))
		e.publishPolicy(t, "1")
		sk, err := smtpsink.Start(smtpsink.Options{KeepData: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sk.Close() })
		en := startEngine(t, e, e.policies(t, ps.port(), false), sk.Addr)
		tr := en.send("m2", false)
		att := event(tr, trace.EventAttempt)
		if event(tr, trace.EventDelivered) == nil || att == nil || att.Policy != PolicyMTASTSTesting || len(sk.Messages()) != 1 {
			t.Fatalf("trace %s", traceText(tr))
		}
		if !strings.Contains(e.logged(), "would refuse mx.example.test: no STARTTLS offered") {
			t.Errorf("no report:\n%s", e.logged())
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
		tr := en.send("m3", true)
		f := event(tr, trace.EventFailed)
		if f == nil || f.Status != "5.7.30" || len(sk.Messages()) != 0 {
			t.Fatalf("trace %s", traceText(tr))
		}
		// With a DNSSEC-signed MX the same message goes, verified.
		e.dns.SetAuthentic(true)
		tr = en.send("m4", true)
		att := event(tr, trace.EventAttempt)
		if event(tr, trace.EventDelivered) == nil || att == nil || att.Policy != PolicyDNSSECPKIX || !att.Verified {
			t.Fatalf("trace %s", traceText(tr))
		}
		if ms := sk.Messages(); len(ms) != 1 || !ms[0].RequireTLS || !ms[0].TLS {
			t.Fatalf("sink got %+v", ms)
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
		// The TLSA name has the port the engine connects to: 25 but in
		// tests (queue.Options.MXPort).
		_, port, _ := net.SplitHostPort(sk.Addr)
		name := "_" + port + "._tcp.mx.example.test"
		rr := func(data []byte) string {
			return strings.Replace(tlsaRR(3, 1, 1, data), "_25._tcp.mx.example.test", name, 1)
		}
		if err := e.dns.Add(rr(spkiSHA256(self))); err != nil {
			t.Fatal(err)
		}
		en := startEngine(t, e, e.policies(t, 0, false), sk.Addr)
		tr := en.send("m5", false)
		att := event(tr, trace.EventAttempt)
		if event(tr, trace.EventDelivered) == nil || att == nil || att.Policy != queue.PolicyDANE || !att.Verified || att.TLS == "" {
			t.Fatalf("trace %s", traceText(tr))
		}
		// A TLSA record for another key: not delivered.
		e.dns.Replace(name, 52, rr(make([]byte, 32)))
		tr = en.send("m6", false)
		if event(tr, trace.EventDelivered) != nil || len(sk.Messages()) != 1 {
			t.Fatalf("mismatching TLSA delivered: %s", traceText(tr))
		}
	})
}
