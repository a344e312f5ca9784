package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// pop3TestMessages are what SMTP receives for TestPOP3Python: one with a
// line that starts with a dot (stuffed on the wire), one with several
// body lines.
var pop3TestMessages = []string{
	"From: Carol <carol@client.test>\r\nTo: alice@example.org\r\nSubject: first pop\r\n" +
		"Message-ID: <pop-1@client.test>\r\n\r\nHello.\r\n.a line that starts with a dot\r\n..two dots\r\nend\r\n",
	"From: Dave <dave@client.test>\r\nTo: alice@example.org\r\nSubject: second pop\r\n" +
		"Message-ID: <pop-2@client.test>\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
}

// imapBodies logs in over IMAPS and returns INBOX's messages as stored
// (BODY.PEEK[]), with the client, whose traffic is recorded in seen.
func imapBodies(t *testing.T, addr string, conf *tls.Config, seen *imapSeen) (*imapclient.Client, [][]byte) {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: conf, DebugWriter: &seen.raw})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice@example.org", alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, b.Bytes)
		}
	}
	return c, out
}

// imapSeen records what an IMAP client read and wrote.
type imapSeen struct {
	raw syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestPOP3Python runs Python's poplib against the real binary: STLS on
// listen.pop3 (no login before it), a wrong password, LIST, UIDL, TOP and
// RETR byte-identical with what SMTP received (behind the fields the
// server adds at delivery) and with what IMAP reads, DELE and QUIT, then
// POP3S. An IMAP session with INBOX selected is told of the deletion
// and of \Seen at once; a message IMAP expunges disappears from a live
// POP3 session.
func TestPOP3Python(t *testing.T) {
	py := python3(t)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)
	for _, m := range pop3TestMessages {
		if err := sendTo(s.addr("smtp"), []string{"alice@example.org"}, m); err != nil {
			t.Fatalf("smtp: %v", err)
		}
	}
	var seen imapSeen
	ic, stored := imapBodies(t, s.addr("imaps"), conf, &seen)
	if len(stored) != 2 {
		t.Fatalf("IMAP reads %d messages", len(stored))
	}
	for i, m := range pop3TestMessages {
		if !bytes.HasSuffix(stored[i], []byte(m)) {
			t.Fatalf("stored message %d does not end with what SMTP received:\n%q", i+1, stored[i])
		}
	}

	ca := caFile(t, te.dataDir, t.TempDir())
	host, port, _ := net.SplitHostPort(s.addr("pop3"))
	_, tlsPort, _ := net.SplitHostPort(s.addr("pop3s"))
	cmd := exec.Command(py, "testdata/poplib_client.py", host, port, tlsPort, ca, "alice@example.org", alicePW)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("poplib client: %v\n%s\n%s\n%s", err, out, stderr, s.logs())
	}
	var got struct {
		Welcome       string   `json:"welcome"`
		CapaPlain     []string `json:"capa_plain"`
		UserBeforeTLS string   `json:"user_before_tls"`
		CapaTLS       []string `json:"capa_tls"`
		WrongPassword string   `json:"wrong_password"`
		Pass          string   `json:"pass"`
		Stat          []int    `json:"stat"`
		List          []string `json:"list"`
		UIDL          []string `json:"uidl"`
		Top           []string `json:"top"`
		Retr          []string `json:"retr"`
		Dele          string   `json:"dele"`
		Quit          string   `json:"quit"`
		StatAfter     []int    `json:"stat_after"`
		UIDLAfter     []string `json:"uidl_after"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !strings.HasPrefix(got.Welcome, "+OK") || !slices.Contains(got.CapaPlain, "STLS") || slices.Contains(got.CapaPlain, "USER") {
		t.Errorf("before TLS: welcome %q, CAPA %q", got.Welcome, got.CapaPlain)
	}
	if !strings.HasPrefix(got.UserBeforeTLS, "-ERR [AUTH]") {
		t.Errorf("USER before STLS: %q", got.UserBeforeTLS)
	}
	if !slices.Contains(got.CapaTLS, "USER") || !slices.Contains(got.CapaTLS, "SASL") || slices.Contains(got.CapaTLS, "STLS") ||
		!slices.Contains(got.CapaTLS, "UIDL") || !slices.Contains(got.CapaTLS, "TOP") {
		t.Errorf("CAPA after STLS: %q", got.CapaTLS)
	}
	if got.WrongPassword != "-ERR [AUTH] Authentication failed" {
		t.Errorf("wrong password: %q", got.WrongPassword)
	}
	total := len(stored[0]) + len(stored[1])
	if !slices.Equal(got.Stat, []int{2, total}) {
		t.Errorf("STAT %v, want [2 %d]", got.Stat, total)
	}
	if !slices.Equal(got.List, []string{fmt.Sprintf("1 %d", len(stored[0])), fmt.Sprintf("2 %d", len(stored[1]))}) {
		t.Errorf("LIST %q", got.List)
	}
	if len(got.UIDL) != 2 || len(got.Retr) != 2 || len(got.Top) != 2 {
		t.Fatalf("UIDL %q, %d RETR, %d TOP", got.UIDL, len(got.Retr), len(got.Top))
	}
	for i := range 2 {
		retr, _ := base64.StdEncoding.DecodeString(got.Retr[i])
		if !bytes.Equal(retr, stored[i]) {
			t.Errorf("RETR %d:\n%q\nIMAP reads:\n%q", i+1, retr, stored[i])
		}
		if !bytes.HasSuffix(retr, []byte(pop3TestMessages[i])) {
			t.Errorf("RETR %d does not end with what SMTP received", i+1)
		}
		top, _ := base64.StdEncoding.DecodeString(got.Top[i])
		header, _, _ := bytes.Cut(stored[i], []byte("\r\n\r\n"))
		if want := append(header, "\r\n\r\n"...); !bytes.Equal(top, want) {
			t.Errorf("TOP %d 0:\n%q\nwant\n%q", i+1, top, want)
		}
	}
	if !strings.HasPrefix(got.Dele, "+OK") || !strings.HasPrefix(got.Quit, "+OK") {
		t.Errorf("DELE %q, QUIT %q", got.Dele, got.Quit)
	}
	if !slices.Equal(got.StatAfter, []int{1, len(stored[1])}) || len(got.UIDLAfter) != 1 ||
		got.UIDLAfter[0] != "1 "+strings.Fields(got.UIDL[1])[1] {
		t.Errorf("after DELE and QUIT: STAT %v, UIDL %q (before: %q)", got.StatAfter, got.UIDLAfter, got.UIDL)
	}

	// The IMAP session heard of both changes without asking (read from
	// the wire: the client library hands unilateral FETCH data to its
	// handler after the command may have completed).
	if err := ic.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	seen.raw.mu.Lock()
	raw := seen.raw.b.String()
	seen.raw.mu.Unlock()
	// What came after the FETCH of the bodies (the client logs its own
	// NOOP line when its write returns, maybe after the answer).
	noop := raw[strings.LastIndex(raw, "OK FETCH completed\r\n"):]
	if !strings.Contains(noop, "* 1 EXPUNGE\r\n") || !regexp.MustCompile(`\* 1 FETCH \(UID \d+ FLAGS \([^)]*\\Seen`).MatchString(noop) {
		t.Errorf("IMAP was not told of the POP3 deletion and \\Seen:\n%s", noop)
	}

	// The reverse: IMAP expunges the last message while a POP3 session
	// has it.
	pc, err := tls.Dial("tcp", s.addr("pop3s"), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(30 * time.Second))
	pr := bufio.NewReader(pc)
	say := func(cmd, want string) {
		t.Helper()
		if cmd != "" {
			io.WriteString(pc, cmd+"\r\n")
		}
		line, err := pr.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("%s: got %q, %v; want %q", cmd, line, err, want)
		}
	}
	say("", "+OK")
	say("USER alice@example.org", "+OK")
	say("PASS "+alicePW, "+OK 1 message")
	if err := ic.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	say("STAT", "+OK 0 0")
	say("RETR 1", "-ERR Message was removed by another session")
	say("QUIT", "+OK")
}

// TestPOP3Fetchmail has fetchmail (Debian's package; .ci/run installs
// it) collect the mail over POP3S, as fetchmail setups that pull mail
// into other systems do: every message arrives as stored (fetchmail
// hands its MDA LF line ends), and the messages are deleted from INBOX.
func TestPOP3Fetchmail(t *testing.T) {
	fm, err := exec.LookPath("fetchmail")
	if err != nil {
		t.Fatal("fetchmail is needed (README lists the test tools; .ci/run installs it)")
	}
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)
	msgs := append(slices.Clone(pop3TestMessages),
		"From: Erin <erin@client.test>\r\nTo: alice@example.org\r\nSubject: third\r\n\r\n.\r\n..\r\n.x\r\n")
	for _, m := range msgs {
		if err := sendTo(s.addr("smtp"), []string{"alice@example.org"}, m); err != nil {
			t.Fatalf("smtp: %v", err)
		}
	}
	var seen imapSeen
	ic, _ := imapBodies(t, s.addr("imaps"), conf, &seen)
	all, err := ic.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(all) != 3 {
		t.Fatalf("IMAP fetch: %d messages, %v", len(all), err)
	}
	ic.Logout().Wait()

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := caFile(t, te.dataDir, dir)
	mda := filepath.Join(dir, "mda.sh")
	if err := os.WriteFile(mda, []byte("#!/bin/sh\nexec cat > \""+out+"/$(date +%s%N)-$$\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.addr("pop3s"))
	rc := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`set no bouncemail
set no syslog
poll %s port %s protocol POP3 uidl timeout 30
  user "alice@example.org" there with password "%s" is "%s" here
  ssl sslcertck sslcertfile "%s" sslcommonname "localhost"
  mda "%s"
`, host, port, alicePW, currentUser(t), ca, mda)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (string, int) {
		cmd := exec.Command(fm, "-f", rc, "--nodetach", "--invisible", "-v")
		cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
		b, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("fetchmail: %v", err)
		}
		return string(b), code
	}
	log, code := run()
	if code != 0 {
		t.Fatalf("fetchmail exited %d:\n%s\n%s", code, log, s.logs())
	}
	files, err := os.ReadDir(out)
	if err != nil || len(files) != 3 {
		t.Fatalf("fetchmail delivered %d files (%v):\n%s", len(files), err, log)
	}
	var got []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(out, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	for i, m := range all {
		want := strings.ReplaceAll(string(m.BodySection[0].Bytes), "\r\n", "\n")
		if !slices.Contains(got, want) {
			t.Errorf("message %d not delivered as stored:\n%q\ngot:\n%q", i+1, want, got)
		}
	}
	// fetchmail deleted what it collected; a second run finds nothing
	// (exit 1: no mail).
	if log, code := run(); code != 1 {
		t.Errorf("second fetchmail run exited %d, want 1 (no mail):\n%s", code, log)
	}
}

// currentUser is the local user name fetchmail delivers for.
func currentUser(t *testing.T) string {
	t.Helper()
	b, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
