package main

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readMbox(t *testing.T, data string, max int64) []*mboxMessage {
	t.Helper()
	r := newMboxReader(strings.NewReader(data), max)
	var out []*mboxMessage
	for {
		m, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, m)
	}
}

// TestMboxRoundTrip: what writeMboxMessage writes reads back as the
// same bytes and date, whatever the message holds (From lines, quoted
// From lines, CRLF, no final line break, empty lines at the end).
func TestMboxRoundTrip(t *testing.T) {
	msgs := []string{
		"Subject: one\r\n\r\nbody\r\n",
		"Subject: two\r\n\r\nFrom the start of a line\r\n>From quoted already\r\n>>From twice\r\n\r\nFrom after an empty line\r\n",
		"Subject: three\r\n\r\nends with empty lines\r\n\r\n\r\n",
		"Subject: four\r\n\r\nno final line break",
		"Subject: five\r\n\r\n",
	}
	date := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for i, m := range msgs {
		if err := writeMboxMessage(w, date.Add(time.Duration(i)*time.Hour), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	got := readMbox(t, buf.String(), 1<<20)
	if len(got) != len(msgs) {
		t.Fatalf("read %d messages, wrote %d:\n%s", len(got), len(msgs), buf.String())
	}
	for i, m := range got {
		want := msgs[i]
		if i == 3 {
			want += "\r\n" // a line break is added, and reads back as CRLF
		}
		if string(m.Data) != want || !m.Date.Equal(date.Add(time.Duration(i)*time.Hour)) {
			t.Errorf("message %d: %q %v, want %q", i, m.Data, m.Date, want)
		}
	}
	if !strings.Contains(buf.String(), "\n>From the start") || !strings.Contains(buf.String(), "\n>>From quoted") || !strings.Contains(buf.String(), "\n>>>From twice") {
		t.Errorf("From lines not quoted:\n%s", buf.String())
	}
}

// TestMboxForeign: an mbox as other programs write it: LF line endings,
// Status/X-Status/X-Keywords state, Content-Length, a UW-IMAP
// pseudo-message, From lines with zones.
func TestMboxForeign(t *testing.T) {
	data := "From MAILER-DAEMON Wed Jan  1 00:00:00 2020\n" +
		"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1234 5\n\nThis text is part of the internal format of your mail folder.\n\n" +
		"From alice@example.org Thu Jan  2 10:11:12 2020\n" +
		"Subject: hello\nStatus: RO\nX-Status: AF\nX-Keywords: $Work Junk\n  $Later\nContent-Length: 5\nTo: bob\n\nhello\n>From me\n\n" +
		"From bob@example.org Fri Jan  3 10:11:12 2020 +0100\n" +
		"Date: Fri, 03 Jan 2020 10:11:12 +0100\nSubject: second\n\nbody\n"
	got := readMbox(t, data, 1<<20)
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	if want := "Subject: hello\r\nTo: bob\r\n\r\nhello\r\nFrom me\r\n"; string(got[0].Data) != want {
		t.Errorf("first: %q, want %q", got[0].Data, want)
	}
	if want := []string{"$Later", "$Work", "Junk", `\Answered`, `\Flagged`, `\Seen`}; !reflect.DeepEqual(got[0].Flags, want) {
		t.Errorf("flags %v, want %v", got[0].Flags, want)
	}
	if !got[0].Date.Equal(time.Date(2020, 1, 2, 10, 11, 12, 0, time.UTC)) {
		t.Errorf("date %v", got[0].Date)
	}
	if !got[1].Date.Equal(time.Date(2020, 1, 3, 9, 11, 12, 0, time.UTC)) || len(got[1].Flags) != 0 {
		t.Errorf("second: %v %v", got[1].Date, got[1].Flags)
	}
	if got[1].Offset != int64(strings.Index(data, "From bob")) {
		t.Errorf("offset %d", got[1].Offset)
	}
}

// TestMboxLimits: a message over the limit is reported, not held; the
// next one reads normally; a file that is not an mbox is refused.
func TestMboxLimits(t *testing.T) {
	big := strings.Repeat("x", 5000)
	data := "From a Thu Jan  2 10:11:12 2020\nSubject: big\n\n" + big + "\n" + big + "\n\nFrom b Thu Jan  2 10:11:12 2020\nSubject: small\n\nok\n"
	got := readMbox(t, data, 1000)
	if len(got) != 2 || !got[0].TooLarge || got[0].Data != nil || got[1].TooLarge || string(got[1].Data) != "Subject: small\r\n\r\nok\r\n" {
		t.Errorf("got %+v", got)
	}
	if got[0].Size < 10000 {
		t.Errorf("size of the large one %d", got[0].Size)
	}
	if _, err := newMboxReader(strings.NewReader("Subject: not an mbox\n"), 1000).Next(); err != errNotMbox {
		t.Errorf("not an mbox: %v", err)
	}
	if got := readMbox(t, "", 1000); len(got) != 0 {
		t.Errorf("empty file: %v", got)
	}
}

// FuzzMbox: any input reads without panic, within its limit, and what
// writeMboxMessage writes of a message reads back as that message.
func FuzzMbox(f *testing.F) {
	f.Add([]byte("From a Thu Jan  2 10:11:12 2020\nSubject: x\n\nbody\n\nFrom b Thu Jan  2 10:11:12 2020\n\n"))
	f.Add([]byte("From a\nStatus: RO\n X\n\n>From\n"))
	f.Add([]byte("Subject: x\r\n\r\nFrom y\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newMboxReader(bytes.NewReader(data), 4096)
		for i := 0; i < 10000; i++ {
			m, err := r.Next()
			if err != nil {
				break
			}
			if int64(len(m.Data)) > 4096 {
				t.Fatalf("message of %d bytes over the limit", len(m.Data))
			}
		}
		// A message as the store keeps it: CRLF lines, no mbox state
		// fields in its header (the reader removes those).
		msg := bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r"), nil), []byte("\n"), []byte("\r\n"))
		if !bytes.HasSuffix(msg, []byte("\r\n")) {
			msg = append(msg, '\r', '\n')
		}
		if hasMboxStateField(msg) {
			return
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		writeMboxMessage(w, time.Unix(1e9, 0), msg)
		w.Flush()
		got := newMboxReader(&buf, 1<<20)
		m, err := got.Next()
		if err != nil || !bytes.Equal(m.Data, msg) {
			t.Fatalf("round trip of %q: %+v, %v", msg, m, err)
		}
		if _, err := got.Next(); err != io.EOF {
			t.Fatalf("one message became more: %v", err)
		}
	})
}

// hasMboxStateField reports whether a message's header holds a field the
// mbox reader removes.
func hasMboxStateField(msg []byte) bool {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return false
	}
	var h mboxState
	for _, line := range bytes.SplitAfter(head, []byte("\r\n")) {
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && h.field(line) {
			return true
		}
	}
	return false
}
