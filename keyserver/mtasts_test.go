package keyserver

import (
	"testing"
	"time"
)

func TestMTASTS(t *testing.T) {
	f := newFixture(t, false)
	rec := f.do("GET", "mta-sts.example.org", "/.well-known/mta-sts.txt")
	want := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
	if rec.Code != 200 || rec.Body.String() != want || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("status %d type %q body %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	for _, tc := range [][2]string{
		{"mta-sts.example.com", "/.well-known/mta-sts.txt"},
		{"example.org", "/.well-known/mta-sts.txt"},
		{"mta-sts.example.org", "/.well-known/mta-sts.txt/"},
		{"mta-sts.example.org", "/mta-sts.txt"},
	} {
		if rec := f.do("GET", tc[0], tc[1]); rec.Code != 404 {
			t.Errorf("%s%s: status %d, want 404", tc[0], tc[1], rec.Code)
		}
	}

	o := testOptions(nil)
	o.MTASTS = &MTASTSPolicy{Mode: "Testing", MX: []string{"MX1.Example.org.", "*.mx.example.org"}, MaxAge: 86400*time.Second + 500*time.Millisecond}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	rec = (&fixture{h: h}).do("GET", "mta-sts.example.net", "/.well-known/mta-sts.txt")
	want = "version: STSv1\r\nmode: testing\r\nmx: mx1.example.org\r\nmx: *.mx.example.org\r\nmax_age: 86400\r\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}

	o.MTASTS = nil
	h, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	if rec := (&fixture{h: h}).do("GET", "mta-sts.example.org", "/.well-known/mta-sts.txt"); rec.Code != 404 {
		t.Fatalf("no policy: status %d", rec.Code)
	}
}

func TestMTASTSID(t *testing.T) {
	a := mtastsID([]byte("version: STSv1\r\nmode: testing\r\n"))
	b := mtastsID([]byte("version: STSv1\r\nmode: enforce\r\n"))
	if a == b || len(a) < 1 || len(a) > 32 {
		t.Fatalf("ids %q %q", a, b)
	}
	for _, c := range a {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			t.Fatalf("id %q not alphanumeric", a)
		}
	}
}
