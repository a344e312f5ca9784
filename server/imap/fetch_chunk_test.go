package imap

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// TestFetchChunks: the chunks of a FETCH cover its messages once, in
// order, growing from the first size to the largest, and a sparse set is
// cut where listing its UID range would list mostly other messages.
func TestFetchChunks(t *testing.T) {
	refsOf := func(uids ...uint32) []msgRef {
		out := make([]msgRef, len(uids))
		for i, u := range uids {
			out[i] = msgRef{seq: uint32(i + 1), uid: u}
		}
		return out
	}
	sizes := func(cs [][]msgRef) []int {
		var out []int
		for _, c := range cs {
			out = append(out, len(c))
		}
		return out
	}
	dense := make([]uint32, 3000)
	for i := range dense {
		dense[i] = uint32(i + 1)
	}
	for _, tc := range []struct {
		name string
		refs []msgRef
		want []int
	}{
		{"dense", refsOf(dense...), []int{64, 128, 256, 512, 1024, 1016}},
		{"one", refsOf(7), []int{1}},
		{"sparse", refsOf(1, 500, 1000, 1001, 1002), []int{1, 1, 3}},
		{"gaps within bounds", refsOf(1, 3, 5, 7, 9, 11, 40), []int{7}},
	} {
		cs := fetchChunks(tc.refs, fetchChunkFirst, fetchChunkMax)
		if got := sizes(cs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: chunk sizes %v, want %v", tc.name, got, tc.want)
		}
		var all []msgRef
		for _, c := range cs {
			all = append(all, c...)
		}
		if fmt.Sprint(all) != fmt.Sprint(tc.refs) {
			t.Errorf("%s: chunks do not cover the refs in order", tc.name)
		}
	}
}

// TestFetchAcrossChunks runs FETCH over more messages than its first
// chunks hold, against the server: every message answered once and in
// order, \Seen set on every one by a non-PEEK body section, a keyword
// first seen in a later chunk announced by FLAGS before the response
// that carries it, CHANGEDSINCE keeping exactly the changed messages of
// every chunk, and a sparse set answered for just its messages.
func TestFetchAcrossChunks(t *testing.T) {
	e := newEnv(t)
	const user, pw, n = "chunks@example.org", "chunk password", 300
	e.addUser(user, pw)
	ctx := context.Background()
	mbox := e.mailboxID(user, "")
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = store.Delivery{Account: user, MailboxID: mbox, InternalDate: time.Now(),
			Blob: e.seal(user, testMessage(fmt.Sprintf("m%d", i+1), "body"))}
	}
	if _, err := e.st.Deliver(ctx, ds); err != nil {
		t.Fatal(err)
	}
	r := e.rawLogin(user, pw)
	r.ok("SELECT INBOX")
	// Changed behind the session's back: the view learns of the
	// keyword only when FETCH lists message 250, in a later chunk.
	if _, err := e.st.StoreFlags(ctx, user, mbox, store.FlagUpdate{UIDs: []uint32{250}, Op: store.FlagsAdd, Flags: []string{"$Late"}}); err != nil {
		t.Fatal(err)
	}

	fetchRe := regexp.MustCompile(`^\* (\d+) FETCH \((.*)`)
	fetches := func(out string) (seqs []int, lines map[int]string, order []string) {
		lines = map[int]string{}
		for _, l := range strings.Split(out, "\r\n") {
			if m := fetchRe.FindStringSubmatch(l); m != nil {
				seq, _ := strconv.Atoi(m[1])
				seqs = append(seqs, seq)
				lines[seq] = m[2]
				order = append(order, "fetch "+m[1])
			} else if strings.HasPrefix(l, "* FLAGS ") {
				order = append(order, l)
			}
		}
		return seqs, lines, order
	}

	out := r.ok("FETCH 1:* (FLAGS BODY[HEADER.FIELDS (SUBJECT)])")
	seqs, lines, order := fetches(out)
	if len(seqs) != n {
		t.Fatalf("%d FETCH responses, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("response %d is for message %d", i+1, s)
		}
		if !strings.Contains(lines[s], `\Seen`) {
			t.Fatalf("message %d: no \\Seen in %q", s, lines[s])
		}
	}
	if !strings.Contains(lines[250], "$Late") {
		t.Fatalf("message 250: %q", lines[250])
	}
	told := -1
	for i, o := range order {
		if strings.HasPrefix(o, "* FLAGS ") && strings.Contains(o, "$Late") && told < 0 {
			told = i
		}
		if o == "fetch 250" && (told < 0 || told > i) {
			t.Fatalf("$Late used before FLAGS announced it: %v", order[max(0, i-3):i+1])
		}
	}
	msgs, err := e.messages(user, "", storeList())
	if err != nil {
		t.Fatal(err)
	}
	var highest uint64
	for _, m := range msgs {
		if !hasFlagStr(m.Flags, store.FlagSeen) {
			t.Fatalf("uid %d not \\Seen in the store", m.UID)
		}
		highest = max(highest, m.ModSeq)
	}

	// Two changes, in the first and the last chunk.
	if _, err := e.st.StoreFlags(ctx, user, mbox, store.FlagUpdate{UIDs: []uint32{10, 290}, Op: store.FlagsAdd, Flags: []string{store.FlagFlagged}}); err != nil {
		t.Fatal(err)
	}
	out = r.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS ENVELOPE) (CHANGEDSINCE %d)", highest))
	if seqs, _, _ = fetches(out); fmt.Sprint(seqs) != "[10 290]" {
		t.Fatalf("CHANGEDSINCE answered %v, want [10 290]:\n%s", seqs, out)
	}

	out = r.ok("FETCH 1,150,299 (UID ENVELOPE)")
	seqs, lines, _ = fetches(out)
	if fmt.Sprint(seqs) != "[1 150 299]" {
		t.Fatalf("sparse FETCH answered %v:\n%s", seqs, out)
	}
	if !strings.Contains(lines[150], `"m150"`) {
		t.Fatalf("message 150: %q", lines[150])
	}
}
