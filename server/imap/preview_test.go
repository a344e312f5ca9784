package imap

import (
	"strings"
	"testing"
)

// TestPreview: PREVIEW (RFC 8970) from Python's imaplib: the start of
// the first text part, decoded and with white space collapsed, from the
// sealed summary; HTML without its markup; "" for a message without
// text; PREVIEW (LAZY) answers the same (the summary is built at the
// first read, and every summary has its preview).
func TestPreview(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", []byte("From: a@example.org\r\nSubject: p\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"+
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9   au\r\n\r\nlait, "+strings.Repeat("long ", 100)+"\r\n"))
	env.deliver(alice, "", []byte("From: a@example.org\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello <b>HTML</b></p></body></html>\r\n"))
	env.deliver(alice, "", []byte("From: a@example.org\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"))
	res := env.runImaplib(alice, alicePW,
		pycmd("CAPABILITY"),
		pycmd("SELECT", "INBOX"),
		pycmd("FETCH", "1:3", "(PREVIEW)"),
		pycmd("FETCH", "1", "(PREVIEW (LAZY))"),
	)
	if !strings.Contains(res[0].first("CAPABILITY"), " PREVIEW") {
		t.Errorf("PREVIEW not advertised: %q", res[0].first("CAPABILITY"))
	}
	var f []string // a literal's closing ")" is an entry of its own
	for _, l := range res[2].all("FETCH") {
		if l != ")" {
			f = append(f, l)
		}
	}
	if len(f) != 3 {
		t.Fatalf("FETCH 1:3 (PREVIEW) = %q", f)
	}
	// 8-bit text comes as a literal.
	want := "Café au lait, long long"
	if !strings.HasPrefix(f[0], "1 (PREVIEW {") || !strings.Contains(f[0], want) {
		t.Errorf("preview of a quoted-printable Latin-1 part = %q, want %q…", f[0], want)
	}
	if n := len([]rune(f[0])); n > 220 {
		t.Errorf("preview of %d characters", n)
	}
	if f[1] != `2 (PREVIEW "Hello HTML")` {
		t.Errorf("preview of an HTML part = %q", f[1])
	}
	if f[2] != `3 (PREVIEW "")` {
		t.Errorf("preview of a message without text = %q", f[2])
	}
	if l := res[3].first("FETCH"); !strings.Contains(l, want) {
		t.Errorf("PREVIEW (LAZY) = %q", l)
	}
}
