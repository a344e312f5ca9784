package imap

import (
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

var searchCorpus = [][]byte{
	// 1: plain text.
	testMessage("apple pie", "The quick brown Zebra jumps."),
	// 2: multipart/alternative, the word only inside a base64 text part.
	[]byte("From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nSubject: mixed\r\n" +
		"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("A hidden Quokka lives here.")) + "\r\n" +
		"--b1\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b1--\r\n"),
	// 3: quoted-printable Latin-1.
	[]byte("From: Dave <dave@example.net>\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n" +
		"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Un caf=E9 cr=E8me, s'il vous pla=EEt.\r\n"),
	// 4: from Carol, long body.
	[]byte("From: Carol <carol@example.com>\r\nSubject: report\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n" +
		string(make([]byte, 0)) + longBody(20000) + "\r\n"),
}

func longBody(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
		if i%70 == 69 {
			b[i] = '\n'
		}
	}
	return string(b) + "\nNEEDLE at the end"
}

func TestSearch(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i, m := range searchCorpus {
		var flags []string
		if i == 1 {
			flags = []string{`\Flagged`, `\Seen`}
		}
		env.deliver(alice, "", m, flags...)
	}
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"all", imap.SearchCriteria{}, []uint32{1, 2, 3, 4}},
		{"text in plain body", imap.SearchCriteria{Text: []string{"zebra"}}, []uint32{1}},
		{"body in base64 part", imap.SearchCriteria{Body: []string{"QUOKKA"}}, []uint32{2}},
		{"text in header", imap.SearchCriteria{Text: []string{"carol"}}, []uint32{4}},
		{"body not header", imap.SearchCriteria{Body: []string{"carol"}}, nil},
		{"body latin1 qp", imap.SearchCriteria{Body: []string{"Café crème"}}, []uint32{3}},
		{"body at end of long text", imap.SearchCriteria{Body: []string{"needle AT the end"}}, []uint32{4}},
		{"subject encoded word", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "CAFÉ"}}}, []uint32{3}},
		{"from", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "bob@"}}}, []uint32{2}},
		{"header exists", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Content-Transfer-Encoding"}}}, []uint32{3}},
		{"flagged", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{2}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 3, 4}},
		{"larger", imap.SearchCriteria{Larger: 10000}, []uint32{4}},
		{"smaller", imap.SearchCriteria{Smaller: 1000}, []uint32{1, 2, 3}},
		{"sentsince", imap.SearchCriteria{SentSince: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}, []uint32{3, 4}},
		{"since today", imap.SearchCriteria{Since: today}, []uint32{1, 2, 3, 4}},
		{"before today", imap.SearchCriteria{Before: today}, nil},
		{"seq range", imap.SearchCriteria{SeqNum: []imap.SeqSet{{imap.SeqRange{Start: 2, Stop: 0}}}}, []uint32{2, 3, 4}},
		{"uid", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(1, 3)}}, []uint32{1, 3}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Text: []string{"zebra"}}}}, []uint32{2, 3, 4}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"quokka"}}, {Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "dave"}}}}}}, []uint32{2, 3}},
		{"and", imap.SearchCriteria{Text: []string{"the"}, Flag: []imap.Flag{imap.FlagFlagged}}, nil},
		// \Recent: new mail is recent in the first session that sees it.
		{"recent", imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}}, []uint32{1, 2, 3, 4}},
	}
	for _, tc := range tests {
		res, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := res.AllSeqNums(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	// ESEARCH return options and SEARCHRES.
	res, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Min != 1 || res.Max != 4 || res.Count != 3 {
		t.Errorf("ESEARCH = %+v", res)
	}

	// SEARCHRES over the wire (imapclient filters FETCH $ results, so a raw
	// connection checks it).
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	out := r.ok("UID SEARCH RETURN (SAVE) BODY quokka")
	out += r.ok("UID FETCH $ (FLAGS)")
	if !contains(out, "* 2 FETCH (UID 2 FLAGS (") {
		t.Errorf("UID FETCH $:\n%s", out)
	}
	out = r.ok("SEARCH RETURN (COUNT) UID $ FLAGGED")
	if !contains(out, "COUNT 1") {
		t.Errorf("SEARCH UID $:\n%s", out)
	}
	out = r.ok("SEARCH CHARSET UTF-8 TEXT zebra")
	if !contains(out, "* SEARCH 1\r\n") {
		t.Errorf("SEARCH CHARSET:\n%s", out)
	}
}
