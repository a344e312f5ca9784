package sortthread

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fact describes a test message as its header would.
type fact struct {
	subject, date string
	internal      string // RFC 3339; "" is a fixed default
	msgID         string
	refs, irt     string
	from, to, cc  string // "name <mailbox@host>" or "mailbox@host"
	size          int64
}

var defaultInternal = time.Date(2008, 2, 22, 21, 0, 0, 0, time.UTC)

// build makes the Messages of facts, numbered from 1, as server/imap does
// from summaries.
func build(t testing.TB, facts []fact) []Message {
	msgs := make([]Message, len(facts))
	for i, f := range facts {
		internal := defaultInternal
		if f.internal != "" {
			var err error
			if internal, err = time.Parse(time.RFC3339, f.internal); err != nil {
				t.Fatal(err)
			}
		}
		m := &msgs[i]
		m.Num, m.Seq = uint32(i+1), uint32(i+1)
		m.Arrival = internal
		m.Sent = SentDate(f.date, internal)
		m.Size = f.size
		m.Subject, m.ReplyOrFwd = SubjectKey(f.subject)
		m.MessageID = FirstMessageID(f.msgID)
		m.References = ThreadRefs(f.refs, f.irt)
		m.From, m.DisplayFrom = addrKeys(f.from)
		m.To, m.DisplayTo = addrKeys(f.to)
		m.Cc, _ = addrKeys(f.cc)
	}
	return msgs
}

// addrKeys parses "name <mailbox@host>", "mailbox@host" or "group:".
func addrKeys(a string) (mailbox, display string) {
	if a == "" {
		return "", ""
	}
	var name string
	if i := strings.IndexByte(a, '<'); i >= 0 {
		name, a = strings.TrimSpace(a[:i]), strings.Trim(a[i:], "<>")
	}
	if g, ok := strings.CutSuffix(a, ":"); ok {
		return AddressKey(g), DisplayKey("", g, "")
	}
	mbox, host, _ := strings.Cut(a, "@")
	return AddressKey(mbox), DisplayKey(name, mbox, host)
}

func render(ns []Node) string {
	var b strings.Builder
	var one func(n *Node, top bool)
	one = func(n *Node, top bool) {
		if top {
			b.WriteByte('(')
		}
		for {
			if n.Num != 0 {
				b.WriteString(strconv.Itoa(int(n.Num)))
			}
			if len(n.Children) != 1 {
				break
			}
			if n.Num != 0 {
				b.WriteByte(' ')
			}
			n = &n.Children[0]
		}
		if len(n.Children) > 1 {
			if n.Num != 0 {
				b.WriteByte(' ')
			}
			for i := range n.Children {
				b.WriteByte('(')
				one(&n.Children[i], false)
				b.WriteByte(')')
			}
		}
		if top {
			b.WriteByte(')')
		}
	}
	for i := range ns {
		one(&ns[i], true)
	}
	return b.String()
}

func refsThread(t *testing.T, facts []fact) string {
	t.Helper()
	ns, err := ThreadReferences(context.Background(), build(t, facts))
	if err != nil {
		t.Fatal(err)
	}
	return render(ns)
}

// The imaptest scripts thread, thread2, thread3 (Dovecot's results).
func TestThreadReferencesImaptest(t *testing.T) {
	thread := []fact{
		{msgID: "<a@b>", internal: "2008-02-22T17:06:23Z"},
		{msgID: "<b@b>", refs: "<a@b> <c@b>", internal: "2008-02-22T15:06:23Z"},
		{msgID: "<c@b>", refs: "<b@b>", internal: "2008-02-22T16:06:25Z"},
	}
	if got := refsThread(t, thread); got != "(3 2)(1)" {
		t.Errorf("thread: %s, want (3 2)(1)", got)
	}
	if got := refsThread(t, thread[1:]); got != "(2 1)" {
		t.Errorf("thread after expunge: %s, want (2 1)", got)
	}
	if got := refsThread(t, []fact{{msgID: "<a@b>"}, {msgID: "<a@b>"}}); got != "(1)(2)" {
		t.Errorf("thread2: %s, want (1)(2)", got)
	}
	got := refsThread(t, []fact{
		{msgID: "<a@b>", subject: "foo", internal: "2008-02-22T15:06:23Z"},
		{msgID: "<a@b>", subject: "Re: foo", internal: "2008-02-22T15:06:24Z"},
	})
	if got != "(1 2)" {
		t.Errorf("thread3: %s, want (1 2)", got)
	}
}

func TestThreadReferences(t *testing.T) {
	day := func(h int) string { return fmt.Sprintf("Fri, 22 Feb 2008 %02d:00:00 +0000", h) }
	for _, tc := range []struct {
		name  string
		facts []fact
		want  string
	}{
		{"empty", nil, ""},
		{"chain", []fact{
			{msgID: "<1@x>", date: day(1)},
			{msgID: "<2@x>", irt: "<1@x>", date: day(2)},
			{msgID: "<3@x>", refs: "<1@x> <2@x>", date: day(3)},
		}, "(1 2 3)"},
		{"siblings sorted by date", []fact{
			{msgID: "<1@x>", date: day(1)},
			{msgID: "<3@x>", refs: "<1@x>", date: day(5)},
			{msgID: "<2@x>", refs: "<1@x>", date: day(3)},
		}, "(1 (3)(2))"},
		{"missing root with two replies keeps a dummy", []fact{
			{msgID: "<2@x>", refs: "<0@x>", date: day(2)},
			{msgID: "<3@x>", refs: "<0@x>", date: day(1)},
		}, "((2)(1))"},
		{"missing root with one reply is pruned", []fact{
			{msgID: "<2@x>", refs: "<0@x>", date: day(2)},
			{msgID: "<3@x>", date: day(1)},
		}, "(2)(1)"},
		{"missing parent inside a thread is spliced", []fact{
			{msgID: "<1@x>", date: day(1)},
			{msgID: "<3@x>", refs: "<1@x> <2@x>", date: day(3)},
			{msgID: "<4@x>", refs: "<1@x> <2@x>", date: day(4)},
		}, "(1 (2)(3))"},
		{"In-Reply-To only without References", []fact{
			{msgID: "<1@x>", date: day(1)},
			{msgID: "<2@x>", irt: "Your mail <1@x> of Friday", refs: "garbage", date: day(2)},
		}, "(1 2)"},
		{"References win over In-Reply-To", []fact{
			{msgID: "<1@x>", date: day(1)},
			{msgID: "<2@x>", date: day(2)},
			{msgID: "<3@x>", refs: "<1@x>", irt: "<2@x>", date: day(3)},
		}, "(1 3)(2)"},
		{"self reference makes no loop", []fact{
			{msgID: "<1@x>", refs: "<1@x>"},
		}, "(1)"},
		{"mutual references make no loop", []fact{
			{msgID: "<1@x>", refs: "<2@x>", date: day(1)},
			{msgID: "<2@x>", refs: "<1@x>", date: day(2)},
		}, "(2 1)"},
		{"subjects merge: reply under original", []fact{
			{subject: "hello", date: day(1)},
			{subject: "Re: hello", date: day(2)},
		}, "(1 2)"},
		{"subjects merge: two originals under a dummy", []fact{
			{subject: "hello", date: day(1)},
			{subject: "HELLO", date: day(2)},
		}, "((1)(2))"},
		{"subjects merge: two replies under a dummy, then a third", []fact{
			{subject: "Re: hello", date: day(1)},
			{subject: "Re: hello", date: day(2)},
			{subject: "Fwd: hello", date: day(3)},
		}, "((1)(2)(3))"},
		{"subjects merge: dummy thread takes a message", []fact{
			{msgID: "<2@x>", refs: "<0@x>", subject: "Re: s", date: day(1)},
			{msgID: "<3@x>", refs: "<0@x>", subject: "Re: s", date: day(2)},
			{subject: "s", date: day(3)},
		}, "((1)(2)(3))"},
		{"empty subjects do not merge", []fact{
			{date: day(1)}, {date: day(2)},
		}, "(1)(2)"},
		{"reply before original in time", []fact{
			{subject: "Re: x", date: day(1)},
			{subject: "x", date: day(2)},
		}, "(2 1)"},
		{"date ties broken by sequence", []fact{
			{}, {}, {},
		}, "(1)(2)(3)"},
		{"unparsable date falls back to internal date", []fact{
			{date: "not a date", internal: "2008-02-22T05:00:00Z"},
			{date: day(3)},
		}, "(2)(1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refsThread(t, tc.facts); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// The imaptest scripts thread-orderedsubject and thread-orderedsubject2
// (sort-subject.mbox and its own), Dovecot's results.
func TestThreadOrderedSubjectImaptest(t *testing.T) {
	if got := render(ThreadOrderedSubject(build(t, sortSubjectFacts()))); got != "(1)(2 (7)(12)(13))(3 (5)(11))(4)(6)(8)(9 10)(14)(15)" {
		t.Errorf("thread-orderedsubject: %s", got)
	}
	d := func(s int) string { return fmt.Sprintf("Fri, 22 Feb 2008 22:00:%02d +0200", s) }
	i := func(s int) string { return fmt.Sprintf("2008-02-22T20:00:%02dZ", s) }
	got := render(ThreadOrderedSubject(build(t, []fact{
		{subject: "a", date: d(10), internal: i(1)},
		{subject: "b", date: d(9), internal: i(2)},
		{subject: "a", date: d(8), internal: i(3)},
		{subject: "b", date: d(7), internal: i(4)},
		{subject: "a", internal: i(30)},
		{subject: "b", internal: i(29)},
		{subject: "a", internal: i(28)},
		{subject: "b", internal: i(27)},
	})))
	if got != "(4 (2)(8)(6))(3 (1)(7)(5))" {
		t.Errorf("thread-orderedsubject2: %s", got)
	}
}

func sortSubjectFacts() []fact {
	subjects := []string{
		"a", "C", "b", "_", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b (a)", "Re: [FWD: c]", "[xyz]", "",
		"=?iso-8859-1?q?_?=", "Re: =?utf-8?q?b?=", "=?iso-8859-1?q?RE:_C?=", "=?us-ascii?b?UmU6IGM=?=",
		"Ad: Re: Ad: Re: Ad: x", "re: [fwd: [fwd: re: [fwd: babylon]]]",
	}
	sizes := []int64{15, 15, 15, 15, 56, 32, 32, 22, 4, 34, 40, 167, 239, 35, 54}
	facts := make([]fact, len(subjects))
	for i, s := range subjects {
		facts[i] = fact{subject: s, size: sizes[i]}
	}
	return facts
}

func sortNums(t *testing.T, facts []fact, crit ...Criterion) string {
	t.Helper()
	var parts []string
	for _, n := range Sort(build(t, facts), crit) {
		parts = append(parts, strconv.Itoa(int(n)))
	}
	return strings.Join(parts, " ")
}

// The imaptest sort-* scripts (Dovecot's results).
func TestSortImaptest(t *testing.T) {
	rev := func(b By) Criterion { return Criterion{By: b, Reverse: true} }
	fwd := func(b By) Criterion { return Criterion{By: b} }

	subj := sortSubjectFacts()
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	check("subject", sortNums(t, subj, fwd(BySubject)), "9 10 1 14 3 5 11 6 15 2 7 12 13 8 4")
	check("reverse subject", sortNums(t, subj, rev(BySubject)), "4 8 2 7 12 13 15 6 3 5 11 14 1 9 10")

	dates := []fact{
		{date: "Fri, 22 Feb 2008 00:00:00 +0200", internal: "2008-02-22T21:00:00Z", size: 1},
		{date: "Fri, 22 Feb 2008 02:00:00 +0200", internal: "2008-02-22T20:00:00Z", size: 1},
		{date: "Fri, 22 Feb 2008 01:00:00 +0200", internal: "2008-02-22T19:00:00Z", size: 2},
		{date: "Fri, 22 Feb 2008 02:00:00 +0200", internal: "2008-02-22T18:00:00Z", size: 2},
		{internal: "2008-02-21T23:30:23Z", size: 19},
		{date: "Fri, 22 Feb 2008 02:00:00 +0200", internal: "2008-02-22T16:00:00Z", size: 4},
		{internal: "2008-02-21T23:00:00Z", size: 44},
	}
	check("date", sortNums(t, dates, fwd(ByDate)), "1 3 7 5 2 4 6")
	check("reverse date", sortNums(t, dates, rev(ByDate)), "2 4 6 5 3 7 1")
	check("date reverse size", sortNums(t, dates, fwd(ByDate), rev(BySize)), "1 7 3 5 6 4 2")

	arrival := []fact{
		{internal: "2008-02-22T00:00:00Z", size: 1},
		{internal: "2008-02-22T02:00:00Z", size: 1},
		{internal: "2008-02-22T01:00:00Z", size: 2},
		{internal: "2008-02-22T02:00:00Z", size: 2},
		{internal: "2008-02-22T02:00:00Z", size: 4},
	}
	check("arrival", sortNums(t, arrival, fwd(ByArrival)), "1 3 2 4 5")
	check("reverse arrival", sortNums(t, arrival, rev(ByArrival)), "2 4 5 3 1")
	check("arrival reverse size", sortNums(t, arrival, fwd(ByArrival), rev(BySize)), "1 3 5 4 2")

	addrs := []fact{
		{from: "user2@domain2.org", to: "foo bar <user2@domain2.org>", cc: "user2@domain2.org"},
		{from: "user2@domain1.org", to: "user2@domain1.org", cc: "user2:"},
		{from: "user1@domain1.org", to: "user1@domain1.org", cc: "user1@domain1.org"},
	}
	for _, by := range []By{ByFrom, ByTo, ByCc} {
		check("address", sortNums(t, addrs, fwd(by)), "3 1 2")
		check("reverse address", sortNums(t, addrs, rev(by)), "1 2 3")
		check("address reverse arrival", sortNums(t, addrs, fwd(by), rev(ByArrival)), "3 1 2")
	}

	display := []fact{
		{from: "foo bar <a@b.c>", to: "foo bar <a@b.c>"},
		{from: "b@c.d", to: "b@c.d"},
		{from: "d", to: "d"},
		{from: "=?iso-8859-1?q?foo_aar?= <e@f.g>", to: "=?iso-8859-1?q?foo_aar?= <e@f.g>"},
		{from: "=?iso-8859-1?q?foo_car?= <f@g.h>", to: "=?iso-8859-1?q?foo_car?= <f@g.h>"},
		{to: "a:"},
		{to: "z:"},
		{to: "empty:"},
	}
	check("displayfrom", sortNums(t, display[:5], fwd(ByDisplayFrom)), "2 3 4 1 5")
	check("reverse displayfrom", sortNums(t, display[:5], rev(ByDisplayFrom)), "5 1 4 3 2")
	check("displayto", sortNums(t, display, fwd(ByDisplayTo)), "6 2 3 8 4 1 5 7")
	check("reverse displayto", sortNums(t, display, rev(ByDisplayTo)), "7 5 1 4 8 3 2 6")
}

// randomFacts makes n messages that reference each other at random, with
// few subjects, duplicate and missing IDs.
func randomFacts(r *rand.Rand, n int) []fact {
	facts := make([]fact, n)
	id := func() string { return fmt.Sprintf("<%d@x>", r.IntN(n+n/4+1)) }
	for i := range facts {
		f := &facts[i]
		if r.IntN(10) > 0 {
			f.msgID = id()
		}
		for range r.IntN(4) {
			f.refs += id() + " "
		}
		if r.IntN(3) == 0 {
			f.irt = id()
		}
		f.subject = []string{"", "a", "Re: a", "b", "Fwd: b", "[l] c"}[r.IntN(6)]
		f.date = fmt.Sprintf("Fri, 22 Feb 2008 %02d:%02d:00 +0000", r.IntN(24), r.IntN(60))
	}
	return facts
}

// checkTree checks the invariants of a THREAD result: every message once,
// dummies only at the top level and with two or more children.
func checkTree(t *testing.T, ns []Node, n int) {
	t.Helper()
	seen := make(map[uint32]int)
	var walk func(ns []Node, top bool)
	walk = func(ns []Node, top bool) {
		for _, nd := range ns {
			if nd.Num == 0 {
				if !top || len(nd.Children) < 2 {
					t.Fatalf("dummy below the top or with fewer than two children: %s", render(ns))
				}
			} else {
				seen[nd.Num]++
			}
			walk(nd.Children, false)
		}
	}
	walk(ns, true)
	if len(seen) != n {
		t.Fatalf("%d messages in the tree, want %d", len(seen), n)
	}
	for num, c := range seen {
		if c != 1 || num < 1 || int(num) > n {
			t.Fatalf("message %d appears %d times", num, c)
		}
	}
}

func TestThreadReferencesRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n := 1 + r.IntN(60)
		ns, err := ThreadReferences(context.Background(), build(t, randomFacts(r, n)))
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, ns, n)
		checkTree(t, ThreadOrderedSubject(build(t, randomFacts(r, n))), n)
	}
}

func TestThreadReferencesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ThreadReferences(ctx, build(t, randomFacts(rand.New(rand.NewPCG(1, 1)), 10))); err == nil {
		t.Fatal("a cancelled THREAD returned a result")
	}
}

func FuzzThread(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(9))
	f.Add([]byte{0, 0, 0, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		// Each byte triple is a message: its ID, its reference, its
		// subject; a small ID space makes duplicates and loops.
		msgs := make([]Message, 0, len(data)/3)
		for i := 0; i+2 < len(data) && len(msgs) < int(n); i += 3 {
			m := Message{Num: uint32(len(msgs) + 1), Seq: uint32(len(msgs) + 1)}
			if data[i]%8 != 0 {
				m.MessageID = strconv.Itoa(int(data[i] % 16))
			}
			for b := data[i+1]; b != 0; b >>= 4 {
				m.References = append(m.References, strconv.Itoa(int(b%16)))
			}
			m.Subject = strconv.Itoa(int(data[i+2] % 4))
			if m.Subject == "0" {
				m.Subject = ""
			}
			m.ReplyOrFwd = data[i+2]&4 != 0
			m.Sent = defaultInternal.Add(time.Duration(data[i+2]>>3) * time.Minute)
			msgs = append(msgs, m)
		}
		ns, err := ThreadReferences(context.Background(), msgs)
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, ns, len(msgs))
		checkTree(t, ThreadOrderedSubject(msgs), len(msgs))
	})
}

func BenchmarkThreadReferences(b *testing.B) {
	msgs := build(b, randomFacts(rand.New(rand.NewPCG(3, 4)), 10000))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ThreadReferences(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
	}
}
