package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// threadMessage is a message with the headers SORT and THREAD read.
func threadMessage(from, subject, date, id, refs string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: bob@example.com\r\nSubject: %s\r\n", from, subject)
	if date != "" {
		fmt.Fprintf(&b, "Date: %s\r\n", date)
	}
	if id != "" {
		fmt.Fprintf(&b, "Message-ID: %s\r\n", id)
	}
	if refs != "" {
		fmt.Fprintf(&b, "References:\r\n %s\r\n", refs) // folded
	}
	b.WriteString("\r\n" + body + "\r\n")
	return []byte(b.String())
}

// deliverThreads delivers a small discussion: two threads, one of them
// with a reply whose parent is missing and one joined by subject only.
func (e *testEnv) deliverThreads(user string) {
	d := func(h int) string { return fmt.Sprintf("Mon, 23 Nov 2026 %02d:00:00 +0000", h) }
	for _, m := range [][]byte{
		threadMessage("Carol <carol@example.org>", "Lunch", d(9), "<1@x>", "", "short"),                                     // 1
		threadMessage("alice@example.org", "=?utf-8?q?Re=3A_Lunch?=", d(11), "<2@x>", "<1@x>", "a longer body here"),        // 2
		threadMessage("Bob <bob@example.org>", "Budget [draft]", d(8), "<3@x>", "", "b"),                                    // 3
		threadMessage("dave@example.org", "Re: Lunch", d(10), "<4@x>", "<1@x> <missing@x>", "the longest body of them all"), // 4
		threadMessage("erin@example.org", "Fwd: Budget [draft]", d(12), "<5@x>", "", "e"),                                   // 5
	} {
		e.deliver(user, "", m)
	}
}

// TestSortGoClient: SORT (RFC 5256) with go-imap's client, over the
// sealed summaries: subject (base subject of an encoded "Re:"), reversed
// date, size, from, and the UID form with a search key.
func TestSortGoClient(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliverThreads(alice)
	c := env.dial(alice, alicePW)
	if !c.Caps().Has(imap.CapSort) || !c.Caps().Has("THREAD=REFERENCES") || !c.Caps().Has(imap.CapESort) {
		t.Fatalf("capabilities %v lack SORT, ESORT or THREAD=REFERENCES", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	all := &imap.SearchCriteria{}
	for _, tc := range []struct {
		crit []imapclient.SortCriterion
		want []uint32
	}{
		// Base subjects: "Budget [draft]" ×2, "Lunch" ×3; ties by number.
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeySubject}}, []uint32{3, 5, 1, 2, 4}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyDate, Reverse: true}}, []uint32{5, 2, 4, 1, 3}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeySubject}, {Key: imapclient.SortKeySize, Reverse: true}}, []uint32{3, 5, 4, 2, 1}},
		// FROM compares the mailbox: alice, bob, carol, dave, erin.
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyFrom}}, []uint32{2, 3, 1, 4, 5}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyArrival, Reverse: true}}, []uint32{5, 4, 3, 2, 1}},
	} {
		got, err := c.Sort(&imapclient.SortOptions{SearchCriteria: all, SortCriteria: tc.crit}).Wait()
		if err != nil {
			t.Fatalf("SORT %v: %v", tc.crit, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("SORT %v = %v, want %v", tc.crit, got, tc.want)
		}
	}
	// UID SORT with a search key: the results are UIDs.
	got, err := c.UIDSort(&imapclient.SortOptions{
		SearchCriteria: &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "lunch"}}},
		SortCriteria:   []imapclient.SortCriterion{{Key: imapclient.SortKeyDate}},
	}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []uint32{1, 4, 2}) {
		t.Errorf("UID SORT (DATE) SUBJECT lunch = %v, want [1 4 2]", got)
	}
}

// TestThreadGoClient: THREAD REFERENCES and ORDEREDSUBJECT (RFC 5256 §3)
// with go-imap's client.
func TestThreadGoClient(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliverThreads(alice)
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	render := func(alg imap.ThreadAlgorithm) string {
		t.Helper()
		data, err := c.Thread(&imapclient.ThreadOptions{Algorithm: alg, SearchCriteria: &imap.SearchCriteria{}}).Wait()
		if err != nil {
			t.Fatalf("THREAD %s: %v", alg, err)
		}
		var b strings.Builder
		var one func(d imapclient.ThreadData)
		one = func(d imapclient.ThreadData) {
			b.WriteByte('(')
			for i, n := range d.Chain {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprint(&b, n)
			}
			for _, s := range d.SubThreads {
				one(s)
			}
			b.WriteByte(')')
		}
		for _, d := range data {
			one(d)
		}
		return b.String()
	}
	// REFERENCES: 4's missing parent is spliced out, so 2 and 4 are both
	// replies of 1 (by date: 4, 2); 5 joins 3 by subject as a forward.
	if got := render(imap.ThreadReferences); got != "(3 5)(1(4)(2))" {
		t.Errorf("THREAD REFERENCES = %s, want (3 5)(1(4)(2))", got)
	}
	if got := render(imap.ThreadOrderedSubject); got != "(3 5)(1(4)(2))" {
		t.Errorf("THREAD ORDEREDSUBJECT = %s, want (3 5)(1(4)(2))", got)
	}
}

// TestSortThreadImaplib: SORT, ESORT (RFC 5267 RETURN) and THREAD as raw
// commands from Python's imaplib, including SORT RETURN (SAVE) feeding
// "$", and the errors of a bad criterion or algorithm.
func TestSortThreadImaplib(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliverThreads(alice)
	res := env.runImaplib(alice, alicePW,
		pycmd("SELECT", "INBOX"),
		pycmd("SORT", "(REVERSE SUBJECT DATE)", "UTF-8", "ALL"),
		pycmd("SORT", "RETURN (MIN MAX COUNT ALL)", "(DATE)", "UTF-8", "1:4"),
		pycmd("UID", "SORT", "RETURN (COUNT)", "(SIZE)", "UTF-8", "SUBJECT", "budget"),
		pycmd("THREAD", "REFERENCES", "UTF-8", "ALL"),
		pycmd("THREAD", "ORDEREDSUBJECT", "US-ASCII", "FROM", "example.org", "NOT", "1"),
		pycmd("SORT", "RETURN (SAVE)", "(DATE)", "UTF-8", "SUBJECT", "lunch"),
		pycmd("SEARCH", "$"),
		pycmd("SORT", "(NONSENSE)", "UTF-8", "ALL"),
		pycmd("THREAD", "NONSENSE", "UTF-8", "ALL"),
	)
	want := []struct{ status, name, data string }{
		{"OK", "", ""},
		{"OK", "SORT", "1 4 2 3 5"},
		{"OK", "ESEARCH", `(TAG "`},
		{"OK", "ESEARCH", "UID COUNT 2"},
		{"OK", "THREAD", "(3 5)(1 (4)(2))"},
		{"OK", "THREAD", "(3 5)(4 2)"},
		{"OK", "", ""},
		{"OK", "SEARCH", "1 2 4"},
		{"BAD", "", ""},
		{"BAD", "", ""},
	}
	for i, w := range want {
		r := res[i]
		if r.Status != w.status {
			t.Errorf("command %d: %s %s, want %s", i, r.Status, r.Text, w.status)
			continue
		}
		if w.name != "" && !strings.Contains(r.first(w.name), w.data) {
			t.Errorf("command %d: %s = %q, want %q", i, w.name, r.all(w.name), w.data)
		}
	}
	if got := res[2].first("ESEARCH"); !strings.HasSuffix(got, " MIN 3 MAX 2 COUNT 4 ALL 3,1,4,2") {
		t.Errorf("ESORT = %q, want MIN 3 MAX 2 COUNT 4 ALL 3,1,4,2 (RFC 5267 §3.1: in sort order)", got)
	}
	if len(res[6].Untagged["SORT"])+len(res[6].Untagged["ESEARCH"]) != 0 {
		t.Errorf("SORT RETURN (SAVE) answered %v", res[6].Untagged)
	}
}

// TestSortDeadline: SORT and THREAD stop at SEARCH's deadline with
// NO [LIMIT].
func TestSortDeadline(t *testing.T) {
	env := newEnv(t, envOptions{opt: Options{Search: SearchLimits{Timeout: time.Nanosecond}}})
	env.addUser(alice, alicePW)
	env.deliverThreads(alice)
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	for _, cmd := range []string{"SORT (SUBJECT) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"} {
		out, st := r.cmd(cmd)
		if st != "NO" || !strings.Contains(out, "[LIMIT]") {
			t.Errorf("%s past its deadline: %s", cmd, out)
		}
	}
}
