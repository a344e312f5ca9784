package imap

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rawConn speaks IMAP line by line, for what imapclient cannot express.
type rawConn struct {
	t    testing.TB
	conn *tls.Conn
	r    *bufio.Reader
	n    int
}

func (e *testEnv) rawDial() *rawConn {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.tlsAddr, e.clientTL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	r := &rawConn{t: e.t, conn: c, r: bufio.NewReader(c)}
	r.line() // greeting
	return r
}

func (e *testEnv) rawLogin(user, pw string) *rawConn {
	r := e.rawDial()
	r.ok(fmt.Sprintf("LOGIN %q %q", user, pw))
	return r
}

// line reads one line. Its deadline only ends a test that already
// failed: on a loaded 2-core machine under -race, sealing a
// multi-megabyte APPEND took longer than the 10 s it used to be.
func (r *rawConn) line() string {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(time.Minute))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return l
}

// cmd sends one command and returns everything up to and including its
// tagged response, and that response's status word.
func (r *rawConn) cmd(line string) (string, string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("x%d", r.n)
	if _, err := fmt.Fprintf(r.conn, "%s %s\r\n", tag, line); err != nil {
		r.t.Fatal(err)
	}
	var out strings.Builder
	for {
		l := r.line()
		out.WriteString(l)
		if strings.HasPrefix(l, tag+" ") {
			f := strings.Fields(l)
			return out.String(), f[1]
		}
	}
}

func (r *rawConn) ok(line string) string {
	r.t.Helper()
	out, status := r.cmd(line)
	if status != "OK" {
		r.t.Fatalf("%s: %s", line, out)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestRawCommands covers what is easiest to check on the wire: LSUB,
// modified UTF-7 names, CLOSE expunging silently, IDLE outside a mailbox,
// and errors that must be NO with a code, never SERVERBUG.
func TestRawCommands(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := range 3 {
		env.deliver(alice, "", testMessage("raw"+itoa(i), "x"))
	}
	r := env.rawLogin(alice, alicePW)

	// "&" travels as "&-", non-ASCII as modified base64 (RFC 3501 §5.1.3).
	r.ok(`CREATE "Tom &- Jerry"`)
	r.ok(`CREATE "Gr&APwA3w-e"`)
	out := r.ok(`LIST "" "*"`)
	for _, want := range []string{`"Tom &- Jerry"`, `"Gr&APwA3w-e"`, `\Sent`} {
		if !contains(out, want) {
			t.Errorf("LIST lacks %s:\n%s", want, out)
		}
	}
	out = r.ok(`LSUB "" "*"`)
	if !contains(out, `* LSUB`) || !contains(out, `"Sent"`) || contains(out, "Tom") {
		t.Errorf("LSUB:\n%s", out)
	}
	r.ok(`SUBSCRIBE "Tom &- Jerry"`)
	if out = r.ok(`LSUB "" "T*"`); !contains(out, `"Tom &- Jerry"`) {
		t.Errorf("LSUB after SUBSCRIBE:\n%s", out)
	}

	// IDLE in the authenticated state just waits for DONE.
	fmt.Fprintf(r.conn, "i1 IDLE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	fmt.Fprintf(r.conn, "DONE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("IDLE DONE: %q", l)
	}

	// Errors are NO/BAD with a code, never SERVERBUG.
	for _, cmd := range []string{
		`SELECT "Nope"`, `STATUS "Nope" (MESSAGES)`, `DELETE "Nope"`, `RENAME "Nope" "Other"`,
		`CREATE "INBOX"`, `CREATE "a//b"`, `SUBSCRIBE "Nope"`, `APPEND "Nope" {1+}` + "\r\nx",
		`EXAMINE "Sent"`, `STORE 1 +FLAGS (\Seen)`, `EXPUNGE`, `MOVE 1 "Trash"`,
	} {
		out, status := r.cmd(cmd)
		if status == "OK" && !strings.HasPrefix(cmd, "EXAMINE") {
			t.Errorf("%s succeeded:\n%s", cmd, out)
		}
		if contains(out, "SERVERBUG") {
			t.Errorf("%s: SERVERBUG:\n%s", cmd, out)
		}
	}
	r.ok("UNSELECT")

	// CLOSE expunges \Deleted messages without EXPUNGE responses.
	r.ok("SELECT INBOX")
	r.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if out = r.ok("CLOSE"); contains(out, "EXPUNGE") {
		t.Errorf("CLOSE sent EXPUNGE:\n%s", out)
	}
	if out = r.ok("STATUS INBOX (MESSAGES)"); !contains(out, "MESSAGES 2") {
		t.Errorf("after CLOSE:\n%s", out)
	}
	// A command of the selected state after CLOSE is refused.
	if _, status := r.cmd("FETCH 1 FLAGS"); status == "OK" {
		t.Errorf("FETCH after CLOSE succeeded")
	}
}
