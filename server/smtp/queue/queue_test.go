package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// TestDeliverMX: a message for a remote domain goes to its MX (found
// through the resolver), over opportunistic STARTTLS, and leaves the
// queue; the trace names the MX, its IP, the TLS version and policy and
// the remote's exact reply.
func TestDeliverMX(t *testing.T) {
	cert, _ := testCert(t, "mx.example.net")
	sk := startSink(t, sink.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, KeepData: true})
	e := newEnv(t, func(o *Options) { o.MXPort = sinkPort(t, sk) })
	e.mx("example.net")
	body := message("m1", "")
	e.submit(&Message{ID: "msgone", Rcpts: []Rcpt{{Addr: "bob@example.net"}, {Addr: "carol@example.net"}}}, body)
	if n := sk.Wait(1, time.Minute); n != 1 {
		t.Fatalf("sink got %d messages", n)
	}
	waitFor(t, "the entry to go", func() bool { return e.queueLen() == 0 })
	m := sk.Messages()[0]
	if m.From != "alice@example.org" || strings.Join(m.Rcpts, ",") != "bob@example.net,carol@example.net" || !m.TLS {
		t.Fatalf("sink got %+v", m)
	}
	if string(m.Data) != string(body) {
		t.Fatalf("sink got data %q, want %q", m.Data, body)
	}
	tr := e.traceOf("msgone")
	at := events(tr, trace.EventAttempt)
	if len(at) != 1 {
		t.Fatalf("attempts in trace: %+v", tr)
	}
	a := at[0]
	if a.Host != "mx.example.net" || a.IP != "127.0.0.1" || a.TLS != "TLS 1.3" || a.Policy != PolicySTARTTLS ||
		a.Route != routeMX || !strings.HasPrefix(a.Reply, "250 ") || a.MXPref != 10 {
		t.Fatalf("attempt record = %+v", a)
	}
	if d := events(tr, trace.EventDelivered); len(d) != 1 || len(d[0].Rcpts) != 2 {
		t.Fatalf("delivered records = %+v", d)
	}
	if len(events(tr, trace.EventSubmitted)) != 1 || len(events(tr, trace.EventQueued)) != 1 {
		t.Fatalf("trace = %+v", tr)
	}
}

// TestTransportsAndDomains: outbound.transports sends a domain to a
// fixed host:port; recipients in two domains make two entries sharing
// one body, each delivered to its own destination.
func TestTransportsAndDomains(t *testing.T) {
	a := startSink(t, sink.Options{KeepData: true})
	b := startSink(t, sink.Options{KeepData: true})
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"a.test": a.Addr, "b.test": b.Addr}
	})
	e.submit(&Message{ID: "two", Rcpts: []Rcpt{{Addr: "x@a.test"}, {Addr: "y@b.test"}, {Addr: "z@a.test"}}}, message("two", ""))
	if a.Wait(1, time.Minute) != 1 || b.Wait(1, time.Minute) != 1 {
		t.Fatal("a sink got nothing")
	}
	waitFor(t, "the entries to go", func() bool { return e.queueLen() == 0 })
	if got := strings.Join(a.Messages()[0].Rcpts, ","); got != "x@a.test,z@a.test" {
		t.Fatalf("a got %s", got)
	}
	if got := strings.Join(b.Messages()[0].Rcpts, ","); got != "y@b.test" {
		t.Fatalf("b got %s", got)
	}
	if a.Messages()[0].TLS {
		t.Fatal("TLS without STARTTLS offered?")
	}
	tr := e.traceOf("two")
	for _, at := range events(tr, trace.EventAttempt) {
		if at.Route != routeTransport || at.Policy != PolicyNone || at.TLS != "" {
			t.Fatalf("attempt = %+v", at)
		}
	}
}

// TestTemporaryThenSuccess: a 4xx defers the recipient with backoff;
// the next attempt delivers; the trace has both attempts and the exact
// first reply.
func TestTemporaryThenSuccess(t *testing.T) {
	var mu sync.Mutex
	tries := 0
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		mu.Lock()
		defer mu.Unlock()
		tries++
		if tries == 1 {
			return sink.Reply(451, "4.7.1", "Greylisted, come back later")
		}
		return nil
	}})
	e := newEnv(t, func(o *Options) { o.Transports = map[string]string{"example.net": sk.Addr} })
	e.submit(&Message{ID: "grey", Rcpts: []Rcpt{{Addr: "bob@example.net"}}}, message("grey", ""))
	waitFor(t, "the first attempt", func() bool { return e.entry("grey-1").Attempts == 1 })
	en := e.entry("grey-1")
	if wait := en.Next.Sub(e.clock.Now()); wait < 50*time.Second || wait > 70*time.Second {
		t.Fatalf("next attempt in %v, want about RetryBase (1m)", wait)
	}
	if sk.Count() != 0 {
		t.Fatal("delivered despite 451")
	}
	e.idle()
	e.advance(2 * time.Minute)
	if sk.Wait(1, time.Minute) != 1 {
		t.Fatal("not delivered after the retry")
	}
	waitFor(t, "the entry to go", func() bool { return e.queueLen() == 0 })
	tr := e.traceOf("grey")
	at := events(tr, trace.EventAttempt)
	if len(at) != 2 {
		t.Fatalf("%d attempts in the trace, want 2", len(at))
	}
	if at[0].Reply != "451 4.7.1 Greylisted, come back later" || at[0].Stage != "rcpt" || at[0].Attempt != 1 {
		t.Fatalf("first attempt = %+v", at[0])
	}
	if at[1].Attempt != 2 || !strings.HasPrefix(at[1].Reply, "250") {
		t.Fatalf("second attempt = %+v", at[1])
	}
	if d := events(tr, trace.EventDeferred); len(d) != 1 || d[0].Next.IsZero() || d[0].Status != "4.7.1" {
		t.Fatalf("deferred = %+v", d)
	}
}

// TestPermanentFailureBounces: a 5xx fails the recipient at once; the
// sender (a local account, through an alias) finds the bounce, a
// multipart/report with the exact reply and the original, sealed in
// her INBOX. The other recipient is delivered.
func TestPermanentFailureBounces(t *testing.T) {
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return sink.Reply(550, "5.1.1", "<nobody@example.net>: Recipient address rejected: User unknown")
		}
		return nil
	}})
	e := newEnv(t, func(o *Options) { o.Transports = map[string]string{"example.net": sk.Addr} })
	e.submit(&Message{ID: "bounce", Account: "alice@example.org", From: "sales@example.org",
		Rcpts: []Rcpt{{Addr: "nobody@example.net", ORcpt: "rfc822;Nobody@Example.NET"}, {Addr: "bob@example.net"}},
		EnvID: "env-42"}, message("bounce", ""))
	waitFor(t, "the entry to go", func() bool { return e.queueLen() == 0 })
	if sk.Count() != 1 || strings.Join(sk.Messages()[0].Rcpts, ",") != "bob@example.net" {
		t.Fatalf("sink got %+v", sk.Messages())
	}
	in := e.inbox("alice@example.org")
	if len(in) != 1 {
		t.Fatalf("%d messages in alice's INBOX, want the bounce", len(in))
	}
	if err := contains(in[0],
		"From: Mail Delivery System <MAILER-DAEMON@mail.example.org>",
		"To: <sales@example.org>",
		"Auto-Submitted: auto-replied",
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Content-Type: message/delivery-status",
		"Reporting-MTA: dns; mail.example.org",
		"Original-Envelope-Id: env-42",
		"Original-Recipient: rfc822;Nobody@Example.NET",
		"Final-Recipient: rfc822; nobody@example.net",
		"Action: failed",
		"Status: 5.1.1",
		"Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown",
		"Content-Type: message/rfc822",
		"Subject: test bounce",
		"Hello Bob,",
	); err != nil {
		t.Fatalf("bounce: %v\n%s", err, in[0])
	}
	if strings.Contains(in[0], "Final-Recipient: rfc822; bob@example.net") {
		t.Fatal("the delivered recipient is in the bounce")
	}
	tr := e.traceOf("bounce")
	if b := events(tr, trace.EventBounced); len(b) != 1 || b[0].To != "sales@example.org" {
		t.Fatalf("bounced record = %+v", b)
	}
	if f := events(tr, trace.EventFailed); len(f) != 1 || f[0].Status != "5.1.1" {
		t.Fatalf("failed record = %+v", f)
	}
}

// TestExpiry: a recipient that only ever gets 4xx hears of the delay
// once after DelayWarning and bounces when Lifetime runs out.
func TestExpiry(t *testing.T) {
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		return sink.Reply(452, "4.2.2", "Mailbox full")
	}})
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"example.net": sk.Addr}
		o.Lifetime = 3 * time.Hour
		o.DelayWarning = 30 * time.Minute
		o.RetryBase = 20 * time.Minute
		o.RetryMax = 40 * time.Minute
	})
	e.submit(&Message{ID: "late", Rcpts: []Rcpt{{Addr: "bob@example.net"}}}, message("late", ""))
	attempts := func() int { return e.entry("late-1").Attempts }
	waitFor(t, "attempt 1", func() bool { return attempts() == 1 })
	for want := 2; want < 10; want++ {
		e.idle()
		en := e.entry("late-1")
		e.advance(en.Next.Sub(e.clock.Now()) + time.Second)
		waitFor(t, "the next attempt", func() bool {
			// The last attempt removes the entry: it may go between
			// any two lookups, so one lookup decides.
			en, err := e.db.QueueEntry(context.Background(), "late-1")
			if errors.Is(err, store.ErrNotFound) {
				return true
			}
			if err != nil {
				t.Fatalf("QueueEntry(late-1): %v", err)
			}
			return en.Attempts == want
		})
		if e.queueLen() == 0 {
			break
		}
		if want == 3 {
			// 20m + ~40m past DelayWarning: the delay notice is there.
			in := e.inbox("alice@example.org")
			if len(in) != 1 || contains(in[0], "Action: delayed", "Status: 4.2.2", "Will-Retry-Until:",
				"Content-Type: text/rfc822-headers", "Subject: Delayed Mail") != nil {
				t.Fatalf("no delay notice after attempt 3: %q", in)
			}
		}
	}
	if e.queueLen() != 0 {
		t.Fatal("the entry outlived its lifetime")
	}
	if e.clock.Now().Sub(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) < 3*time.Hour {
		t.Fatal("bounced before the lifetime ran out")
	}
	in := e.inbox("alice@example.org")
	if len(in) != 2 {
		t.Fatalf("alice has %d messages, want the delay notice and the bounce", len(in))
	}
	if err := contains(in[1], "Action: failed", "Status: 5.4.7", "delivery time expired", "452 4.2.2 Mailbox full"); err != nil {
		t.Fatalf("expiry bounce: %v\n%s", err, in[1])
	}
	tr := e.traceOf("late")
	if len(events(tr, trace.EventExpired)) != 1 || len(events(tr, trace.EventDelayed)) != 1 {
		t.Fatalf("trace = %+v", tr)
	}
	if sk.Count() != 0 {
		t.Fatal("delivered?")
	}
}
