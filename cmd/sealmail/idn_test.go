package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/keyserver"
)

// TestServeInternationalDomain: with `domains: [bücher.example]` (a
// U-label, which used to pass validation and then stop start-up in the
// keyserver) the binary starts, accounts are created in either spelling,
// mail addressed to either spelling arrives in one mailbox, login works
// with either, and WKD serves the key at the A-label host names.
func TestServeInternationalDomain(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_DOMAINS=Bücher.example example.org")
	te.ok(alicePW+"\n", "user", "add", "info@bücher.example", "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", "jörg@xn--bcher-kva.example", "--password-stdin")
	te.fails(exitError, "", alicePW+"\n", "user", "add", "INFO@xn--bcher-kva.example", "--password-stdin")
	if r := te.ok("", "user", "list"); !strings.Contains(r.stdout, "info@xn--bcher-kva.example") || !strings.Contains(r.stdout, "jörg@xn--bcher-kva.example") {
		t.Errorf("accounts not in canonical form:\n%s", r.stdout)
	}
	s := te.serve()

	// SMTP: A-labels need nothing; U-labels (and the UTF-8 local part)
	// need SMTPUTF8 (RFC 6531).
	send := func(rcpt string, utf8 bool) {
		t.Helper()
		c, err := gosmtp.Dial(s.addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("sender@client.test", &gosmtp.MailOptions{UTF8: utf8}); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT %s: %v", rcpt, err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: to "+rcpt+"\r\n\r\nhello\r\n")
		if err := w.Close(); err != nil {
			t.Fatalf("DATA to %s: %v", rcpt, err)
		}
	}
	send("info@xn--bcher-kva.example", false)
	send("Info@Bücher.example", true)
	send("jörg@bücher.example", true)
	send("jörg@XN--BCHER-KVA.example", true)

	conf := trustSelfSigned(t, te.dataDir)
	for user, want := range map[string]uint32{"info@bücher.example": 2, "jörg@xn--bcher-kva.example": 2, "JÖRG@bücher.example": 2} {
		c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: conf})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(user, alicePW).Wait(); err != nil {
			t.Errorf("login as %s: %v", user, err)
			c.Close()
			continue
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages != want {
			t.Errorf("%s: INBOX has %v messages (%v), want %d", user, sel, err, want)
		}
		c.Close()
	}

	// WKD, advanced and direct method, the domain in the path either way.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 30 * time.Second}
	q := "/hu/" + keyserver.WKDHash("jörg") + "?l=" + url.QueryEscape("jörg")
	for _, hp := range [][2]string{
		{"openpgpkey.xn--bcher-kva.example", "/.well-known/openpgpkey/xn--bcher-kva.example" + q},
		{"openpgpkey.xn--bcher-kva.example", "/.well-known/openpgpkey/" + url.PathEscape("bücher.example") + q},
		{"xn--bcher-kva.example", "/.well-known/openpgpkey" + q},
	} {
		req, _ := http.NewRequest("GET", "https://"+s.addr("https")+hp[1], nil)
		req.Host = hp[0]
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(key) == 0 {
			t.Errorf("WKD %s%s: %s, %d bytes", hp[0], hp[1], resp.Status, len(key))
		}
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.logs())
	}
	// `dns` names the domain as DNS does, and says how people write it.
	r := te.ok("", "dns", "bücher.example")
	if !strings.Contains(r.stdout, "openpgpkey.xn--bcher-kva.example.") || !strings.Contains(r.stdout, "; bücher.example is xn--bcher-kva.example in DNS") {
		t.Errorf("dns:\n%s", r.stdout)
	}
}
