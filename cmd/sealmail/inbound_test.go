package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/trace"
)

// The inbound policy end to end over the real binary: a local DNS server
// answers SPF, DMARC, block list and country queries for the client
// 127.0.0.1, which is not trusted here.

var e2eZone = []string{
	`good.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	`bad.test. 300 IN TXT "v=spf1 -all"`,
	`quarantine.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	`_dmarc.quarantine.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
	"other.test. 300 IN A 192.0.2.1",
	"1.0.0.127.zz.countries.test. 300 IN A 127.0.1.20", // 276: DE
}

// replyText renders a client error as the reply line: "550 5.7.23 …".
func replyText(err error) string {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	return err.Error()
}

// smtpReply sends one message from sender to rcpt and returns the reply
// that ended it: RCPT's if it refused, else the data's.
func smtpReply(t *testing.T, addr, sender, rcpt, msg string) string {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(sender, nil); err != nil {
		return replyText(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return replyText(err)
	}
	w, err := c.Data()
	if err != nil {
		return replyText(err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		return replyText(err)
	}
	c.Quit()
	return "250 ok"
}

func mailText(from, subject, body string) string {
	return "From: <" + from + ">\r\nTo: alice@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") +
		"@x.test>\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\n" + body + "\r\n"
}

// mailboxCount returns how many messages alice's mailbox holds.
func mailboxCount(t *testing.T, c *imapclient.Client, name string) uint32 {
	t.Helper()
	sd, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %s: %v", name, err)
	}
	return *sd.NumMessages
}

func TestInboundPolicyBinary(t *testing.T) {
	const alice = "alice@example.org"
	ds := dnstest.Start(t, e2eZone...)
	te := newTestEnv(t)
	te.env = append(te.env,
		"SEALMAIL_DNS_RESOLVER="+ds.Addr,
		"SEALMAIL_DNS_TIMEOUT=1s",
		"SEALMAIL_INBOUND_TRUSTED_NETWORKS=",
		"SEALMAIL_INBOUND_DNSBL=zen.test",
		"SEALMAIL_INBOUND_COUNTRY_ZONE=zz.countries.test",
		"SEALMAIL_INBOUND_REFUSE_COUNTRIES=KP",
	)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")

	// Words found nowhere but in the training mail: after training, no
	// file of the data directory may hold them.
	canaries := []string{"zqxpillcanary", "zqxpharmacanary", "zqxprizecanary"}
	spamBody := func(i int) string {
		return fmt.Sprintf("Buy %s now, %s discount, claim your %s today, offer %d", canaries[0], canaries[1], canaries[2], i)
	}
	var hams bytes.Buffer
	for i := range 5 {
		fmt.Fprintf(&hams, "From bob@good.test Mon Jan  1 00:00:00 2026\n%s\n", mailText("bob@good.test",
			fmt.Sprintf("meeting notes %d", i), "The project meeting moves to Tuesday; agenda and minutes attached"))
	}
	hamFile := filepath.Join(te.dir, "ham.mbox")
	if err := os.WriteFile(hamFile, hams.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	s := te.serve()
	smtpAddr := s.addr("smtp")
	// SPF -all fail of a foreign domain: refused at RCPT.
	if r := smtpReply(t, smtpAddr, "x@bad.test", alice, mailText("x@bad.test", "spf", "hi")); !strings.HasPrefix(r, "550 5.7.23") {
		t.Errorf("SPF fail: %q", r)
	}
	// A DNS failure: 451 4.4.3, never accepted silently.
	ds.Fail("broken.test", dns.RcodeServerFailure)
	if r := smtpReply(t, smtpAddr, "x@broken.test", alice, mailText("x@broken.test", "dnsfail", "hi")); !strings.HasPrefix(r, "451 4.4.3") {
		t.Errorf("DNS failure: %q", r)
	}
	// DMARC quarantine: delivered to Junk.
	if r := smtpReply(t, smtpAddr, "x@other.test", alice, mailText("boss@quarantine.test", "quarantined", "hi")); !strings.HasPrefix(r, "250") {
		t.Fatalf("DMARC quarantine: %q\n%s", r, s.logs())
	}
	// Bulk ham training with alice's password, through the server.
	out := te.ok(alicePW+"\n", "filter", "train", alice, "--ham", hamFile, "--password-stdin")
	if !strings.Contains(out.stdout, "with 5 messages as ham") {
		t.Errorf("train: %q", out.stdout)
	}
	// A first spam is not recognised: the model has seen no spam.
	if r := smtpReply(t, smtpAddr, "deals@good.test", alice, mailText("deals@good.test", "offer one", spamBody(1))); !strings.HasPrefix(r, "250") {
		t.Fatalf("spam 1: %q", r)
	}
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, te.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := mailboxCount(t, c, "Junk"); n != 1 {
		t.Errorf("Junk holds %d messages, want the quarantined one", n)
	}
	if n := mailboxCount(t, c, "INBOX"); n != 1 {
		t.Fatalf("INBOX holds %d messages, want the first spam", n)
	}
	// alice moves it to Junk: the filter learns, and the next one is
	// filed in Junk.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	if r := smtpReply(t, smtpAddr, "deals@good.test", alice, mailText("deals@good.test", "offer two", spamBody(2))); !strings.HasPrefix(r, "250") {
		t.Fatalf("spam 2: %q", r)
	}
	if n := mailboxCount(t, c, "Junk"); n != 3 {
		t.Errorf("after training Junk holds %d messages, want 3 (quarantined, moved, filed)", n)
	}
	if n := mailboxCount(t, c, "INBOX"); n != 0 {
		t.Errorf("after training INBOX holds %d messages, want 0", n)
	}
	c.Logout().Wait()
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v", err)
	}

	// Listed: refused before DATA, naming the list; then an allow-listed
	// partner passes.
	ds.Add("1.0.0.127.zen.test. 300 IN A 127.0.0.2")
	s = te.serve()
	smtpAddr = s.addr("smtp")
	if r := smtpReply(t, smtpAddr, "a@good.test", alice, mailText("a@good.test", "listed", "hi")); !strings.HasPrefix(r, "554 5.7.1") || !strings.Contains(r, "zen.test") {
		t.Errorf("listed client: %q", r)
	}
	out = te.ok("", "filter", "allow", "add", "127.0.0.0/8", "--note", "partner relay")
	if !strings.Contains(out.stdout, "added allow entry") {
		t.Errorf("allow add: %q", out.stdout)
	}
	if r := smtpReply(t, smtpAddr, "a@good.test", alice, mailText("a@good.test", "partner", "hi")); !strings.HasPrefix(r, "250") {
		t.Errorf("allow-listed partner: %q", r)
	}
	if !strings.Contains(te.ok("", "filter", "allow", "list").stdout, "partner relay") {
		t.Error("allow list does not show the entry")
	}
	// The trace while the server runs (through the control socket).
	live := te.ok("", "trace", "search", "--from", "x@bad.test")
	if !strings.Contains(live.stdout, "refused from <x@bad.test>") || !strings.Contains(live.stdout, "spf") {
		t.Errorf("trace search while serving: %q", live.stdout)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// A refused country (the allow entry goes first).
	te.ok("", "filter", "allow", "remove", "1")
	ds.Replace("1.0.0.127.zen.test", dns.TypeA)
	ds.Replace("1.0.0.127.zz.countries.test", dns.TypeA, "1.0.0.127.zz.countries.test. 300 IN A 127.0.1.152") // 408: KP
	s = te.serve()
	if r := smtpReply(t, s.addr("smtp"), "a@good.test", alice, mailText("a@good.test", "kp", "hi")); !strings.HasPrefix(r, "554 5.7.1") {
		t.Errorf("refused country: %q", r)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// The trace shows every reason (the server flushed it at shutdown;
	// the CLI reads it itself now).
	var recs []trace.Record
	if err := json.Unmarshal([]byte(te.ok("", "trace", "search", "--to", "example.org", "--limit", "100", "--json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if r.In == nil {
			continue
		}
		for _, rs := range r.In.Reasons {
			seen[rs.Check+"="+rs.Result] = true
			for _, c := range canaries {
				if strings.Contains(rs.Detail, c) {
					t.Errorf("trace names a token: %+v", rs)
				}
			}
		}
		seen["result="+r.In.Result] = true
	}
	for _, want := range []string{"spf=fail", "spf=pass", "spf=temperror", "dmarc=fail", "dnsbl=listed", "country=DE", "country=KP",
		"allow=match", "verdict=junk", "result=refused", "result=deferred", "result=junk", "result=delivered"} {
		if !seen[want] {
			t.Errorf("no trace reason %s in %v", want, seen)
		}
	}
	spamSeen := false
	for k := range seen {
		spamSeen = spamSeen || strings.HasPrefix(k, "spam=p=0.9")
	}
	if !spamSeen {
		t.Errorf("no high spam score in the trace: %v", seen)
	}

	// The canary scan: no token text anywhere in the data directory.
	err = filepath.WalkDir(te.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, c := range canaries {
			if bytes.Contains(bytes.ToLower(b), []byte(c)) {
				t.Errorf("%s holds the token %q", path, c)
			}
		}
		for _, a := range []string{"x@bad.test", "bad.test", "quarantine.test"} {
			if bytes.Contains(b, []byte(a)) {
				t.Errorf("%s holds %q in the clear", path, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
