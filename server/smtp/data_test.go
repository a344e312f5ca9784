package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var testLimits = dataLimits{maxBytes: 4096, maxLine: 100, maxHops: 3}

// checkMessage feeds what r yields into a msgSink that keeps it in dst,
// as BDAT chunks arrive, and returns the size and the fault.
func checkMessage(dst *bytes.Buffer, r io.Reader, lim dataLimits) (int64, error) {
	sink := newMsgSink(dst, lim)
	if _, err := io.Copy(sink, r); err != nil {
		return sink.size, err
	}
	return sink.size, sink.finish()
}

func TestMsgSink(t *testing.T) {
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
		{"NUL", "Subject: a\r\n\r\nb\x00dy\r\n", errScanNUL},
		{"NUL first", "\x00", errScanNUL},
		{"too big", strings.Repeat("0123456789abcd\r\n", 257), errScanTooBig},
		{"at size limit", strings.Repeat("0123456789abcd\r\n", 256), nil},
		{"hops at limit", strings.Repeat("Received: x\r\n", 3) + "\r\n", nil},
		{"hops over limit", strings.Repeat("Received: x\r\n", 2) + "RECEIVED : y\r\n\tfolded\r\nreceived:z\r\n\r\n", errScanLoop},
		{"Received in body", "Subject: a\r\n\r\n" + strings.Repeat("Received: x\r\n", 9), nil},
		{"Received after non-header", "not a header\r\n" + strings.Repeat("Received: x\r\n", 9), nil},
		{"Received after colon line", ":x\r\n" + strings.Repeat("Received: x\r\n", 9), nil},
		{"Received with long name", strings.Repeat("Received-Not: x\r\nReceivedX: y\r\nX-Received: z\r\n", 3), nil},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 2, 7, 4096} {
			var dst bytes.Buffer
			dst.WriteString("PREFIX\r\n")
			r := io.Reader(strings.NewReader(tc.in))
			if chunk < 4096 {
				r = &chunkReader{s: tc.in, n: chunk}
			}
			size, err := checkMessage(&dst, r, testLimits)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s (chunks of %d): error %v, want %v", tc.name, chunk, err, tc.want)
				continue
			}
			if size != int64(len(tc.in)) {
				t.Errorf("%s: size %d, want %d", tc.name, size, len(tc.in))
			}
			if err == nil {
				if got := dst.String(); got != "PREFIX\r\n"+tc.in {
					t.Errorf("%s: buffer %q", tc.name, got)
				}
			}
		}
	}
	// A failure to keep the bytes (the spool) is not the client's.
	sink := newMsgSink(failWriter{}, testLimits)
	sink.Write([]byte("a\r\n"))
	if reply, clientFault := dataReply(sink.finish()); reply != replyTemporary || clientFault {
		t.Errorf("keep error maps to %v, %v", reply, clientFault)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

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

// receivedFields is the reference for headerScanner: it counts the
// Received fields in msg's header section (RFC 5322 §2.2), the lines
// before the first empty line or before the first line that is neither
// a field nor a continuation, on a whole CRLF message.
func receivedFields(msg []byte) int {
	n := 0
	for len(msg) > 0 {
		line := msg
		rest := []byte(nil)
		if i := bytes.Index(msg, []byte("\r\n")); i >= 0 {
			line, rest = msg[:i], msg[i+2:]
		}
		if len(line) == 0 {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				break
			}
			if bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte("Received")) {
				n++
			}
		}
		msg = rest
	}
	return n
}

// unstuffOracle is the reference for readDotData on the bytes a client
// sends after DATA: the data ends at the first <CRLF>.<CRLF> (the DATA
// line's CRLF counting as the first), and a "." that starts a line
// (after CRLF) is removed. It returns the message, the rest of the
// input, and false if the data never ends.
func unstuffOracle(in string) (msg, rest string, ok bool) {
	s := "\r\n" + in
	i := strings.Index(s, "\r\n.\r\n")
	if i < 0 {
		return "", "", false
	}
	content := s[:i+2] // with the CRLF before the dot
	msg = strings.ReplaceAll(content, "\r\n.", "\r\n")[2:]
	return msg, s[i+5:], true
}

func TestReadDotData(t *testing.T) {
	cases := []string{
		".\r\n",
		"a\r\n.\r\nrest",
		"..a\r\n...\r\n.\r\n",
		".a\r\n.\r\n",
		"a\n.\nb\r\n.\r\n",       // LF.LF is no end
		"a\r\n.\rb\r\n.\r\n",     // CRLF.CR is no end
		"a\r.\r\nb\r\n.\r\n",     // CR.CRLF is no end
		"a\n.\r\nb\r\n.\r\nMAIL", // LF.CRLF is no end
		"a\r\n",                  // never ends
		strings.Repeat("x", readBufSize*2+3) + "\r\n." + strings.Repeat("y", readBufSize) + "\r\n.\r\n",
		strings.Repeat("x", readBufSize-1) + "\r\n.\r\n",
		strings.Repeat("x", readBufSize) + "\r\n.\r\n",
	}
	for _, in := range cases {
		for _, chunk := range []int{1, 3, 4096} {
			br := bufio.NewReaderSize(&chunkReader{s: in, n: chunk}, readBufSize)
			var got bytes.Buffer
			err := readDotData(br, &got)
			want, rest, ok := unstuffOracle(in)
			if !ok {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%q: error %v, want ErrUnexpectedEOF", trunc(in), err)
				}
				continue
			}
			if err != nil || got.String() != want {
				t.Errorf("%q (chunks of %d): got %q, %v; want %q", trunc(in), chunk, trunc(got.String()), err, trunc(want))
				continue
			}
			left, _ := io.ReadAll(br)
			if string(left) != rest {
				t.Errorf("%q: left %q, want %q", trunc(in), left, rest)
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func TestWriteTrace(t *testing.T) {
	when := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	cases := []struct {
		ti   traceInfo
		want string
	}{
		{traceInfo{reversePath: "a@b.test", heloName: "mail.b.test", remoteIP: net.ParseIP("192.0.2.7"), hostname: "mx.example.org", id: "abc", rcpt: "x@example.org", when: when},
			"Return-Path: <a@b.test>\r\nReceived: from mail.b.test ([192.0.2.7])\r\n\tby mx.example.org (sealmail) with ESMTP id abc\r\n\tfor <x@example.org>;\r\n\tWed, 25 Nov 2026 09:30:00 +0000\r\n"},
		{traceInfo{heloName: "[2001:db8::1]", remoteIP: net.ParseIP("2001:db8::1"), hostname: "mx.example.org", tls: true, utf8: true, id: "abc", when: when},
			"Return-Path: <>\r\nReceived: from [2001:db8::1] ([IPv6:2001:db8::1])\r\n\tby mx.example.org (sealmail) with UTF8SMTPS id abc;\r\n\tWed, 25 Nov 2026 09:30:00 +0000\r\n"},
		{traceInfo{reversePath: "we ird\"x@b.test", heloName: "evil\r\nX-Injected: yes", hostname: "mx.example.org", id: "abc", when: when},
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

// FuzzMessageData feeds arbitrary client bytes after DATA, in arbitrary
// pieces, through the DATA path: readDotData (dot-unstuffing, end of
// data), msgSink (checks) and trace insertion, and compares with the
// references (unstuffOracle, receivedFields). On acceptance the kept
// bytes must be exactly trace + message, canonical CRLF text, within the
// limits; on refusal the fault must map to a permanent reply. The same
// message fed as BDAT chunks must get the same verdict.
func FuzzMessageData(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\r\nbody\r\n.\r\n"), uint8(3), "mail.example.test", "a@b.test")
	f.Add([]byte("Received: x\r\nReceived: y\r\n received: z\r\nReceived: w\r\nReceived:v\r\n\r\n.\r\n"), uint8(1), "[192.0.2.1]", "")
	f.Add([]byte("Subject: a\r\n\r\nbody\n.\nMAIL FROM:<x@y>\r\n.\r\n"), uint8(5), "x\r\nInjected: 1", "a\r\nb@c")
	f.Add([]byte("a\r\r\n.\r\n"), uint8(2), "", "\"q\\\"@x")
	f.Add([]byte("a\r\n.\rX\r\n.\r\n"), uint8(2), "h", "a@b")
	f.Add([]byte("..\r\n.x\r\nb\x00\r\n.\r\n"), uint8(4), "h", "a@b")
	f.Add([]byte(strings.Repeat("x", 200)+"\r\n.\r\n"), uint8(64), "h", "a@b")
	lim := dataLimits{maxBytes: 1024, maxLine: 120, maxHops: 3}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, helo, from string) {
		if from != "" && checkPath(from, true) != nil {
			// MAIL refuses such a sender before any trace is written.
			return
		}
		var dst bytes.Buffer
		writeTrace(&dst, traceInfo{reversePath: from, heloName: helo, remoteIP: net.ParseIP("192.0.2.1"), hostname: "mx.example.org", id: "id", rcpt: from, when: time.Unix(0, 0)})
		trace := dst.String()
		checkHeaderBlock(t, trace)
		n := max(int(chunk), 1)
		br := bufio.NewReaderSize(&chunkReader{s: string(in), n: n}, 16)
		sink := newMsgSink(&dst, lim)
		err := readDotData(br, sink)
		want, _, ended := unstuffOracle(string(in))
		if !ended {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unterminated data: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("readDotData: %v", err)
		}
		if sink.size != int64(len(want)) {
			t.Fatalf("message of %d bytes, reference %d", sink.size, len(want))
		}
		ferr := sink.finish()
		// BDAT: the same message in pieces gives the same verdict.
		var bdst bytes.Buffer
		_, berr := checkMessage(&bdst, &chunkReader{s: want, n: n}, lim)
		if !errors.Is(berr, ferr) && !(berr != nil && ferr != nil) {
			t.Fatalf("DATA says %v, BDAT says %v", ferr, berr)
		}
		if ferr != nil {
			if reply, clientFault := dataReply(ferr); !clientFault || reply.Code/100 != 5 {
				t.Fatalf("refusal %v maps to %v (client fault %v)", ferr, reply, clientFault)
			}
			return
		}
		if dst.String() != trace+want {
			t.Fatalf("stored bytes differ from trace + message")
		}
		if int64(len(want)) > lim.maxBytes {
			t.Fatalf("accepted %d bytes over the limit", len(want))
		}
		s := dst.String()
		for i := 0; i < len(s); i++ {
			if s[i] == '\r' && (i+1 >= len(s) || s[i+1] != '\n') || s[i] == '\n' && (i == 0 || s[i-1] != '\r') || s[i] == 0 {
				t.Fatalf("accepted a bare CR or LF, or a NUL, at %d", i)
			}
		}
		for _, line := range strings.Split(want, "\r\n") {
			if len(line)+2 > lim.maxLine {
				t.Fatalf("accepted a line of %d bytes", len(line))
			}
		}
		if receivedFields([]byte(want)) > lim.maxHops {
			t.Fatalf("accepted %d Received fields", receivedFields([]byte(want)))
		}
	})
}

// FuzzHeaderScanner checks headerScanner against receivedFields on
// canonical messages fed in pieces.
func FuzzHeaderScanner(f *testing.F) {
	f.Add("Received: a\r\nReceived : b\r\n c\r\nX: y\r\n\r\nReceived: body\r\n", uint8(3))
	f.Add(":x\r\nReceived: a\r\n", uint8(1))
	f.Add("received\t:x\r\nRe ceived: y\r\nReceivedXYZ: z\r\n", uint8(2))
	f.Fuzz(func(t *testing.T, msg string, chunk uint8) {
		if strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\r") || strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") {
			return // msgSink refuses non-canonical text before counting matters
		}
		var h headerScanner
		n := max(int(chunk), 1)
		got := 0
		for off := 0; off < len(msg); off += n {
			got = h.scan([]byte(msg[off:min(off+n, len(msg))]))
		}
		if want := receivedFields([]byte(msg)); got != want {
			t.Fatalf("headerScanner counts %d, reference %d", got, want)
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
