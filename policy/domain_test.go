package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.org":                   "example.org",
		"Example.ORG.":                  "example.org",
		"bücher.example":                "xn--bcher-kva.example",
		"Bücher.Example.":               "xn--bcher-kva.example",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"XN--BCHER-KVA.example":         "xn--bcher-kva.example",
		"ｅｘａｍｐｌｅ.org":                   "example.org",   // full-width letters map (UTS #46)
		"faß.de":                        "xn--fa-hia.de", // non-transitional: ß stays
		"пример.рф":                     "xn--e1afmkfd.xn--p1ai",
		"localhost":                     "localhost",
		"1and1.example":                 "1and1.example",
		strings.Repeat("a", 63) + ".io": strings.Repeat("a", 63) + ".io",
	} {
		got, err := NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ".", "exa mple.org", "exa_mple.org", "a..b", ".example.org", "-a.example", "a-.example",
		"xn--zz.example",           // not valid punycode
		"xn--abc-.example",         // decodes to nothing valid
		"127.0.0.1", "example.123", // all-digit last label
		strings.Repeat("a", 64) + ".io",  // label too long
		strings.Repeat("a.", 127) + "io", // name too long
		"ex\x00ample.org", "a/b.example", "a@b.example", "\xff.example", "\ufffd.example", "xn--zn7c.example",
	} {
		if got, err := NormalizeDomain(in); err == nil || !errors.Is(err, ErrBadDomain) {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want ErrBadDomain", in, got, err)
		}
	}
}

func TestDisplayDomain(t *testing.T) {
	for in, want := range map[string]string{
		"xn--bcher-kva.example": "bücher.example",
		"example.org":           "example.org",
		"xn--zz.example":        "xn--zz.example", // not convertible: as given
	} {
		if got := DisplayDomain(in); got != want {
			t.Errorf("DisplayDomain(%q) = %q, want %q", in, got, want)
		}
	}
	if !IsIDN("xn--bcher-kva.example") || !IsIDN("mail.xn--bcher-kva.example") || IsIDN("example.org") {
		t.Error("IsIDN wrong")
	}
}

// TestIDNRecipients: an IDN domain configured in either form receives mail
// addressed in either form, resolved to the one canonical account.
func TestIDNRecipients(t *testing.T) {
	for _, configured := range []string{"bücher.example", "xn--bcher-kva.example"} {
		r, err := NewRecipients(RecipientOptions{
			Domains: []string{configured},
			Aliases: map[string][]string{"info@Bücher.example": {"jörg@xn--bcher-kva.example"}},
		})
		if err != nil {
			t.Fatalf("%s: %v", configured, err)
		}
		lk := mapLookup{accounts: map[string]bool{"jörg@xn--bcher-kva.example": true}}
		for _, rcpt := range []string{"jörg@bücher.example", "Jörg@XN--BCHER-KVA.example", "jörg+tag@Bücher.example.", "info@xn--bcher-kva.example", "info@bücher.example"} {
			as, err := r.Resolve(context.Background(), lk, rcpt)
			if err != nil || len(as) != 1 || as[0].Address != "jörg@xn--bcher-kva.example" {
				t.Errorf("%s: Resolve(%q) = %v, %v", configured, rcpt, as, err)
			}
		}
		if !r.IsLocalDomain("BÜCHER.example") || r.IsLocalDomain("buecher.example") {
			t.Errorf("%s: IsLocalDomain wrong", configured)
		}
	}
}

// FuzzNormalizeDomain: whatever NormalizeDomain accepts comes out as
// lower-case ASCII that normalises to itself and survives the trip to
// U-labels and back.
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.org", "Bücher.example.", "xn--bcher-kva.example", "пример.рф", "a..b", "xn--zz", "ß.de", "\u200d.example", "٠١.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := NormalizeDomain(in)
		if err != nil {
			return
		}
		for i := 0; i < len(d); i++ {
			if c := d[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("NormalizeDomain(%q) = %q: byte %q", in, d, c)
			}
		}
		if len(d) > 253 {
			t.Fatalf("NormalizeDomain(%q) = %d bytes", in, len(d))
		}
		if again, err := NormalizeDomain(d); err != nil || again != d {
			t.Fatalf("NormalizeDomain(%q) = %q, but that gives %q, %v", in, d, again, err)
		}
		if back, err := NormalizeDomain(DisplayDomain(d)); err != nil || back != d {
			t.Fatalf("%q → display %q → %q, %v", d, DisplayDomain(d), back, err)
		}
	})
}
