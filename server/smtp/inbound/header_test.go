package inbound

import (
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	msg := "Return-Path: <a@b.test>\r\nAuthentication-Results: (comment) MX.Example.ORG.; spf=pass\r\n" +
		"Subject: folded\r\n continues\r\nX-Spam-Status: Yes\r\n\r\nBody: not a field\r\n"
	fs, err := readHeader(strings.NewReader(msg))
	if err != nil || len(fs) != 4 {
		t.Fatalf("readHeader: %d fields, %v", len(fs), err)
	}
	if fs[2].name != "Subject" || fs[2].value != "folded continues" || msg[fs[2].start:fs[2].end] != "Subject: folded\r\n continues\r\n" {
		t.Errorf("folded field: %+v", fs[2])
	}
	if id := authservID(fs[1].value); id != "mx.example.org" {
		t.Errorf("authserv-id %q", id)
	}
	// No empty line: the first non-field line ends the header.
	fs, _ = readHeader(strings.NewReader("A: 1\r\nnot a field\r\nB: 2\r\n"))
	if len(fs) != 1 {
		t.Errorf("header without a blank line: %+v", fs)
	}
	// Bounded.
	big := "X-Big: " + strings.Repeat("x", maxHeaderBytes) + "\r\n\r\n"
	if _, err := readHeader(strings.NewReader(big)); err != errHeaderTooLarge {
		t.Errorf("huge header: %v", err)
	}
}

// FuzzReadHeader: any header a sender writes gives fields whose ranges
// lie within the message, in order, without panicking.
func FuzzReadHeader(f *testing.F) {
	f.Add("A: b\r\n\r\nbody")
	f.Add("Authentication-Results: mx.example.org; dkim=pass\r\n continued\r\n\r\n")
	f.Add(" leading continuation\r\nA: b\r\n")
	f.Add("A:\r\nB :x\r\n\tc\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		fs, _ := readHeader(strings.NewReader(msg))
		last := int64(0)
		for _, fl := range fs {
			if fl.start < last || fl.end < fl.start || fl.end > int64(len(msg)) {
				t.Fatalf("field %+v out of order or range (len %d)", fl, len(msg))
			}
			last = fl.end
			_ = authservID(fl.value)
		}
	})
}
