package imap

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

var (
	emailIDRe  = regexp.MustCompile(`EMAILID \((E\d+)\)`)
	saveDateRe = regexp.MustCompile(`SAVEDATE "([^"]+)"`)
	threadIDRe = regexp.MustCompile(`THREADID (\(T[0-9a-f]{16}\)|NIL)`)
)

// TestObjectIDSaveDate: OBJECTID (RFC 8474) and SAVEDATE (RFC 8514) with
// go-imap's client making the messages (APPEND with an old date, COPY,
// MOVE) and Python's imaplib reading them: EMAILID is shared by a message
// and its copies and by nothing else, SEARCH EMAILID
// finds the copies, MAILBOXID is the same in SELECT and STATUS, SAVEDATE
// is the time of the save (not the APPEND date), and SAVEDBEFORE,
// SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED compare it.
func TestObjectIDSaveDate(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("delivered", "x"))
	c := env.dial(alice, alicePW)
	for _, cp := range []imap.Cap{imap.CapObjectID, imap.CapSaveDate} {
		if !c.Caps().Has(cp) {
			t.Fatalf("%s not advertised: %v", cp, c.Caps())
		}
	}
	old := time.Date(2020, 1, 2, 10, 0, 0, 0, time.UTC)
	msg := testMessage("appended", "y")
	ap := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Time: old})
	ap.Write(msg)
	ap.Close()
	if _, err := ap.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(2), "Trash").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()

	today := time.Now().UTC()
	day := func(d time.Time) string { return d.Format("2-Jan-2006") }
	res := env.runImaplib(alice, alicePW,
		pycmd("SELECT", "INBOX"), // 0
		pycmd("FETCH", "1:*", "(EMAILID THREADID SAVEDATE INTERNALDATE)"), // 1
		pycmd("STATUS", "INBOX", "(MAILBOXID MESSAGES)"),                  // 2
		pycmd("SELECT", "Archive"),                                        // 3
		pycmd("FETCH", "1:*", "(EMAILID SAVEDATE INTERNALDATE)"),          // 4
		pycmd("SELECT", "Trash"),                                          // 5
		pycmd("FETCH", "1:*", "(EMAILID SAVEDATE)"),                       // 6
		pycmd("SELECT", "Archive"),                                        // 7
		pycmd("SEARCH", "SAVEDBEFORE", day(old.AddDate(1, 0, 0))),         // 8: nothing
		pycmd("SEARCH", "BEFORE", day(old.AddDate(1, 0, 0))),              // 9: the appended one
		pycmd("SEARCH", "SAVEDON", day(today)),                            // 10: all
		pycmd("SEARCH", "SAVEDSINCE", day(today.AddDate(0, 0, 1))),        // 11: nothing
		pycmd("SEARCH", "SAVEDATESUPPORTED"),                              // 12: all
		pycmd("SEARCH", "THREADID", "T1"),                                 // 13: nothing
	)
	for i, r := range res {
		if r.Status != "OK" {
			t.Fatalf("command %d: %s %s", i, r.Status, r.Text)
		}
	}
	ids := func(r pyResult) []string {
		var out []string
		for _, f := range r.all("FETCH") {
			if m := emailIDRe.FindStringSubmatch(f); m != nil {
				out = append(out, m[1])
			}
		}
		return out
	}
	in, archive, trash := ids(res[1]), ids(res[4]), ids(res[6])
	if len(in) != 1 || len(archive) != 2 || len(trash) != 1 {
		t.Fatalf("EMAILIDs: INBOX %v, Archive %v, Trash %v", in, archive, trash)
	}
	if in[0] != archive[0] || trash[0] != archive[1] || in[0] == trash[0] {
		t.Errorf("EMAILIDs: INBOX %v, Archive (copies of 1 and 2) %v, Trash (2 moved) %v", in, archive, trash)
	}
	if f := res[1].all("FETCH"); len(f) != 1 || !threadIDRe.MatchString(f[0]) {
		t.Errorf("FETCH THREADID = %q, want one", f)
	}
	// MAILBOXID: SELECT's and STATUS's agree.
	mbid := res[0].first("MAILBOXID")
	if mbid == "" || !strings.Contains(res[2].first("STATUS"), "MAILBOXID "+mbid) {
		t.Errorf("SELECT MAILBOXID %q, STATUS %q", mbid, res[2].first("STATUS"))
	}
	if res[3].first("MAILBOXID") == mbid {
		t.Errorf("Archive has INBOX's MAILBOXID %q", mbid)
	}
	// SAVEDATE is today, also for the message appended with a 2020 date.
	for _, r := range []pyResult{res[1], res[4], res[6]} {
		for _, f := range r.all("FETCH") {
			m := saveDateRe.FindStringSubmatch(f)
			if m == nil {
				t.Errorf("FETCH without SAVEDATE: %q", f)
				continue
			}
			d, err := time.Parse("02-Jan-2006 15:04:05 -0700", m[1])
			if err != nil || d.Before(today.Add(-time.Minute)) || d.After(today.Add(time.Minute)) {
				t.Errorf("SAVEDATE %q (%v), want now", m[1], err)
			}
		}
	}
	if f := res[4].all("FETCH"); len(f) != 2 || !strings.Contains(f[1], `INTERNALDATE "02-Jan-2020`) {
		t.Errorf("the copy of the appended message: %q", f)
	}
	for i, want := range map[int]string{8: "", 9: "2", 10: "1 2", 11: "", 12: "1 2", 13: ""} {
		if got := strings.TrimSpace(res[i].first("SEARCH")); got != want {
			t.Errorf("command %d: SEARCH %q, want %q", i, got, want)
		}
	}

	// SEARCH EMAILID finds every copy, in each mailbox.
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT Archive")
	mustContain(t, "SEARCH EMAILID", r.ok("SEARCH EMAILID "+trash[0]), "* SEARCH 2\r\n")
	mustContain(t, "SEARCH EMAILID unknown", r.ok("SEARCH EMAILID E999999"), "* SEARCH\r\n")
	mustContain(t, "SEARCH OR EMAILID", r.ok(fmt.Sprintf("SEARCH OR EMAILID %s EMAILID %s", in[0], trash[0])), "* SEARCH 1 2\r\n")
}

// TestThreadID: THREADID is shared by a message and its replies, whether
// they name it in References or only in In-Reply-To, differs for another
// thread, is NIL without any message ID, and SEARCH THREADID finds the
// thread.
func TestThreadID(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	hdr := "From: a@example.org\r\nSubject: s\r\n"
	for _, h := range []string{
		hdr + "Message-ID: <root@example.org>\r\n",                                                  // 1
		hdr + "Message-ID: <r1@example.org>\r\nReferences: <root@example.org>\r\n",                  // 2
		hdr + "Message-ID: <r2@example.org>\r\nIn-Reply-To: <root@example.org>\r\n",                 // 3
		hdr + "Message-ID: <r3@example.org>\r\nReferences: <root@example.org> <r1@example.org>\r\n", // 4
		hdr + "Message-ID: <other@example.org>\r\n",                                                 // 5
		hdr, // 6: no ID at all
	} {
		env.deliver(alice, "", []byte(h+"\r\nbody\r\n"))
	}
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	out := r.ok("FETCH 1:* (THREADID)")
	ids := map[int]string{}
	for _, l := range untaggedLines(out, "FETCH") {
		var n int
		var id string
		if _, err := fmt.Sscanf(l, "* %d FETCH (THREADID %s", &n, &id); err == nil {
			ids[n] = strings.Trim(id, "()")
		}
	}
	if len(ids) != 6 {
		t.Fatalf("FETCH THREADID:\n%s", out)
	}
	if ids[1] == "NIL" || ids[2] != ids[1] || ids[3] != ids[1] || ids[4] != ids[1] {
		t.Errorf("one thread got THREADIDs %v", ids)
	}
	if ids[5] == ids[1] || ids[5] == "NIL" || ids[6] != "NIL" {
		t.Errorf("THREADIDs %v: want 5 its own, 6 NIL", ids)
	}
	mustContain(t, "SEARCH THREADID", r.ok("SEARCH THREADID "+ids[1]), "* SEARCH 1 2 3 4\r\n")
	mustContain(t, "UID SEARCH THREADID", r.ok("UID SEARCH THREADID "+ids[5]), "* SEARCH 5\r\n")
}
