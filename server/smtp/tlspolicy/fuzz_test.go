package tlspolicy

import (
	"strings"
	"testing"
)

// FuzzParsePolicy: no policy body from the network makes the parser
// panic, and what it accepts keeps RFC 8461 §3.2's bounds.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		enforcePolicy,
		"version: STSv1\nmode: testing\nmx: *.example.net\nmx: mail.example.com.\nmax_age: 31557600\n",
		"version: STSv1\r\nmode: none\r\nmax_age: 0\r\n",
		"version:STSv1\nmode:enforce\nmx:a.b\nmax_age:1",
		"\n\n\r\n: \nmx: *.\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone {
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge.Seconds() > maxAgeLimit {
			t.Fatalf("max_age %v", p.MaxAge)
		}
		if len(p.MX) == 0 && p.Mode != ModeNone {
			t.Fatal("no mx")
		}
		for _, mx := range p.MX {
			if mx != strings.ToLower(mx) || strings.HasSuffix(mx, ".") || strings.Count(mx, "*") > 1 {
				t.Fatalf("mx %q", mx)
			}
			p.Matches(mx)
		}
	})
}

// FuzzParseTXT: no TXT record makes the parser panic; an id it returns
// is 1 to 32 letters and digits.
func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1;id=a;x=y", "v=STSv1", "v=STSv1 ; id = a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTXT([]string{s})
		if err == nil && !validID(id) {
			t.Fatalf("id %q", id)
		}
	})
}
