package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// smtpLine is a line-level SMTP client for the quota test.
type smtpLine struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSMTPLine(t *testing.T, addr string) *smtpLine {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &smtpLine{t: t, c: c, r: bufio.NewReader(c)}
	s.expect("", "220")
	s.expect("EHLO client.test", "250 ")
	return s
}

// expect sends line (if any) and checks the last line of the reply.
func (s *smtpLine) expect(line, prefix string) string {
	s.t.Helper()
	if line != "" {
		fmt.Fprintf(s.c, "%s\r\n", line)
	}
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("after %q: %v", line, err)
		}
		if len(l) < 4 || l[3] != '-' {
			if !strings.HasPrefix(l, prefix) {
				s.t.Fatalf("%q: reply %q, want %q", line, strings.TrimSpace(l), prefix)
			}
			return l
		}
	}
}

// TestQuota (issue 9 item 9): limits.quota is every account's quota
// unless `user set --quota` gives it one; a full mailbox gets 452 4.2.2,
// a message announced larger than the quota 552 5.2.2; "none" lifts it,
// all while the server runs (through the control socket).
func TestQuota(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_LIMITS_QUOTA=3KiB")
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	c := dialSMTPLine(t, s.addr("smtp"))
	send := func(i int) string {
		c.expect("MAIL FROM:<sender@client.test>", "250 ")
		if r := c.expect("RCPT TO:<alice@example.org>", ""); !strings.HasPrefix(r, "250") {
			c.expect("RSET", "250 ")
			return r
		}
		c.expect("DATA", "354")
		return c.expect(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n.", i, strings.Repeat("q", 900)), "")
	}
	full := ""
	for i := 0; i < 10 && full == ""; i++ {
		if r := send(i); strings.HasPrefix(r, "452 4.2.2") {
			full = r
		} else if !strings.HasPrefix(r, "250 ") {
			t.Fatalf("message %d: %q", i, r)
		}
	}
	if full == "" {
		t.Fatal("limits.quota never filled the mailbox")
	}
	var us []userInfo
	if err := json.Unmarshal([]byte(te.ok("", "user", "list", "--json").stdout), &us); err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || us[0].QuotaBytes != 0 || us[0].QuotaLimit != 3<<10 || us[0].UsedBytes == 0 || us[0].UsedBytes > 3<<10 {
		t.Fatalf("user list --json: %+v", us)
	}

	if r := te.ok("", "user", "set", "alice@example.org", "--quota", "none"); !strings.Contains(r.stdout, "quota: none") {
		t.Errorf("set --quota none said %q", r.stdout)
	}
	if r := send(100); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("after --quota none: %q", r)
	}
	if r := te.ok("", "user", "set", "alice@example.org", "--quota", "1MiB"); !strings.Contains(r.stdout, "quota: 1MiB") {
		t.Errorf("set --quota 1MiB said %q", r.stdout)
	}
	c.expect("MAIL FROM:<sender@client.test> SIZE=2000000", "250 ")
	c.expect("RCPT TO:<alice@example.org>", "552 5.2.2")
	c.expect("RSET", "250 ")
	if r := te.ok("", "user", "set", "alice@example.org", "--quota", "default"); !strings.Contains(r.stdout, "quota: default (3KiB)") {
		t.Errorf("set --quota default said %q", r.stdout)
	}
	if r := send(101); !strings.HasPrefix(r, "452 4.2.2") {
		t.Fatalf("back on the default: %q", r)
	}
	te.fails(exitUsage, "--quota: want a size", "", "user", "set", "alice@example.org", "--quota", "lots")
	te.fails(exitUsage, "--quota: want a size", "", "user", "set", "alice@example.org", "--quota", "-5")
	te.fails(exitError, "no account", "", "user", "set", "bob@example.org", "--quota", "1GiB")
}
