package filter

import (
	"strings"
	"testing"
)

// FuzzTokenize feeds the tokenizer what senders control: any message
// must give a bounded set of tokens without panicking.
func FuzzTokenize(f *testing.F) {
	for _, s := range append(spams, hams...) {
		f.Add(s)
	}
	f.Add("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/alternative; boundary=y\r\n\r\n--y\r\n\r\nhi\r\n--y--\r\n--x--\r\n")
	f.Add("Subject: =?bogus?q?x?=\r\nContent-Type: text/html; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n")
	f.Add("From: <\r\n\r\n<a href=\"http://")
	f.Fuzz(func(t *testing.T, msg string) {
		toks := tokenize(strings.NewReader(msg))
		if len(toks) > maxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
	})
}
