package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
)

// TestRoutes: the domain's own address without MX (RFC 5321 §5.1); a
// null MX (RFC 7505), a domain that does not exist and an MX that is
// this server fail at once; a DNS failure defers.
func TestRoutes(t *testing.T) {
	sk := startSink(t, sink.Options{})
	e := newEnv(t, func(o *Options) { o.MXPort = sinkPort(t, sk) })
	if err := e.dns.Add(
		"implicit.test. 300 IN A 127.0.0.1",
		"nullmx.test. 300 IN MX 0 .",
		"loop.test. 300 IN MX 10 mail.example.org.",
		"mail.example.org. 300 IN A 127.0.0.1",
	); err != nil {
		t.Fatal(err)
	}
	e.dns.Fail("broken.test.", dns.RcodeServerFailure)
	for _, d := range []string{"implicit.test", "nullmx.test", "nosuch.test", "loop.test", "broken.test"} {
		e.submit(&Message{ID: strings.ReplaceAll(d, ".", ""), Rcpts: []Rcpt{{Addr: "u@" + d}}}, message(d, ""))
	}
	waitFor(t, "four entries to go and one to wait", func() bool {
		return e.queueLen() == 1 && e.entry("brokentest-1").Attempts == 1
	})
	if sk.Wait(1, time.Minute) != 1 || sk.Messages()[0].Rcpts[0] != "u@implicit.test" {
		t.Fatalf("sink got %+v", sk.Messages())
	}
	if at := events(e.traceOf("implicittest"), trace.EventAttempt); len(at) != 1 || at[0].Host != "implicit.test" || at[0].MXPref != 0 {
		t.Fatalf("implicit attempt %+v", at)
	}
	in := strings.Join(e.inbox("alice@example.org"), "\n----\n")
	for _, want := range []string{"Final-Recipient: rfc822; u@nullmx.test", "Status: 5.1.10",
		"Final-Recipient: rfc822; u@nosuch.test", "Status: 5.1.2",
		"Final-Recipient: rfc822; u@loop.test", "Status: 5.4.6"} {
		if !strings.Contains(in, want) {
			t.Errorf("bounces lack %q", want)
		}
	}
	if d := events(e.traceOf("brokentest"), trace.EventDeferred); len(d) != 1 || d[0].Status != "4.4.3" {
		t.Fatalf("DNS failure: %+v", d)
	}
}

// TestNotices: NOTIFY=NEVER gets no bounce; NOTIFY=SUCCESS to a server
// without DSN gets a "relayed" notice; with DSN the parameters go on
// instead; a remote sender's bounce is queued with the null sender (and
// never bounced itself).
func TestNotices(t *testing.T) {
	plain := startSink(t, sink.Options{KeepData: true, Rcpt: func(to string) error {
		if strings.HasPrefix(to, "no@") {
			return sink.Reply(550, "5.1.1", "no")
		}
		return nil
	}})
	withDSN := startSink(t, sink.Options{DSN: true})
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"plain.test": plain.Addr, "dsn.test": withDSN.Addr, "elsewhere.test": plain.Addr}
	})
	e.submit(&Message{ID: "never", Rcpts: []Rcpt{{Addr: "no@plain.test", Notify: []string{"NEVER"}}}}, message("never", ""))
	e.submit(&Message{ID: "relayed", Rcpts: []Rcpt{{Addr: "yes@plain.test", Notify: []string{"SUCCESS"}}}}, message("relayed", ""))
	e.submit(&Message{ID: "passed", Ret: "HDRS", EnvID: "e1",
		Rcpts: []Rcpt{{Addr: "yes@dsn.test", Notify: []string{"SUCCESS", "FAILURE"}, ORcpt: "rfc822;Yes@DSN.test"}}}, message("passed", ""))
	// A message from a remote sender (as an alias forward would make):
	// its bounce goes back out with the null sender.
	e.submit(&Message{ID: "remote", From: "someone@elsewhere.test", Rcpts: []Rcpt{{Addr: "no@plain.test"}}}, message("remote", ""))
	waitFor(t, "everything delivered", func() bool { return e.queueLen() == 0 && plain.Count() == 2 && withDSN.Count() == 1 })
	in := e.inbox("alice@example.org")
	if len(in) != 1 || contains(in[0], "Action: relayed", "Final-Recipient: rfc822; yes@plain.test", "Status: 2.0.0",
		"Content-Type: text/rfc822-headers", "Subject: Successful Mail Delivery Report") != nil {
		t.Fatalf("alice's notices: %q", in)
	}
	d := withDSN.Messages()[0]
	if d.Ret != "HDRS" || d.EnvID != "e1" || strings.Join(d.Notify[0], ",") != "SUCCESS,FAILURE" || d.ORcpt[0] != "Yes@DSN.test" {
		t.Fatalf("DSN parameters at the next hop: %+v", d)
	}
	var bounce *sink.Message
	for _, m := range plain.Messages() {
		if m.From == "" {
			bounce = &m
		}
	}
	if bounce == nil || bounce.Rcpts[0] != "someone@elsewhere.test" ||
		contains(string(bounce.Data), "Action: failed", "To: <someone@elsewhere.test>", "Subject: test remote") != nil {
		t.Fatalf("the remote sender's bounce: %+v", bounce)
	}
}

// TestSmarthost: with a smarthost every message goes there, over
// verified TLS, with AUTH; a smarthost that does not verify gets no
// password, and the mail waits.
func TestSmarthost(t *testing.T) {
	cert, pool := testCert(t, "relay.test")
	var user atomic.Value
	sk := startSink(t, sink.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Auth: func(u, p string) bool { user.Store(u); return u == "relay-user" && p == "relay-pass" }})
	port := sinkPort(t, sk)
	e := newEnv(t, func(o *Options) {
		o.Smarthost = &Smarthost{Addr: fmt.Sprintf("relay.test:%d", port), Username: "relay-user",
			Password: []byte("relay-pass"), RootCAs: pool}
		o.DialContext = func(ctx context.Context, network, addr string) (netConn, error) {
			return dialer.DialContext(ctx, network, sk.Addr) // relay.test is the sink
		}
	})
	e.submit(&Message{ID: "viarelay", Rcpts: []Rcpt{{Addr: "a@example.net"}, {Addr: "b@example.com"}}}, message("viarelay", ""))
	waitFor(t, "both delivered", func() bool { return e.queueLen() == 0 })
	if sk.Count() != 2 {
		t.Fatalf("the relay got %d messages", sk.Count())
	}
	for _, m := range sk.Messages() {
		if !m.TLS || m.Auth != "relay-user" {
			t.Fatalf("relay message: %+v", m)
		}
	}
	at := events(e.traceOf("viarelay"), trace.EventAttempt)
	if len(at) != 2 || at[0].Route != routeSmarthost || !at[0].Verified || at[0].Policy != "smarthost" {
		t.Fatalf("attempts: %+v", at)
	}

	// A relay whose certificate does not verify: no AUTH, no delivery.
	other, _ := testCert(t, "relay.test")
	sk2 := startSink(t, sink.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{other}},
		Auth: func(u, p string) bool { t.Error("the password went to an unverified relay"); return false }})
	e2 := newEnv(t, func(o *Options) {
		o.Smarthost = &Smarthost{Addr: fmt.Sprintf("relay.test:%d", port), Username: "relay-user",
			Password: []byte("relay-pass"), RootCAs: pool}
		o.DialContext = func(ctx context.Context, network, addr string) (netConn, error) {
			return dialer.DialContext(ctx, network, sk2.Addr)
		}
	})
	e2.submit(&Message{ID: "bad", Rcpts: []Rcpt{{Addr: "a@example.net"}}}, message("bad", ""))
	waitFor(t, "the attempt", func() bool { return e2.entry("bad-1").Attempts == 1 })
	if sk2.Count() != 0 {
		t.Fatal("delivered to an unverified relay")
	}
}

// stubPolicy answers every query with req, and records the queries.
type stubPolicy struct {
	mu      sync.Mutex
	req     TLSRequirement
	err     error
	queries []TLSQuery
	reports []TLSResult
}

func (p *stubPolicy) Require(ctx context.Context, q TLSQuery) (TLSRequirement, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries = append(p.queries, q)
	r := p.req
	r.Report = func(res TLSResult) {
		p.mu.Lock()
		p.reports = append(p.reports, res)
		p.mu.Unlock()
	}
	return r, p.err
}

// TestTLSPolicy: the engine asks the policy per host; a required,
// verifying TLS that fails (a plaintext MX, a certificate of another
// name) defers; a Skip skips; REQUIRETLS without a verifying policy
// bounces (5.7.30); opportunistic TLS that fails falls back to
// plaintext.
func TestTLSPolicy(t *testing.T) {
	cert, pool := testCert(t, "mx.secure.test")
	secure := startSink(t, sink.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, RequireTLS: true})
	plainMX := startSink(t, sink.Options{})
	pol := &stubPolicy{}
	e := newEnv(t, func(o *Options) {
		o.TLSPolicy = pol
		o.Transports = map[string]string{"secure.test": "mx.secure.test:" + fmt.Sprint(sinkPort(t, secure)),
			"plain.test": plainMX.Addr}
		o.DialContext = func(ctx context.Context, network, addr string) (netConn, error) {
			if strings.HasPrefix(addr, "mx.secure.test:") {
				addr = secure.Addr
			}
			return dialer.DialContext(ctx, network, addr)
		}
	})
	// Required and verified: delivered, the trace says so.
	pol.req = TLSRequirement{Policy: PolicyMTASTS, Required: true, Config: &tls.Config{RootCAs: pool}}
	e.submit(&Message{ID: "sts", Rcpts: []Rcpt{{Addr: "a@secure.test"}}}, message("sts", ""))
	waitFor(t, "delivery", func() bool { return secure.Count() == 1 })
	e.gone("sts-1")
	at := events(e.traceOf("sts"), trace.EventAttempt)
	if len(at) != 1 || at[0].Policy != PolicyMTASTS || !at[0].Verified || at[0].TLS == "" {
		t.Fatalf("attempt %+v", at)
	}
	pol.mu.Lock()
	q := pol.queries[0]
	rep := pol.reports
	pol.mu.Unlock()
	if q.Domain != "secure.test" || q.Host != "mx.secure.test" || !q.Transport {
		t.Fatalf("query %+v", q)
	}
	if len(rep) != 1 || rep[0].Version == 0 || rep[0].Err != nil || !rep[0].Offered {
		t.Fatalf("reports %+v", rep)
	}
	// Required, and the MX offers no STARTTLS: deferred, never sent.
	e.submit(&Message{ID: "strip", Rcpts: []Rcpt{{Addr: "a@plain.test"}}}, message("strip", ""))
	waitFor(t, "the attempt", func() bool { return e.entry("strip-1").Attempts == 1 })
	if plainMX.Count() != 0 {
		t.Fatal("sent in the clear against the policy")
	}
	if d := events(e.traceOf("strip"), trace.EventAttempt); len(d) != 1 || d[0].Status != "4.7.5" || !strings.Contains(d[0].Error, "does not offer STARTTLS") {
		t.Fatalf("attempt %+v", d)
	}
	// Required, with a certificate that does not verify: deferred.
	other, _ := testCert(t, "mx.secure.test")
	pol.mu.Lock()
	pol.req = TLSRequirement{Policy: PolicyDANE, Required: true, Config: &tls.Config{RootCAs: certPool(t, other)}}
	pol.mu.Unlock()
	e.submit(&Message{ID: "dane", Rcpts: []Rcpt{{Addr: "b@secure.test"}}}, message("dane", ""))
	waitFor(t, "the attempt", func() bool { return e.entry("dane-1").Attempts == 1 })
	if secure.Count() != 1 {
		t.Fatal("delivered despite a failed verification")
	}
	// Skip: not tried.
	pol.mu.Lock()
	pol.req = TLSRequirement{Policy: PolicyMTASTS, Skip: "mx.secure.test is not in the MTA-STS policy"}
	pol.mu.Unlock()
	e.submit(&Message{ID: "skip", Rcpts: []Rcpt{{Addr: "c@secure.test"}}}, message("skip", ""))
	waitFor(t, "the attempt", func() bool { return e.entry("skip-1").Attempts == 1 })
	if d := events(e.traceOf("skip"), trace.EventAttempt); len(d) != 1 || d[0].IP != "" || !strings.Contains(d[0].Error, "not in the MTA-STS policy") {
		t.Fatalf("skip attempt %+v", d)
	}
	// REQUIRETLS with an opportunistic policy: bounced at once.
	pol.mu.Lock()
	pol.req = TLSRequirement{Policy: PolicySTARTTLS}
	pol.mu.Unlock()
	e.submit(&Message{ID: "reqtls", RequireTLS: true, Rcpts: []Rcpt{{Addr: "d@secure.test"}}}, message("reqtls", ""))
	e.gone("reqtls-1")
	in := strings.Join(e.inbox("alice@example.org"), "\n")
	if !strings.Contains(in, "Status: 5.7.30") {
		t.Fatalf("no REQUIRETLS bounce:\n%s", in)
	}
}

// TestOpportunisticFallback: a server whose STARTTLS handshake fails
// gets the message in plaintext on a second connection (RFC 7435); the
// trace says so.
func TestOpportunisticFallback(t *testing.T) {
	broken := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate here")
	}}
	sk := startSink(t, sink.Options{TLSConfig: broken})
	e := newEnv(t, func(o *Options) { o.Transports = map[string]string{"example.net": sk.Addr} })
	e.submit(&Message{ID: "fallback", Rcpts: []Rcpt{{Addr: "a@example.net"}}}, message("fallback", ""))
	if sk.Wait(1, time.Minute) != 1 {
		t.Fatal("not delivered")
	}
	if sk.Messages()[0].TLS {
		t.Fatal("TLS, with a broken certificate?")
	}
	waitFor(t, "the outcome committed", func() bool { return e.queueLen() == 0 })
	at := events(e.traceOf("fallback"), trace.EventAttempt)
	if len(at) != 1 || !strings.Contains(at[0].Error, "opportunistic TLS failed") || at[0].Policy != PolicyNone {
		t.Fatalf("attempt %+v", at)
	}
}

// TestDestinationLimits: never more deliveries to one destination at
// once than DestinationConnections, and no more starts per minute than
// DestinationRate allows (a tenth of it at once).
func TestDestinationLimits(t *testing.T) {
	var inData, maxIn atomic.Int32
	release := make(chan struct{})
	sk := startSink(t, sink.Options{Data: func(*sink.Message) error {
		n := inData.Add(1)
		for {
			m := maxIn.Load()
			if n <= m || maxIn.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		inData.Add(-1)
		return nil
	}})
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"example.net": sk.Addr}
		o.DestinationConnections = 2
	})
	for i := range 6 {
		e.submit(&Message{ID: fmt.Sprintf("lim%d", i), Rcpts: []Rcpt{{Addr: "a@example.net"}}}, message(fmt.Sprint(i), ""))
	}
	waitFor(t, "two deliveries in progress and four waiting", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		d := e.q.dests[routeTransport+":"+sk.Addr]
		return inData.Load() == 2 && d != nil && len(d.waiting) == 4
	})
	close(release)
	waitFor(t, "all delivered", func() bool { return sk.Count() == 6 })
	if m := maxIn.Load(); m != 2 {
		t.Fatalf("%d deliveries at once, want 2", m)
	}

	// Rate: 30 a minute, so 3 at once; the rest wait for the clock.
	sk2 := startSink(t, sink.Options{})
	e2 := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"example.net": sk2.Addr}
		o.DestinationRate = 30
	})
	for i := range 5 {
		e2.submit(&Message{ID: fmt.Sprintf("rate%d", i), Rcpts: []Rcpt{{Addr: "a@example.net"}}}, message(fmt.Sprint(i), ""))
	}
	waitFor(t, "three sent, two waiting", func() bool {
		e2.q.mu.Lock()
		defer e2.q.mu.Unlock()
		d := e2.q.dests[routeTransport+":"+sk2.Addr]
		return sk2.Count() == 3 && e2.q.running == 0 && d != nil && len(d.waiting) == 2
	})
	e2.advance(time.Minute)
	waitFor(t, "the rest after a minute", func() bool { return sk2.Count() == 5 })
}

// TestActiveBound: however long the queue, the scheduler holds at most
// Options.Active entries.
func TestActiveBound(t *testing.T) {
	release := make(chan struct{})
	sk := startSink(t, sink.Options{Data: func(*sink.Message) error { <-release; return nil }})
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"example.net": sk.Addr}
		o.Active = 8
		o.DestinationConnections = 2
	})
	for i := range 40 {
		e.submit(&Message{ID: fmt.Sprintf("act%d", i), Rcpts: []Rcpt{{Addr: "a@example.net"}}}, message(fmt.Sprint(i), ""))
	}
	var maxActive atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sk.Count() < 40 {
			e.q.mu.Lock()
			n := int32(len(e.q.active))
			e.q.mu.Unlock()
			if n > maxActive.Load() {
				maxActive.Store(n)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, "the first deliveries", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		return len(e.q.active) == 8
	})
	close(release)
	<-done
	if m := maxActive.Load(); m > 8 {
		t.Fatalf("held %d entries, Active is 8", m)
	}
	waitFor(t, "an empty queue", func() bool { return e.queueLen() == 0 })
}

// TestSealBody: bodies of every size around the record size open again;
// one cut short, cut at a record boundary, damaged or sealed under
// another key does not.
func TestSealBody(t *testing.T) {
	s, err := newSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newSealer(bytes.Repeat([]byte{8}, KeySize))
	for _, n := range []int{0, 1, bodyRecord - 1, bodyRecord, bodyRecord + 1, 3*bodyRecord + 5} {
		plain := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		var b bytes.Buffer
		w, err := s.newBodyWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if int64(b.Len()) != sealedSize(int64(n)) {
			t.Fatalf("%d bytes sealed to %d, sealedSize says %d", n, b.Len(), sealedSize(int64(n)))
		}
		if bytes.Contains(b.Bytes(), []byte("0123456789abcdef")) {
			t.Fatalf("%d bytes: plaintext in the sealed body", n)
		}
		open := func(sl *sealer, data []byte) ([]byte, error) {
			r, err := sl.newBodyReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		}
		got, err := open(s, b.Bytes())
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: opened %d bytes, %v", n, len(got), err)
		}
		sealed := b.Bytes()
		for _, cut := range []int{len(sealed) - 1, len(sealed) - gcmTag, bodyHeaderSize + bodyRecord + gcmTag} {
			if cut >= len(sealed) || cut <= bodyHeaderSize {
				continue
			}
			if _, err := open(s, sealed[:cut]); err == nil {
				t.Fatalf("%d bytes cut to %d opened", n, cut)
			}
		}
		bad := bytes.Clone(sealed)
		bad[len(bad)-1] ^= 1
		if _, err := open(s, bad); err == nil {
			t.Fatalf("%d bytes: a damaged body opened", n)
		}
		if _, err := open(other, sealed); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%d bytes under another key: %v", n, err)
		}
		if _, err := open(s, append(bytes.Clone(sealed), 0)); err == nil {
			t.Fatalf("%d bytes with a byte appended opened", n)
		}
	}
	// Envelopes are bound to their entry.
	meta := s.sealMeta("a-1", []byte(`{"msg":"a"}`))
	if _, err := s.openMeta("b-1", meta); err == nil {
		t.Fatal("an envelope opened for another entry")
	}
	if _, err := other.openMeta("a-1", meta); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
}

// TestCheckKeyAndAdmin: a queue over entries sealed under another key
// says so (serve refuses to start); Show, Retry and Drop work by
// message and by entry.
func TestCheckKeyAndAdmin(t *testing.T) {
	sk := startSink(t, sink.Options{Rcpt: func(string) error { return sink.Reply(451, "4.7.1", "later") }})
	dir := t.TempDir()
	e := newEnvIn(t, dir, func(o *Options) { o.Transports = map[string]string{"example.net": sk.Addr, "example.com": sk.Addr} }, true)
	e.submit(&Message{ID: "adm", Rcpts: []Rcpt{{Addr: "a@example.net"}, {Addr: "b@example.com"}}}, message("adm", ""))
	waitFor(t, "both attempted", func() bool { return e.entry("adm-1").Attempts == 1 && e.entry("adm-2").Attempts == 1 })
	e.idle()
	list, err := e.q.List(context.Background(), "", 0)
	if err != nil || len(list) != 2 || list[0].Msg != "adm" || list[0].Domain != "example.net" || list[1].Domain != "example.com" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	d, err := e.q.Show(context.Background(), "adm-2")
	if err != nil || len(d.Entries) != 1 || d.Entries[0].ID != "adm-2" {
		t.Fatalf("Show(adm-2) = %+v, %v", d, err)
	}
	for _, r := range d.Trace {
		if r.Out.Entry != "" && r.Out.Entry != "adm-2" {
			t.Fatalf("Show(adm-2) has another entry's record: %+v", r.Out)
		}
	}
	if n, err := e.q.Retry(context.Background(), "adm"); err != nil || n != 2 {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	waitFor(t, "the retries", func() bool { return e.entry("adm-1").Attempts == 2 && e.entry("adm-2").Attempts == 2 })
	e.idle()
	if n, err := e.q.Drop(context.Background(), "adm-1"); err != nil || n != 1 {
		t.Fatalf("Drop = %d, %v", n, err)
	}
	if _, err := e.q.Drop(context.Background(), "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Drop(nosuch): %v", err)
	}
	if e.queueLen() != 1 {
		t.Fatalf("%d entries after the drop", e.queueLen())
	}
	if len(events(e.traceOf("adm"), trace.EventDropped)) != 1 || len(events(e.traceOf("adm"), trace.EventRetried)) != 2 {
		t.Fatal("the trace lacks the drop or the retries")
	}
	e.close()
	e2 := newEnvIn(t, dir, func(o *Options) { o.Key = bytes.Repeat([]byte{1}, KeySize) }, false)
	if err := e2.q.CheckKey(context.Background()); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("CheckKey under another key: %v", err)
	}
	list, _ = e2.q.List(context.Background(), "", 0)
	if len(list) != 1 || list[0].Error == "" {
		t.Fatalf("List under another key: %+v", list)
	}
}
