package mailbox

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseAddressList(t *testing.T) {
	type A = structure.Address
	for _, tc := range []struct {
		in   string
		want []A
	}{
		{"From Real <fromuser@fromdomain.org>", []A{{Name: "From Real", Mailbox: "fromuser", Host: "fromdomain.org"}}},
		{"user@domain", []A{{Mailbox: "user", Host: "domain"}}},
		{"user@domain (Real Name)", []A{{Name: "Real Name", Mailbox: "user", Host: "domain"}}},
		{"<@route:user@domain>", []A{{ADL: "@route", Mailbox: "user", Host: "domain"}}},
		{`"Last, First" <a@b.example>, c@d`, []A{{Name: "Last, First", Mailbox: "a", Host: "b.example"}, {Mailbox: "c", Host: "d"}}},
		{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", []A{
			{Mailbox: "group"}, {Mailbox: "g1", Host: "d1.org"}, {Mailbox: "g2", Host: "d2.org"}, {},
			{Mailbox: "group2"}, {Mailbox: "g3", Host: "d3.org"}, {}}},
		{"group:;, group2: (foo) ;", []A{{Mailbox: "group"}, {}, {Mailbox: "group2"}, {}}},
		{"undisclosed-recipients:;", []A{{Mailbox: "undisclosed-recipients"}, {}}},
		{"<user-from (comment)@ (comment) domain.org>", []A{{Mailbox: "user-from", Host: "domain.org"}}},
		{"<a@b> (After)", []A{{Name: "After", Mailbox: "a", Host: "b"}}},
		{"=?utf-8?q?J=C3=B6rg?= <j@x.example>", []A{{Name: "=?utf-8?q?J=C3=B6rg?=", Mailbox: "j", Host: "x.example"}}},
		{"localonly", []A{{Mailbox: "localonly", Host: missingDomain}}},
		{"", nil},
		{",,,", nil},
	} {
		got := ParseAddressList(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q [%d]: got %+v, want %+v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestEnvelopeDefaults(t *testing.T) {
	env := Envelope(crlf("Date: Thu, 15 Feb 2007 01:02:03 +0200\nFrom: user@domain (Real Name)\nSender: \nReply-To: \nSubject: a\n b\n\n"))
	if env.Date != "Thu, 15 Feb 2007 01:02:03 +0200" || env.Subject != "a b" {
		t.Errorf("date/subject: %q %q", env.Date, env.Subject)
	}
	if len(env.Sender) != 1 || env.Sender[0].Name != "Real Name" || len(env.ReplyTo) != 1 {
		t.Errorf("sender/reply-to do not default to From: %+v %+v", env.Sender, env.ReplyTo)
	}
	if env.To != nil || env.MessageID != "" {
		t.Errorf("absent fields: %+v", env)
	}
}

const mimeMsg = `From: a@b
Content-Type: multipart/mixed; boundary="foo
 bar"

Prologue
--foo bar
Content-Type: text/plain; charset=us-ascii

hello
--foo bar
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/alternative; boundary=x

--x
Content-Type: text/plain

inner text
--x
Content-Type: text/html

<b>hi</b>
--x--

--foo bar
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="a.bin"

aGVsbG8gd29ybGQ=
--foo bar--
Epilogue
`

func TestStructureOffsets(t *testing.T) {
	msg := crlf(mimeMsg)
	bs := Structure(msg)
	if !bs.IsMultipart() || bs.Subtype != "mixed" || len(bs.Parts) != 3 {
		t.Fatalf("top: %+v", bs)
	}
	body := func(p *structure.BodyStructure) string { return string(msg[p.BodyStart:p.End]) }
	if got := body(bs.Parts[0]); got != "hello" {
		t.Errorf("part 1 body %q", got)
	}
	m := bs.Parts[1]
	if m.Message == nil || m.Envelope == nil || m.Envelope.Subject != "inner" {
		t.Fatalf("part 2: %+v", m)
	}
	if !m.Message.IsMultipart() || len(m.Message.Parts) != 2 || body(m.Message.Parts[0]) != "inner text" {
		t.Errorf("part 2.1: %+v", m.Message)
	}
	if got := string(msg[m.Message.HeaderStart:m.Message.BodyStart]); !strings.HasPrefix(got, "Subject: inner\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("part 2 header %q", got)
	}
	a := bs.Parts[2]
	if a.Disposition != "attachment" || a.DecodedSize != 11 || paramValue(a.DispositionParams, "filename") != "a.bin" {
		t.Errorf("part 3: %+v", a)
	}
	if bs.Parts[0].Lines != 0 || bs.Parts[0].Size != 5 {
		t.Errorf("part 1 size/lines: %d %d", bs.Parts[0].Size, bs.Parts[0].Lines)
	}
	if p := Preview(msg, bs); p != "hello" {
		t.Errorf("preview %q", p)
	}
}

func TestStructureDefaults(t *testing.T) {
	bs := Structure(crlf("Subject: x\n\nbody\n"))
	if bs.Type != "text" || bs.Subtype != "plain" || paramValue(bs.Params, "charset") != "us-ascii" || bs.Lines != 1 || bs.Size != 6 {
		t.Errorf("%+v", bs)
	}
	// A multipart without its boundary still has one (empty) part.
	bs = Structure(crlf("Content-Type: multipart/mixed\n\nno parts\n"))
	if !bs.IsMultipart() || len(bs.Parts) != 1 {
		t.Errorf("%+v", bs)
	}
}

func TestDecodeQP(t *testing.T) {
	in := crlf("hello  \nbar=\n\nfoo\t=\nbar\nfoo\t \t= \n=62\nfoo = \t\nbar\nfoo =\n=62\nfoo  \nbar=\n\nfoo_bar\n")
	d, _ := newDecoder("quoted-printable", bytes.NewReader(in))
	got, _ := io.ReadAll(d)
	want := crlf("hello\nbar\nfoo\tbar\nfoo\t \tb\nfoo bar\nfoo b\nfoo\nbar\nfoo_bar\n")
	if !bytes.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for in, want := range map[string]string{"a=3D=3d": "a==", "=ZZx": "=ZZx", "x=": "x", "=4": "=4", "a \r\n": "a\r\n"} {
		d, _ := newDecoder("quoted-printable", strings.NewReader(in))
		got, _ := io.ReadAll(d)
		if string(got) != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	for in, want := range map[string]string{"aGVsbG8gd29ybGQ=": "hello world", "aGVs\r\nbG8=": "hello", "aGVsbG8": "hello", "YWJj!ZGVm": "abcdef", "": ""} {
		d, _ := newDecoder("base64", strings.NewReader(in))
		got, _ := io.ReadAll(iotestOneByte(d))
		if string(got) != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
		if n := decodedSize([]byte(in), "base64"); n != int64(len(want)) {
			t.Errorf("%q: decoded size %d", in, n)
		}
	}
}

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func iotestOneByte(r io.Reader) io.Reader { return oneByte{r} }

func TestSummaryRoundTrip(t *testing.T) {
	msg := crlf(mimeMsg)
	sm := BuildSummary(msg)
	got, err := DecodeSummary(EncodeSummary(sm))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(EncodeSummary(got), EncodeSummary(sm)) || got.Size != int64(len(msg)) {
		t.Errorf("round trip differs")
	}
	enc := EncodeSummary(sm)
	for i := range enc {
		// Truncations never panic.
		DecodeSummary(enc[:i])
	}
	if _, err := DecodeSummary(append([]byte{1}, enc[1:]...)); err == nil {
		t.Errorf("version 1 accepted")
	}
}

func FuzzBuildSummary(f *testing.F) {
	f.Add(crlf(mimeMsg))
	f.Add(crlf("From: a@b\n\nbody\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\n\n--a\nContent-Type: message/rfc822\n\n--a--"))
	f.Add([]byte("Content-Transfer-Encoding: quoted-printable\n\n=\r=4=\n=ZZ= \r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		sm := BuildSummary(msg)
		if _, err := DecodeSummary(EncodeSummary(sm)); err != nil {
			t.Fatalf("own summary does not decode: %v", err)
		}
	})
}

func FuzzDecodeSummary(f *testing.F) {
	f.Add(EncodeSummary(BuildSummary(crlf(mimeMsg))))
	f.Add([]byte{summaryVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeSummary(b)
	})
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"a <b@c>", "g: a@b, c@d;", `"q\"x" <@r,@s:a@b>`, "(c (nested)) a@b", "a@[1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseAddressList(s)
		depth := 0
		for _, a := range l {
			switch {
			case a.IsGroupEnd():
				depth--
			case a.IsGroupStart():
				depth++
			}
			if depth < 0 || depth > 1 {
				t.Fatalf("unbalanced groups in %+v", l)
			}
		}
		if depth != 0 {
			t.Fatalf("unclosed group in %+v", l)
		}
	})
}

func TestConvertBinary(t *testing.T) {
	bin := "ab\x00cd\xff\r\n"
	var msg []byte
	msg = append(msg, crlf("From: a@b\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nplain text\n--x\n"+
		"Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n")...)
	msg = append(msg, bin...)
	msg = append(msg, crlf("\n--x\nContent-Type: text/plain\n\nnul\x00inside\n--x--\n")...)
	out, changed := ConvertBinary(msg)
	if !changed || bytes.IndexByte(out, 0) >= 0 {
		t.Fatalf("not converted: %q", out)
	}
	bs := Structure(out)
	if len(bs.Parts) != 3 || !strings.EqualFold(bs.Parts[1].Encoding, "base64") || !strings.EqualFold(bs.Parts[2].Encoding, "base64") ||
		!strings.EqualFold(bs.Parts[0].Encoding, "7BIT") {
		t.Fatalf("structure after: %+v", bs.Parts)
	}
	for i, want := range []string{"plain text", bin, "nul\x00inside"} {
		p := bs.Parts[i]
		d, _ := newDecoder(p.Encoding, bytes.NewReader(out[p.BodyStart:p.End]))
		got, _ := io.ReadAll(d)
		if strings.TrimRight(string(got), "\r\n") != strings.TrimRight(want, "\r\n") || p.DecodedSize != int64(len(got)) {
			t.Errorf("part %d decodes to %q (size %d)", i+1, got, p.DecodedSize)
		}
	}
	if _, changed := ConvertBinary(crlf(mimeMsg)); changed {
		t.Errorf("a message without binary content was changed")
	}
	// A single-part binary message.
	out, _ = ConvertBinary([]byte("Content-Transfer-Encoding: binary\r\n\r\n\x00\x01"))
	if !bytes.Contains(out, []byte("Content-Transfer-Encoding: base64\r\n\r\nAAE=\r\n")) {
		t.Errorf("single part: %q", out)
	}
}

// FuzzConvertBinary: converting any message never panics, and once
// converted, a message without NUL left needs no second conversion.
func FuzzConvertBinary(f *testing.F) {
	f.Add([]byte("Content-Transfer-Encoding: binary\r\n\r\n\x00\x01"))
	f.Add(crlf(mimeMsg))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Transfer-Encoding: binary\n\n\x00\n--a--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, _ := ConvertBinary(msg)
		if bytes.IndexByte(out, 0) < 0 {
			if _, again := ConvertBinary(out); again && bytes.Contains(bytes.ToLower(out), []byte("binary")) == false {
				t.Fatalf("converted twice: %q", out)
			}
		}
	})
}
