package smtp

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Regression tests for what go-smtp's server got wrong (issue 9 items 5
// and 10, issue 14's SMTP findings). Each reproduces the attack or the
// client's session against the running server.

// startTLSRaw upgrades rc with STARTTLS and returns the TLS line client.
func startTLSRaw(t *testing.T, rc *rawConn, cli *tls.Config) *rawConn {
	t.Helper()
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("STARTTLS", "220")
	tc := tls.Client(rc.c, cli)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &rawConn{t: t, c: tc, r: bufio.NewReader(tc)}
}

// TestBDATTruncatedByClose: a chunk announced as 108 bytes of which 63
// arrive before the connection ends is not a message. go-smtp passed the
// short chunk on as complete ("message delivered size=63"), so an on-path
// attacker could truncate a CHUNKING sender at a TLS record boundary.
func TestBDATTruncatedByClose(t *testing.T) {
	srvTLS, cliTLS := testTLSConfig(t)
	body := "Subject: truncated\r\n\r\n" + strings.Repeat("b", 39) + "\r\n" // 63 bytes
	if len(body) != 63 {
		t.Fatalf("body is %d bytes", len(body))
	}
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.TLSConfig = srvTLS })
			rc := dialRaw(t, e.addr)
			if useTLS {
				rc = startTLSRaw(t, rc, cliTLS)
			}
			rc.begin("alice@example.org")
			rc.send("BDAT 108 LAST\r\n" + body)
			// Close the writing side (a TLS close_notify, or a TCP FIN),
			// as a cut connection looks.
			if tc, ok := rc.c.(*tls.Conn); ok {
				tc.CloseWrite()
			} else {
				rc.c.(interface{ CloseWrite() error }).CloseWrite()
			}
			if got := rc.reply(); strings.HasPrefix(got, "250") {
				t.Errorf("truncated chunk answered %q", got)
			}
			e.expectEmpty()
			if logs := e.logs.String(); strings.Contains(logs, "message delivered") {
				t.Errorf("log reports a delivery:\n%s", logs)
			}
		})
	}
}

// TestBDATTruncatedMidway: the same for the last of several chunks, and
// with no close at all, just silence: nothing is stored.
func TestBDATTruncatedMidway(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	first := "Subject: chunks\r\n\r\n"
	rc.send(fmt.Sprintf("BDAT %d\r\n%s", len(first), first))
	rc.expect("250 ")
	rc.send("BDAT 50 LAST\r\nonly part of it\r\n")
	rc.c.(interface{ CloseWrite() error }).CloseWrite()
	if got := rc.reply(); strings.HasPrefix(got, "250") {
		t.Errorf("truncated last chunk answered %q", got)
	}
	e.expectEmpty()
}

// TestPipelinedBDATAbort: a failed BDAT transaction and a good one sent
// in one pipelined write get their replies in order, one per command;
// the good message arrives exactly once and the failed one not at all.
// Under go-smtp a stale result of the aborted chunk could answer the next
// transaction (451), and the sender's retry made a duplicate.
func TestPipelinedBDATAbort(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	bad := "Subject: bad\r\n\r\nbare\nLF\r\n"
	tail := "more of the bad message\r\n"
	good := "Subject: good\r\n\r\nfine\r\n"
	for round := 0; round < 5; round++ {
		rc.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.org>\r\n" +
			fmt.Sprintf("BDAT %d\r\n%s", len(bad), bad) +
			fmt.Sprintf("BDAT %d LAST\r\n%s", len(tail), tail) +
			"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bob@example.org>\r\n" +
			fmt.Sprintf("BDAT %d LAST\r\n%s", len(good), good) +
			"NOOP\r\n")
		for i, want := range []string{"250 ", "250 ", "550 5.6.11", "503 5.5.1", "250 ", "250 ", "250 2.0.0", "250 "} {
			if got := rc.reply(); !strings.HasPrefix(got, want) {
				t.Fatalf("round %d, reply %d: %q, want %q", round, i, got, want)
			}
		}
	}
	if c := e.counts(); c["alice@example.org"] != 0 || c["bob@example.org"] != 5 {
		t.Errorf("counts %v, want bob 5 and alice none", c)
	}
}

// TestPostmasterWithoutDomain: RFC 5321 §4.5.1 — RCPT TO:<postmaster>
// must be accepted (swaks --to postmaster sends exactly this). go-smtp
// answered 501 before our code saw it.
func TestPostmasterWithoutDomain(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Postmaster = "carol@other.test" })
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	rc.cmd("RCPT TO:<postmaster>", "250 ")
	rc.cmd("RCPT TO:<PostMaster>", "250 ")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: to the postmaster\r\n\r\nhello\r\n.", "250 ")
	if c := e.counts(); c["carol@other.test"] != 1 || c["alice@example.org"] != 0 {
		t.Errorf("counts %v, want one message for the postmaster (carol)", c)
	}
	// Without a postmaster account, the bare form is refused like any
	// unknown user, not as a syntax error.
	e2 := newEnv(t, nil)
	rc2 := dialRaw(t, e2.addr)
	rc2.begin()
	rc2.cmd("RCPT TO:<postmaster>", "550 5.1.1")
}

// TestAuthOnMX: the MX offers no AUTH and says so with 502 5.5.1 naming
// submission, before and after STARTTLS (go-smtp answered 523 before TLS
// and 504 after, as if a mechanism were the problem).
func TestAuthOnMX(t *testing.T) {
	srvTLS, cliTLS := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = srvTLS })
	rc := dialRaw(t, e.addr)
	ehlo := rc.cmd("EHLO client.remote.test", "250 ")
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("EHLO offers AUTH: %q", ehlo)
	}
	got := rc.cmd("AUTH PLAIN AGFsaWNlAHBhc3M=", "502 5.5.1")
	if !strings.Contains(got, "submission") {
		t.Errorf("AUTH reply %q does not point to submission", got)
	}
	trc := startTLSRaw(t, rc, cliTLS)
	trc.cmd("EHLO client.remote.test", "250 ")
	trc.cmd("AUTH LOGIN", "502 5.5.1")
	trc.cmd("NOOP", "250 ")
}

// TestRepliesSayWhatHappened: the greeting and replies are short and
// true: no "Roger, accepting mail", no "OK: queued" from a server without
// a queue; the 250 after the data names the id in the Received field.
func TestRepliesSayWhatHappened(t *testing.T) {
	e := newEnv(t, nil)
	c := dialRawNoGreeting(t, e.addr)
	var all []string
	say := func(line, want string) string {
		t.Helper()
		if line != "" {
			c.send(line + "\r\n")
		}
		got := c.expect(want)
		all = append(all, got)
		return got
	}
	say("", "220 mx.example.org ")
	say("EHLO client.remote.test", "250 ")
	say("MAIL FROM:<sender@remote.test>", "250 2.1.0")
	say("RCPT TO:<alice@example.org>", "250 2.1.5")
	say("DATA", "354 ")
	final := say("Subject: x\r\n\r\ny\r\n.", "250 2.0.0")
	say("QUIT", "221 2.0.0")
	for _, r := range all {
		for _, chatty := range []string{"Roger", "queued", "make sure", "Go ahead", "I'll"} {
			if strings.Contains(r, chatty) {
				t.Errorf("reply %q says %q", r, chatty)
			}
		}
	}
	id := regexp.MustCompile(`id ([a-z2-7]{16})$`).FindStringSubmatch(final)
	if id == nil {
		t.Fatalf("250 %q names no transaction id", final)
	}
	if m := e.inbox("alice@example.org"); len(m) != 1 || !strings.Contains(m[0], "(sealmail) with ESMTP id "+id[1]) {
		t.Errorf("the id of the 250 is not the Received field's: %q", m)
	}
}

// TestSourceRoutesAndQuotedLocalParts: what SECURITY.md says about
// address tricks. A source route is ignored (RFC 5321 §3.3): the final
// mailbox decides, so a route to a local mailbox is delivered and one to
// anywhere else is relaying. A quoted local part is decoded: "alice" is
// alice (RFC 5321 §4.1.2), one hiding '@', '%' or '!' is relaying, one
// with a space is bad syntax.
func TestSourceRoutesAndQuotedLocalParts(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.begin()
	for _, tc := range []struct{ rcpt, want string }{
		{"<@elsewhere.test:alice@example.org>", "250 "},
		{"<@a.test,@b.test:bob@example.org>", "250 "},
		{`<"carol"@other.test>`, "250 "},
		{"<@example.org:victim@elsewhere.test>", "550 5.7.1"},
		{`<"victim@elsewhere.test"@example.org>`, "550 5.7.1"},
		{`<"victim%elsewhere.test"@example.org>`, "550 5.7.1"},
		{`<"elsewhere.test!victim"@example.org>`, "550 5.7.1"},
		{`<"al\"ice"@example.org>`, "550 5.7.1"},
		{`<"al ice"@example.org>`, "553 5.1.3"},
		{"<@example.org>", "501 5.1.3"},
	} {
		if got := rc.cmd("RCPT TO:"+tc.rcpt, ""); !strings.HasPrefix(got, tc.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tc.rcpt, got, tc.want)
		}
	}
	rc.cmd("DATA", "354")
	rc.cmd("Subject: routed\r\n\r\nbody\r\n.", "250 ")
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 || c["carol@other.test"] != 1 {
		t.Errorf("counts %v, want one each", c)
	}
}

// TestDataStallCutPerRead: a client that stops sending in the middle of
// DATA is cut off after the per-read timeout, not only when the whole
// transfer's deadline passes (go-smtp had one deadline for all of DATA).
func TestDataStallCutPerRead(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.CommandTimeout = 300 * time.Millisecond
		o.Limits.DataTimeout = time.Hour
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	rc.send("Subject: stalls\r\n\r\nfirst line\r\n")
	rc.expect("421 4.4.2")
	if got := rc.reply(); !strings.HasPrefix(got, "EOF") {
		t.Errorf("after the timeout got %q, want the connection closed", got)
	}
	e.expectEmpty()
}

// TestDataTooSlow: message data that trickles in below Limits.MinDataRate
// is cut off with 421 4.4.2 (after the grace period, here none), however
// long the transfer's deadline; nothing is stored.
func TestDataTooSlow(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MinDataRate = 1 << 30
		o.Limits.DataTimeout = time.Hour
		o.Limits.CommandTimeout = time.Minute
		o.hooks = &testHooks{sleep: sleepCtx, rateGrace: 0}
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354")
	var got string
	for i := 0; i < 100; i++ {
		if _, err := rc.c.Write([]byte("x\r\n")); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
		rc.c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if line, err := rc.r.ReadString('\n'); err == nil {
			got = line
			break
		}
	}
	if !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("trickling client got %q, want 421 4.4.2", got)
	}
	e.expectEmpty()
}
