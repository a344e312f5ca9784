package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/store"
)

// subEnv is a submission server over the env's store, with the account
// service, a queue delivering remote.test and elsewhere.test to a sink,
// and the server's TLS configuration (clientTLS trusts it).
type subEnv struct {
	*testEnv
	accts     *account.Service
	q         *queue.Queue
	sink      *sink.Server
	clientTLS *tls.Config
	serverTLS *tls.Config
}

type subSetup struct {
	failureDelay time.Duration
	sink         sink.Options
	edit         func(*Options)
}

func newSubEnv(t *testing.T, setup subSetup) *subEnv {
	t.Helper()
	se := &subEnv{}
	se.sink = startSinkT(t, setup.sink)
	se.serverTLS, se.clientTLS = testTLSConfig(t)
	var closers []func()
	e := newEnv(t, func(o *Options) {
		var err error
		se.accts, err = account.New(account.Options{Store: o.Store.(account.Store), Domains: o.Domains,
			KDF: crypto.TestKDF(), FailureDelay: setup.failureDelay, Logger: o.Logger})
		if err != nil {
			t.Fatal(err)
		}
		res, err := resolver.New(resolver.Options{Server: dnstest.Start(t).Addr})
		if err != nil {
			t.Fatal(err)
		}
		se.q, err = queue.New(queue.Options{
			Store: o.Store.(queue.Store), Key: bytes.Repeat([]byte{9}, queue.KeySize), Hostname: o.Hostname, Resolver: res,
			Domains: o.Domains, Aliases: o.Aliases, Logger: o.Logger,
			Transports: map[string]string{"remote.test": se.sink.Addr, "elsewhere.test": se.sink.Addr},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := se.q.Start(); err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			se.q.Shutdown(ctx)
		}, se.accts.Close)
		o.TLSConfig = se.serverTLS
		o.Submission = &SubmissionOptions{Accounts: se.accts, Queue: se.q}
		o.Hostname = "mx.example.org"
		if setup.edit != nil {
			setup.edit(o)
		}
	})
	e.beforeClose = closers
	se.testEnv = e
	return se
}

func startSinkT(t *testing.T, opt sink.Options) *sink.Server {
	t.Helper()
	opt.KeepData = true
	s, err := sink.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client returns a go-smtp client that said EHLO and STARTTLS.
func (se *subEnv) client(t *testing.T) *gosmtp.Client {
	t.Helper()
	c, err := gosmtp.DialStartTLS(se.addr, se.clientTLS)
	if err != nil {
		t.Fatalf("dial with STARTTLS: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login returns a TLS client authenticated as alice.
func (se *subEnv) login(t *testing.T, user, pass string) *gosmtp.Client {
	t.Helper()
	c := se.client(t)
	if err := c.Auth(plainAuth(user, pass)); err != nil {
		t.Fatalf("AUTH as %s: %v", user, err)
	}
	return c
}

// plainAuth is a SASL PLAIN client (go-sasl's refuses nothing, which is
// what a test wants).
type plainClient struct{ user, pass string }

func plainAuth(user, pass string) *plainClient { return &plainClient{user, pass} }

func (p *plainClient) Start() (string, []byte, error) {
	return "PLAIN", []byte("\x00" + p.user + "\x00" + p.pass), nil
}
func (p *plainClient) Next([]byte) ([]byte, error) { return nil, nil }

// send sends msg with c.
func send(c *gosmtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

const aliceMessage = "From: Alice <alice@example.org>\r\nTo: bob@example.org, x@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n"

// waitSink waits until the sink has n messages.
func (se *subEnv) waitSink(t *testing.T, n int) []sink.Message {
	t.Helper()
	if got := se.sink.Wait(n, 2*time.Minute); got < n {
		t.Fatalf("the sink got %d messages, want %d", got, n)
	}
	return se.sink.Messages()
}

// TestSubmissionDelivers: an authenticated client sends to a local and
// a remote recipient. The local copy is sealed in bob's INBOX with a
// Return-Path; the remote one reaches the sink without it; both carry
// the Received field (ESMTPSA) and the Message-ID and Date the server
// added.
func TestSubmissionDelivers(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	c := se.login(t, "alice@example.org", testPassword)
	if err := send(c, "alice@example.org", []string{"bob@example.org", "x@remote.test"}, aliceMessage); err != nil {
		t.Fatalf("send: %v", err)
	}
	in := se.inbox("bob@example.org")
	if len(in) != 1 {
		t.Fatalf("bob has %d messages", len(in))
	}
	local := in[0]
	remote := string(se.waitSink(t, 1)[0].Data)
	for name, m := range map[string]string{"local": local, "remote": remote} {
		for _, want := range []string{"with ESMTPSA id ", "Received: from ", "Message-ID: <", "@mx.example.org>", "\r\nDate: ", "Subject: hi", "Hello."} {
			if !strings.Contains(m, want) {
				t.Errorf("%s copy lacks %q:\n%s", name, want, m)
			}
		}
	}
	if !strings.HasPrefix(local, "Return-Path: <alice@example.org>\r\n") {
		t.Errorf("local copy starts %q", local[:min(60, len(local))])
	}
	if strings.Contains(remote, "Return-Path:") {
		t.Error("the remote copy has a Return-Path")
	}
	if id := headerValue(local, "Message-ID"); id == "" || id != headerValue(remote, "Message-ID") {
		t.Errorf("Message-IDs differ: %q, %q", id, headerValue(remote, "Message-ID"))
	}
	if m := se.sink.Messages()[0]; m.From != "alice@example.org" || strings.Join(m.Rcpts, ",") != "x@remote.test" {
		t.Errorf("sink got %+v", m)
	}
	waitQueueEmpty(t, se.db)
	accountLogged(t, se.logs.String(), "alice@example.org", "message submitted")
}

// accountLogged checks that each record of the messages given exists
// and names the account once, as the authenticated one: the
// connection's logger has carried it since AUTH, so a record that adds
// it again prints account= twice.
func accountLogged(t *testing.T, logs, account string, msgs ...string) {
	t.Helper()
	for _, msg := range msgs {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, ` msg="`+msg+`"`) {
				continue
			}
			found = true
			if n := strings.Count(line, " account="); n != 1 || !strings.Contains(line, " account="+account+" ") && !strings.HasSuffix(line, " account="+account) {
				t.Errorf("%d account= in %s", n, line)
			}
		}
		if !found {
			t.Errorf("no %q record in the log:\n%s", msg, logs)
		}
	}
}

func headerValue(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if l == "" {
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func waitQueueEmpty(t *testing.T, db store.Store) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := db.QueueLen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries stay queued", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubmissionNeedsTLSForAuth: AUTH is not offered, and refused, on a
// plaintext connection; after STARTTLS it is offered.
func TestSubmissionNeedsTLSForAuth(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	rc := dialRaw(t, se.addr)
	rc.send("EHLO client.example.org\r\n")
	for {
		line := rc.reply()
		if strings.HasPrefix(line, "250 ") {
			break
		}
		if !strings.HasPrefix(line, "250-") {
			t.Fatalf("EHLO: %q", line)
		}
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00" + testPassword))
	rc.cmd("AUTH PLAIN "+cred, "538 5.7.11")
	rc.cmd("MAIL FROM:<alice@example.org>", "530 5.7.0")
	// The EHLO listing without TLS has no AUTH; with it, it has.
	plain, _ := ehloLines(t, se.addr, false, se.clientTLS)
	if strings.Contains(plain, "AUTH") || !strings.Contains(plain, "STARTTLS") || !strings.Contains(plain, "DSN") {
		t.Errorf("plaintext EHLO: %s", plain)
	}
	secure, _ := ehloLines(t, se.addr, true, se.clientTLS)
	if !strings.Contains(secure, "AUTH PLAIN LOGIN") || strings.Contains(secure, "STARTTLS") || !strings.Contains(secure, "REQUIRETLS") {
		t.Errorf("EHLO under TLS: %s", secure)
	}
}

// ehloLines returns the EHLO reply, after STARTTLS if tlsOn.
func ehloLines(t *testing.T, addr string, tlsOn bool, cfg *tls.Config) (string, *gosmtp.Client) {
	t.Helper()
	var c *gosmtp.Client
	var err error
	if tlsOn {
		c, err = gosmtp.DialStartTLS(addr, cfg)
	} else {
		c, err = gosmtp.Dial(addr)
		if err == nil {
			err = c.Hello("client.example.org")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var exts []string
	for _, e := range []string{"AUTH", "STARTTLS", "DSN", "REQUIRETLS", "SIZE", "PIPELINING", "CHUNKING", "SMTPUTF8", "8BITMIME"} {
		if ok, p := c.Extension(e); ok {
			exts = append(exts, strings.TrimSpace(e+" "+p))
		}
	}
	return strings.Join(exts, "\n"), c
}

// TestSubmissionRelayBatteryWithoutAuth: without AUTH nothing is
// accepted, whatever the addresses: MAIL gets 530 5.7.0, RCPT 503, DATA
// 503; nothing is stored or queued; also over TLS.
func TestSubmissionRelayBatteryWithoutAuth(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	battery := []string{
		"victim@elsewhere.test",
		"victim%elsewhere.test@example.org",
		"elsewhere.test!victim@example.org",
		`"victim@elsewhere.test"@example.org`,
		"@example.org:victim@elsewhere.test",
		"alice@example.org",
		"postmaster",
	}
	for _, useTLS := range []bool{false, true} {
		var rc *rawConn
		if useTLS {
			rc = dialRaw(t, se.addr)
			rc.cmd("EHLO client.example.org", "250 ")
			rc.cmd("STARTTLS", "220 ")
			tc := tls.Client(rc.c, se.clientTLS)
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			rc.c = tc
			rc.r.Reset(tc)
		} else {
			rc = dialRaw(t, se.addr)
		}
		rc.cmd("EHLO client.example.org", "250 ")
		for _, from := range []string{"alice@example.org", "", "spammer@elsewhere.test"} {
			rc.cmd("MAIL FROM:<"+from+">", "530 5.7.0")
		}
		for _, to := range battery {
			rc.cmd("RCPT TO:<"+to+">", "503 ")
		}
		rc.cmd("DATA", "503 ")
		rc.send("BDAT 10 LAST\r\n0123456789")
		rc.expect("503 ")
		rc.cmd("QUIT", "221 ")
	}
	se.expectEmpty()
	if n, _ := se.db.QueueLen(context.Background()); n != 0 || se.sink.Count() != 0 {
		t.Fatalf("queued %d, sink got %d", n, se.sink.Count())
	}
}

// TestSubmissionSpoofedSender: the envelope sender and every From: (and
// Sender:) address must be the account's own, an alias of it, or a
// sub-address of either; anything else is 550 5.7.1 and nothing is
// stored or queued.
func TestSubmissionSpoofedSender(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	c := se.login(t, "alice@example.org", testPassword)
	refused := func(err error, want string) {
		t.Helper()
		if code := smtpCode(err); code != want {
			t.Fatalf("got %v (%s), want %s", err, code, want)
		}
		c.Reset()
	}
	refused(c.Mail("bob@example.org", nil), "550 5.7.1")
	refused(c.Mail("alice@elsewhere.test", nil), "550 5.7.1")
	refused(send(c, "alice@example.org", []string{"x@remote.test"},
		"From: Bob <bob@example.org>\r\nSubject: spoof\r\n\r\nx\r\n"), "550 5.7.1")
	refused(send(c, "alice@example.org", []string{"x@remote.test"},
		"From: Alice <alice@example.org>, Bob <bob@example.org>\r\nSubject: spoof\r\n\r\nx\r\n"), "550 5.7.1")
	refused(send(c, "alice@example.org", []string{"x@remote.test"},
		"From: Alice <alice@example.org>\r\nSender: bob@example.org\r\nSubject: spoof\r\n\r\nx\r\n"), "550 5.7.1")
	refused(send(c, "alice@example.org", []string{"x@remote.test"},
		"Subject: no from\r\n\r\nx\r\n"), "550 5.6.0")
	refused(send(c, "alice@example.org", []string{"x@remote.test"},
		"From: alice@example.org\r\nFrom: alice@example.org\r\n\r\nx\r\n"), "550 5.6.0")
	se.expectEmpty()
	accountLogged(t, se.logs.String(), "alice@example.org",
		"MAIL refused: sender not owned", "message refused: From: not owned", "message not submitted")
	if n, _ := se.db.QueueLen(context.Background()); n != 0 {
		t.Fatalf("%d entries queued", n)
	}
	// What alice owns: herself, the alias team@ (which delivers to her),
	// sub-addresses, and the null sender for read receipts.
	for _, tc := range []struct{ from, header string }{
		{"alice+lists@example.org", "Alice <ALICE@example.org>"},
		{"team@example.org", "Team <team@example.org>"},
		{"", "alice@example.org"},
		{"alice@example.org", "=?utf-8?q?Al=C3=AFce?= <alice+x@example.org>"},
	} {
		if err := send(c, tc.from, []string{"x@remote.test"}, "From: "+tc.header+"\r\nSubject: ok\r\n\r\nx\r\n"); err != nil {
			t.Fatalf("send as %q / %q: %v", tc.from, tc.header, err)
		}
	}
	se.waitSink(t, 4)
}

// TestSubmissionWrongPassword: a wrong password and an unknown user get
// the same 535 5.7.8; three failures end the connection; a burst of
// parallel guesses from one address is throttled (454 4.7.0) before any
// work.
func TestSubmissionWrongPassword(t *testing.T) {
	// A long failure delay keeps the first guesses in flight while the
	// burst arrives, however slow the machine: the throttle then must
	// refuse the rest. No test waits for the delay.
	se := newSubEnv(t, subSetup{failureDelay: 10 * time.Minute})
	tlsRaw := func() *rawConn {
		rc := dialRaw(t, se.addr)
		rc.cmd("EHLO client.example.org", "250 ")
		rc.cmd("STARTTLS", "220 ")
		tc := tls.Client(rc.c, se.clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		rc.c = tc
		rc.r.Reset(tc)
		rc.cmd("EHLO client.example.org", "250 ")
		return rc
	}
	const burst = 24
	var wg sync.WaitGroup
	replies := make(chan string, burst)
	conns := make([]*rawConn, burst)
	for i := range conns {
		conns[i] = tlsRaw()
	}
	for i, rc := range conns {
		user := "alice@example.org"
		if i%2 == 1 {
			user = "nobody@example.org"
		}
		cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00wrong guess"))
		rc.send("AUTH PLAIN " + cred + "\r\n")
		wg.Go(func() {
			rc.c.SetReadDeadline(time.Now().Add(time.Minute))
			line, err := rc.r.ReadString('\n')
			if err != nil {
				return // still waiting out the failure delay: fine
			}
			replies <- strings.TrimSpace(line)
		})
	}
	throttled := 0
	deadline := time.After(2 * time.Minute)
	for throttled < burst-12 {
		select {
		case r := <-replies:
			if !strings.HasPrefix(r, "454 4.7.0") {
				t.Fatalf("a guess in the burst got %q before the failure delay", r)
			}
			throttled++
		case <-deadline:
			t.Fatalf("only %d of %d parallel guesses throttled", throttled, burst)
		}
	}
	for _, rc := range conns {
		rc.c.Close()
	}
	wg.Wait()
}

// TestSubmissionFailuresClose: wrong credentials get 535 5.7.8, for a
// known and an unknown user alike, and the third failure closes the
// connection.
func TestSubmissionFailuresClose(t *testing.T) {
	se := newSubEnv(t, subSetup{failureDelay: -1})
	c := se.client(t)
	for _, user := range []string{"alice@example.org", "nobody@example.org"} {
		if code := smtpCode(c.Auth(plainAuth(user, "nope"))); code != "535 5.7.8" {
			t.Fatalf("AUTH as %s with a wrong password: %s", user, code)
		}
	}
	err := c.Auth(plainAuth("alice@example.org", "nope"))
	if code := smtpCode(err); code != "421 4.7.0" {
		t.Fatalf("third failure: %v", err)
	}
}

// TestSubmissionAppPassword: an app password logs in; AUTH LOGIN works
// for old clients; revoking the app password ends its connection.
func TestSubmissionAppPassword(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	ap, err := se.accts.AddAppPassword(context.Background(), "alice@example.org", []byte(testPassword), "phone")
	if err != nil {
		t.Fatal(err)
	}
	c := se.login(t, "alice@example.org", ap.Secret)
	if err := send(c, "alice@example.org", []string{"x@remote.test"}, aliceMessage); err != nil {
		t.Fatalf("send with an app password: %v", err)
	}
	// AUTH LOGIN, by hand.
	rc := dialRaw(t, se.addr)
	rc.cmd("EHLO client.example.org", "250 ")
	rc.cmd("STARTTLS", "220 ")
	tc := tls.Client(rc.c, se.clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.c = tc
	rc.r.Reset(tc)
	rc.cmd("EHLO client.example.org", "250 ")
	rc.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
	rc.cmd(base64.StdEncoding.EncodeToString([]byte("alice@example.org")), "334 UGFzc3dvcmQ6")
	rc.cmd(base64.StdEncoding.EncodeToString([]byte(ap.Secret)), "235 2.7.0")
	rc.cmd("MAIL FROM:<alice@example.org>", "250 ")
	rc.cmd("RSET", "250 ")
	// Revoke: the connection ends.
	if _, err := se.accts.RevokeSlot(context.Background(), "alice@example.org", ap.Slot); err != nil {
		t.Fatal(err)
	}
	rc.c.SetReadDeadline(time.Now().Add(time.Minute))
	rc.send("NOOP\r\n")
	if r := rc.reply(); !strings.HasPrefix(r, "EOF") {
		t.Fatalf("after revocation, NOOP got %q", r)
	}
	se.waitSink(t, 1)
}

// TestSubmissionHideClientIP: with the privacy option the Received
// field names neither the client's address nor its EHLO name.
func TestSubmissionHideClientIP(t *testing.T) {
	se := newSubEnv(t, subSetup{edit: func(o *Options) { o.Submission.HideClientIP = true }})
	c := se.login(t, "alice@example.org", testPassword)
	if err := send(c, "alice@example.org", []string{"x@remote.test"}, aliceMessage); err != nil {
		t.Fatal(err)
	}
	got := string(se.waitSink(t, 1)[0].Data)
	if strings.Contains(got, "127.0.0.1") || strings.Contains(got, "localhost") || !strings.Contains(got, "Received: by mx.example.org (sealmail) with ESMTPSA id ") {
		t.Fatalf("message:\n%s", got)
	}
}

// TestSubmissionDSNParameters: RET, ENVID, NOTIFY and ORCPT reach a
// next hop that offers DSN.
func TestSubmissionDSNParameters(t *testing.T) {
	se := newSubEnv(t, subSetup{sink: sink.Options{DSN: true}})
	c := se.login(t, "alice@example.org", testPassword)
	if err := c.Mail("alice@example.org", &gosmtp.MailOptions{Return: gosmtp.DSNReturnHeaders, EnvelopeID: "env+id 7"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@remote.test", &gosmtp.RcptOptions{Notify: []gosmtp.DSNNotify{gosmtp.DSNNotifyFailure, gosmtp.DSNNotifyDelayed},
		OriginalRecipientType: gosmtp.DSNAddressTypeRFC822, OriginalRecipient: "X@Remote.test"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, aliceMessage)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m := se.waitSink(t, 1)[0]
	if m.Ret != "HDRS" || m.EnvID != "env+id 7" || strings.Join(m.Notify[0], ",") != "FAILURE,DELAY" || m.ORcpt[0] != "X@Remote.test" {
		t.Fatalf("sink got RET %q ENVID %q NOTIFY %v ORCPT %v", m.Ret, m.EnvID, m.Notify, m.ORcpt)
	}
	for _, bad := range []string{"RET=ALL", "ENVID=a=b", "AUTH=x+y"} {
		rc := se.rawLogin(t)
		rc.cmd("MAIL FROM:<alice@example.org> "+bad, "501 ")
	}
	rc := se.rawLogin(t)
	rc.cmd("MAIL FROM:<alice@example.org> RET=FULL ENVID=abc AUTH=<>", "250 ")
	rc.cmd("RCPT TO:<x@remote.test> NOTIFY=NEVER,SUCCESS", "501 ")
	rc.cmd("RCPT TO:<x@remote.test> ORCPT=unknown;x", "501 ")
	rc.cmd("RCPT TO:<x@remote.test> NOTIFY=SUCCESS ORCPT=utf-8;j\\x{00F6}rg@x.test", "250 ")
}

// rawLogin returns a raw connection authenticated as alice over TLS.
func (se *subEnv) rawLogin(t *testing.T) *rawConn {
	t.Helper()
	rc := dialRaw(t, se.addr)
	rc.cmd("EHLO client.example.org", "250 ")
	rc.cmd("STARTTLS", "220 ")
	tc := tls.Client(rc.c, se.clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.c = tc
	rc.r.Reset(tc)
	rc.cmd("EHLO client.example.org", "250 ")
	rc.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00"+testPassword)), "235 ")
	return rc
}

// TestSubmissionTransforms: transforms run in order on every message;
// each sees the fields the server and earlier transforms added; their
// fields reach local and remote copies; a transform's *Reply refuses
// the message and nothing is stored.
func TestSubmissionTransforms(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	first := TransformFunc(func(ctx context.Context, m *Submitted, r io.Reader) ([]byte, error) {
		b, _ := io.ReadAll(r)
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		if strings.Contains(string(b), "Subject: refuse") {
			return nil, &Reply{550, "5.7.1", "refused by policy"}
		}
		return []byte("X-First: " + m.Account + " " + strings.Join(m.HeaderFrom, ",") + "\r\n"), nil
	})
	second := TransformFunc(func(ctx context.Context, m *Submitted, r io.Reader) ([]byte, error) {
		b, _ := io.ReadAll(r)
		if !strings.HasPrefix(string(b), "X-First: ") {
			t.Errorf("second transform saw %q", b[:min(40, len(b))])
		}
		return []byte("X-Second: yes\r\n"), nil
	})
	se := newSubEnv(t, subSetup{edit: func(o *Options) { o.Submission.Transforms = []Transform{first, second} }})
	c := se.login(t, "alice@example.org", testPassword)
	if err := send(c, "alice@example.org", []string{"bob@example.org", "x@remote.test"}, aliceMessage); err != nil {
		t.Fatal(err)
	}
	remote := string(se.waitSink(t, 1)[0].Data)
	local := se.inbox("bob@example.org")[0]
	for _, m := range []string{remote, local} {
		if !strings.Contains(m, "X-Second: yes\r\nX-First: alice@example.org alice@example.org\r\nMessage-ID: ") {
			t.Fatalf("copy lacks the transforms' fields in order:\n%s", m)
		}
	}
	if !strings.HasPrefix(seen[0], "Message-ID: <") || !strings.Contains(seen[0], "Received: from") {
		t.Fatalf("the first transform saw %q", seen[0][:min(80, len(seen[0]))])
	}
	err := send(c, "alice@example.org", []string{"bob@example.org", "x@remote.test"},
		"From: alice@example.org\r\nSubject: refuse\r\n\r\nx\r\n")
	if code := smtpCode(err); code != "550 5.7.1" {
		t.Fatalf("refused by a transform: %v", err)
	}
	if n := len(se.inbox("bob@example.org")); n != 1 {
		t.Fatalf("bob has %d messages", n)
	}
	waitQueueEmpty(t, se.db)
}

// TestSubmissionAtomic: when a local copy cannot be stored (quota), the
// remote copy is not queued either: one transaction or nothing.
func TestSubmissionAtomic(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	if err := se.db.SetQuota(context.Background(), "bob@example.org", 600); err != nil {
		t.Fatal(err)
	}
	c := se.login(t, "alice@example.org", testPassword)
	big := aliceMessage + strings.Repeat(strings.Repeat("x", 100)+"\r\n", 20)
	err := send(c, "alice@example.org", []string{"bob@example.org", "x@remote.test"}, big)
	if code := smtpCode(err); !strings.HasPrefix(code, "552") && !strings.HasPrefix(code, "452") {
		t.Fatalf("over quota: %v", err)
	}
	if n, _ := se.db.QueueLen(context.Background()); n != 0 {
		t.Fatalf("%d entries queued for a refused message", n)
	}
	se.expectEmpty()
}

// TestSubmissionImplicitTLS: the same server serves an implicit-TLS
// listener (port 465): AUTH is offered at once.
func TestSubmissionImplicitTLS(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	c, err := gosmtp.DialTLS(se.serveImplicitTLS(t), se.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(plainAuth("alice@example.org", testPassword)); err != nil {
		t.Fatalf("AUTH over implicit TLS: %v", err)
	}
	if err := send(c, "alice@example.org", []string{"x@remote.test"}, aliceMessage); err != nil {
		t.Fatal(err)
	}
	se.waitSink(t, 1)
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(ln, cfg) }

// TestSubmissionRatePerAccount: submission counts delivery rates per
// account, not per client address: one account over the limit gets
// 451 4.7.1, another from the same address does not.
func TestSubmissionRatePerAccount(t *testing.T) {
	se := newSubEnv(t, subSetup{edit: func(o *Options) { o.Limits.RateMessages = 2 }})
	for i := range 3 {
		c := se.login(t, "alice@example.org", testPassword)
		err := send(c, "alice@example.org", []string{"x@remote.test"}, aliceMessage)
		if i < 2 && err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i == 2 && smtpCode(err) != "451 4.7.1" {
			t.Fatalf("third message: %v", err)
		}
	}
	c := se.login(t, "bob@example.org", testPassword)
	if err := send(c, "bob@example.org", []string{"x@remote.test"}, "From: bob@example.org\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("bob, from the same address: %v", err)
	}
}
