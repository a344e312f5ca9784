package smtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var testLimits = dataLimits{maxBytes: 4096, maxLine: 100, maxHops: 3}

func TestReadMessage(t *testing.T) {
	long := strings.Repeat("x", 98) // 98 + CRLF = 100: at the limit
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", nil},
		{"simple", "Subject: a\r\n\r\nbody\r\n", nil},
		{"no final CRLF", "Subject: a\r\n\r\nbody", nil},
		{"line at limit", long + "\r\n", nil},
		{"line over limit", long + "x\r\n", errScanLineTooLong},
		{"last line over limit", "a\r\n" + long + "xx", errScanLineTooLong},
		{"bare LF", "a\nb\r\n", errScanBareNewline},
		{"bare LF first", "\n", errScanBareNewline},
		{"bare CR", "a\rb\r\n", errScanBareNewline},
		{"CR at end", "a\r", errScanBareNewline},
		{"CR CR LF", "a\r\r\n", errScanBareNewline},
		{"LF CR", "a\n\r", errScanBareNewline},
		{"too big", strings.Repeat("0123456789abcd\r\n", 257), errScanTooBig},
		{"at size limit", strings.Repeat("0123456789abcd\r\n", 256), nil},
		{"hops at limit", strings.Repeat("Received: x\r\n", 3) + "\r\n", nil},
		{"hops over limit", strings.Repeat("Received: x\r\n", 2) + "RECEIVED : y\r\n\tfolded\r\nreceived:z\r\n\r\n", errScanLoop},
		{"Received in body", "Subject: a\r\n\r\n" + strings.Repeat("Received: x\r\n", 9), nil},
		{"Received after non-header", "not a header\r\n" + strings.Repeat("Received: x\r\n", 9), nil},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 2, 7, 4096} {
			var dst bytes.Buffer
			dst.WriteString("PREFIX\r\n")
			r := io.Reader(strings.NewReader(tc.in))
			if chunk < 4096 {
				r = &chunkReader{s: tc.in, n: chunk}
			}
			size, err := readMessage(&dst, r, testLimits)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s (chunks of %d): error %v, want %v", tc.name, chunk, err, tc.want)
				continue
			}
			if err == nil {
				if got := dst.String(); got != "PREFIX\r\n"+tc.in {
					t.Errorf("%s: buffer %q", tc.name, got)
				}
				if size != int64(len(tc.in)) {
					t.Errorf("%s: size %d, want %d", tc.name, size, len(tc.in))
				}
			}
		}
	}
	// Errors of the reader are passed on, wrapped.
	_, err := readMessage(new(bytes.Buffer), iotest.ErrReader(io.ErrUnexpectedEOF), testLimits)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reader error: %v", err)
	}
	if reply, clientFault := dataError(err); reply != errTemporary || clientFault {
		t.Errorf("reader error maps to %v, %v", reply, clientFault)
	}
}

// chunkReader yields s n bytes at a time.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}

func TestWriteTrace(t *testing.T) {
	when := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	cases := []struct {
		ti   traceInfo
		want string
	}{
		{traceInfo{reversePath: "a@b.test", helo: "mail.b.test", remoteIP: net.ParseIP("192.0.2.7"), hostname: "mx.example.org", id: "abc", rcpt: "x@example.org", when: when},
			"Return-Path: <a@b.test>\r\nReceived: from mail.b.test ([192.0.2.7])\r\n\tby mx.example.org (sealmail) with ESMTP id abc\r\n\tfor <x@example.org>;\r\n\tWed, 25 Nov 2026 09:30:00 +0000\r\n"},
		{traceInfo{helo: "[2001:db8::1]", remoteIP: net.ParseIP("2001:db8::1"), hostname: "mx.example.org", tls: true, utf8: true, id: "abc", when: when},
			"Return-Path: <>\r\nReceived: from [2001:db8::1] ([IPv6:2001:db8::1])\r\n\tby mx.example.org (sealmail) with UTF8SMTPS id abc;\r\n\tWed, 25 Nov 2026 09:30:00 +0000\r\n"},
		{traceInfo{reversePath: "we ird\"x@b.test", helo: "evil\r\nX-Injected: yes", hostname: "mx.example.org", id: "abc", when: when},
			"Return-Path: <\"we ird\\\"x\"@b.test>\r\nReceived: from unknown (unknown)\r\n\tby mx.example.org (sealmail) with ESMTP id abc;\r\n\tWed, 25 Nov 2026 09:30:00 +0000\r\n"},
	}
	for _, tc := range cases {
		var b bytes.Buffer
		writeTrace(&b, tc.ti)
		if b.String() != tc.want {
			t.Errorf("writeTrace(%+v):\n got %q\nwant %q", tc.ti, b.String(), tc.want)
		}
	}
}

// FuzzReadMessage feeds arbitrary DATA/BDAT content, in arbitrary chunks,
// through the DATA path: scanning, header parsing and trace insertion. On
// acceptance the stored bytes must be exactly trace + input, canonical
// CRLF text, within the limits; on refusal the error must map to a
// permanent reply.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\r\nbody\r\n"), uint8(3), "mail.example.test", "a@b.test")
	f.Add([]byte("Received: x\r\nReceived: y\r\n received: z\r\nReceived: w\r\nReceived:v\r\n\r\n"), uint8(1), "[192.0.2.1]", "")
	f.Add([]byte("Subject: a\r\n\r\nbody\n.\nMAIL FROM:<x@y>\r\n"), uint8(5), "x\r\nInjected: 1", "a\r\nb@c")
	f.Add([]byte("a\r\r\n.\r\n"), uint8(2), "", "\"q\\\"@x")
	f.Add([]byte(strings.Repeat("x", 200)+"\r\n"), uint8(64), "h", "a@b")
	lim := dataLimits{maxBytes: 1024, maxLine: 120, maxHops: 3}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, helo, from string) {
		if from != "" && checkPath(from, true) != nil {
			// Mail refuses such a sender before any trace is written.
			return
		}
		var dst bytes.Buffer
		writeTrace(&dst, traceInfo{reversePath: from, helo: helo, remoteIP: net.ParseIP("192.0.2.1"), hostname: "mx.example.org", id: "id", rcpt: from, when: time.Unix(0, 0)})
		trace := dst.String()
		checkHeaderBlock(t, trace)
		n := max(int(chunk), 1)
		size, err := readMessage(&dst, &chunkReader{s: string(in), n: n}, lim)
		if err != nil {
			if reply, clientFault := dataError(err); !clientFault || reply.Code/100 != 5 {
				t.Fatalf("refusal %v maps to %v (client fault %v)", err, reply, clientFault)
			}
			return
		}
		if size != int64(len(in)) || dst.String() != trace+string(in) {
			t.Fatalf("stored bytes differ from trace + input")
		}
		if len(in) > 1024 {
			t.Fatalf("accepted %d bytes over the limit", len(in))
		}
		s := dst.String()
		for i := 0; i < len(s); i++ {
			if s[i] == '\r' && (i+1 >= len(s) || s[i+1] != '\n') || s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
				t.Fatalf("accepted a bare CR or LF at %d", i)
			}
		}
		for _, line := range strings.Split(string(in), "\r\n") {
			if len(line)+2 > lim.maxLine {
				t.Fatalf("accepted a line of %d bytes", len(line))
			}
		}
		if receivedFields(in) > lim.maxHops {
			t.Fatalf("accepted %d Received fields", receivedFields(in))
		}
	})
}

// checkHeaderBlock checks that s is header fields only: CRLF line ends,
// field lines "Name: …", continuation lines starting with a tab, no
// control characters, no line over 998 bytes.
func checkHeaderBlock(t *testing.T, s string) {
	t.Helper()
	if !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("trace does not end in CRLF: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
	for i, l := range lines {
		if len(l) > 998 {
			t.Fatalf("trace line %d has %d bytes", i, len(l))
		}
		for j := 0; j < len(l); j++ {
			if c := l[j]; c < 0x20 && c != '\t' || c == 0x7f {
				t.Fatalf("trace line %d has control byte %#x: %q", i, c, l)
			}
		}
		switch {
		case i == 0 && strings.HasPrefix(l, "Return-Path: <") && strings.HasSuffix(l, ">"):
		case i == 1 && strings.HasPrefix(l, "Received: from "):
		case i > 1 && strings.HasPrefix(l, "\t"):
		default:
			t.Fatalf("trace line %d is not a field or continuation: %q", i, l)
		}
	}
	if len(lines) < 4 {
		t.Fatalf("trace has %d lines", len(lines))
	}
	if n := strings.Count(s, "<"); n > 2 {
		t.Fatalf("trace has %d angle brackets: %q", n, s)
	}
}

func TestPathText(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a.b@c.test":       "a.b@c.test",
		"a b@c.test":       `"a b"@c.test`,
		`a"b@c.test`:       `"a\"b"@c.test`,
		"a..b@c.test":      `"a..b"@c.test`,
		"a>b@c.test":       `"a?b"@c.test`,
		"jörg@bücher.test": "jörg@bücher.test",
		"a\x01b@c.test":    "\"a?b\"@c.test",
		"nolocal":          "nolocal",
	} {
		if got := pathText(in); got != want {
			t.Errorf("pathText(%q) = %q, want %q", in, got, want)
		}
	}
}
