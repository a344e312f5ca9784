package imap

import (
	"fmt"
	"strings"
	"testing"
)

// TestSearchContextImaplib: CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4)
// from Python's imaplib: results kept current through the session's own
// STORE, EXPUNGE and APPEND, REMOVEFROM written before the EXPUNGE
// responses in the numbers the client knew, a sorted result's positions,
// and CANCELUPDATE.
func TestSearchContextImaplib(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 5; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "the body text"))
	}
	msg := string(testMessage("m6", "the body text"))
	res := env.runImaplib(alice, alicePW,
		pycmd("SELECT", "INBOX"), // 0
		pycmd("SEARCH", "RETURN", "(UPDATE)", "BODY", "body", "SEEN"),                      // 1
		pycmd("STORE", "1,2,4", "+FLAGS", `(\Seen)`),                                       // 2
		pycmd("STORE", "1,2", "-FLAGS", `(\Seen)`),                                         // 3
		pycmd("UID", "SORT", "RETURN", "(UPDATE)", "(REVERSE SUBJECT)", "UTF-8", "UNSEEN"), // 4
		pycmd("STORE", "3:5", "+FLAGS", `(\Deleted)`),                                      // 5
		pycmd("EXPUNGE"), // 6
		pycmd("APPEND", "INBOX", `(\Seen)`, fmt.Sprintf("{%d+}\r\n%s", len(msg), msg)), // 7
		pycmd("NOOP"),                            // 8
		pycmd("CANCELUPDATE", `"$TAG:1"`),        // 9
		pycmd("STORE", "1", "+FLAGS", `(\Seen)`), // 10
		pycmd("CANCELUPDATE", `"nosuchtag"`),     // 11
	)
	for i, r := range res {
		want := "OK"
		if i == 11 {
			want = "BAD"
		}
		if r.Status != want {
			t.Fatalf("command %d: %s %s, want %s", i, r.Status, r.Text, want)
		}
	}
	tag1, tag4 := res[1].Tag, res[4].Tag
	esearch := func(i int) string { return strings.Join(res[i].all("ESEARCH"), "\n") }
	check := func(i int, subs ...string) {
		t.Helper()
		mustContain(t, fmt.Sprintf("command %d", i), esearch(i), subs...)
	}
	check(1, fmt.Sprintf(`(TAG "%s")`, tag1))
	check(2, fmt.Sprintf(`(TAG "%s") ADDTO (0 1:2,4)`, tag1))
	check(3, fmt.Sprintf(`(TAG "%s") REMOVEFROM (0 1:2)`, tag1))
	// UNSEEN now: 1, 2, 3, 5; by reverse subject, as UIDs.
	check(4, fmt.Sprintf(`(TAG "%s") UID ALL 5,3,2,1`, tag4))
	if e := esearch(5); e != "" {
		t.Errorf("STORE \\Deleted changed a result: %s", e)
	}
	// EXPUNGE of 3, 4, 5: message 4 leaves the SEARCH result (by sequence
	// number), 5 and 3 the SORT result (UIDs, at positions 1 then 2).
	check(6, fmt.Sprintf(`(TAG "%s") REMOVEFROM (0 4)`, tag1), fmt.Sprintf(`(TAG "%s") UID REMOVEFROM (1 5 1 3)`, tag4))
	if n := len(res[6].all("EXPUNGE")); n != 3 {
		t.Errorf("EXPUNGE responses: %d, want 3", n)
	}
	// The appended seen message is number 3 (UID 6).
	all := esearch(7) + esearch(8)
	mustContain(t, "APPEND", all, fmt.Sprintf(`(TAG "%s") ADDTO (0 3)`, tag1))
	mustNotContain(t, "APPEND", all, fmt.Sprintf(`(TAG "%s")`, tag4))
	if e := esearch(10); strings.Contains(e, tag1) || !strings.Contains(e, fmt.Sprintf(`(TAG "%s") UID REMOVEFROM (2 1)`, tag4)) {
		t.Errorf("after CANCELUPDATE: %q, want only the SORT result's REMOVEFROM of UID 1", e)
	}
}

// TestSearchContextOtherSession: a result kept current follows what
// another session and a delivery change, announced when the session
// polls (NOOP), with EXISTS before the ADDTO that numbers the new
// message, and a sorted result's insertion position.
func TestSearchContextOtherSession(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for _, s := range []string{"b", "d"} {
		env.deliver(alice, "", testMessage(s, "x"))
	}
	a := env.rawLogin(alice, alicePW)
	a.ok("SELECT INBOX")
	out := a.ok("SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNFLAGGED")
	mustContain(t, "SORT RETURN (UPDATE)", out, `ALL 1:2`)
	b := env.rawLogin(alice, alicePW)
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	env.deliver(alice, "", testMessage("c", "x"))
	out = a.ok("NOOP")
	mustContain(t, "NOOP after changes", out, "* 3 EXISTS", " REMOVEFROM (1 1)", " ADDTO (1 3)")
	if strings.Index(out, "* 3 EXISTS") > strings.Index(out, "ADDTO") {
		t.Errorf("ADDTO before the EXISTS that numbers its message:\n%s", out)
	}
	b.ok("NOOP") // b learns of message 3
	b.ok(`STORE 3 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	out = a.ok("NOOP")
	mustContain(t, "NOOP after EXPUNGE", out, " REMOVEFROM (1 3)", "* 3 EXPUNGE")
	if strings.Index(out, "REMOVEFROM") > strings.Index(out, "* 3 EXPUNGE") {
		t.Errorf("REMOVEFROM after the EXPUNGE that renumbers:\n%s", out)
	}
	// A result is the selected mailbox's: CLOSE drops it.
	a.ok("CLOSE")
	a.ok("SELECT INBOX")
	if out, st := a.cmd(`CANCELUPDATE "x3"`); st != "BAD" {
		t.Errorf("CANCELUPDATE after reselecting: %s", out)
	}
}
