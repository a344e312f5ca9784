package pop3

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzParseCommand feeds command lines to the parser: it must never
// panic, and what it accepts must be a known shape (an upper-case
// keyword of 3 or 4 letters, at most maxArgs arguments without spaces or
// control characters, views of the line).
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"USER alice@example.org", "PASS secret with spaces", "STAT", "LIST", "LIST 1",
		"RETR 10", "TOP 1 0", "DELE 3", "UIDL", "UIDL 2", "NOOP", "RSET", "QUIT", "CAPA",
		"STLS", "AUTH", "AUTH PLAIN", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN =",
		"list  1", "top 1 99999999999", "XYZZY", "", " ", "US\x00R", "PASS a\rb", "LIST \x7f",
		"APOP alice c4c9334bac560ecc979e58001b3e22fb",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		cmd, err := parseCommand(line)
		if !bytes.Equal(line, orig) {
			t.Fatal("parseCommand changed its input")
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not a response", err)
			}
			return
		}
		if n := len(cmd.name); n < 3 || n > 4 || strings.ToUpper(cmd.name) != cmd.name {
			t.Fatalf("keyword %q", cmd.name)
		}
		if !bytes.EqualFold(line[:len(cmd.name)], []byte(cmd.name)) {
			t.Fatalf("keyword %q not from %q", cmd.name, line)
		}
		if cmd.name == "PASS" {
			return
		}
		if len(cmd.args) > maxArgs {
			t.Fatalf("%d arguments", len(cmd.args))
		}
		for _, a := range cmd.args {
			if len(a) == 0 {
				t.Fatal("empty argument")
			}
			for _, b := range a {
				if b <= ' ' || b == 0x7f {
					t.Fatalf("argument %q holds %#x", a, b)
				}
			}
			for _, n := range []int{0, 1} {
				if v, ok := parseNumber(a, n); ok && (v < n || v > 1<<31-1) {
					t.Fatalf("parseNumber(%q) = %d", a, v)
				}
			}
		}
	})
}

// FuzzDotWriter writes arbitrary content, in arbitrary pieces, as a
// multi-line response: the result must be CRLF lines only, end with the
// one terminator, and undo to the content with its line ends
// normalised.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{
		"", ".", "a\r\n.\r\nb", "\r\n.\r\n", "x\r", "x\n.\n", "..\r\n.", "a\rb\r\nc\n\rd", "\r\r\n\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, content []byte, piece uint8) {
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		dw := newDotWriter(bw)
		step := int(piece%16) + 1
		for p := content; len(p) > 0; {
			k := min(step, len(p))
			if _, err := dw.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		n := dw.end()
		bw.Flush()
		got := out.Bytes()
		if int64(len(got)) != n {
			t.Fatalf("end says %d bytes, wrote %d", n, len(got))
		}
		if !bytes.HasSuffix(got, []byte(".\r\n")) {
			t.Fatalf("no terminator: %q", got)
		}
		body := got[:len(got)-3]
		if len(body) > 0 && !bytes.HasSuffix(body, []byte("\r\n")) {
			t.Fatalf("last line open: %q", got)
		}
		var undone bytes.Buffer
		lines := bytes.Split(body, []byte("\r\n"))
		lines = lines[:len(lines)-1]
		for _, l := range lines {
			if bytes.ContainsAny(l, "\r\n") {
				t.Fatalf("bare line end in %q", l)
			}
			if bytes.Equal(l, []byte(".")) {
				t.Fatalf("terminator inside the body: %q", got)
			}
			if len(l) > 0 && l[0] == '.' {
				if len(l) < 2 || l[1] != '.' {
					t.Fatalf("line %q not stuffed", l)
				}
				l = l[1:]
			}
			undone.Write(l)
			undone.WriteString("\r\n")
		}
		want := normalise(content)
		if !bytes.Equal(undone.Bytes(), want) {
			t.Fatalf("undone %q, want %q", undone.Bytes(), want)
		}
	})
}

// normalise makes every line end CRLF and closes the last line.
func normalise(p []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\r':
			if i+1 < len(p) && p[i+1] == '\n' {
				i++
			}
			b.WriteString("\r\n")
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(p[i])
		}
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
