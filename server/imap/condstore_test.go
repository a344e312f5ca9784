package imap

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestCondStore: CONDSTORE (RFC 7162 §3.1) with go-imap's client (FETCH
// CHANGEDSINCE) and Python's imaplib (raw commands): the first enabling
// command is answered with HIGHESTMODSEQ, CHANGEDSINCE returns only the
// messages changed since, UNCHANGEDSINCE refuses the changed ones
// (MODIFIED), and a SEARCH or SORT with MODSEQ gives the highest
// mod-sequence of what it returns (of MIN and MAX alone, with ESEARCH).
func TestCondStore(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := 1; i <= 4; i++ {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	c := env.dial(alice, alicePW)
	if !c.Caps().Has(imap.CapCondStore) {
		t.Fatalf("CONDSTORE not advertised: %v", c.Caps())
	}
	sd, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	base := sd.HighestModSeq
	if base == 0 {
		t.Fatal("SELECT (CONDSTORE) without HIGHESTMODSEQ")
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{Flags: true, ModSeq: true, ChangedSince: base}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 2 || msgs[0].ModSeq <= base {
		t.Fatalf("FETCH (CHANGEDSINCE %d) = %+v, want message 2 only", base, msgs)
	}
	c.Logout()

	res := env.runImaplib(alice, alicePW,
		pycmd("SELECT", "INBOX"),                                                               // 0
		pycmd("FETCH", "1", "(MODSEQ)"),                                                        // 1
		pycmd("STORE", "1", "+FLAGS.SILENT", `(\Seen)`),                                        // 2
		pycmd("STORE", "3", "+FLAGS.SILENT", `(\Seen)`),                                        // 3
		pycmd("FETCH", "1:4", "(MODSEQ)"),                                                      // 4
		pycmd("SEARCH", "RETURN", "(MIN)", "MODSEQ", "1"),                                      // 5
		pycmd("SEARCH", "RETURN", "(MAX)", "MODSEQ", "1", "NOT", "4"),                          // 6
		pycmd("SEARCH", "RETURN", "()", "SEEN", "MODSEQ", "1"),                                 // 7
		pycmd("SORT", "RETURN", "(MIN)", "(REVERSE SUBJECT)", "UTF-8", "SEEN", "MODSEQ", "1"),  // 8
		pycmd("STORE", "1:4", "(UNCHANGEDSINCE "+fmt.Sprint(base)+")", "+FLAGS", `(\Flagged)`), // 9
	)
	for i, r := range res {
		if r.Status != "OK" {
			t.Fatalf("command %d: %s %s", i, r.Status, r.Text)
		}
	}
	if got := strings.Join(res[1].all("OK"), " "); !strings.Contains(got, "HIGHESTMODSEQ") {
		t.Errorf("FETCH MODSEQ, the first enabling command, without HIGHESTMODSEQ: %v", res[1].Untagged)
	}
	mod := map[int]string{} // message → its MODSEQ
	for _, f := range res[4].all("FETCH") {
		var n int
		var ms string
		if _, err := fmt.Sscanf(f, "%d (MODSEQ (%s", &n, &ms); err == nil {
			mod[n] = strings.TrimSuffix(ms, "))")
		}
	}
	if len(mod) != 4 {
		t.Fatalf("FETCH 1:4 (MODSEQ) = %q", res[4].all("FETCH"))
	}
	// Changed last: 3, then 1, then 2 (earlier); 4 never.
	for i, want := range map[int]string{5: " MIN 1 MODSEQ " + mod[1], 6: " MAX 3 MODSEQ " + mod[3], 7: " ALL 1:3 MODSEQ " + mod[3], 8: " MIN 3 MODSEQ " + mod[3]} {
		if got := res[i].first("ESEARCH"); !strings.HasSuffix(got, want) {
			t.Errorf("command %d: ESEARCH %q, want …%q", i, got, want)
		}
	}
	if !strings.Contains(res[9].Text, "[MODIFIED 1:3]") {
		t.Errorf("STORE UNCHANGEDSINCE: %q, want [MODIFIED 1:3]", res[9].Text)
	}
}

// TestCondStoreEmptyMailbox: a mailbox nothing has changed yet keeps
// mod-sequences too. SELECT (CONDSTORE) gives its HIGHESTMODSEQ, not
// NOMODSEQ (which tells a client the mailbox keeps none, so that it
// stops using CONDSTORE there), and a client that keeps that value hears
// of the first message with CHANGEDSINCE.
func TestCondStoreEmptyMailbox(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)
	if err := c.Create("Fresh", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.Select("Fresh", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.HighestModSeq == 0 {
		t.Fatal("SELECT (CONDSTORE) of a new mailbox said NOMODSEQ")
	}
	kept := sd.HighestModSeq
	env.deliver(alice, "Fresh", testMessage("first", "x"))
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, ModSeq: true, ChangedSince: kept}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ModSeq <= kept {
		t.Fatalf("FETCH 1 (CHANGEDSINCE %d) after the first message = %+v", kept, msgs)
	}
	c.Logout()
}
