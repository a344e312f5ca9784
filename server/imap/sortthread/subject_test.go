package sortthread

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		base  string
		reply bool
	}{
		{"", "", false},
		{"a", "a", false},
		{"  a  ", "a", false},
		{"a\r\n\tb", "a b", false},
		{"a \t  b", "a b", false},
		{"Re: a", "a", true},
		{"RE:a", "a", true},
		{"re : a", "a", true},
		{"Re[2]: a", "a", true},
		{"Re [2] : a", "a", true},
		{"Fw: a", "a", true},
		{"FWD: a", "a", true},
		{"Fwd[3]:a", "a", true},
		{"Re: Re: Fwd: a", "a", true},
		{"a (fwd)", "a", true},
		{"a (FWD) (fwd)  ", "a", true},
		{"a(fwd)", "a", true},
		{"[list] a", "a", false},
		{"[list] Re: a", "a", true},
		{"Re: [list] a", "a", true},
		{"[a][b]", "[b]", false},
		{"[xyz]", "[xyz]", false},
		{"[fwd: a]", "a", true},
		{"Re: [FWD: c]", "c", true},
		{"re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", true},
		{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true},
		{"b (a)", "b (a)", false},
		{"Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", false},
		{"Rex: a", "Rex: a", false},
		{"Re", "Re", false},
		{"Re:", "", true},
		{"[", "[", false},
		{"[a", "[a", false},
		{"a]", "a]", false},
		{"[[a]] b", "[[a]] b", false},
		{"=?iso-8859-1?q?_?=", "", false},
		{"Re: =?utf-8?q?b?=", "b", true},
		{"=?iso-8859-1?q?RE:_C?=", "C", true},
		{"=?us-ascii?b?UmU6IGM=?=", "c", true},
		{"=?utf-8?q?=C3=A9t=C3=A9?=", "été", false},
		{"=?x-unknown?q?a?=", "=?x-unknown?q?a?=", false},
		{"\xff\xfe", "\uFFFD", false},
	} {
		base, reply := BaseSubject(tc.raw)
		if base != tc.base || reply != tc.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.raw, base, reply, tc.base, tc.reply)
		}
	}
}

// TestBaseSubjectLong: a subject is compared by its first maxText bytes;
// one shaped to make a naive extraction rescan it after every prefix it
// removes gives the right answer (BenchmarkBaseSubjectHostile measures
// it).
func TestBaseSubjectLong(t *testing.T) {
	raw := strings.Repeat("re: ", 1000) + "[" + strings.Repeat("a", 3000)
	want := strings.TrimPrefix(raw[:maxText], strings.Repeat("re: ", 1000))
	if base, reply := BaseSubject(raw); base != want || !reply {
		t.Fatalf("BaseSubject = %.20q… (%d bytes), %v; want %.20q… (%d bytes)", base, len(base), reply, want, len(want))
	}
}

func BenchmarkBaseSubjectHostile(b *testing.B) {
	raw := strings.Repeat("re: ", 1000) + "[" + strings.Repeat("a", 3000)
	for b.Loop() {
		BaseSubject(raw)
	}
}

func BenchmarkBaseSubject(b *testing.B) {
	raw := "Re: [list] Fwd: =?utf-8?q?Caf=C3=A9?= meeting notes (fwd)"
	for b.Loop() {
		SubjectKey(raw)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ s, key string }{
		{"abc", "ABC"},
		{"ABC", "ABC"},
		{"_", "_"},
		{"été", "E\u0301TE\u0301"},
		{"Été", "E\u0301TE\u0301"},
		{"ǆ", "ǅ"}, // titlecase, not upper case
	} {
		if got := Key(tc.s); got != tc.key {
			t.Errorf("Key(%q) = %q, want %q", tc.s, got, tc.key)
		}
	}
	// i;ascii upper case puts "_" after "[": Dovecot's order.
	if !(Key("[xyz]") < Key("_")) || !(Key("c") < Key("[xyz]")) {
		t.Error("collation order of punctuation and letters")
	}
}

func TestMessageIDs(t *testing.T) {
	for _, tc := range []struct {
		field string
		ids   []string
	}{
		{"", nil},
		{"<a@b>", []string{"a@b"}},
		{" <a@b>  <c@d>\r\n\t<e@f>", []string{"a@b", "c@d", "e@f"}},
		{"<a@b> (comment <x@y>) <c@d>", []string{"a@b", "c@d"}},
		{`"quoted <x@y>" <c@d>`, []string{"c@d"}},
		{"Your message of Mon <a@b>", []string{"a@b"}},
		{"<a@b", nil},
		{"<nodomain>", nil},
		{"<@b> <a@> <a@b>", []string{"a@b"}},
		{"<<a@b>", []string{"a@b"}},
		{"< a @ b >", []string{"a@b"}},
		{"<A@B> <a@b>", []string{"A@B", "a@b"}},
	} {
		got := MessageIDs(tc.field)
		if strings.Join(got, " ") != strings.Join(tc.ids, " ") {
			t.Errorf("MessageIDs(%q) = %q, want %q", tc.field, got, tc.ids)
		}
	}
	if got := FirstMessageID("junk <a@b> <c@d>"); got != "a@b" {
		t.Errorf("FirstMessageID = %q", got)
	}
}

func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{
		"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "re: [fwd: [fwd: re: [fwd: babylon]]]",
		"=?us-ascii?b?UmU6IGM=?=", "Re[2]: [x] a", "[fwd:]", "[fwd: a (fwd)]", "\t\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		base, _ := BaseSubject(raw)
		if !utf8.ValidString(base) {
			t.Fatalf("invalid UTF-8 %q", base)
		}
		if strings.HasPrefix(base, " ") || strings.HasSuffix(base, " ") || strings.ContainsAny(base, "\t\r\n") {
			t.Fatalf("base subject %q not trimmed and collapsed", base)
		}
		if len(base) > maxText {
			t.Fatalf("base subject of %d bytes", len(base))
		}
		_ = Key(base)
	})
}

func FuzzMessageIDs(f *testing.F) {
	for _, s := range []string{"<a@b> <c@d>", "(x) <a@b", `"<x@y>" <a@b>`, "<<a@b>>", "((<a@b>)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		for _, id := range MessageIDs(field) {
			if !strings.Contains(id, "@") || strings.ContainsAny(id, "<> \t\r\n") {
				t.Fatalf("bad ID %q from %q", id, field)
			}
		}
	})
}
