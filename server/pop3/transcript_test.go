package pop3

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	user = "alice@example.org"
	pw   = "correct horse battery"
)

// TestTranscriptAuthorization runs every command of the AUTHORIZATION
// state, and every way it refuses one, against the real server.
func TestTranscriptAuthorization(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)

	// Plaintext: STLS offered, no login before TLS, no user enumeration.
	c := e.dialPlain()
	c.expect("+OK POP3 server ready")
	c.send("CAPA")
	c.expect("+OK Capability list follows")
	if got := c.multi(); got != "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nSTLS\r\n" {
		t.Fatalf("CAPA before TLS:\n%s", got)
	}
	c.send("USER " + user)
	c.expect("-ERR [AUTH] Authentication needs TLS; use STLS first")
	c.send("PASS " + pw)
	c.expect("-ERR [AUTH] Authentication needs TLS; use STLS first")
	c.send("AUTH PLAIN " + plainResp("", user, pw))
	c.expect("-ERR [AUTH] Authentication needs TLS; use STLS first")
	c.send("AUTH")
	c.expect("+OK Mechanisms follow")
	if got := c.multi(); got != "" {
		t.Fatalf("AUTH lists %q before TLS", got)
	}
	c.send("STAT")
	c.expect("-ERR Command not valid in this state")
	c.send("NOOP")
	c.expect("-ERR Command not valid in this state")
	c.send("XYZZY")
	c.expect("-ERR Unknown command")
	c.send("STLS extra")
	c.expect("-ERR Syntax error")
	c.send("STLS")
	c.expect("+OK Begin TLS negotiation")
	c.starttls(e.clientTL)
	c.send("STLS")
	c.expect("-ERR TLS is already active")
	c.send("CAPA")
	c.expect("+OK Capability list follows")
	if got := c.multi(); got != "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nUSER\r\nSASL PLAIN\r\n" {
		t.Fatalf("CAPA after STLS:\n%s", got)
	}
	c.send("AUTH")
	c.expect("+OK Mechanisms follow")
	if got := c.multi(); got != "PLAIN\r\n" {
		t.Fatalf("AUTH lists %q", got)
	}
	c.send("PASS " + pw)
	c.expect("-ERR USER first")
	// Wrong password and unknown user: the same answer.
	c.send("USER " + user)
	c.expect("+OK Send PASS")
	c.send("PASS wrong password")
	c.expect("-ERR [AUTH] Authentication failed")
	c.send("USER nobody@example.org")
	c.expect("+OK Send PASS")
	c.send("PASS " + pw)
	c.expect("-ERR [AUTH] Authentication failed")
	c.send("PASS " + pw) // USER is forgotten after a failure
	c.expect("-ERR USER first")
	c.send("AUTH CRAM-MD5")
	c.expect("-ERR Unsupported authentication mechanism")
	c.send("AUTH PLAIN !!!")
	c.expect("-ERR Invalid base64 data")
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("no-nul-here")))
	c.expect("-ERR [AUTH] Malformed PLAIN credentials")
	c.send("AUTH PLAIN " + plainResp("bob@example.org", user, pw))
	c.expect("-ERR [AUTH] Authorization identity must be empty or the user's")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send("*")
	c.expect("-ERR Authentication cancelled")
	c.send("AUTH PLAIN =")
	c.expect("-ERR [AUTH] Malformed PLAIN credentials")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send(plainResp(user, user, pw))
	c.expect("+OK 0 messages (0 octets)")
	c.send("CAPA")
	c.expect("+OK Capability list follows")
	if got := c.multi(); got != "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n" {
		t.Fatalf("CAPA after login:\n%s", got)
	}
	c.send("USER " + user)
	c.expect("-ERR Command not valid in this state")
	c.send("QUIT")
	c.expect("+OK Bye (0 messages deleted)")
	c.expectEOF()

	// Implicit TLS, USER/PASS with a password that has spaces, QUIT
	// before login.
	c = e.dialTLS()
	c.login(user, pw)
	c.send("QUIT")
	c.expect("+OK Bye*")
	c.expectEOF()
	c = e.dialTLS()
	c.expect("+OK*")
	c.send("quit")
	c.expect("+OK Bye")
	c.expectEOF()

	// Commands after STLS in the same packet are not run as TLS commands.
	c = e.dialPlain()
	c.expect("+OK*")
	c.send("STLS\r\nCAPA")
	c.expect("-ERR Commands after STLS before the handshake; closing")
	c.expectEOF()
}

// TestTranscriptTransaction runs every command of the TRANSACTION state
// and its errors, then the UPDATE state.
func TestTranscriptTransaction(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	m1 := testMessage("one", "first body\r\n.starts with a dot\r\nlast line\r\n")
	m2 := testMessage("two", "line 1\r\nline 2\r\nline 3\r\n")
	m3 := testMessage("three", "bare\nline ends\rhere.\n.\nno final newline")
	d1, d2, d3 := e.deliver(user, m1), e.deliver(user, m2, `\Seen`), e.deliver(user, m3)
	mb := e.inbox(user)
	uidl := func(uid uint32) string { return fmt.Sprintf("%08x%08x", mb.UIDValidity, uid) }
	total := len(m1) + len(m2) + len(m3)

	c := e.dialTLS()
	c.expect("+OK*")
	c.send("USER " + user)
	c.expect("+OK*")
	c.send("PASS " + pw)
	c.expect(fmt.Sprintf("+OK 3 messages (%d octets)", total))
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 3 %d", total))
	c.send("STAT 1")
	c.expect("-ERR Syntax error")
	c.send("LIST")
	c.expect(fmt.Sprintf("+OK 3 messages (%d octets)", total))
	if got, want := c.multi(), fmt.Sprintf("1 %d\r\n2 %d\r\n3 %d\r\n", len(m1), len(m2), len(m3)); got != want {
		t.Fatalf("LIST:\n%s\nwant:\n%s", got, want)
	}
	c.send("LIST 2")
	c.expect(fmt.Sprintf("+OK 2 %d", len(m2)))
	c.send("LIST 4")
	c.expect("-ERR No such message")
	c.send("LIST 0")
	c.expect("-ERR Syntax error")
	c.send("LIST -1")
	c.expect("-ERR Syntax error")
	c.send("LIST 99999999999")
	c.expect("-ERR Syntax error")
	c.send("LIST 1 2 3")
	c.expect("-ERR Syntax error")
	c.send("UIDL")
	c.expect("+OK*")
	if got, want := c.multi(), "1 "+uidl(d1.UID)+"\r\n2 "+uidl(d2.UID)+"\r\n3 "+uidl(d3.UID)+"\r\n"; got != want {
		t.Fatalf("UIDL:\n%s\nwant:\n%s", got, want)
	}
	c.send("UIDL 3")
	c.expect("+OK 3 " + uidl(d3.UID))
	c.send("RETR 1")
	c.expect(fmt.Sprintf("+OK %d octets", len(m1)))
	if got := c.multi(); got != string(m1) {
		t.Fatalf("RETR 1:\n%q\nwant:\n%q", got, m1)
	}
	// Bare CR and LF become CRLF; a final line end is added.
	c.send("RETR 3")
	c.expect(fmt.Sprintf("+OK %d octets", len(m3)))
	want3 := strings.NewReplacer("\r\n", "\r\n", "\n", "\r\n", "\r", "\r\n").Replace(string(m3)) + "\r\n"
	if got := c.multi(); got != want3 {
		t.Fatalf("RETR 3:\n%q\nwant:\n%q", got, want3)
	}
	c.send("RETR")
	c.expect("-ERR Syntax error")
	c.send("RETR 9")
	c.expect("-ERR No such message")
	c.send("TOP 2 0")
	c.expect("+OK Top of message follows")
	hdr2, body2, _ := strings.Cut(string(m2), "\r\n\r\n")
	if got := c.multi(); got != hdr2+"\r\n\r\n" {
		t.Fatalf("TOP 2 0:\n%q", got)
	}
	c.send("TOP 2 2")
	c.expect("+OK Top of message follows")
	if got := c.multi(); got != hdr2+"\r\n\r\nline 1\r\nline 2\r\n" {
		t.Fatalf("TOP 2 2:\n%q", got)
	}
	c.send("TOP 2 100")
	c.expect("+OK*")
	if got := c.multi(); got != hdr2+"\r\n\r\n"+body2 {
		t.Fatalf("TOP 2 100:\n%q", got)
	}
	c.send("TOP 2")
	c.expect("-ERR Syntax error")
	c.send("TOP 2 x")
	c.expect("-ERR Syntax error")
	c.send("DELE 2")
	c.expect("+OK Message 2 deleted")
	c.send("DELE 2")
	c.expect("-ERR Message already deleted")
	c.send("RETR 2")
	c.expect("-ERR No such message")
	c.send("TOP 2 0")
	c.expect("-ERR No such message")
	c.send("LIST 2")
	c.expect("-ERR No such message")
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 2 %d", len(m1)+len(m3)))
	c.send("LIST")
	c.expect("+OK 2 messages*")
	if got, want := c.multi(), fmt.Sprintf("1 %d\r\n3 %d\r\n", len(m1), len(m3)); got != want {
		t.Fatalf("LIST after DELE:\n%s", got)
	}
	c.send("RSET")
	c.expect(fmt.Sprintf("+OK 3 messages (%d octets)", total))
	c.send("RSET now")
	c.expect("-ERR Syntax error")
	c.send("NOOP")
	c.expect("+OK")
	c.send("DELE 1")
	c.expect("+OK Message 1 deleted")
	c.send("DELE 2")
	c.expect("+OK Message 2 deleted")
	c.send("STLS")
	c.expect("-ERR Command not valid in this state")
	c.send("FOO")
	c.expect("-ERR Unknown command")
	c.send("QUIT")
	c.expect("+OK Bye (2 messages deleted)")
	c.expectEOF()

	// UPDATE: 1 and 2 gone, 3 (retrieved) has \Seen; others were told.
	ms := e.messages(user)
	if len(ms) != 1 || ms[0].UID != d3.UID || !slices.Contains(ms[0].Flags, `\Seen`) {
		t.Fatalf("after QUIT: %+v", ms)
	}
	e.changes.mu.Lock()
	exp, fl, modseqs := e.changes.expunged, e.changes.flagged, e.changes.modseqs
	e.changes.mu.Unlock()
	if !slices.Equal(exp, []uint32{d1.UID, d2.UID}) || !slices.Equal(fl, []uint32{d3.UID}) {
		t.Fatalf("changes told: expunged %v, flagged %v", exp, fl)
	}
	// The removal was told with its own mod-sequence: the one after the
	// \Seen on 3, made first; the removals are exactly those above that.
	if len(modseqs) != 1 || modseqs[0] != ms[0].ModSeq+1 {
		t.Fatalf("removal told at mod-sequence %v, want [%d] (after the \\Seen on 3)", modseqs, ms[0].ModSeq+1)
	}
	inbox := e.inbox(user)
	if v, err := e.st.Vanished(context.Background(), user, inbox.ID, ms[0].ModSeq); err != nil || !v.Complete || !slices.Equal(v.UIDs, exp) {
		t.Fatalf("vanished above %d: %+v, %v; want %v", ms[0].ModSeq, v, err, exp)
	}

	// UIDL values are the same in the next session.
	c = e.dialTLS()
	c.login(user, pw)
	c.send("UIDL 1")
	c.expect("+OK 1 " + uidl(d3.UID))
	// A session that ends without QUIT deletes nothing.
	c.send("DELE 1")
	c.expect("+OK*")
	c.nc.Close()
	c = e.dialTLS()
	c.login(user, pw)
	c.send("STAT")
	c.expect(fmt.Sprintf("+OK 1 %d", len(m3)))
}

// TestTranscriptPipelining sends commands in one write (RFC 2449 §6.6).
func TestTranscriptPipelining(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	m := testMessage("p", "body\r\n")
	e.deliver(user, m)
	c := e.dialTLS()
	c.expect("+OK*")
	c.send("USER " + user + "\r\nPASS " + pw + "\r\nSTAT\r\nRETR 1\r\nRETR 1\r\nQUIT")
	c.expect("+OK Send PASS")
	c.expect("+OK 1 message*")
	c.expect(fmt.Sprintf("+OK 1 %d", len(m)))
	for range 2 {
		c.expect("+OK*")
		if got := c.multi(); got != string(m) {
			t.Fatalf("RETR: %q", got)
		}
	}
	c.expect("+OK Bye*")
	c.expectEOF()
}

// TestLimits: long lines, bad commands, commands before login.
func TestLimits(t *testing.T) {
	e := newEnv(t, Options{Limits: Limits{LineBytes: 300, DiscardBytes: 2000, BadCommands: 3, PreAuthCommands: 5}})
	c := e.dialTLS()
	c.expect("+OK*")
	c.send(strings.Repeat("x", 500))
	c.expect("-ERR Line too long")
	c.send("NOPE")
	c.expect("-ERR Unknown command")
	c.send("NOPE")
	c.expect("-ERR Too many bad commands; closing")
	c.expectEOF()

	c = e.dialTLS()
	c.expect("+OK*")
	c.send(strings.Repeat("y", 5000))
	c.expect("-ERR Line too long; closing")
	c.expectEOF()

	c = e.dialTLS()
	c.expect("+OK*")
	for range 5 {
		c.send("CAPA")
		c.expect("+OK*")
		c.multi()
	}
	c.send("CAPA")
	c.expect("-ERR Too many commands without logging in; closing")
	c.expectEOF()
}

func plainResp(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

// TestTimeouts: the login deadline, and the idle deadlines before and
// after login, each end the connection with a word (RFC 1939 §3
// autologout, no UPDATE state: nothing marked deleted is removed).
func TestTimeouts(t *testing.T) {
	e := newEnv(t, Options{Limits: Limits{LoginTimeout: 300 * time.Millisecond, PreAuthIdle: time.Minute, IdleTimeout: 300 * time.Millisecond}})
	e.addUser(user, pw)
	e.deliver(user, testMessage("t", "body\r\n"))
	c := e.dialTLS()
	c.expect("+OK*")
	c.expect("-ERR Login took too long; closing")
	c.expectEOF()

	c = e.dialTLS()
	c.login(user, pw)
	c.send("DELE 1")
	c.expect("+OK*")
	c.expect("-ERR Autologout; idle for too long")
	c.expectEOF()
	if n := len(e.messages(user)); n != 1 {
		t.Errorf("%d messages after autologout, want 1", n)
	}

	e2 := newEnv(t, Options{Limits: Limits{PreAuthIdle: 300 * time.Millisecond}})
	c = e2.dialPlain()
	c.expect("+OK*")
	c.expect("-ERR Autologout; idle for too long")
	c.expectEOF()
}

// fixedExpiry keeps mail of the accounts it names for their days, and
// any other's for ever.
type fixedExpiry map[string]int

func (f fixedExpiry) ExpireDays(account string) (int, bool) {
	if account == "" {
		least, ok := 0, false
		for _, d := range f {
			if !ok || d < least {
				least, ok = d, true
			}
		}
		return least, ok
	}
	d, ok := f[account]
	return d, ok
}

// TestCapaExpire: EXPIRE says what the retention policy lets the server
// delete (RFC 2449 §6.7): before login the fewest days of any account
// with USER, after it the account's own, NEVER where nothing expires.
func TestCapaExpire(t *testing.T) {
	const other = "other@example.org"
	e := newEnv(t, Options{Expiry: fixedExpiry{user: 90, "x@example.org": 30}})
	e.addUser(user, pw)
	e.addUser(other, pw)
	capa := func(c *client) string {
		c.send("CAPA")
		c.expect("+OK Capability list follows")
		return c.multi()
	}
	for _, c := range []struct{ user, after string }{{user, "EXPIRE 90\r\n"}, {other, "EXPIRE NEVER\r\n"}} {
		conn := e.dialTLS()
		conn.expect("+OK POP3 server ready")
		if got := capa(conn); !strings.Contains(got, "\r\nEXPIRE 30 USER\r\n") || strings.Contains(got, "NEVER") {
			t.Errorf("CAPA before login:\n%s", got)
		}
		conn.send("AUTH PLAIN " + plainResp("", c.user, pw))
		conn.expect("+OK 0 messages (0 octets)")
		if got := capa(conn); !strings.Contains(got, "\r\n"+c.after) || strings.Count(got, "EXPIRE") != 1 {
			t.Errorf("CAPA after %s's login:\n%s", c.user, got)
		}
		conn.send("QUIT")
		conn.expect("+OK Bye (0 messages deleted)")
	}
}
