package autocrypt

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzHasAutocrypt: the header scan never panics and agrees with a
// plain reading of the header section (fields up to the first empty
// line; continuation lines are not fields).
func FuzzHasAutocrypt(f *testing.F) {
	f.Add([]byte(msg))
	f.Add([]byte("From: a\r\nAutocrypt: addr=a; keydata=x\r\n\r\n"))
	f.Add([]byte("From: a\r\n Autocrypt: folded\r\n\r\nAutocrypt: body\r\n"))
	f.Add([]byte("AUTOCRYPT : x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := hasAutocrypt(bytes.NewReader(b), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := false
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if strings.TrimRight(line, "\r\n") == "" {
				break
			}
			if name, _, ok := strings.Cut(line, ":"); ok && line[0] != ' ' && line[0] != '\t' &&
				strings.EqualFold(strings.TrimSpace(name), "Autocrypt") {
				want = true
				break
			}
		}
		if got != want {
			t.Fatalf("hasAutocrypt(%q) = %v, want %v", b, got, want)
		}
	})
}
