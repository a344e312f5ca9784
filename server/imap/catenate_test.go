package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestCatenateImaplib: CATENATE (RFC 4469) from Python's imaplib: TEXT
// and URL parts (relative and absolute IMAP URLs, sections, PARTIAL),
// with MULTIAPPEND; URLs naming another user, a stale UIDVALIDITY, a
// missing message or URLAUTH are NO [BADURL] and append nothing.
func TestCatenateImaplib(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.addUser("bob@example.org", "bob's long password")
	orig := "From: foo@example.com\r\nSubject: original\r\n\r\nHello world body\r\n"
	env.deliver(alice, "", []byte(orig))
	env.deliver("bob@example.org", "", []byte("From: x@example.com\r\n\r\nbob's secret\r\n"))
	mb, err := env.st.Mailbox(context.Background(), alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	lit := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
	cat := func(parts string) []string { return pycmd("APPEND", "INBOX", "CATENATE", "("+parts+")") }
	uv := mb.UIDValidity
	res := env.runImaplib(alice, alicePW,
		cat(`URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT `+lit("body1\r\n")),                                                    // 0 → 2
		cat(fmt.Sprintf(`URL "imap://alice%%40example.org;AUTH=*@localhost/INBOX;UIDVALIDITY=%d/;uid=1/;section=TEXT"`, uv)), // 1 → 3
		cat(`TEXT `+lit("X: y\r\n\r\n")+` URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=6.5"`),                                   // 2 → 4
		// MULTIAPPEND of two CATENATE messages.
		pycmd("APPEND", "INBOX", "CATENATE", `(URL "/INBOX/;UID=1")`, "CATENATE", "(TEXT "+lit("Subject: two\r\n\r\n2\r\n")+")"), // 3 → 5, 6
		cat(fmt.Sprintf(`URL "/INBOX;UIDVALIDITY=%d/;UID=1"`, uv+1)),                                                             // 4
		cat(`URL "imap://bob%40example.org@localhost/INBOX/;UID=1"`),                                                             // 5
		cat(`TEXT `+lit("A: b\r\n\r\n")+` URL "/INBOX/;UID=99"`),                                                                 // 6
		cat(`URL "/INBOX/;UID=1;URLAUTH=anonymous"`),                                                                             // 7
		cat(`URL "/Nonexistent/;UID=1"`),                                                                                         // 8
		cat(`URL "/INBOX/;UID=1/;SECTION=7"`),                                                                                    // 9
		pycmd("SELECT", "INBOX"),                                                                                                 // 10
		pycmd("FETCH", "2:*", "BODY.PEEK[]"),                                                                                     // 11
	)
	for i, r := range res[:4] {
		if r.Status != "OK" || !strings.Contains(r.Text, "APPENDUID") {
			t.Errorf("CATENATE %d: %s %s", i, r.Status, r.Text)
		}
	}
	for i := 4; i <= 9; i++ {
		if r := res[i]; r.Status != "NO" || !strings.Contains(r.Text, "[BADURL ") {
			t.Errorf("CATENATE %d with a bad URL: %s %s, want NO [BADURL …]", i, r.Status, r.Text)
		}
	}
	if r := res[10]; r.Status != "OK" || r.first("EXISTS") != "6" {
		t.Fatalf("SELECT after the appends: %v, want 6 messages (the bad URLs appended nothing)", r.Untagged["EXISTS"])
	}
	var fetched []string // imaplib gives a literal's closing ")" an entry of its own
	for _, f := range res[11].all("FETCH") {
		if strings.Contains(f, "BODY[]") {
			fetched = append(fetched, f)
		}
	}
	want := []string{
		"From: foo@example.com\r\nSubject: original\r\n\r\nbody1\r\n",
		"Hello world body\r\n",
		"X: y\r\n\r\nworld",
		orig,
		"Subject: two\r\n\r\n2\r\n",
	}
	if len(fetched) != len(want) {
		t.Fatalf("FETCH 2:* = %q", fetched)
	}
	for i, w := range want {
		if !strings.Contains(fetched[i], w) {
			t.Errorf("message %d = %q, want %q", i+2, fetched[i], w)
		}
	}
	if strings.Contains(strings.Join(fetched, ""), "secret") {
		t.Error("a URL read another user's mail")
	}
}

func TestParseIMAPURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		ok      bool
		user    string
		mailbox string
		uv, uid uint32
		part    string // Part and Specifier, HeaderFields
		partial string
	}{
		{url: "/INBOX/;UID=1", ok: true, mailbox: "INBOX", uid: 1},
		{url: "/INBOX;UIDVALIDITY=7/;UID=3/;SECTION=1.2.MIME", ok: true, mailbox: "INBOX", uv: 7, uid: 3, part: "[1 2] MIME"},
		{url: "/a%2Fb/c/;uid=2/;section=header.fields%20(From%20To)", ok: true, mailbox: "a/b/c", uid: 2, part: "[] HEADER [From To]"},
		{url: "/Sent%20Items/;UID=4/;SECTION=TEXT/;PARTIAL=10.20", ok: true, mailbox: "Sent Items", uid: 4, part: "[] TEXT", partial: "10.20"},
		{url: "/INBOX/;UID=4/;PARTIAL=10", ok: true, mailbox: "INBOX", uid: 4, partial: "10.9223372036854775807"},
		{url: "imap://joe%40example.org;AUTH=*@mail.example.org:993/INBOX/;UID=5", ok: true, user: "joe@example.org", mailbox: "INBOX", uid: 5},
		{url: "IMAP://host/INBOX/;UID=5/;SECTION=2.HEADER.FIELDS.NOT%20(X)", ok: true, mailbox: "INBOX", uid: 5, part: "[2] HEADER [X] not"},
		{url: "//host/INBOX/;UID=5", ok: true, mailbox: "INBOX", uid: 5},
		{url: "/INBOX"},
		{url: "/INBOX/;UID=0"},
		{url: "/INBOX/;UID=x"},
		{url: "/;UID=1"},
		{url: "INBOX/;UID=1"},
		{url: "/INBOX/;UID=1/;SECTION=0"},
		{url: "/INBOX/;UID=1/;SECTION=MIME"},
		{url: "/INBOX/;UID=1/;SECTION=HEADER.FIELDS"},
		{url: "/INBOX/;UID=1/;SECTION=TEXT%20junk"},
		{url: "/INBOX/;UID=1/;PARTIAL=-1"},
		{url: "/INBOX/;UID=1/;PARTIAL=1.0"},
		{url: "/INBOX/;UID=1/;UIDVALIDITY=3"},
		{url: "/INBOX/;UID=1;URLAUTH=anonymous:internal:abc"},
		{url: "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z"},
		{url: "/INBOX/;UID=1/;UID=2"},
		{url: "/IN%ZZBOX/;UID=1"},
		{url: "imap://host"},
	} {
		u, err := parseIMAPURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("parseIMAPURL(%q): err %v, want ok %v", tc.url, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		part := fmt.Sprintf("%v %s", u.section.Part, u.section.Specifier)
		if len(u.section.HeaderFields) > 0 {
			part += fmt.Sprintf(" %v", u.section.HeaderFields)
		}
		if u.section.HeaderFieldsNot {
			part += " not"
		}
		if tc.part == "" {
			tc.part = "[] "
		}
		partial := ""
		if p := u.section.Partial; p != nil {
			partial = fmt.Sprintf("%d.%d", p.Offset, p.Size)
		}
		if u.user != tc.user || u.mailbox != tc.mailbox || u.uidValidity != tc.uv || u.uid != tc.uid || part != tc.part || partial != tc.partial {
			t.Errorf("parseIMAPURL(%q) = %+v %q %q", tc.url, u, part, partial)
		}
	}
}

func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{
		"/INBOX/;UID=1", "/INBOX;UIDVALIDITY=7/;UID=3/;SECTION=1.2.MIME/;PARTIAL=1.2",
		"imap://u;AUTH=*@h/a%2Fb/;uid=2/;section=header.fields%20(From)", "//h/x/;UID=1;URLAUTH=a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseIMAPURL(raw)
		if err != nil {
			return
		}
		if u.uid == 0 || u.mailbox == "" || u.section == nil {
			t.Fatalf("parseIMAPURL(%q) accepted %+v", raw, u)
		}
		if p := u.section.Partial; p != nil && (p.Offset < 0 || p.Size <= 0) {
			t.Fatalf("parseIMAPURL(%q): partial %+v", raw, p)
		}
	})
}
