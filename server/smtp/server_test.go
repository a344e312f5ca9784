package smtp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/store"
)

// sendGo sends one message with the go-smtp client.
func sendGo(t *testing.T, addr, from string, to []string, msg string) error {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		return err
	}
	return c.SendMail(from, to, strings.NewReader(msg))
}

func smtpCode(err error) string {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

var receivedRE = regexp.MustCompile(`^Return-Path: <sender@remote\.test>\r\n` +
	`Received: from client\.remote\.test \(\[127\.0\.0\.1\]\)\r\n` +
	`\tby mx\.example\.org \(sealmail\) with ESMTP id [a-z2-7]{16}\r\n` +
	`\tfor <Alice\+news@EXAMPLE\.org>;\r\n` +
	`\t[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)

func TestDeliverOne(t *testing.T) {
	e := newEnv(t, nil)
	msg := testMessage("hello", "Hi Alice,\r\n..leading dot\r\nbye")
	if err := sendGo(t, e.addr, "sender@remote.test", []string{"Alice+news@EXAMPLE.org"}, msg); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	got := e.inbox("alice@example.org")
	if len(got) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(got))
	}
	loc := receivedRE.FindStringIndex(got[0])
	if loc == nil {
		t.Fatalf("trace fields wrong:\n%q", got[0])
	}
	if rest := got[0][loc[1]:]; rest != msg {
		t.Errorf("message body changed:\n got %q\nwant %q", rest, msg)
	}
	if c := e.counts(); c["bob@example.org"] != 0 || c["carol@other.test"] != 0 {
		t.Errorf("other accounts got mail: %v", c)
	}
	notes := e.waitNotes(1)
	if len(notes) != 1 || len(notes[0]) != 1 || notes[0][0].Account != "alice@example.org" || notes[0][0].Mailbox != store.Inbox || notes[0][0].UID == 0 {
		t.Errorf("OnDeliver saw %+v", notes)
	}
	logs := e.logs.String()
	txLine := regexp.MustCompile(`(?m)^.*msg="message delivered" proto=smtp cid=\S+ remote=127\.0\.0\.1:\d+ id=[a-z2-7]{16} size=` +
		strconv.Itoa(len(msg)) + ` rcpts=1 result="250 2\.0\.0" duration=\S+ account=alice@example\.org$`)
	if !txLine.MatchString(logs) {
		t.Errorf("no structured transaction log line:\n%s", logs)
	}
	if strings.Contains(logs, "leading dot") || strings.Contains(logs, "Hi Alice") {
		t.Errorf("log contains message content:\n%s", logs)
	}
}

func TestDeliverManyRecipientsOneCopyEach(t *testing.T) {
	e := newEnv(t, nil)
	rcpts := []string{"alice@example.org", "team@example.org", "bob+x@example.org", "carol@other.test", "ALICE@example.org"}
	if err := sendGo(t, e.addr, "", rcpts, testMessage("many", "body")); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	for a, n := range e.counts() {
		if n != 1 {
			t.Errorf("%s has %d messages, want 1", a, n)
		}
	}
	m := e.inbox("bob@example.org")[0]
	if !strings.HasPrefix(m, "Return-Path: <>\r\n") {
		t.Errorf("null reverse path not recorded: %q", m[:40])
	}
	if strings.Contains(m, "\tfor <") {
		t.Errorf("Received names a recipient of a multi-recipient message: %q", m)
	}
}

func TestRecipientsRefused(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	cases := []struct{ rcpt, want string }{
		{"<nobody@example.org>", "550 5.1.1"},
		{"<nobody+tag@other.test>", "550 5.1.1"},
		{"<postmaster@example.org>", "550 5.1.1"}, // no Postmaster option, no account
		{"<alice@elsewhere.test>", "550 5.7.1"},
		{"<alice@example.org.elsewhere.test>", "550 5.7.1"},
		{"<victim%elsewhere.test@example.org>", "550 5.7.1"},
		{"<elsewhere.test!victim@example.org>", "550 5.7.1"},
		{`<"victim@elsewhere.test"@example.org>`, "550 5.7.1"},
		{`<"victim%elsewhere.test"@example.org>`, "550 5.7.1"},
		{"<@example.org:victim@elsewhere.test>", "550 5.7.1"},
		{"<@example.org,@mx.example.org:victim@elsewhere.test>", "550 5.7.1"},
		{"<victim@[192.0.2.1]>", "550 5.7.1"},
		{"<alice@example.org@elsewhere.test>", "550 5.7.1"},
		{`<"al ice"@example.org>`, "553 5.1.3"},
		{"<jörg@example.org>", "553 5.6.7"}, // no SMTPUTF8 on MAIL
	}
	for _, tc := range cases {
		got := rc.cmd("RCPT TO:"+tc.rcpt, "")
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tc.rcpt, got, tc.want)
		}
		if strings.Contains(got, "victim") || strings.Contains(got, "policy") {
			t.Errorf("RCPT TO:%s reply leaks detail: %q", tc.rcpt, got)
		}
	}
	// With no accepted recipient, DATA is refused and nothing is read.
	rc.cmd("DATA", "554 5.5.1")
	rc.cmd("QUIT", "221")
	e.expectEmpty()
	if logs := e.logs.String(); strings.Contains(logs, "victim") || strings.Contains(logs, "nobody") {
		t.Errorf("log names refused local parts:\n%s", logs)
	}
}

func TestSourceRouteToLocalIsIgnored(t *testing.T) {
	// RFC 5321 §4.1.1.3: a source route may be ignored. The final mailbox
	// decides: here it is local, so the mail is delivered, not relayed.
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin("@elsewhere.test:alice@example.org")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: routed\r\n\r\nbody\r\n.", "250 2.0.0")
	if c := e.counts(); c["alice@example.org"] != 1 {
		t.Errorf("counts %v", c)
	}
}

func TestPostmasterAndAliases(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Postmaster = "carol@other.test" })
	if err := sendGo(t, e.addr, "", []string{"PostMaster@example.org"}, testMessage("pm", "x")); err != nil {
		t.Fatalf("postmaster: %v", err)
	}
	if err := sendGo(t, e.addr, "", []string{"postmaster@other.test"}, testMessage("pm2", "x")); err != nil {
		t.Fatalf("postmaster: %v", err)
	}
	if c := e.counts(); c["carol@other.test"] != 2 || c["alice@example.org"] != 0 {
		t.Errorf("counts %v, want carol 2", c)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, nil)
	bad := map[string]Options{
		"no store":       {Domains: []string{"example.org"}},
		"bad hostname":   {Store: e.db, Hostname: "mx example"},
		"alias relays":   {Store: e.db, Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"x@elsewhere.test"}}},
		"bad postmaster": {Store: e.db, Domains: []string{"example.org"}, Postmaster: "pm@elsewhere.test"},
		"tiny lines":     {Store: e.db, Limits: Limits{LineLength: 10}},
	}
	for name, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	s, err := New(Options{Store: e.db})
	if err != nil {
		t.Fatalf("New with zero options: %v", err)
	}
	if s.lim.MessageBytes != DefaultMessageBytes || s.lim.Recipients != DefaultRecipients || s.opt.Hostname == "" {
		t.Errorf("defaults not applied: %+v %q", s.lim, s.opt.Hostname)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Serve: %v", err)
	}
}

func TestEHLOCapabilities(t *testing.T) {
	srvTLS, _ := testTLSConfig(t)
	e := newEnv(t, func(o *Options) {
		o.TLSConfig = srvTLS
		o.Limits.MessageBytes = 12345
	})
	rc := dialRaw(t, e.addr)
	rc.send("EHLO client.remote.test\r\n")
	var lines []string
	for len(lines) < 50 {
		rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := rc.r.ReadString('\n')
		if err != nil {
			t.Fatalf("EHLO reply: %v", err)
		}
		lines = append(lines, strings.TrimSpace(l))
		if strings.HasPrefix(l, "250 ") {
			break
		}
	}
	caps := strings.Join(lines, "\n")
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "STARTTLS", "SIZE 12345"} {
		if !strings.Contains(caps, want) {
			t.Errorf("EHLO lacks %s:\n%s", want, caps)
		}
	}
	for _, bad := range []string{"AUTH", "BINARYMIME", "DSN"} {
		if strings.Contains(caps, bad) {
			t.Errorf("EHLO offers %s:\n%s", bad, caps)
		}
	}
	rc.cmd("AUTH PLAIN AGFsaWNlAHBhc3M=", "5")
}
