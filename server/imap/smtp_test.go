package imap

import (
	"bytes"
	"context"
	"net"
	netsmtp "net/smtp"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/smtp"
)

// TestSMTPToIdle delivers through the real SMTP server, wired as in
// cmd/sealmail (OnDeliver = Server.Delivered), to an IDLEing session.
func TestSMTPToIdle(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	addr := startSMTP(t, env)

	rec := newRecorder()
	c := env.dial(alice, alicePW, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	msg := testMessage("via smtp", "Sent through the MX.")
	start := time.Now()
	if err := netsmtp.SendMail(addr, nil, "sender@example.net", []string{alice}, msg); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	rec.waitFor(t, "EXISTS 1 during IDLE", func() bool { return len(rec.exists) > 0 && rec.exists[len(rec.exists)-1] == 1 })
	// The wake-up is pushed (OnDeliver queues EXISTS to the tracker), not
	// polled, so it comes as soon as the delivery commits; the latency is
	// logged, not asserted (tests never assert wall-clock speed).
	t.Logf("IDLE woke %v after the SMTP transaction started", time.Since(start))
	idle.Close()
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{whole}})
	body := m.FindBodySection(whole)
	// The MX prepends its trace fields; the sender's bytes follow unchanged.
	if !bytes.HasSuffix(body, msg) {
		t.Errorf("BODY[] does not end with the sent message:\n%q", body)
	}
	if m.Envelope.Subject != "via smtp" {
		t.Errorf("subject = %q", m.Envelope.Subject)
	}
}

// startSMTP runs the real SMTP server wired as in cmd/sealmail
// (OnDeliver = Server.Delivered) and returns its address.
func startSMTP(t *testing.T, env *testEnv) string {
	t.Helper()
	ss, err := smtp.New(smtp.Options{
		Hostname:  "mx.example.org",
		Domains:   []string{"example.org"},
		Store:     env.st,
		OnDeliver: env.srv.Delivered,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ss.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ss.Shutdown(ctx)
	})
	return ln.Addr().String()
}
