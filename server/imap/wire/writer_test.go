package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"
)

// testConn returns a Conn that writes into buf, for writer tests.
func testConn(buf *bytes.Buffer, enabled ...imap.Cap) *Conn {
	lim := Limits{}.withDefaults()
	c := &Conn{lim: &lim, enabled: imap.CapSet{}, caps: imap.CapSet{}}
	c.enc.w = bufio.NewWriter(buf)
	c.uw.c = c
	c.enable(enabled...)
	return c
}

func flushed(t *testing.T, c *Conn, buf *bytes.Buffer) string {
	t.Helper()
	if err := c.enc.w.Flush(); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	buf.Reset()
	return s
}

func TestEncoderStrings(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	e := &c.enc
	for _, tt := range []struct {
		f    func()
		want string
	}{
		{func() { e.string("plain") }, `"plain"`},
		{func() { e.string(`a "q" \ b`) }, `"a \"q\" \\ b"`},
		{func() { e.string("two\r\nlines") }, "{10}\r\ntwo\r\nlines"},
		{func() { e.string("caf\xc3\xa9") }, "{5}\r\ncaf\xc3\xa9"}, // 8-bit: literal for IMAP4rev1
		{func() { e.string("a\x00b") }, "{2}\r\nab"},               // NUL cannot be sent
		{func() { e.nstring("") }, "NIL"},
		{func() { e.astring("INBOX") }, "INBOX"},
		{func() { e.astring("nil") }, `"nil"`},
		{func() { e.astring("a b") }, `"a b"`},
		{func() { e.astring("") }, `""`},
		{func() { e.mailbox("Entwürfe") }, `"Entw&APw-rfe"`},
		{func() { e.mailbox("Tom & Jerry") }, `"Tom &- Jerry"`},
		{func() { e.flags([]imap.Flag{imap.FlagSeen, "$Junk", "bad flag", "", `\*`}) }, `(\Seen $Junk \*)`},
		{func() { e.numList([]uint32{1, 2, 3, 5, 7, 8, 4}) }, "1:3,5,7:8,4"},
		{func() { e.dateTime(time.Date(2026, 2, 3, 4, 5, 6, 0, time.FixedZone("", -3600))) }, `"03-Feb-2026 04:05:06 -0100"`},
	} {
		tt.f()
		if got := flushed(t, c, &buf); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	// UTF-8 clients get UTF-8 quoted strings and names.
	c = testConn(&buf, imap.CapUTF8Accept)
	c.enc.string("café")
	c.enc.sp()
	c.enc.mailbox("Tom & Jerry")
	if got := flushed(t, c, &buf); got != `"café" "Tom & Jerry"` {
		t.Errorf("utf8: %q", got)
	}
}

func TestWriteEnvelope(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	env := &Envelope{
		Date:    "Thu, 15 Feb 2007 01:02:03 +0200",
		Subject: "=?utf-8?q?caf=C3=A9?=",
		From:    []Address{{Name: "From Real", Mailbox: "fromuser", Host: "fromdomain.org"}},
		To: []Address{
			{Mailbox: "group"}, {Mailbox: "g1", Host: "d1.org"}, {},
			{ADL: "@route", Mailbox: "user", Host: "domain"},
		},
		InReplyTo: "<reply@to.id>",
		MessageID: "<msg@id>",
	}
	f := c.uw.Fetch(4)
	f.Envelope(env)
	f.Close()
	want := `* 4 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" "=?utf-8?q?caf=C3=A9?=" (("From Real" NIL "fromuser" "fromdomain.org")) NIL NIL ` +
		`((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL NIL NIL)(NIL "@route" "user" "domain")) NIL NIL "<reply@to.id>" "<msg@id>"))` + "\r\n"
	if got := flushed(t, c, &buf); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestWriteBodyStructure(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	bs := &BodyStructure{
		Type: "multipart", Subtype: "mixed", Params: []Param{{Name: "boundary", Value: "xyz"}},
		Parts: []*BodyStructure{
			{Type: "text", Subtype: "plain", Params: []Param{{Name: "charset", Value: "utf-8"}}, Encoding: "quoted-printable", Size: 12, Lines: 1},
			{Type: "message", Subtype: "rfc822", Size: 40, Lines: 3,
				Envelope: &Envelope{Subject: "inner"},
				Message:  &BodyStructure{Type: "text", Subtype: "html", Size: 10, Lines: 1}},
			{Type: "application", Subtype: "pdf", Encoding: "base64", Size: 100, MD5: "abc",
				Disposition: "attachment", DispositionParams: []Param{{Name: "filename", Value: "a.pdf"}}, Language: []string{"en", "de"}, Location: "x"},
		},
		Disposition: "inline",
	}
	f := c.uw.Fetch(1)
	f.BodyStructure(bs, false)
	f.BodyStructure(bs, true)
	f.Close()
	got := flushed(t, c, &buf)
	body := `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 12 1)` +
		`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 40 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "HTML" NIL NIL NIL "7BIT" 10 1) 3)` +
		`("APPLICATION" "PDF" NIL NIL NIL "BASE64" 100) "MIXED")`
	ext := `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 12 1 NIL NIL NIL NIL)` +
		`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 40 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "HTML" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)` +
		`("APPLICATION" "PDF" NIL NIL NIL "BASE64" 100 "abc" ("ATTACHMENT" ("FILENAME" "a.pdf")) ("en" "de") "x") "MIXED" ("BOUNDARY" "xyz") ("INLINE" NIL) NIL NIL)`
	want := "* 1 FETCH (BODY " + body + " BODYSTRUCTURE " + ext + ")\r\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestWriteFetchItems(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	f := c.uw.Fetch(7)
	f.UID(42)
	f.Flags([]imap.Flag{imap.FlagSeen})
	f.ModSeq(99)
	f.InternalDate(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	f.SaveDate(time.Time{})
	f.RFC822Size(1234)
	f.EmailID("M6d99ac3275bb4e")
	f.ThreadID("")
	f.Preview("Hello \"you\"", true)
	f.BinarySize([]int{1, 2}, 77)
	secs := []*BodySection{
		{},
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "X-Weird!"}, HeaderFieldsNot: true},
		{Part: []int{2, 1}, Specifier: imap.PartSpecifierMIME, Partial: &imap.SectionPartial{Offset: 10, Size: 5}},
		{Binary: true, Part: []int{3}},
		{RFC822: "RFC822.TEXT", Specifier: imap.PartSpecifierText},
	}
	for _, s := range secs {
		if err := f.Section(s, 3, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
	}
	f.SectionNil(&BodySection{Part: []int{9}})
	f.Close()
	want := `* 7 FETCH (UID 42 FLAGS (\Seen) MODSEQ (99) INTERNALDATE "02-Jan-2026 03:04:05 +0000" SAVEDATE NIL RFC822.SIZE 1234 ` +
		`EMAILID (M6d99ac3275bb4e) THREADID NIL PREVIEW "Hello \"you\"" BINARY.SIZE[1.2] 77 ` +
		"BODY[] {3}\r\nabc BODY[HEADER.FIELDS.NOT (From X-Weird!)] {3}\r\nabc BODY[2.1.MIME]<10> {3}\r\nabc " +
		"BINARY[3] ~{3}\r\nabc RFC822.TEXT {3}\r\nabc BODY[9] NIL)\r\n"
	if got := flushed(t, c, &buf); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestWriteShortBody checks that a body reader giving fewer bytes than
// announced breaks the response (the connection is then closed) instead
// of sending a literal of the wrong length.
func TestWriteShortBody(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	f := c.uw.Fetch(1)
	err := f.Section(&BodySection{}, 10, iotest.TimeoutReader(strings.NewReader("abc")))
	if err == nil {
		t.Fatal("short body accepted")
	}
	if c.uw.Err() == nil {
		t.Error("error not sticky")
	}
}

func TestWriteUpdates(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	w := &c.uw
	w.Exists(3)
	w.Recent(1)
	w.Expunge(2, 7)
	w.Flags([]imap.Flag{imap.FlagSeen, "$Junk"})
	w.CopyUID(&imap.CopyData{UIDValidity: 9, SourceUIDs: imap.UIDSetNum(1, 2, 3), DestUIDs: imap.UIDSetNum(10, 11, 12)})
	w.Vanished(imap.UIDSetNum(4, 5), true)
	w.Status(&StatusData{Mailbox: "INBOX", Messages: 3, UIDNext: 8}, StatusItems{Messages: true, UIDNext: true})
	w.List(&ListData{Mailbox: "a/b", Delim: '/', Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}, OldName: "old", ChildInfo: true})
	w.SearchUpdate(&SearchUpdate{Tag: "B1", UID: true, AddTo: []ContextChange{{Position: 0, Nums: []uint32{5, 6, 7}}}, RemoveFrom: []ContextChange{{Position: 2, Nums: []uint32{3}}}})
	w.end()
	want := "* 3 EXISTS\r\n* 1 RECENT\r\n* 2 EXPUNGE\r\n* FLAGS (\\Seen $Junk)\r\n* OK [COPYUID 9 1:3 10:12] Moved\r\n" +
		"* VANISHED (EARLIER) 4:5\r\n* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 8)\r\n" +
		"* LIST (\\HasNoChildren) \"/\" \"a/b\" (\"CHILDINFO\" (\"SUBSCRIBED\") \"OLDNAME\" (\"old\"))\r\n" +
		"* ESEARCH (TAG \"B1\") UID ADDTO (0 5:7) REMOVEFROM (2 3)\r\n"
	if got := flushed(t, c, &buf); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// After ENABLE QRESYNC, EXPUNGEs become one VANISHED; IMAP4rev2 has
	// no RECENT.
	c = testConn(&buf, imap.CapQResync, imap.CapIMAP4rev2)
	w = &c.uw
	w.Expunge(3, 30)
	w.Expunge(2, 20)
	w.Recent(5)
	w.Exists(1)
	w.Expunge(1, 10)
	w.end()
	if got := flushed(t, c, &buf); got != "* VANISHED 20,30\r\n* 1 EXISTS\r\n* VANISHED 10\r\n" {
		t.Errorf("qresync: %q", got)
	}
}

func TestWriteSearchResults(t *testing.T) {
	var buf bytes.Buffer
	for _, tt := range []struct {
		rev2   bool
		ret    SearchReturn
		d      SearchData
		sorted bool
		want   string
	}{
		{false, SearchReturn{}, SearchData{Nums: []uint32{1, 4, 5}}, false, "* SEARCH 1 4 5\r\n"},
		{false, SearchReturn{}, SearchData{}, false, "* SEARCH\r\n"},
		{false, SearchReturn{}, SearchData{Nums: []uint32{2}, ModSeq: 9}, false, "* SEARCH 2 (MODSEQ 9)\r\n"},
		{true, SearchReturn{}, SearchData{Nums: []uint32{1, 2, 3, 9}}, false, `* ESEARCH (TAG "t") UID ALL 1:3,9` + "\r\n"},
		{true, SearchReturn{}, SearchData{}, false, `* ESEARCH (TAG "t") UID` + "\r\n"},
		{false, SearchReturn{ESearch: true, Min: true, Max: true, Count: true}, SearchData{Nums: []uint32{4, 8, 6}}, false, `* ESEARCH (TAG "t") UID MIN 4 MAX 8 COUNT 3` + "\r\n"},
		{false, SearchReturn{ESearch: true, Save: true}, SearchData{Nums: []uint32{4}}, false, ""},
		{false, SearchReturn{ESearch: true, Count: true}, SearchData{}, false, `* ESEARCH (TAG "t") UID COUNT 0` + "\r\n"},
		{false, SearchReturn{ESearch: true, All: true}, SearchData{Nums: []uint32{9, 3, 4, 1}}, true, `* ESEARCH (TAG "t") UID ALL 9,3:4,1` + "\r\n"},
		{false, SearchReturn{ESearch: true, Partial: &Partial{First: -1, Last: -2}}, SearchData{Nums: []uint32{1, 2, 3}}, false, `* ESEARCH (TAG "t") UID PARTIAL (-1:-2 2:3)` + "\r\n"},
		{false, SearchReturn{ESearch: true, Partial: &Partial{First: 5, Last: 9}}, SearchData{Nums: []uint32{1, 2, 3}}, false, `* ESEARCH (TAG "t") UID PARTIAL (5:9 NIL)` + "\r\n"},
	} {
		var c *Conn
		if tt.rev2 {
			c = testConn(&buf, imap.CapIMAP4rev2)
		} else {
			c = testConn(&buf)
		}
		name := "SEARCH"
		c.writeSearch(name, "t", true, &tt.ret, &tt.d, tt.sorted)
		if got := flushed(t, c, &buf); got != tt.want {
			t.Errorf("%+v %+v: got %q, want %q", tt.ret, tt.d, got, tt.want)
		}
	}
}

func TestWriteThread(t *testing.T) {
	var buf bytes.Buffer
	c := testConn(&buf)
	nodes := []ThreadNode{
		{Num: 2},
		{Num: 3, Children: []ThreadNode{{Num: 6, Children: []ThreadNode{
			{Num: 4, Children: []ThreadNode{{Num: 23}}},
			{Num: 44, Children: []ThreadNode{{Num: 7, Children: []ThreadNode{{Num: 96}}}}},
		}}}},
		{Num: 0, Children: []ThreadNode{{Num: 8}, {Num: 9}}},
	}
	for i := range nodes {
		writeThread(&c.enc, &nodes[i], true)
	}
	// RFC 5256 §4's example, and a missing parent.
	if got, want := flushed(t, c, &buf), "(2)(3 6 (4 23)(44 7 96))((8)(9))"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		"":              "Done",
		"ok":            "ok",
		"a\r\nb":        "a  b",
		"[x] y":         "(x] y",
		"bad\xffutf8":   "bad?utf8",
		"   ":           "Done",
		"nul\x00inside": "nul inside",
	} {
		if got := safeText(in); got != want {
			t.Errorf("safeText(%q) = %q, want %q", in, got, want)
		}
	}
}
