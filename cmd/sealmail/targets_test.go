package main

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMissingAccountWarnings: issue 14 found that a postmaster or alias
// pointing at a missing account got no warning (mail to it then fails
// with 451). serve warns at start-up and `config show` on standard error
// (standard output stays a configuration file), without and with a
// running server; once the accounts exist, neither warns.
func TestMissingAccountWarnings(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_POSTMASTER=admin@example.org", "SEALMAIL_ALIASES=info@example.org=alice@example.org,bob@example.org")
	pmWarn := "postmaster admin@example.org has no account"
	aliasWarn := "aliases: info@example.org delivers to bob@example.org, which has no account"

	// No store yet: config show warns and does not create the store.
	r := te.ok("", "config", "show")
	for _, w := range []string{pmWarn, aliasWarn, "aliases: info@example.org delivers to alice@example.org"} {
		if !strings.Contains(r.stderr, "warning: "+w) {
			t.Errorf("config show without a store: no warning %q:\n%s", w, r.stderr)
		}
	}
	// (outbound.delay_warning is a key: look for warning lines.)
	if strings.Contains("\n"+r.stdout, "\nwarning: ") {
		t.Errorf("warning on standard output:\n%s", r.stdout)
	}
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	r = te.ok("", "config", "show")
	if !strings.Contains(r.stderr, pmWarn) || !strings.Contains(r.stderr, aliasWarn) ||
		strings.Contains(r.stderr, "delivers to alice@example.org") {
		t.Errorf("config show with alice only:\n%s", r.stderr)
	}

	s := te.serve()
	waitLog(t, s, "sealmail started in")
	for _, w := range []string{pmWarn, aliasWarn} {
		if !strings.Contains(s.logs(), w) {
			t.Errorf("serve does not warn %q:\n%s", w, s.logs())
		}
	}
	// Through the running server.
	r = te.ok("", "config", "show")
	if !strings.Contains(r.stderr, pmWarn) || !strings.Contains(r.stderr, aliasWarn) {
		t.Errorf("config show while serving:\n%s", r.stderr)
	}
	te.ok(alicePW+"\n", "user", "add", "admin@example.org", "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	if r := te.ok("", "config", "show"); strings.Contains(r.stderr, "warning") {
		t.Errorf("config show warns with every account there:\n%s", r.stderr)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s = te.serve()
	waitLog(t, s, "sealmail started in")
	if strings.Contains(s.logs(), "has no account") {
		t.Errorf("serve warns with every account there:\n%s", s.logs())
	}
}

// TestMissingPostmasterDefault: without a postmaster setting,
// postmaster@ of each domain must be an account or an alias.
func TestMissingPostmasterDefault(t *testing.T) {
	clearEnv(t)
	c, err := parseConfigBytes([]byte("domains: [example.org, example.net]\naliases:\n  postmaster@example.net: [a@example.net]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := missingAccounts(c, nil)
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	all := strings.Join(s, "\n")
	if len(got) != 2 || !strings.Contains(all, "postmaster is not set and postmaster@example.org has no account") ||
		!strings.Contains(all, "postmaster@example.net delivers to a@example.net") {
		t.Errorf("missingAccounts:\n%s", all)
	}
}

// TestEveryListenerLogsListening: issue 14 found that only SMTP logged
// "listening". Every listener does, once, with its name and address.
func TestEveryListenerLogsListening(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	waitLog(t, s, "sealmail started in")
	logs := s.logs()
	for _, name := range []string{"control", "smtp", "imap", "imaps", "https"} {
		want := "msg=listening proto=" + name + " addr=" + s.addr(name) + " "
		if n := strings.Count(logs, "msg=listening proto="+name+" "); n != 1 || !strings.Contains(logs, want) {
			t.Errorf("%d lines saying %s is listening, want 1 with %q:\n%s", n, name, want, logs)
		}
	}
}

// TestIMAPTLSFailureNamesConnection: issue 14 found that IMAP warnings
// such as a failed TLS handshake named no connection and no remote
// address. A client that speaks plaintext to IMAPS, and one that asks
// for STARTTLS and then sends plaintext, are each logged as a failed
// handshake with the connection id and the client's address.
func TestIMAPTLSFailureNamesConnection(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	waitLog(t, s, "sealmail started in")

	// Implicit TLS: plaintext where a ClientHello belongs.
	c, err := net.Dial("tcp", s.addr("imaps"))
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	io.WriteString(c, "a1 CAPABILITY\r\n")
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, c) // the server closes
	c.Close()
	waitHandshakeLog(t, s, local)

	// STARTTLS, then plaintext where the ClientHello belongs.
	c, err = net.Dial("tcp", s.addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	local = c.LocalAddr().String()
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "a1 STARTTLS\r\n")
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "a1 OK") {
		t.Fatalf("STARTTLS: %q %v", l, err)
	}
	io.WriteString(c, "a2 NOOP\r\n")
	io.Copy(io.Discard, br)
	c.Close()
	waitHandshakeLog(t, s, local)
}

// waitHandshakeLog waits for a log line about a failed TLS handshake
// that names the connection (cid) and the client at local.
func waitHandshakeLog(t *testing.T, s *server, local string) {
	t.Helper()
	cid := regexp.MustCompile(`\bcid=\d+\b`)
	for deadline := time.Now().Add(60 * time.Second); ; {
		for _, l := range strings.Split(s.logs(), "\n") {
			if strings.Contains(l, "remote="+local+" ") || strings.HasSuffix(l, "remote="+local) {
				if strings.Contains(l, "handshake") && cid.MatchString(l) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed TLS handshake logged with cid and remote=%s:\n%s", local, s.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
