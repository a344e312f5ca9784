package wire

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// testParser returns a parser over input in state st, with every
// capability advertised; conts counts continuation requests.
func testParser(input string, st connState) (*parser, *int) {
	lim := Limits{}.withDefaults()
	sl := &lim.Auth
	if st == stateNotAuth {
		sl = &lim.PreAuth
	}
	conts := new(int)
	r := &reader{br: bufio.NewReaderSize(strings.NewReader(input), 4096), cont: func() error { *conts++; return nil }}
	r.begin(sl)
	caps := imap.CapSet{}
	for _, c := range baseCaps {
		caps[c] = struct{}{}
	}
	for _, c := range allCaps {
		caps[c] = struct{}{}
	}
	caps["CONTEXT=SEARCH"] = struct{}{}
	caps["CONTEXT=SORT"] = struct{}{}
	caps[imap.CapSortDisplay] = struct{}{}
	caps["THREAD=REFERENCES"] = struct{}{}
	return &parser{reader: r, caps: caps}, conts
}

func parseOne(t *testing.T, input string, st connState) (*Command, error) {
	t.Helper()
	p, _ := testParser(input, st)
	return p.readCommand(st)
}

func respOf(err error) *imap.Error {
	var ce *cmdError
	if errors.As(err, &ce) {
		return ce.resp
	}
	return nil
}

// seqs and uids build sets from (start, stop) pairs.
func seqs(pairs ...uint32) imap.SeqSet {
	var s imap.SeqSet
	for i := 0; i+1 < len(pairs); i += 2 {
		s = append(s, imap.SeqRange{Start: pairs[i], Stop: pairs[i+1]})
	}
	return s
}

func uids(pairs ...uint32) imap.UIDSet {
	var s imap.UIDSet
	for i := 0; i+1 < len(pairs); i += 2 {
		s = append(s, imap.UIDRange{Start: imap.UID(pairs[i]), Stop: imap.UID(pairs[i+1])})
	}
	return s
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestParseCommands(t *testing.T) {
	sel, auth, pre := stateSelected, stateAuth, stateNotAuth
	tests := []struct {
		in   string
		st   connState
		want *Command
	}{
		{"a CAPABILITY\r\n", pre, &Command{Tag: "a", Name: "CAPABILITY"}},
		{"a noop\r\n", sel, &Command{Tag: "a", Name: "NOOP"}},
		{"a LOGOUT\n", pre, &Command{Tag: "a", Name: "LOGOUT"}},
		{"a LOGIN user \"p\\\"w\"\r\n", pre, &Command{Tag: "a", Name: "LOGIN", Args: &Login{Username: "user", Password: []byte(`p"w`)}}},
		{"a LOGIN {4+}\r\nuser {3+}\r\npwd\r\n", pre, &Command{Tag: "a", Name: "LOGIN", Args: &Login{Username: "user", Password: []byte("pwd")}}},
		{"a AUTHENTICATE plain\r\n", pre, &Command{Tag: "a", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "PLAIN"}}},
		{"a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n", pre, &Command{Tag: "a", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00pass")}}},
		{"a AUTHENTICATE PLAIN =\r\n", pre, &Command{Tag: "a", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "PLAIN", InitialResponse: []byte{}}}},
		{"a ID NIL\r\n", pre, &Command{Tag: "a", Name: "ID", Args: &ID{}}},
		{"a ID (\"name\" \"mutt\" \"version\" NIL)\r\n", pre, &Command{Tag: "a", Name: "ID", Args: &ID{Params: []IDParam{{Key: "name", Value: "mutt"}, {Key: "version", Nil: true}}}}},
		{"a ENABLE CONDSTORE utf8=accept\r\n", auth, &Command{Tag: "a", Name: "ENABLE", Args: &Enable{Caps: []imap.Cap{"CONDSTORE", "UTF8=ACCEPT"}}}},
		{"a SELECT inbox\r\n", auth, &Command{Tag: "a", Name: "SELECT", Args: &Select{Mailbox: "INBOX"}}},
		{"a EXAMINE \"Entw&APw-rfe\" (CONDSTORE)\r\n", sel, &Command{Tag: "a", Name: "EXAMINE", Args: &Select{Mailbox: "Entwürfe", ReadOnly: true, CondStore: true}}},
		{"a CREATE Archive/2026 (USE (\\archive))\r\n", auth, &Command{Tag: "a", Name: "CREATE", Args: &Create{Mailbox: "Archive/2026", SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}}},
		{"a DELETE \"Tom &- Jerry\"\r\n", auth, &Command{Tag: "a", Name: "DELETE", Args: &MailboxArg{Mailbox: "Tom & Jerry"}}},
		{"a RENAME a b\r\n", auth, &Command{Tag: "a", Name: "RENAME", Args: &Rename{Mailbox: "a", NewName: "b"}}},
		{"a SUBSCRIBE x\r\n", auth, &Command{Tag: "a", Name: "SUBSCRIBE", Args: &MailboxArg{Mailbox: "x"}}},
		{"a LIST \"\" *\r\n", auth, &Command{Tag: "a", Name: "LIST", Args: &List{Patterns: []string{"*"}}}},
		{"a LIST \"\" \"\"\r\n", auth, &Command{Tag: "a", Name: "LIST", Args: &List{Patterns: []string{""}}}},
		{"a LSUB \"\" %\r\n", auth, &Command{Tag: "a", Name: "LSUB", Args: &List{LSUB: true, Patterns: []string{"%"}}}},
		{"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX* Sent) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n", auth,
			&Command{Tag: "a", Name: "LIST", Args: &List{Patterns: []string{"INBOX*", "Sent"}, Extended: true, Options: ListOptions{
				SelectSubscribed: true, SelectRecursiveMatch: true, ReturnChildren: true, ReturnStatus: &StatusItems{Messages: true, UIDNext: true}}}}},
		{"a LIST \"\" \"&Jjo\"\r\n", auth, &Command{Tag: "a", Name: "LIST", Args: &List{Patterns: []string{}}}},
		{"a NAMESPACE\r\n", auth, &Command{Tag: "a", Name: "NAMESPACE"}},
		{"a STATUS INBOX (MESSAGES UNSEEN SIZE HIGHESTMODSEQ MAILBOXID APPENDLIMIT)\r\n", auth, &Command{Tag: "a", Name: "STATUS", Args: &Status{Mailbox: "INBOX",
			Items: StatusItems{Messages: true, Unseen: true, Size: true, HighestModSeq: true, MailboxID: true, AppendLimit: true}}}},
		{"a APPEND Drafts (\\Seen) {3}\r\n", auth, &Command{Tag: "a", Name: "APPEND", Args: &Append{Mailbox: "Drafts"}}},
		{"a IDLE\r\n", sel, &Command{Tag: "a", Name: "IDLE"}},
		{"a UNAUTHENTICATE\r\n", sel, &Command{Tag: "a", Name: "UNAUTHENTICATE"}},
		{"a GETQUOTAROOT INBOX\r\n", auth, &Command{Tag: "a", Name: "GETQUOTAROOT", Args: &MailboxArg{Mailbox: "INBOX"}}},
		{"a GETQUOTA \"\"\r\n", auth, &Command{Tag: "a", Name: "GETQUOTA", Args: &QuotaRoot{}}},
		{"a SETQUOTA \"\" (STORAGE 512)\r\n", auth, &Command{Tag: "a", Name: "SETQUOTA", Args: &SetQuota{Limits: []QuotaLimit{{Resource: "STORAGE", Limit: 512}}}}},
		{"a COMPRESS deflate\r\n", auth, &Command{Tag: "a", Name: "COMPRESS", Args: &Compress{Mechanism: "DEFLATE"}}},
		{"a NOTIFY NONE\r\n", auth, &Command{Tag: "a", Name: "NOTIFY", Args: &Notify{None: true}}},
		{"a NOTIFY SET STATUS (selected (MessageNew (uid flags) MessageExpunge)) (subtree (INBOX Lists) (MailboxName)) (personal NONE)\r\n", auth,
			&Command{Tag: "a", Name: "NOTIFY", Args: &Notify{Status: true, Groups: []NotifyGroup{
				{Filter: NotifySelected, Events: []NotifyEvent{{Name: "MessageNew", Fetch: &FetchItems{UID: true, Flags: true}}, {Name: "MessageExpunge"}}},
				{Filter: NotifySubtree, Mailboxes: []string{"INBOX", "Lists"}, Events: []NotifyEvent{{Name: "MailboxName"}}},
				{Filter: NotifyPersonal},
			}}}},
		{"a NOTIFY SET (STATUS) (inboxes (FlagChange))\r\n", auth, &Command{Tag: "a", Name: "NOTIFY", Args: &Notify{Status: true, Groups: []NotifyGroup{
			{Filter: NotifyInboxes, Events: []NotifyEvent{{Name: "FlagChange"}}}}}}},
		{"a CHECK\r\n", sel, &Command{Tag: "a", Name: "CHECK"}},
		{"a CLOSE\r\n", sel, &Command{Tag: "a", Name: "CLOSE"}},
		{"a UNSELECT\r\n", sel, &Command{Tag: "a", Name: "UNSELECT"}},
		{"a EXPUNGE\r\n", sel, &Command{Tag: "a", Name: "EXPUNGE"}},
		{"a UID EXPUNGE 1:3,7\r\n", sel, &Command{Tag: "a", Name: "EXPUNGE", UID: true, Args: &Expunge{UIDs: uids(1, 3, 7, 7)}}},
		{"a COPY 2:* Trash\r\n", sel, &Command{Tag: "a", Name: "COPY", Args: &Copy{Set: seqs(2, 0), Mailbox: "Trash"}}},
		{"a UID MOVE 5:3 Trash\r\n", sel, &Command{Tag: "a", Name: "MOVE", UID: true, Args: &Copy{UID: true, Set: uids(3, 5), Mailbox: "Trash"}}},
		{"a MOVE $ Trash\r\n", sel, &Command{Tag: "a", Name: "MOVE", Args: &Copy{Set: imap.SearchRes(), Mailbox: "Trash"}}},
		{"a STORE 1 +FLAGS.SILENT (\\seen $Junk)\r\n", sel, &Command{Tag: "a", Name: "STORE", Args: &Store{Set: seqs(1, 1),
			Flags: imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, "$Junk"}}}}},
		{"a UID STORE 1 (UNCHANGEDSINCE 0) -FLAGS \\Deleted \\Draft\r\n", sel, &Command{Tag: "a", Name: "STORE", UID: true, Args: &Store{UID: true, Set: uids(1, 1),
			HasUnchangedSince: true, Flags: imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagDeleted, imap.FlagDraft}}}}},
		{"a STORE 1 FLAGS ()\r\n", sel, &Command{Tag: "a", Name: "STORE", Args: &Store{Set: seqs(1, 1), Flags: imap.StoreFlags{Flags: []imap.Flag{}}}}},
		{"a FETCH 1 ALL\r\n", sel, &Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: seqs(1, 1), Items: FetchItems{Flags: true, InternalDate: true, RFC822Size: true, Envelope: true}}}},
		{"a FETCH 1 FULL\r\n", sel, &Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: seqs(1, 1), Items: FetchItems{Flags: true, InternalDate: true, RFC822Size: true, Envelope: true, Body: true}}}},
		{"a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BINARY[1.2]<5.6> BINARY.SIZE[2] RFC822.HEADER BODY[1.MIME] BODY BODYSTRUCTURE)\r\n", sel,
			&Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: seqs(1, 0), Items: FetchItems{Flags: true, Body: true, BodyStructure: true,
				BinarySize: [][]int{{2}},
				Sections: []*BodySection{
					{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "To"}, Partial: &imap.SectionPartial{Offset: 0, Size: 100}},
					{Binary: true, Part: []int{1, 2}, Partial: &imap.SectionPartial{Offset: 5, Size: 6}},
					{RFC822: "RFC822.HEADER", Peek: true, Specifier: imap.PartSpecifierHeader},
					{Part: []int{1}, Specifier: imap.PartSpecifierMIME},
				}}}}},
		{"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12)\r\n", sel, &Command{Tag: "a", Name: "FETCH", UID: true, Args: &Fetch{UID: true, Set: uids(1, 0),
			Items: FetchItems{Flags: true, UID: true, ModSeq: true}, ChangedSince: 12}}},
		{"a FETCH 2 (EMAILID THREADID SAVEDATE PREVIEW (LAZY) MODSEQ)\r\n", sel, &Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: seqs(2, 2),
			Items: FetchItems{EmailID: true, ThreadID: true, SaveDate: true, Preview: true, PreviewLazy: true, ModSeq: true}}}},
		{"a FETCH 2 PREVIEW (CHANGEDSINCE 4)\r\n", sel, &Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: seqs(2, 2),
			Items: FetchItems{Preview: true, ModSeq: true}, ChangedSince: 4}}},
		{"a SEARCH UNSEEN FROM \"x@y\" NOT (OR 1:3 UID 5) LARGER 10\r\n", sel, &Command{Tag: "a", Name: "SEARCH", Args: &Search{Tag: "a", Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{
			{Op: SearchNotFlag, Value: `\Seen`}, {Op: SearchFrom, Value: "x@y"},
			{Op: SearchNot, Keys: []SearchKey{{Op: SearchAnd, Keys: []SearchKey{{Op: SearchOr, Keys: []SearchKey{
				{Op: SearchSeqSet, Set: seqs(1, 3)}, {Op: SearchUID, Set: uids(5, 5)}}}}}}},
			{Op: SearchLarger, Num: 10}}}}}},
		{"a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET utf-8 SINCE 1-Feb-2026 HEADER X-Foo \"\" MODSEQ 7\r\n", sel, &Command{Tag: "a", Name: "SEARCH", UID: true, Args: &Search{
			UID: true, Tag: "a", Charset: "UTF-8", Return: SearchReturn{Min: true, Count: true, Save: true, ESearch: true},
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSince, Date: date(2026, 2, 1)}, {Op: SearchHeader, Field: "X-Foo"}, {Op: SearchModSeq, Num: 7}}}}}},
		{"a SEARCH RETURN () NEW OLDER 60 EMAILID M123 SAVEDBEFORE \"3-Mar-2026\" $\r\n", sel, &Command{Tag: "a", Name: "SEARCH", Args: &Search{Tag: "a",
			Return: SearchReturn{All: true, ESearch: true},
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{
				{Op: SearchAnd, Keys: []SearchKey{{Op: SearchFlag, Value: `\Recent`}, {Op: SearchNotFlag, Value: `\Seen`}}},
				{Op: SearchOlder, Num: 60}, {Op: SearchEmailID, Value: "M123"}, {Op: SearchSavedBefore, Date: date(2026, 3, 3)},
				{Op: SearchSeqSet, Set: imap.SearchRes()}}}}}},
		{"a SEARCH CHARSET ISO-8859-1 SUBJECT \"caf\xe9\"\r\n", sel, &Command{Tag: "a", Name: "SEARCH", Args: &Search{Tag: "a", Charset: "ISO-8859-1",
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSubject, Value: "café"}}}}}},
		{"a SEARCH RETURN (PARTIAL -1:-10) ALL\r\n", sel, &Command{Tag: "a", Name: "SEARCH", Args: &Search{Tag: "a",
			Return: SearchReturn{ESearch: true, Partial: &Partial{First: -1, Last: -10}}, Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchAll}}}}}},
		{"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n", sel, &Command{Tag: "a", Name: "SEARCH", Args: &Search{Tag: "a",
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchModSeq, ModSeqEntry: `/flags/\draft`, ModSeqType: "all", Num: 620162338}}}}}},
		{"a UID SORT RETURN (ALL) (REVERSE DATE subject) UTF-8 ALL\r\n", sel, &Command{Tag: "a", Name: "SORT", UID: true, Args: &Sort{UID: true, Tag: "a",
			Return: SearchReturn{All: true, ESearch: true}, Criteria: []SortCriterion{{Key: SortDate, Reverse: true}, {Key: SortSubject}}, Charset: "UTF-8",
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchAll}}}}}},
		{"a THREAD REFERENCES US-ASCII SEEN\r\n", sel, &Command{Tag: "a", Name: "THREAD", Args: &Thread{Algorithm: imap.ThreadReferences, Charset: "US-ASCII",
			Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchFlag, Value: `\Seen`}}}}}},
		{"a CANCELUPDATE \"b\" \"c\"\r\n", sel, &Command{Tag: "a", Name: "CANCELUPDATE", Args: &CancelUpdate{Tags: []string{"b", "c"}}}},
	}
	for _, tt := range tests {
		got, err := parseOne(t, tt.in, tt.st)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\ngot  %#v\nwant %#v", tt.in, got, tt.want)
			if a, b := got.Args, tt.want.Args; a != nil && b != nil {
				t.Errorf("args:\ngot  %+v\nwant %+v", a, b)
			}
		}
	}
}

func TestParseQResyncSelect(t *testing.T) {
	p, _ := testParser("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3:5 41,43:45)))\r\n", stateAuth)
	p.qresync = true
	cmd, err := p.readCommand(stateAuth)
	if err != nil {
		t.Fatal(err)
	}
	want := &QResync{UIDValidity: 67890007, ModSeq: 20050715194045000,
		KnownUIDs:    uids(41, 41, 43, 211, 214, 541),
		SeqMatchSeqs: seqs(1, 1, 3, 5), SeqMatchUIDs: uids(41, 41, 43, 45)}
	if got := cmd.Args.(*Select).QResync; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Without ENABLE QRESYNC it is a client error.
	if _, err := parseOne(t, "a SELECT INBOX (QRESYNC (1 2))\r\n", stateAuth); respOf(err) == nil {
		t.Errorf("QRESYNC without ENABLE: %v", err)
	}
}

// TestParseErrors checks that bad input is refused with the right kind of
// response, never a panic or a NO [SERVERBUG].
func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		st   connState
		typ  imap.StatusResponseType
		code imap.ResponseCode
	}{
		{"a FETCH 4294967296 (UID)\r\n", stateSelected, "BAD", imap.ResponseCodeClientBug}, // issue 9 item 16
		{"a FETCH 0 (UID)\r\n", stateSelected, "BAD", ""},
		{"a FETCH 1 (FOO)\r\n", stateSelected, "BAD", ""},
		{"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", stateSelected, "BAD", ""},
		{"a FETCH 1 (UID) (VANISHED)\r\n", stateSelected, "BAD", ""},
		{"a UID FETCH 1 (UID) (CHANGEDSINCE 0)\r\n", stateSelected, "BAD", ""},
		{"a SEARCH " + strings.Repeat("(", 2000) + "ALL" + strings.Repeat(")", 2000) + "\r\n", stateSelected, "BAD", imap.ResponseCodeLimit},
		{"a SEARCH " + strings.Repeat("NOT ", 100) + "ALL\r\n", stateSelected, "BAD", imap.ResponseCodeLimit},
		{"a SEARCH CHARSET KLINGON ALL\r\n", stateSelected, "NO", "BADCHARSET (US-ASCII UTF-8)"},
		{"a SEARCH BEFORE 31-Feb-2026\r\n", stateSelected, "BAD", ""},
		{"a SEARCH FOO\r\n", stateSelected, "BAD", ""},
		{"a CREATE {4}\r\na\x00bc\r\n", stateAuth, "BAD", imap.ResponseCodeClientBug}, // NUL in a name
		{"a CREATE \"a\x00\"\r\n", stateAuth, "BAD", imap.ResponseCodeClientBug},
		{"a CREATE \"caf\xe9\"\r\n", stateAuth, "NO", imap.ResponseCodeCannot},     // raw 8-bit, not UTF-8, before ENABLE
		{"a CREATE \"&AGE-\"\r\n", stateAuth, "NO", imap.ResponseCodeCannot},       // encoded ASCII
		{"a CREATE \"Tom & Jerry\"\r\n", stateAuth, "NO", imap.ResponseCodeCannot}, // bare & in modified UTF-7
		{"a CREATE {3}\r\na\r\n\r\n", stateAuth, "NO", imap.ResponseCodeCannot},    // control character
		{"a SELECT\r\n", stateAuth, "BAD", ""},
		{"a SELECT INBOX extra\r\n", stateAuth, "BAD", ""},
		{"a STORE 1 FLAGS (\\Seen\r\n", stateSelected, "BAD", ""},
		{"a LIST (RECURSIVEMATCH) \"\" *\r\n", stateAuth, "BAD", ""},
		{"a ID (\"k\")\r\n", stateNotAuth, "BAD", ""},
		{"a ID ((((((\"k\" \"v\"))))))\r\n", stateNotAuth, "BAD", ""},
		{"a LOGIN \"unterminated\r\n", stateNotAuth, "BAD", ""},
		{"a LOGIN a \"b\\x\"\r\n", stateNotAuth, "BAD", ""},
		{"a FOO\r\n", stateSelected, "BAD", ""},
		{"a SELECT INBOX\r\n", stateNotAuth, "BAD", ""},
		{"a FETCH 1 UID\r\n", stateAuth, "BAD", ""},
		{"a LOGIN a b\r\n", stateAuth, "BAD", ""},
		{"a UID NOOP\r\n", stateSelected, "BAD", ""},
		{"+ NOOP\r\n", stateSelected, "BAD", ""},
		{"a ENABLE\r\n", stateAuth, "BAD", ""},
		{"a APPEND\r\n", stateAuth, "BAD", ""},
	}
	for _, tt := range tests {
		_, err := parseOne(t, tt.in, tt.st)
		resp := respOf(err)
		if resp == nil {
			t.Errorf("%q: got %v, want %s", tt.in, err, tt.typ)
			continue
		}
		if resp.Type != tt.typ || resp.Code != tt.code {
			t.Errorf("%q: got %s [%s] %s, want %s [%s]", tt.in, resp.Type, resp.Code, resp.Text, tt.typ, tt.code)
		}
	}
}

// TestParseUTF8Names checks names after ENABLE UTF8=ACCEPT / IMAP4rev2.
func TestParseUTF8Names(t *testing.T) {
	p, _ := testParser("a CREATE \"Tom & Jerry/Entwürfe\"\r\n", stateAuth)
	p.utf8 = true
	cmd, err := p.readCommand(stateAuth)
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Args.(*Create).Mailbox; got != "Tom & Jerry/Entwürfe" {
		t.Errorf("got %q", got)
	}
	p, _ = testParser("a CREATE \"\xff\"\r\n", stateAuth)
	p.utf8 = true
	if _, err := p.readCommand(stateAuth); respOf(err) == nil || respOf(err).Type != "NO" {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

// TestParseLimits checks the per-state bounds: lines, literals,
// arguments, and that a refused synchronising literal gets no "+".
func TestParseLimits(t *testing.T) {
	// Before authentication a literal larger than the command budget is
	// refused before "+".
	p, conts := testParser("a LOGIN {50000}\r\n", stateNotAuth)
	_, err := p.readCommand(stateNotAuth)
	if r := respOf(err); r == nil || r.Code != "TOOBIG" {
		t.Errorf("big pre-auth literal: %v", err)
	}
	if *conts != 0 || !p.ended {
		t.Errorf("continuations %d, ended %v; want 0, true", *conts, p.ended)
	}
	// A line longer than LineBytes.
	p, _ = testParser("a LOGIN "+strings.Repeat("x", 40000)+" y\r\nb NOOP\r\n", stateNotAuth)
	_, err = p.readCommand(stateNotAuth)
	if r := respOf(err); r == nil || r.Code != "TOOBIG" {
		t.Fatalf("long line: %v", err)
	}
	if err := p.skipCommand(); err != nil {
		t.Fatal(err)
	}
	p.begin(p.lim)
	if cmd, err := p.readCommand(stateNotAuth); err != nil || cmd.Name != "NOOP" {
		t.Errorf("after a long line: %v %v", cmd, err)
	}
	// Too many arguments.
	p, _ = testParser("a SEARCH"+strings.Repeat(" ALL", 1001)+"\r\n", stateSelected)
	if _, err := p.readCommand(stateSelected); respOf(err) == nil || respOf(err).Code != imap.ResponseCodeLimit {
		t.Errorf("too many keys: %v", err)
	}
	// Literal8 where a string is expected.
	p, _ = testParser("a LOGIN ~{3}\r\n", stateNotAuth)
	if _, err := p.readCommand(stateNotAuth); respOf(err) == nil {
		t.Errorf("literal8 login: %v", err)
	}
}

// TestSkipCommand checks that what follows a refused command is read as
// the next command, and nothing else: through non-synchronising literals,
// not through synchronising ones.
func TestSkipCommand(t *testing.T) {
	tests := []struct {
		in   string
		next string // the next command's name
	}{
		{"a FOO bar\r\nb NOOP\r\n", "NOOP"},
		{"a FOO {5+}\r\nb FOO\r\nb NOOP\r\n", "NOOP"},                // the literal is not a command
		{"a FOO {5+}\r\nxxxxx {3+}\r\nyyy\r\nb NOOP\r\n", "NOOP"},    // two literals
		{"a FOO {5}\r\nb NOOP\r\n", "NOOP"},                          // sync: the client sends nothing more
		{"a FETCH 1 (FOO {5+}\r\n)\r\nb\r\nb LOGOUT\r\n", "LOGOUT"},  // error mid-line, literal after
		{"a FETCH 1 (UID) extra \"{3+}\"\r\nb NOOP\r\n", "NOOP"},     // a quoted "{3+}" is not a literal
		{"a SEARCH TEXT {3+}\r\nabc TEXT {3}\r\nc NOOP\r\n", "NOOP"}, // refused by state
	}
	for _, tt := range tests {
		p, _ := testParser(tt.in, stateNotAuth)
		_, err := p.readCommand(stateNotAuth)
		if respOf(err) == nil {
			t.Errorf("%q: first command not refused: %v", tt.in, err)
			continue
		}
		if !p.ended {
			if err := p.skipCommand(); err != nil {
				t.Errorf("%q: skip: %v", tt.in, err)
				continue
			}
		}
		p.begin(p.lim)
		cmd, err := p.readCommand(stateNotAuth)
		if err != nil || cmd.Name != tt.next {
			t.Errorf("%q: next command %+v, %v; want %s", tt.in, cmd, err, tt.next)
		}
	}
}

// TestSkipBudget checks that a refused command larger than the discard
// budget ends with a byeError rather than being read without end.
func TestSkipBudget(t *testing.T) {
	in := "a SEARCH" + strings.Repeat(" TEXT {4096+}\r\n"+strings.Repeat("x", 4096), 20) + "\r\n"
	p, _ := testParser(in, stateNotAuth)
	_, err := p.readCommand(stateNotAuth)
	if respOf(err) == nil {
		t.Fatalf("not refused: %v", err)
	}
	err = p.skipCommand()
	var be *byeError
	if !errors.As(err, &be) || be.code != "TOOBIG" {
		t.Fatalf("skip: %v, want BYE [TOOBIG]", err)
	}
}

// appendSink collects the messages of an APPEND for parse tests.
type appendSink struct {
	msgs []AppendMessage
	data []string
}

func parseAppend(t *testing.T, in string) (*appendSink, error) {
	t.Helper()
	p, _ := testParser(in, stateAuth)
	cmd, err := p.readCommand(stateAuth)
	if err != nil {
		return nil, err
	}
	if cmd.Name != "APPEND" {
		t.Fatalf("not APPEND: %+v", cmd)
	}
	s := &appendSink{}
	ar := &appendReader{p: p, limit: 1000, maxMsgs: 10, appender: &memAppender{s: &memSession{b: newMemBackend()}}}
	for {
		m, err := ar.next()
		if err != nil {
			return s, err
		}
		if m == nil {
			return s, nil
		}
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return s, err
		}
		if err := ar.finish(m, false); err != nil {
			return s, err
		}
		m.Body = nil
		s.msgs = append(s.msgs, *m)
		s.data = append(s.data, string(b))
	}
}

func TestParseAppend(t *testing.T) {
	when := time.Date(2026, 3, 7, 8, 9, 10, 0, time.FixedZone("", -(5*3600+30*60)))
	tests := []struct {
		in   string
		msgs []AppendMessage
		data []string
	}{
		{"a APPEND INBOX {5}\r\nHello\r\n", []AppendMessage{{Size: 5}}, []string{"Hello"}},
		{"a APPEND INBOX (\\Seen foo) \" 7-Mar-2026 08:09:10 -0530\" {5+}\r\nHello\r\n",
			[]AppendMessage{{Flags: []imap.Flag{imap.FlagSeen, "foo"}, Date: when, Size: 5}}, []string{"Hello"}},
		{"a APPEND INBOX ~{3}\r\na\x00b\r\n", []AppendMessage{{Size: 3, Binary: true}}, []string{"a\x00b"}},
		{"a APPEND INBOX {1}\r\na () {1}\r\nb\r\n", []AppendMessage{{Size: 1}, {Flags: []imap.Flag{}, Size: 1}}, []string{"a", "b"}},
		{"a APPEND INBOX CATENATE (TEXT {3}\r\nabc TEXT {2+}\r\nde)\r\n", []AppendMessage{{Size: -1}}, []string{"abcde"}},
		{"a APPEND INBOX UTF8 (~{2}\r\nhi)\r\n", []AppendMessage{{Size: 2, Binary: true, UTF8: true}}, []string{"hi"}},
	}
	for _, tt := range tests {
		s, err := parseAppend(t, tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		for i := range s.msgs {
			if s.msgs[i].Date.Equal(tt.msgs[i].Date) {
				s.msgs[i].Date = tt.msgs[i].Date
			}
		}
		if !reflect.DeepEqual(s.msgs, tt.msgs) || !reflect.DeepEqual(s.data, tt.data) {
			t.Errorf("%q:\ngot  %+v %q\nwant %+v %q", tt.in, s.msgs, s.data, tt.msgs, tt.data)
		}
	}
	// Too large: refused before "+".
	if _, err := parseAppend(t, "a APPEND INBOX {1001}\r\n"); respOf(err) == nil || respOf(err).Code != imap.ResponseCodeTooBig {
		t.Errorf("too large: %v", err)
	}
	if _, err := parseAppend(t, "a APPEND INBOX CATENATE (TEXT {600}\r\n"+strings.Repeat("x", 600)+" TEXT {600}\r\n"); respOf(err) == nil {
		t.Errorf("catenate too large: %v", err)
	}
}

func TestMUTF7(t *testing.T) {
	for _, tt := range []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"},
		{"Tom & Jerry", "Tom &- Jerry"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"☺!", "&Jjo-!"},
		{"𝄞", "&2DTdHg-"},
	} {
		if got := encodeMUTF7(tt.utf8); got != tt.mutf7 {
			t.Errorf("encode %q = %q, want %q", tt.utf8, got, tt.mutf7)
		}
		if got, err := decodeMUTF7(tt.mutf7); err != nil || got != tt.utf8 {
			t.Errorf("decode %q = %q, %v; want %q", tt.mutf7, got, err, tt.utf8)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&Jj-", "&AGE-", "&2DQ-", "a\x80", "&3R4-", "&Jjp-"} {
		if got, err := decodeMUTF7(bad); err == nil {
			t.Errorf("decode %q = %q, want error", bad, got)
		}
	}
}
