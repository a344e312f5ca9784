package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// trustSelfSigned returns a TLS client config trusting the server's
// generated certificate.
func trustSelfSigned(t *testing.T, dataDir string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", selfSignedCert))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("bad self-signed certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// caFile writes the server's generated certificate to dir/ca.pem, for
// clients (Python's ssl, fetchmail) that take a CA file, and returns its
// path.
func caFile(t *testing.T, dataDir, dir string) string {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", selfSignedCert))
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestServeListeners checks that every configured listener answers over
// TLS with the generated certificate, and that `dns` prints records.
func TestServeListeners(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)

	// IMAPS: a TLS greeting.
	c, err := tls.Dial("tcp", s.addr("imaps"), conf)
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.HasPrefix(line, "* OK") {
		t.Errorf("imaps greeting %q, %v", line, err)
	}

	// SMTP: STARTTLS with the same certificate.
	sc, err := gosmtp.DialStartTLS(s.addr("smtp"), conf)
	if err != nil {
		t.Fatalf("smtp STARTTLS: %v", err)
	}
	sc.Close()

	// HTTPS: the keyserver answers for a configured domain.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+s.addr("https")+"/.well-known/openpgpkey/example.org/policy", nil)
	req.Host = "openpgpkey.example.org"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("WKD policy: %s", resp.Status)
	}
	// The store is wired in: alice's key is served, until `user set
	// --wkd=false` (through the control socket) withdraws it.
	wkd := func() (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+s.addr("https")+"/.well-known/openpgpkey/example.org/hu/"+
			keyserver.WKDHash("alice")+"?l=alice", nil)
		req.Host = "openpgpkey.example.org"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("https: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, key := wkd()
	if code != http.StatusOK || len(key) == 0 || key[0]&0x80 == 0 {
		t.Errorf("WKD key: status %d, %d bytes", code, len(key))
	}
	te.ok("", "user", "set", "alice@example.org", "--wkd=false")
	if code, _ := wkd(); code != http.StatusNotFound {
		t.Errorf("WKD key after --wkd=false: status %d, want 404", code)
	}
	te.ok("", "user", "set", "alice@example.org", "--wkd=true")
	if code, _ := wkd(); code != http.StatusOK {
		t.Errorf("WKD key after --wkd=true: status %d", code)
	}
	// The autoconfig file names sealmail's own submission listeners as
	// the outgoing servers (TestServeAutoconfig has the override).
	for _, hp := range [][2]string{
		{"autoconfig.example.org", "/mail/config-v1.1.xml"},
		{"autoconfig.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
		{"example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
	} {
		code, body := getAutoconfig(t, s, client, hp[0], hp[1])
		if code != http.StatusOK || !strings.Contains(string(body), "<port>"+strconv.Itoa(portOf(t, s.addr("submissions")))+"</port>") ||
			!strings.Contains(string(body), "<port>"+strconv.Itoa(portOf(t, s.addr("submission")))+"</port>") {
			t.Errorf("autoconfig %s%s: status %d, want the submission listeners\n%s", hp[0], hp[1], code, body)
		}
	}
	// Submission: STARTTLS with the same certificate, AUTH offered then.
	subc, err := gosmtp.DialStartTLS(s.addr("submission"), conf)
	if err != nil {
		t.Fatalf("submission STARTTLS: %v", err)
	}
	if ok, mechs := subc.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
		t.Errorf("submission AUTH after STARTTLS: %v %q", ok, mechs)
	}
	subc.Close()
	subs, err := gosmtp.DialTLS(s.addr("submissions"), conf)
	if err != nil {
		t.Fatalf("submissions: %v", err)
	}
	if err := subs.Hello("client.example.org"); err != nil {
		t.Fatalf("submissions EHLO: %v", err)
	}
	subs.Close()
	for _, name := range []string{"submission", "submissions", "pop3", "pop3s"} {
		if !strings.Contains(s.stdout(), "  "+name) {
			t.Errorf("the start-up banner does not name %s:\n%s", name, s.stdout())
		}
	}
	if err := s.stop(t, syscall.SIGINT); err != nil {
		t.Fatalf("serve after SIGINT: %v\n%s", err, s.logs())
	}

	// Fixed ports: dns names the IMAP and submission listeners and the
	// autoconfig name; without submission listeners, no autoconfig.
	te.setenv("SEALMAIL_LISTEN_IMAPS=127.0.0.1:993", "SEALMAIL_LISTEN_IMAP=127.0.0.1:143",
		"SEALMAIL_LISTEN_SUBMISSION=127.0.0.1:587", "SEALMAIL_LISTEN_SUBMISSIONS=127.0.0.1:465",
		"SEALMAIL_LISTEN_POP3S=127.0.0.1:995")
	r := te.ok("", "dns", "example.org")
	for _, want := range []string{"MX", "openpgpkey.example.org.", "_imaps._tcp.example.org.", "autoconfig.example.org.",
		"_submissions._tcp.example.org.", "0 1 465 localhost.", "_submission._tcp.example.org.", "10 1 587 localhost."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dns lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`_pop3s\._tcp\.example\.org\.\s+3600\s+IN\s+SRV\s+20 1 995 localhost\.`).MatchString(r.stdout) {
		t.Errorf("dns lacks the _pop3s._tcp record:\n%s", r.stdout)
	}
	te.setenv("SEALMAIL_LISTEN_SUBMISSION=", "SEALMAIL_LISTEN_SUBMISSIONS=")
	r = te.ok("", "dns", "example.org")
	if strings.Contains(r.stdout, "autoconfig.example.org.") || strings.Contains(r.stdout, "_submission") {
		t.Errorf("dns names autoconfig or submission without an outgoing server:\n%s", r.stdout)
	}
	te.fails(exitError, "not a configured domain", "", "dns", "example.net")
	te.fails(exitUsage, "want exactly one DOMAIN", "", "dns")
}

// TestGracefulShutdown sends SIGTERM while a message is half-way through
// DATA: the transaction finishes with 250, the server exits 0, and the
// message is in the store when it reopens.
func TestGracefulShutdown(t *testing.T) {
	const rcpt = "alice@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", rcpt, "--password-stdin")
	s := te.serve()
	c, err := gosmtp.Dial(s.addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@client.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	body := crashBody(1, 1)
	half := len(body) / 2
	if _, err := io.WriteString(w, body[:half]); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes soon after the signal; from then on new
	// connections are refused while the old one finishes.
	for deadline := time.Now().Add(30 * time.Second); ; {
		nc, err := net.DialTimeout("tcp", s.addr("smtp"), 5*time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("new connections still accepted 30 s after SIGTERM:\n%s", s.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := io.WriteString(w, body[half:]); err != nil {
		t.Fatalf("finish DATA: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("message in flight was not accepted: %v\n%s", err, s.logs())
	}
	c.Quit()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit:\n%s", s.logs())
	}
	if s.err != nil {
		t.Fatalf("serve exit: %v\n%s", s.err, s.logs())
	}
	if !strings.Contains(s.logs(), "shutting down") || !strings.Contains(s.logs(), "sealmail stopped") {
		t.Errorf("shutdown not logged:\n%s", s.logs())
	}
	st, err := badgerstore.Open(filepath.Join(te.dataDir, "store"), badgerstore.Options{})
	if err != nil {
		t.Fatalf("store does not reopen: %v", err)
	}
	defer st.Close()
	inbox, err := st.Mailbox(context.Background(), rcpt, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(context.Background(), rcpt, inbox.ID, store.ListOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages after shutdown: %d, %v", len(msgs), err)
	}
}
