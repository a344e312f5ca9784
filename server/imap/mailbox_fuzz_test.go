package imap

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCanonicalName: any decoded mailbox name a client sends is either
// refused or turned into a stored name that is valid, stable and free of
// empty hierarchy levels and wildcards.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox/Sub", "Tom & Jerry", "Grüße/Ordner", "a//b", "/x", "x/", "w*", "%", "\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		out, err := canonicalName(name)
		if err != nil {
			if err != errBadName {
				t.Fatalf("canonicalName(%q) error %v is not errBadName", name, err)
			}
			return
		}
		if !utf8.ValidString(out) || out == "" || len(out) > maxMailboxNameLen {
			t.Fatalf("canonicalName(%q) = %q", name, out)
		}
		if strings.ContainsAny(out, "*%") || strings.Contains(out, "//") || strings.HasPrefix(out, "/") || strings.HasSuffix(out, "/") {
			t.Fatalf("canonicalName(%q) = %q", name, out)
		}
		again, err := canonicalName(out)
		if err != nil || again != out {
			t.Fatalf("canonicalName(%q) = %q, not stable: %q %v", name, out, again, err)
		}
		if strings.EqualFold(out, "INBOX") && out != "INBOX" {
			t.Fatalf("canonicalName(%q) = %q", name, out)
		}
	})
}
