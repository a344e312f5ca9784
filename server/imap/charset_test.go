package imap

import (
	"fmt"
	"strings"
	"testing"
)

// TestSearchCharset: SEARCH, SORT and THREAD convert their strings from
// the command's CHARSET (RFC 9051 §6.4.4) before matching the decoded
// header: a Latin-1 "é" finds a subject encoded in UTF-8, a KOI8-R word
// a Cyrillic body; an unknown charset is NO [BADCHARSET], an invalid
// string in a known one BAD.
func TestSearchCharset(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", []byte("From: a@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9_cr=C3=A8me?=\r\n\r\nplain\r\n"))
	env.deliver(alice, "", []byte("From: b@example.org\r\nSubject: other\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\nпривет мир\r\n"))
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	lit := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
	latin1 := "Caf\xe9"                // ISO-8859-1
	koi8 := "\xd0\xd2\xc9\xd7\xc5\xd4" // "привет" in KOI8-R
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH CHARSET ISO-8859-1 SUBJECT " + lit(latin1), "* SEARCH 1\r\n"},
		{"SEARCH CHARSET KOI8-R BODY " + lit(koi8), "* SEARCH 2\r\n"},
		{"SORT (SUBJECT) ISO-8859-1 SUBJECT " + lit(latin1), "* SORT 1\r\n"},
		{"THREAD REFERENCES ISO-8859-1 SUBJECT " + lit(latin1), "* THREAD (1)\r\n"},
	} {
		if out := r.ok(tc.cmd); !strings.Contains(out, tc.want) {
			t.Errorf("%q: %s, want %q", tc.cmd, out, tc.want)
		}
	}
	if out, st := r.cmd("SEARCH CHARSET X-NONESUCH SUBJECT x"); st != "NO" || !strings.Contains(out, "[BADCHARSET") {
		t.Errorf("unknown charset: %s", out)
	}
	if out, st := r.cmd("SEARCH CHARSET UTF-8 SUBJECT " + lit("\xff\xfe")); st != "BAD" {
		t.Errorf("invalid UTF-8: %s", out)
	}
}
