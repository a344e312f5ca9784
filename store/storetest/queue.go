package storetest

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The outbound queue (store.Queue).

var qdate = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// qentry returns an entry due at qdate plus due minutes.
func qentry(id string, due int, meta string) store.QueueEntry {
	return store.QueueEntry{
		ID: id, Created: qdate, Next: qdate.Add(time.Duration(due) * time.Minute),
		Meta: []byte(meta),
	}
}

// readQueueBody reads an entry's body in small reads and checks the size
// OpenQueueBody reports.
func readQueueBody(t *testing.T, s store.Store, id string) []byte {
	t.Helper()
	r, size, err := s.OpenQueueBody(ctxBg, id)
	if err != nil {
		t.Fatalf("OpenQueueBody(%s): %v", id, err)
	}
	defer r.Close()
	var out bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read queue body %s: %v", id, err)
		}
	}
	if int64(out.Len()) != size {
		t.Fatalf("OpenQueueBody(%s) said %d bytes, read %d", id, size, out.Len())
	}
	return out.Bytes()
}

func queueLen(t *testing.T, s store.Store) int {
	t.Helper()
	n, err := s.QueueLen(ctxBg)
	if err != nil {
		t.Fatalf("QueueLen: %v", err)
	}
	return n
}

func dueIDs(t *testing.T, s store.Store, after store.QueueCursor, until time.Time, limit int) []string {
	t.Helper()
	es, err := s.QueueDue(ctxBg, after, until, limit)
	if err != nil {
		t.Fatalf("QueueDue: %v", err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func entryIDs(t *testing.T, s store.Store, prefix, after string, limit int) []string {
	t.Helper()
	es, err := s.QueueEntries(ctxBg, prefix, after, limit)
	if err != nil {
		t.Fatalf("QueueEntries(%q, %q, %d): %v", prefix, after, limit, err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// testQueue covers entries sharing a body, listing, due order, updates
// and removal with the body destroyed by the last one.
func testQueue(t *testing.T, s store.Store) {
	body := blob(1, 5000)
	add := store.QueueChange{
		Body: &store.QueueBody{Blob: body},
		Add:  []store.QueueEntry{qentry("m1-2", 5, "meta b"), qentry("m1-1", 5, "meta a"), qentry("m1-3", 1, "meta c")},
	}
	if _, err := s.UpdateQueue(ctxBg, add); err != nil {
		t.Fatalf("UpdateQueue(add): %v", err)
	}
	if n := queueLen(t, s); n != 3 {
		t.Fatalf("QueueLen = %d, want 3", n)
	}
	e, err := s.QueueEntry(ctxBg, "m1-1")
	if err != nil {
		t.Fatalf("QueueEntry: %v", err)
	}
	if !e.Created.Equal(qdate) || !e.Next.Equal(qdate.Add(5*time.Minute)) || e.Attempts != 0 ||
		string(e.Meta) != "meta a" || e.Size != int64(len(body)) {
		t.Fatalf("QueueEntry = %+v", e)
	}
	for _, id := range []string{"m1-1", "m1-2", "m1-3"} {
		if got := readQueueBody(t, s, id); !bytes.Equal(got, body) {
			t.Fatalf("body of %s differs", id)
		}
	}
	_, err = s.QueueEntry(ctxBg, "nope")
	wantErr(t, "QueueEntry(unknown)", err, store.ErrNotFound)
	_, _, err = s.OpenQueueBody(ctxBg, "nope")
	wantErr(t, "OpenQueueBody(unknown)", err, store.ErrNotFound)

	// Listing in ID order, by prefix, in pages.
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{
		Body: &store.QueueBody{Blob: blob(2, 100)}, Add: []store.QueueEntry{qentry("m2-1", 0, "x")},
	}); err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(t, s, "", "", 0); !equalStrings(got, []string{"m1-1", "m1-2", "m1-3", "m2-1"}) {
		t.Fatalf("QueueEntries = %v", got)
	}
	if got := entryIDs(t, s, "m1-", "", 0); !equalStrings(got, []string{"m1-1", "m1-2", "m1-3"}) {
		t.Fatalf("QueueEntries(m1-) = %v", got)
	}
	if got := entryIDs(t, s, "", "m1-2", 2); !equalStrings(got, []string{"m1-3", "m2-1"}) {
		t.Fatalf("QueueEntries(after m1-2, 2) = %v", got)
	}

	// Due order: Next, then ID; until is inclusive; the cursor resumes.
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(time.Hour), 0); !equalStrings(got, []string{"m2-1", "m1-3", "m1-1", "m1-2"}) {
		t.Fatalf("QueueDue = %v", got)
	}
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(time.Minute), 0); !equalStrings(got, []string{"m2-1", "m1-3"}) {
		t.Fatalf("QueueDue(until +1m) = %v", got)
	}
	cur := store.QueueCursor{Next: qdate.Add(5 * time.Minute), ID: "m1-1"}
	if got := dueIDs(t, s, cur, qdate.Add(time.Hour), 0); !equalStrings(got, []string{"m1-2"}) {
		t.Fatalf("QueueDue(after m1-1) = %v", got)
	}
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(time.Hour), 2); len(got) != 2 {
		t.Fatalf("QueueDue(limit 2) = %v", got)
	}

	// An update moves the entry in due order; nil Meta keeps it.
	upd := store.QueueChange{Update: []store.QueueUpdate{
		{ID: "m2-1", Next: qdate.Add(2 * time.Hour), Attempts: 1, Meta: []byte("tried once")},
		{ID: "m1-3", Next: qdate.Add(3 * time.Hour), Attempts: 2},
	}}
	if _, err := s.UpdateQueue(ctxBg, upd); err != nil {
		t.Fatalf("UpdateQueue(update): %v", err)
	}
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(time.Hour), 0); !equalStrings(got, []string{"m1-1", "m1-2"}) {
		t.Fatalf("QueueDue after update = %v", got)
	}
	e, _ = s.QueueEntry(ctxBg, "m2-1")
	if e.Attempts != 1 || string(e.Meta) != "tried once" || !e.Next.Equal(qdate.Add(2*time.Hour)) {
		t.Fatalf("updated entry = %+v", e)
	}
	e, _ = s.QueueEntry(ctxBg, "m1-3")
	if e.Attempts != 2 || string(e.Meta) != "meta c" {
		t.Fatalf("entry updated without Meta = %+v", e)
	}

	// Removing entries keeps the shared body until the last one goes.
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{Remove: []string{"m1-1", "m1-3"}}); err != nil {
		t.Fatalf("UpdateQueue(remove): %v", err)
	}
	if got := readQueueBody(t, s, "m1-2"); !bytes.Equal(got, body) {
		t.Fatal("shared body damaged by removing other entries")
	}
	if n := queueLen(t, s); n != 2 {
		t.Fatalf("QueueLen = %d, want 2", n)
	}
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(10*time.Hour), 0); !equalStrings(got, []string{"m1-2", "m2-1"}) {
		t.Fatalf("QueueDue after remove = %v", got)
	}
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{Remove: []string{"m1-2", "m2-1"}}); err != nil {
		t.Fatal(err)
	}
	if n := queueLen(t, s); n != 0 {
		t.Fatalf("QueueLen = %d, want 0", n)
	}
	if got := entryIDs(t, s, "", "", 0); len(got) != 0 {
		t.Fatalf("entries left: %v", got)
	}
	// A new entry may take a removed ID.
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{
		Body: &store.QueueBody{Blob: blob(3, 10)}, Add: []store.QueueEntry{qentry("m1-1", 0, "again")},
	}); err != nil {
		t.Fatalf("re-adding a removed ID: %v", err)
	}
}

// testQueueAtomic: a change that fails in any part stores nothing.
func testQueueAtomic(t *testing.T, s store.Store) {
	newAccount(t, s, "alice@example.org")
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{
		Body: &store.QueueBody{Blob: blob(1, 100)}, Add: []store.QueueEntry{qentry("a-1", 0, "m")},
	}); err != nil {
		t.Fatal(err)
	}
	before := queueLen(t, s)
	mbox := mailbox(t, s, "alice@example.org", store.Inbox)
	trace := []store.TraceRecord{{Kind: store.TraceOutbound, Ref: "atomic", Data: []byte("t")}}
	fails := []struct {
		name string
		c    store.QueueChange
		want error
	}{
		{"taken ID", store.QueueChange{
			Body: &store.QueueBody{Blob: blob(2, 100)}, Add: []store.QueueEntry{qentry("b-1", 0, ""), qentry("a-1", 0, "")},
			Deliver: []store.Delivery{{Account: "alice@example.org", Blob: blob(3, 50)}}, Trace: trace,
		}, store.ErrExists},
		{"unknown account", store.QueueChange{
			Body: &store.QueueBody{Blob: blob(2, 100)}, Add: []store.QueueEntry{qentry("b-1", 0, "")},
			Deliver: []store.Delivery{{Account: "alice@example.org", Blob: blob(3, 50)}, {Account: "nobody@example.org", Blob: blob(4, 50)}},
			Trace:   trace,
		}, store.ErrNotFound},
		{"update unknown", store.QueueChange{
			Body: &store.QueueBody{Blob: blob(2, 100)}, Add: []store.QueueEntry{qentry("b-1", 0, "")},
			Update: []store.QueueUpdate{{ID: "zz", Next: qdate}}, Trace: trace,
		}, store.ErrNotFound},
		{"remove unknown", store.QueueChange{
			Remove: []string{"a-1", "zz"}, Deliver: []store.Delivery{{Account: "alice@example.org", Blob: blob(3, 50)}}, Trace: trace,
		}, store.ErrNotFound},
		{"staged blob not pending", store.QueueChange{
			Body: &store.QueueBody{Staged: &store.StagedBlob{Size: 10, Ref: 1<<63 | 12345}}, Add: []store.QueueEntry{qentry("b-1", 0, "")},
		}, store.ErrNotFound},
		{"bad ID", store.QueueChange{
			Body: &store.QueueBody{Blob: blob(2, 100)}, Add: []store.QueueEntry{qentry("has space", 0, "")},
		}, store.ErrBadName},
	}
	for _, f := range fails {
		_, err := s.UpdateQueue(ctxBg, f.c)
		wantErr(t, f.name, err, f.want)
		if n := queueLen(t, s); n != before {
			t.Fatalf("%s: QueueLen %d, want %d", f.name, n, before)
		}
		if _, err := s.QueueEntry(ctxBg, "b-1"); err == nil {
			t.Fatalf("%s: entry b-1 stored", f.name)
		}
		if _, err := s.QueueEntry(ctxBg, "a-1"); err != nil {
			t.Fatalf("%s: entry a-1 gone: %v", f.name, err)
		}
		if m := mailbox(t, s, "alice@example.org", store.Inbox); m.Messages != mbox.Messages {
			t.Fatalf("%s: a local copy was delivered", f.name)
		}
		recs, err := s.Traces(ctxBg, store.TraceQuery{Kind: store.TraceOutbound, Ref: "atomic"})
		if err != nil || len(recs) != 0 {
			t.Fatalf("%s: trace records stored: %v %v", f.name, recs, err)
		}
	}
	for _, c := range []store.QueueChange{
		{Add: []store.QueueEntry{qentry("c-1", 0, "")}},                                  // no body
		{Body: &store.QueueBody{Blob: blob(1, 10)}},                                      // body without entries
		{Remove: []string{"a-1"}, Update: []store.QueueUpdate{{ID: "a-1", Next: qdate}}}, // named twice
	} {
		if _, err := s.UpdateQueue(ctxBg, c); err == nil {
			t.Fatalf("UpdateQueue(%+v) succeeded", c)
		}
	}
	if _, err := s.QueueEntry(ctxBg, "a-1"); err != nil {
		t.Fatalf("entry a-1 gone: %v", err)
	}
}

// testQueueDeliver: local copies and trace records commit with queue
// changes: a submission (entries and local copies), a local bounce
// (removal and a copy).
func testQueueDeliver(t *testing.T, s store.Store) {
	newAccount(t, s, "alice@example.org")
	newAccount(t, s, "bob@example.org")
	c := store.QueueChange{
		Body: &store.QueueBody{Blob: blob(1, 300)},
		Add:  []store.QueueEntry{qentry("s-1", 0, "remote")},
		Deliver: []store.Delivery{
			{Account: "bob@example.org", InternalDate: date0, Blob: blob(2, 310)},
		},
		Trace: []store.TraceRecord{{Kind: store.TraceOutbound, Time: date0, Ref: "s", Data: []byte("queued")}},
	}
	got, err := s.UpdateQueue(ctxBg, c)
	if err != nil {
		t.Fatalf("UpdateQueue: %v", err)
	}
	if len(got) != 1 || got[0].Account != "bob@example.org" || got[0].UID != 1 || got[0].Mailbox != store.Inbox {
		t.Fatalf("Delivered = %+v", got)
	}
	ms := messages(t, s, "bob@example.org", store.Inbox, store.ListOptions{})
	if len(ms) != 1 || ms[0].SealedSize != 310 || !ms[0].InternalDate.Equal(date0) {
		t.Fatalf("bob's INBOX = %+v", ms)
	}
	// The bounce goes to alice's INBOX as the entry goes.
	got, err = s.UpdateQueue(ctxBg, store.QueueChange{
		Remove:  []string{"s-1"},
		Deliver: []store.Delivery{{Account: "alice@example.org", Blob: blob(3, 200)}},
		Trace:   []store.TraceRecord{{Kind: store.TraceOutbound, Time: date0.Add(time.Minute), Ref: "s", Data: []byte("bounced")}},
	})
	if err != nil {
		t.Fatalf("UpdateQueue(bounce): %v", err)
	}
	if len(got) != 1 || got[0].Account != "alice@example.org" {
		t.Fatalf("Delivered = %+v", got)
	}
	if n := queueLen(t, s); n != 0 {
		t.Fatalf("QueueLen = %d", n)
	}
	recs, err := s.Traces(ctxBg, store.TraceQuery{Kind: store.TraceOutbound, Ref: "s"})
	if err != nil || len(recs) != 2 || string(recs[0].Data) != "queued" || string(recs[1].Data) != "bounced" {
		t.Fatalf("trace = %+v, %v", recs, err)
	}
	// Quota applies to the local copies as Deliver applies it.
	if err := s.SetQuota(ctxBg, "bob@example.org", 400); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateQueue(ctxBg, store.QueueChange{
		Body:    &store.QueueBody{Blob: blob(1, 300)},
		Add:     []store.QueueEntry{qentry("s2-1", 0, "remote")},
		Deliver: []store.Delivery{{Account: "bob@example.org", Blob: blob(2, 310)}},
	})
	wantErr(t, "UpdateQueue over quota", err, store.ErrOverQuota)
	if n := queueLen(t, s); n != 0 {
		t.Fatalf("QueueLen = %d after a failed change", n)
	}
}

// testQueueStaged: a large body written in pieces, shared, read back
// whole, destroyed with its last entry; a staged body links once.
func testQueueStaged(t *testing.T, s store.Store) {
	big := blob(9, bigSize)
	w, err := s.StageQueueBody(ctxBg)
	if err != nil {
		t.Fatalf("StageQueueBody: %v", err)
	}
	defer w.Discard()
	for off := 0; off < len(big); off += 100000 {
		if _, err := w.Write(big[off:min(off+100000, len(big))]); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := w.Finish(ctxBg)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if sb.Account != "" || sb.Size != int64(len(big)) {
		t.Fatalf("staged queue body = %+v", sb)
	}
	c := store.QueueChange{Body: &store.QueueBody{Staged: &sb}, Add: []store.QueueEntry{qentry("big-1", 0, ""), qentry("big-2", 0, "")}}
	if _, err := s.UpdateQueue(ctxBg, c); err != nil {
		t.Fatalf("UpdateQueue(staged): %v", err)
	}
	if got := readQueueBody(t, s, "big-2"); !bytes.Equal(got, big) {
		t.Fatal("staged body read back differs")
	}
	e, _ := s.QueueEntry(ctxBg, "big-1")
	if e.Size != int64(len(big)) {
		t.Fatalf("entry size %d", e.Size)
	}
	// Linked once, ever.
	c.Add = []store.QueueEntry{qentry("big-3", 0, "")}
	_, err = s.UpdateQueue(ctxBg, c)
	wantErr(t, "linking a staged body twice", err, store.ErrNotFound)
	// Discard after the link changes nothing.
	if err := w.Discard(); err != nil {
		t.Fatalf("Discard after link: %v", err)
	}
	if got := readQueueBody(t, s, "big-1"); !bytes.Equal(got, big) {
		t.Fatal("body damaged by Discard after link")
	}
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{Remove: []string{"big-1", "big-2"}}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.OpenQueueBody(ctxBg, "big-1")
	wantErr(t, "OpenQueueBody after removal", err, store.ErrNotFound)

	// A discarded staged body cannot be linked.
	w2, err := s.StageQueueBody(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	w2.Write(big[:stageStep])
	sb2, err := w2.Finish(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Discard(); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateQueue(ctxBg, store.QueueChange{Body: &store.QueueBody{Staged: &sb2}, Add: []store.QueueEntry{qentry("d-1", 0, "")}})
	wantErr(t, "linking a discarded body", err, store.ErrNotFound)
	// A mailbox's staged blob is not a queue body.
	newAccount(t, s, "carol@example.org")
	sb3 := stage(t, s, "carol@example.org", big[:stageStep], 1000)
	_, err = s.UpdateQueue(ctxBg, store.QueueChange{Body: &store.QueueBody{Staged: &sb3}, Add: []store.QueueEntry{qentry("d-1", 0, "")}})
	wantErr(t, "linking an account's blob as a queue body", err, store.ErrNotFound)
}

// stageStep is a small staged body.
const stageStep = 4096

// testQueueReopen: entries, bodies and the count survive a reopen; a
// queue body staged and never linked does not.
func testQueueReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	big := blob(5, bigSize)
	w, err := s.StageQueueBody(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	sb, err := w.Finish(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{Body: &store.QueueBody{Staged: &sb}, Add: []store.QueueEntry{qentry("r-1", 3, "m")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateQueue(ctxBg, store.QueueChange{Body: &store.QueueBody{Blob: blob(6, 100)}, Add: []store.QueueEntry{qentry("r-2", 1, "n")}}); err != nil {
		t.Fatal(err)
	}
	orphan, err := s.StageQueueBody(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	orphan.Write(big[:stageStep])
	osb, err := orphan.Finish(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if n := queueLen(t, s); n != 2 {
		t.Fatalf("QueueLen after reopen = %d", n)
	}
	if got := dueIDs(t, s, store.QueueCursor{}, qdate.Add(time.Hour), 0); !equalStrings(got, []string{"r-2", "r-1"}) {
		t.Fatalf("QueueDue after reopen = %v", got)
	}
	if got := readQueueBody(t, s, "r-1"); !bytes.Equal(got, big) {
		t.Fatal("staged body differs after reopen")
	}
	_, err = s.UpdateQueue(ctxBg, store.QueueChange{Body: &store.QueueBody{Staged: &osb}, Add: []store.QueueEntry{qentry("r-3", 0, "")}})
	wantErr(t, "linking a body staged before a reopen", err, store.ErrNotFound)
}
