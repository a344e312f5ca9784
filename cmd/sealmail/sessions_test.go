package main

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// byeWriter records the text of an unsolicited BYE a client reads.
type byeWriter struct{ bye chan string }

func (b byeWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\r\n") {
		if text, ok := strings.CutPrefix(line, "* BYE "); ok {
			select {
			case b.bye <- text:
			default:
			}
		}
	}
	return len(p), nil
}

// TestCLIEndsIMAPSessions: with the server running, `sealmail user
// revoke` ends the IMAP session that logged in with the revoked app
// password, and `sealmail user delete` (through the control socket) ends
// the account's remaining sessions: each client reads BYE and the server
// closes the connection. Before, deleted accounts stayed logged in.
func TestCLIEndsIMAPSessions(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	app := lastLine(te.ok(alicePW+"\n", "user", "app-password", "alice@example.org", "phone", "--password-stdin").stdout)
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)
	dial := func(secret string) (*imapclient.Client, chan string) {
		t.Helper()
		bye := make(chan string, 1)
		c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: conf, DebugWriter: byeWriter{bye}})
		if err != nil {
			t.Fatalf("imaps: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Login("alice@example.org", secret).Wait(); err != nil {
			t.Fatalf("login: %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		return c, bye
	}
	ended := func(c *imapclient.Client, bye chan string, want string) {
		t.Helper()
		select {
		case <-c.Closed():
		case <-time.After(30 * time.Second):
			t.Fatal("the server kept the session open")
		}
		select {
		case text := <-bye:
			if !strings.HasPrefix(text, want) {
				t.Errorf("BYE %q, want %q", text, want)
			}
		default:
			t.Errorf("connection closed without BYE %q", want)
		}
		if err := c.Noop().Wait(); err == nil {
			t.Error("a command succeeded after the session ended")
		}
	}
	byPW, byePW := dial(alicePW)
	byApp, byeApp := dial(app)

	slots := te.ok("", "user", "slots", "alice@example.org").stdout
	var appID string
	for _, line := range strings.Split(slots, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "app-password" {
			appID = f[0]
		}
	}
	r := te.ok("", "user", "revoke", "alice@example.org", appID)
	if !strings.Contains(r.stdout, "ended 1 session(s)") {
		t.Errorf("revoke said %q", r.stdout)
	}
	ended(byApp, byeApp, "Credentials revoked")
	if err := byPW.Noop().Wait(); err != nil {
		t.Fatalf("the password's session after revoking the app password: %v", err)
	}

	r = te.ok("", "user", "delete", "alice@example.org", "--yes")
	if !strings.Contains(r.stdout, "ended 1 open session(s) and wiped their keys") {
		t.Errorf("delete said %q", r.stdout)
	}
	ended(byPW, byePW, "Account deleted")

	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login("alice@example.org", alicePW).Wait()
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("login after delete: %v", err)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs())
	}
	if logs := s.logs(); !strings.Contains(logs, "session ended by the account service") || strings.Contains(logs, app) {
		t.Errorf("server log:\n%s", logs)
	}
}
