package smtp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestSTARTTLS(t *testing.T) {
	srvTLS, cliTLS := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = srvTLS })
	c, err := gosmtp.DialStartTLS(e.addr, cliTLS)
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("client is not under TLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered again after the handshake")
	}
	if err := c.SendMail("sender@remote.test", []string{"alice@example.org"}, strings.NewReader(testMessage("tls", "secret"))); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
	got := e.inbox("alice@example.org")
	if len(got) != 1 || !strings.Contains(got[0], "(sealmail) with ESMTPS id ") {
		t.Errorf("Received does not record TLS: %q", got)
	}
}

func TestNoSTARTTLSWithoutConfig(t *testing.T) {
	e := newEnv(t, nil)
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.cmd("STARTTLS", "502 5.5.1")
}

// TestNoPlaintextAtRest delivers mail whose subject, sender display name,
// body and attachment carry canaries, stops everything, and checks that
// no file under the data directory contains any canary.
func TestNoPlaintextAtRest(t *testing.T) {
	canaries := []string{
		"CanarySubject7f3a91", "CanaryDisplayName2be4c0", "CanaryBody9d81e5",
		"CanaryAttachment44c2aa", "canary-attachment-name-5e0b.txt",
	}
	e := newEnv(t, nil)
	msg := "From: \"" + canaries[1] + "\" <sender@remote.test>\r\n" +
		"To: alice@example.org, bob@example.org\r\n" +
		"Subject: " + canaries[0] + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
		"\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\n" + canaries[2] + "\r\n" +
		"--b1\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"" + canaries[4] + "\"\r\n\r\n" +
		strings.Repeat(canaries[3]+" "+canaries[3]+"\r\n", 100) +
		"--b1--\r\n"
	for i := 0; i < 5; i++ {
		if err := sendGo(t, e.addr, "sender@remote.test", []string{"alice@example.org", "bob@example.org"}, msg); err != nil {
			t.Fatalf("SendMail: %v", err)
		}
	}
	// The canaries did arrive (sealed), so their absence below means
	// something.
	for _, m := range e.inbox("bob@example.org") {
		for _, c := range canaries {
			if !strings.Contains(m, c) {
				t.Fatalf("delivered message lacks %s", c)
			}
		}
	}
	e.shutdown()
	if err := e.db.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	if n := scanForCanaries(t, e.dir, canaries); n == 0 {
		t.Fatal("data directory holds no files: the scan proves nothing")
	}
	if strings.Contains(e.logs.String(), canaries[0]) || strings.Contains(e.logs.String(), canaries[2]) {
		t.Error("log contains message content")
	}
}

// scanForCanaries fails the test for every file under dir containing a
// canary, and returns how many files it read.
func scanForCanaries(t *testing.T, dir string, canaries []string) int {
	t.Helper()
	hits, files, err := findCanaries(dir, canaries)
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	for _, h := range hits {
		t.Error(h)
	}
	return files
}

// findCanaries lists "file contains canary" for every hit under dir.
func findCanaries(dir string, canaries []string) (hits []string, files int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				hits = append(hits, path+" contains canary "+c)
			}
		}
		return nil
	})
	return hits, files, err
}

func TestFindCanariesCanFail(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("xx CanaryX yy"), 0o600); err != nil {
		t.Fatal(err)
	}
	hits, files, err := findCanaries(dir, []string{"CanaryX", "CanaryY"})
	if err != nil || files != 1 || len(hits) != 1 {
		t.Fatalf("findCanaries = %v, %d, %v; want one hit in one file", hits, files, err)
	}
}

// TestSTARTTLSInjection: commands pipelined behind STARTTLS in plaintext
// (CVE-2011-0411 style) must be discarded, not run inside the TLS
// session.
func TestSTARTTLSInjection(t *testing.T) {
	srvTLS, cliTLS := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = srvTLS })
	rc := dialRaw(t, e.addr)
	rc.cmd("EHLO client.remote.test", "250 ")
	rc.send("STARTTLS\r\nNOOP injected\r\n")
	rc.expect("220")
	if rc.r.Buffered() != 0 {
		t.Fatalf("server sent %d bytes more before the handshake", rc.r.Buffered())
	}
	tc := tls.Client(rc.c, cliTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	trc := &rawConn{t: t, c: tc, r: bufio.NewReader(tc)}
	got := trc.cmd("EHLO client.remote.test", "250")
	if strings.Contains(got, "successfully done nothing") {
		t.Fatalf("injected NOOP ran inside TLS: %q", got)
	}
	// The first reply inside TLS belongs to EHLO: it lists extensions.
	if !strings.HasPrefix(got, "250 ") || strings.Contains(got, "nothing") {
		t.Fatalf("unexpected reply %q", got)
	}
	trc.cmd("NOOP", "250 2.0.0")
}
