package imap

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestWithin: WITHIN (RFC 5032) with Python's imaplib. Three messages
// appended with internal dates of two days, two hours and now: OLDER and
// YOUNGER (alone, negated, combined, by UID) pick them by the seconds
// since their internal date.
func TestWithin(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	now := time.Now()
	app := func(subject string, at time.Time) []string {
		msg := testMessage(subject, "x")
		return pycmd("APPEND", "INBOX", `"`+at.Format("02-Jan-2006 15:04:05 -0700")+`"`, fmt.Sprintf("{%d+}\r\n%s", len(msg), msg))
	}
	res := env.runImaplib(alice, alicePW,
		pycmd("CAPABILITY"),                                  // 0
		app("old", now.Add(-48*time.Hour)),                   // 1
		app("hours", now.Add(-2*time.Hour)),                  // 2
		app("fresh", now),                                    // 3
		pycmd("SELECT", "INBOX"),                             // 4
		pycmd("SEARCH", "OLDER", "86400"),                    // 5: the two-day-old one
		pycmd("SEARCH", "YOUNGER", "3600"),                   // 6: the fresh one
		pycmd("SEARCH", "YOUNGER", "86400"),                  // 7: two hours and now
		pycmd("SEARCH", "NOT", "OLDER", "60"),                // 8: the fresh one
		pycmd("SEARCH", "OLDER", "3600", "YOUNGER", "86400"), // 9: two hours
		pycmd("UID", "SEARCH", "OLDER", "3600"),              // 10: UIDs 1 and 2
		pycmd("SEARCH", "OLDER", "0"),                        // 11: nz-number: BAD
	)
	if caps := res[0].first("CAPABILITY"); !strings.Contains(caps, "WITHIN") {
		t.Fatalf("WITHIN not advertised: %q", caps)
	}
	for i, r := range res[:11] {
		if r.Status != "OK" {
			t.Fatalf("command %d: %s %s", i, r.Status, r.Text)
		}
	}
	for i, want := range map[int]string{5: "1", 6: "3", 7: "2 3", 8: "3", 9: "2", 10: "1 2"} {
		if got := res[i].first("SEARCH"); got != want {
			t.Errorf("command %d: SEARCH = %q, want %q", i, got, want)
		}
	}
	if res[11].Status != "BAD" {
		t.Errorf("SEARCH OLDER 0 = %s %s, want BAD", res[11].Status, res[11].Text)
	}
}
