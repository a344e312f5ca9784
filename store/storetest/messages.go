package storetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

func testDeliver(t *testing.T, s store.Store) {
	const addr = "d@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "e@example.org")
	ds := []store.Delivery{
		{Account: addr, InternalDate: date0, Flags: []string{`\seen`, "$Label", "$label", `\FLAGGED`}, Blob: blob(1, 300)},
		{Account: addr, MailboxID: idOf(t, s, addr, store.Inbox), InternalDate: date0.Add(time.Hour), Blob: blob(2, 200)},
		{Account: "e@example.org", MailboxID: idOf(t, s, "e@example.org", "Sent"), InternalDate: date0, Flags: []string{`\Seen`}, Blob: blob(3, 50)},
		{Account: addr, MailboxID: idOf(t, s, addr, "Archive"), InternalDate: date0.Add(-time.Hour), Flags: []string{`\Deleted`}, Blob: blob(4, 70)},
	}
	got, err := s.Deliver(ctxBg, ds)
	if err != nil {
		t.Fatal(err)
	}
	inbox := mailbox(t, s, addr, store.Inbox)
	sent := mailbox(t, s, "e@example.org", "Sent")
	archive := mailbox(t, s, addr, "Archive")
	want := []store.Delivered{
		{Account: addr, MailboxID: inbox.ID, Mailbox: store.Inbox, UIDValidity: inbox.UIDValidity, UID: 1},
		{Account: addr, MailboxID: inbox.ID, Mailbox: store.Inbox, UIDValidity: inbox.UIDValidity, UID: 2},
		{Account: "e@example.org", MailboxID: sent.ID, Mailbox: "Sent", UIDValidity: sent.UIDValidity, UID: 1},
		{Account: addr, MailboxID: archive.ID, Mailbox: "Archive", UIDValidity: archive.UIDValidity, UID: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Deliver returned %d results", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Delivered[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if len(ms) != 2 {
		t.Fatalf("listed %d", len(ms))
	}
	if !equalStrings(ms[0].Flags, []string{"$Label", `\Flagged`, `\Seen`}) {
		t.Errorf("flags %q, want canonical, deduplicated, sorted", ms[0].Flags)
	}
	if len(ms[1].Flags) != 0 {
		t.Errorf("flags of unflagged message %q", ms[1].Flags)
	}
	if !ms[0].InternalDate.Equal(date0) || !ms[1].InternalDate.Equal(date0.Add(time.Hour)) {
		t.Errorf("dates %v %v", ms[0].InternalDate, ms[1].InternalDate)
	}
	if ms[0].SealedSize != 300 || ms[1].SealedSize != 200 {
		t.Errorf("sizes %d %d", ms[0].SealedSize, ms[1].SealedSize)
	}
	if ms[0].ModSeq == 0 || ms[1].ModSeq <= ms[0].ModSeq {
		t.Errorf("modseqs %d %d", ms[0].ModSeq, ms[1].ModSeq)
	}
	if ms[0].Summary != nil || ms[0].SessionKey != nil {
		t.Errorf("summary without WithSummary")
	}
	for i, n := range []int{1, 2} {
		b, err := s.Blob(ctxBg, addr, idOf(t, s, addr, store.Inbox), uint32(i+1))
		if err != nil || !bytes.Equal(b, ds[n-1].Blob) {
			t.Errorf("Blob(%d) = %d bytes, %v", i+1, len(b), err)
		}
	}
	_, err = s.Blob(ctxBg, addr, idOf(t, s, addr, store.Inbox), 3)
	wantErr(t, "Blob of unknown UID", err, store.ErrNotFound)
	_, err = s.Blob(ctxBg, addr, unknownID, 1)
	wantErr(t, "Blob in unknown mailbox", err, store.ErrNotFound)

	m := checkCounters(t, s, addr, store.Inbox)
	if m.Messages != 2 || m.Unseen != 1 || m.Deleted != 0 || m.SealedSize != 500 || m.UIDNext != 3 {
		t.Errorf("INBOX %+v", m)
	}
	if a := checkCounters(t, s, addr, "Archive"); a.Deleted != 1 || a.Unseen != 1 {
		t.Errorf("Archive %+v", a)
	}
	if used := usedBytes(t, s, addr); used != 570 {
		t.Errorf("used %d", used)
	}
	if used := usedBytes(t, s, "e@example.org"); used != 50 {
		t.Errorf("used of e %d", used)
	}
	// A zero internal date becomes the delivery time.
	before := time.Now().Add(-time.Second)
	deliverN(t, s, addr, "Junk", 1, 1)
	ds2 := []store.Delivery{{Account: addr, MailboxID: idOf(t, s, addr, "Junk"), Blob: []byte("x")}}
	if _, err := s.Deliver(ctxBg, ds2); err != nil {
		t.Fatal(err)
	}
	if ms := messages(t, s, addr, "Junk", store.ListOptions{FromUID: 2}); len(ms) != 1 || ms[0].InternalDate.Before(before) {
		t.Errorf("zero internal date stored as %v", ms)
	}
	// Empty input.
	if out, err := s.Deliver(ctxBg, nil); err != nil || len(out) != 0 {
		t.Errorf("Deliver(nil) = %v, %v", out, err)
	}
}

func testListRange(t *testing.T, s store.Store) {
	const addr = "r@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 10, 20)
	if _, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), []uint32{4, 5}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, to uint32
		want     []uint32
	}{
		{0, 0, []uint32{1, 2, 3, 6, 7, 8, 9, 10}},
		{3, 0, []uint32{3, 6, 7, 8, 9, 10}},
		{4, 6, []uint32{6}},
		{2, 2, []uint32{2}},
		{4, 5, nil},
		{11, 0, nil},
		{7, 3, nil},
		{0, 2, []uint32{1, 2}},
		{9, 1 << 31, []uint32{9, 10}},
		{1<<32 - 3, 1<<32 - 1, nil},
		{8, 12, []uint32{8, 9, 10}},
	} {
		got := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{FromUID: c.from, ToUID: c.to}))
		if !equalUIDs(got, c.want) {
			t.Errorf("Messages(%d:%d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func testDeliverAtomic(t *testing.T, s store.Store) {
	const addr = "atomic@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "other@example.org")
	good := store.Delivery{Account: addr, Blob: blob(1, 100)}
	for name, bad := range map[string]store.Delivery{
		"unknown account":         {Account: "nobody@example.org", Blob: blob(2, 100)},
		"unknown mailbox":         {Account: addr, MailboxID: unknownID, Blob: blob(2, 100)},
		"other account's mailbox": {Account: addr, MailboxID: idOf(t, s, "other@example.org", store.Inbox), Blob: blob(2, 100)},
	} {
		_, err := s.Deliver(ctxBg, []store.Delivery{good, good, bad})
		wantErr(t, name, err, store.ErrNotFound)
	}
	for name, bad := range map[string]store.Delivery{
		"empty blob": {Account: addr},
		"bad flag":   {Account: addr, Blob: []byte("x"), Flags: []string{"bad flag"}},
		"bad flag 2": {Account: addr, Blob: []byte("x"), Flags: []string{"a(b"}},
		"no account": {Blob: []byte("x")},
	} {
		if _, err := s.Deliver(ctxBg, []store.Delivery{good, bad}); err == nil {
			t.Errorf("%s: Deliver succeeded", name)
		}
	}
	m := mailbox(t, s, addr, store.Inbox)
	if m.Messages != 0 || m.UIDNext != 1 || m.SealedSize != 0 || m.HighestModSeq != 1 {
		t.Errorf("failed deliveries left %+v", m)
	}
	if used := usedBytes(t, s, addr); used != 0 {
		t.Errorf("failed deliveries count %d bytes", used)
	}
	// The next good delivery gets UID 1.
	if uids := deliverN(t, s, addr, "", 1, 10); uids[0] != 1 {
		t.Errorf("UID after failed deliveries %d", uids[0])
	}
}

func testQuota(t *testing.T, s store.Store) {
	const addr = "q@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "free@example.org")
	if err := s.SetQuota(ctxBg, addr, 250); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "", 1, 100)
	_, err := s.Deliver(ctxBg, []store.Delivery{
		{Account: "free@example.org", Blob: blob(1, 10)},
		{Account: addr, Blob: blob(2, 100)},
		{Account: addr, Blob: blob(3, 100)},
	})
	wantErr(t, "over quota", err, store.ErrOverQuota)
	if err != nil && !strings.Contains(err.Error(), addr) {
		t.Errorf("quota error %q does not name the account", err)
	}
	if used := usedBytes(t, s, addr); used != 100 {
		t.Errorf("used %d after refused delivery", used)
	}
	if ms := messages(t, s, "free@example.org", store.Inbox, store.ListOptions{}); len(ms) != 0 {
		t.Errorf("other recipient of a refused call got mail")
	}
	// Exactly full is allowed.
	deliverN(t, s, addr, "", 1, 150)
	if used := usedBytes(t, s, addr); used != 250 {
		t.Errorf("used %d", used)
	}
	// Copies count; moves do not.
	_, err = s.CopyMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive"), []uint32{1})
	wantErr(t, "copy over quota", err, store.ErrOverQuota)
	if ms := messages(t, s, addr, "Archive", store.ListOptions{}); len(ms) != 0 {
		t.Errorf("refused copy stored %d", len(ms))
	}
	if _, err := s.MoveMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive"), []uint32{1}); err != nil {
		t.Errorf("move at full quota: %v", err)
	}
	// Freeing space allows mail again; a quota of 0 means no limit.
	if _, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), []uint32{2}); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "", 1, 150)
	if err := s.SetQuota(ctxBg, addr, 0); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "", 1, 1000)
	if used := usedBytes(t, s, addr); used != 1250 {
		t.Errorf("used %d, want 1250", used)
	}
}

func testFlags(t *testing.T, s store.Store) {
	const addr = "f@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 3, 10)
	m0 := mailbox(t, s, addr, store.Inbox)
	ms0 := messages(t, s, addr, store.Inbox, store.ListOptions{})

	res, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{2, 1, 2, 99}, Op: store.FlagsAdd, Flags: []string{`\SEEN`}})
	if err != nil {
		t.Fatal(err)
	}
	if !equalUIDs(uidsOf(res.Changed), []uint32{1, 2}) || len(res.Modified) != 0 {
		t.Fatalf("Changed %v, Modified %v", uidsOf(res.Changed), res.Modified)
	}
	m1 := checkCounters(t, s, addr, store.Inbox)
	seenMod := map[uint64]bool{}
	for _, c := range res.Changed {
		if !equalStrings(c.Flags, []string{`\Seen`}) || c.ModSeq <= m0.HighestModSeq || c.ModSeq > m1.HighestModSeq || seenMod[c.ModSeq] {
			t.Errorf("changed %+v (HIGHESTMODSEQ %d -> %d)", c, m0.HighestModSeq, m1.HighestModSeq)
		}
		seenMod[c.ModSeq] = true
		if c.SealedSize != 10 || !c.InternalDate.Equal(ms0[c.UID-1].InternalDate) || c.Summary != nil {
			t.Errorf("changed message %+v", c)
		}
	}
	if m1.Unseen != 1 || m1.HighestModSeq <= m0.HighestModSeq {
		t.Errorf("after \\Seen: %+v", m1)
	}
	ms1 := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if ms1[2].ModSeq != ms0[2].ModSeq {
		t.Errorf("unchanged message got a new MODSEQ")
	}

	// No change, no new MODSEQ.
	res, err = s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\seen`}})
	if err != nil || len(res.Changed) != 0 {
		t.Errorf("re-adding \\Seen: %+v, %v", res, err)
	}
	if m := mailbox(t, s, addr, store.Inbox); m.HighestModSeq != m1.HighestModSeq {
		t.Errorf("no-op STORE moved HIGHESTMODSEQ")
	}

	// Keywords: kept as given, deduplicated case-insensitively, sorted.
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{"Work", "$Junk", "work", `\Deleted`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{"WORK"}}); err != nil {
		t.Fatal(err)
	}
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{ToUID: 1})
	if !equalStrings(ms[0].Flags, []string{"$Junk", "Work", `\Deleted`, `\Seen`}) {
		t.Errorf("flags %q", ms[0].Flags)
	}
	if m := checkCounters(t, s, addr, store.Inbox); m.Deleted != 1 {
		t.Errorf("Deleted counter %d", m.Deleted)
	}
	// Remove is case-insensitive.
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsRemove, Flags: []string{"work", `\deleted`}}); err != nil {
		t.Fatal(err)
	}
	ms = messages(t, s, addr, store.Inbox, store.ListOptions{ToUID: 1})
	if !equalStrings(ms[0].Flags, []string{"$Junk", `\Seen`}) {
		t.Errorf("flags after remove %q", ms[0].Flags)
	}
	// Set replaces.
	res, err = s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1, 2, 3}, Op: store.FlagsSet, Flags: []string{`\Answered`, `\Draft`}})
	if err != nil || len(res.Changed) != 3 {
		t.Fatalf("Set: %+v, %v", res, err)
	}
	for _, msg := range messages(t, s, addr, store.Inbox, store.ListOptions{}) {
		if !equalStrings(msg.Flags, []string{`\Answered`, `\Draft`}) {
			t.Errorf("UID %d flags %q after Set", msg.UID, msg.Flags)
		}
	}
	if m := checkCounters(t, s, addr, store.Inbox); m.Unseen != 3 || m.Deleted != 0 {
		t.Errorf("counters after Set %+v", m)
	}
	// Bad flags change nothing.
	before := mailbox(t, s, addr, store.Inbox)
	for _, bad := range [][]string{{""}, {"two words"}, {`\`}, {"x\x00"}, {strings.Repeat("k", 1000)}, {"ü"}} {
		if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: bad}); err == nil {
			t.Errorf("StoreFlags(%q) succeeded", bad)
		}
	}
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1}, Op: 77}); err == nil {
		t.Errorf("unknown FlagOp accepted")
	}
	if m := mailbox(t, s, addr, store.Inbox); m != before {
		t.Errorf("refused STORE changed the mailbox")
	}
	_, err = s.StoreFlags(ctxBg, addr, unknownID, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	wantErr(t, "StoreFlags in unknown mailbox", err, store.ErrNotFound)
}

func testUnchangedSince(t *testing.T, s store.Store) {
	const addr = "u@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 3, 10)
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	// Touch message 2 so that its MODSEQ is the highest.
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$x"}}); err != nil {
		t.Fatal(err)
	}
	since := ms[2].ModSeq // the highest after delivery
	res, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{
		UIDs: []uint32{1, 2, 3}, Op: store.FlagsAdd, Flags: []string{`\Seen`}, UnchangedSince: since,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !equalUIDs(uidsOf(res.Changed), []uint32{1, 3}) || !equalUIDs(res.Modified, []uint32{2}) {
		t.Errorf("Changed %v Modified %v", uidsOf(res.Changed), res.Modified)
	}
	after := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if store.HasFlag(after[1].Flags, store.FlagSeen) {
		t.Errorf("modified message was changed")
	}
	checkCounters(t, s, addr, store.Inbox)
}

func testExpunge(t *testing.T, s store.Store) {
	const addr = "x@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 5, 10)
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{`\Deleted`, `\Seen`}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSummaries(ctxBg, addr, idOf(t, s, addr, store.Inbox), []store.SummaryUpdate{{UID: 4, Summary: []byte("s"), SessionKey: []byte("k")}}); err != nil {
		t.Fatal(err)
	}
	m0 := mailbox(t, s, addr, store.Inbox)
	got, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), []uint32{4, 2, 9, 2})
	if err != nil {
		t.Fatal(err)
	}
	if !equalUIDs(got.UIDs, []uint32{2, 4}) {
		t.Errorf("Expunge = %v", got)
	}
	if uids := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})); !equalUIDs(uids, []uint32{1, 3, 5}) {
		t.Errorf("left %v", uids)
	}
	m := checkCounters(t, s, addr, store.Inbox)
	if m.Deleted != 0 || m.Unseen != 3 || m.HighestModSeq <= m0.HighestModSeq || m.UIDNext != 6 {
		t.Errorf("after expunge %+v", m)
	}
	// The removal's mod-sequence: the new HIGHESTMODSEQ, one above the
	// old, that of its tombstones.
	if got.ModSeq != m.HighestModSeq || got.ModSeq != m0.HighestModSeq+1 {
		t.Errorf("Expunge's ModSeq %d; HIGHESTMODSEQ %d before, %d after", got.ModSeq, m0.HighestModSeq, m.HighestModSeq)
	}
	if v, err := s.Vanished(ctxBg, addr, m.ID, got.ModSeq-1); err != nil || !equalUIDs(v.UIDs, []uint32{2, 4}) {
		t.Errorf("Vanished since %d = %+v, %v", got.ModSeq-1, v, err)
	}
	_, err = s.Blob(ctxBg, addr, idOf(t, s, addr, store.Inbox), 2)
	wantErr(t, "expunged blob", err, store.ErrNotFound)
	if used := usedBytes(t, s, addr); used != 30 {
		t.Errorf("used %d", used)
	}
	// Nothing to do: no new HIGHESTMODSEQ.
	if got, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), []uint32{2, 100}); err != nil || len(got.UIDs) != 0 || got.ModSeq != 0 {
		t.Errorf("Expunge of gone UIDs = %v, %v", got, err)
	}
	if m2 := mailbox(t, s, addr, store.Inbox); m2 != m {
		t.Errorf("empty expunge changed %+v -> %+v", m, m2)
	}
	// UIDs are never reused.
	if uids := deliverN(t, s, addr, "", 1, 10); uids[0] != 6 {
		t.Errorf("next UID %d", uids[0])
	}
	_, err = s.Expunge(ctxBg, addr, unknownID, []uint32{1})
	wantErr(t, "Expunge in unknown mailbox", err, store.ErrNotFound)
}

// copySetup delivers five messages with flags and summaries to INBOX.
func copySetup(t *testing.T, s store.Store, addr string) []store.Message {
	t.Helper()
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 5, 40)
	if _, err := s.StoreFlags(ctxBg, addr, idOf(t, s, addr, store.Inbox), store.FlagUpdate{UIDs: []uint32{1, 3}, Op: store.FlagsAdd, Flags: []string{`\Seen`, "$Work"}}); err != nil {
		t.Fatal(err)
	}
	var us []store.SummaryUpdate
	for uid := uint32(1); uid <= 5; uid++ {
		us = append(us, store.SummaryUpdate{UID: uid, Summary: []byte{'s', byte(uid)}, SessionKey: []byte{'k', byte(uid)}})
	}
	if err := s.SetSummaries(ctxBg, addr, idOf(t, s, addr, store.Inbox), us); err != nil {
		t.Fatal(err)
	}
	return messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
}

// sameContent checks that dst holds copies of src's messages (by pairs).
func sameContent(t *testing.T, s store.Store, addr, srcBox string, src []store.Message, dstBox string, pairs []store.UIDPair) {
	t.Helper()
	dst := messages(t, s, addr, dstBox, store.ListOptions{WithSummary: true})
	byUID := map[uint32]store.Message{}
	for _, m := range dst {
		byUID[m.UID] = m
	}
	srcBy := map[uint32]store.Message{}
	for _, m := range src {
		srcBy[m.UID] = m
	}
	for _, p := range pairs {
		a, b := srcBy[p.Src], byUID[p.Dst]
		if !equalStrings(a.Flags, b.Flags) || !a.InternalDate.Equal(b.InternalDate) || a.SealedSize != b.SealedSize ||
			!bytes.Equal(a.Summary, b.Summary) || !bytes.Equal(a.SessionKey, b.SessionKey) {
			t.Errorf("copy %d->%d: %+v vs %+v", p.Src, p.Dst, a, b)
		}
		bb, err := s.Blob(ctxBg, addr, idOf(t, s, addr, dstBox), p.Dst)
		if err != nil || !bytes.Equal(bb, blob(int(p.Src)-1+40, 40)) {
			t.Errorf("blob of copy %d->%d: %v", p.Src, p.Dst, err)
		}
	}
	_ = srcBox
}

func testCopy(t *testing.T, s store.Store) {
	const addr = "c@example.org"
	src := copySetup(t, s, addr)
	deliverN(t, s, addr, "Archive", 2, 10)
	arch := mailbox(t, s, addr, "Archive")
	res, err := s.CopyMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive"), []uint32{5, 1, 3, 42})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UIDPair{{Src: 1, Dst: 3}, {Src: 3, Dst: 4}, {Src: 5, Dst: 5}}
	if res.DstUIDValidity != arch.UIDValidity || len(res.Pairs) != len(want) {
		t.Fatalf("CopyResult %+v", res)
	}
	for i := range want {
		if res.Pairs[i] != want[i] {
			t.Errorf("pair %d = %v, want %v", i, res.Pairs[i], want[i])
		}
	}
	sameContent(t, s, addr, store.Inbox, src, "Archive", res.Pairs)
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true}); len(ms) != 5 {
		t.Errorf("copy changed the source: %d left", len(ms))
	}
	a := checkCounters(t, s, addr, "Archive")
	if a.Messages != 5 || a.Unseen != 3 || a.UIDNext != 6 || a.HighestModSeq <= arch.HighestModSeq {
		t.Errorf("Archive after copy %+v", a)
	}
	checkCounters(t, s, addr, store.Inbox)
	if used := usedBytes(t, s, addr); used != 5*40+2*10+3*40 {
		t.Errorf("used %d", used)
	}
	// A copy is independent: expunging the original keeps it.
	if _, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Blob(ctxBg, addr, idOf(t, s, addr, "Archive"), 3); err != nil || len(b) != 40 {
		t.Errorf("copy after expunging the original: %v", err)
	}
	// Copy to the same mailbox appends.
	res, err = s.CopyMessages(ctxBg, addr, idOf(t, s, addr, "Archive"), idOf(t, s, addr, "Archive"), []uint32{3})
	if err != nil || len(res.Pairs) != 1 || res.Pairs[0] != (store.UIDPair{Src: 3, Dst: 6}) {
		t.Errorf("self copy %+v, %v", res, err)
	}
	checkCounters(t, s, addr, "Archive")
	usedBytes(t, s, addr)
	// Unknown mailboxes.
	_, err = s.CopyMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), unknownID, []uint32{2})
	wantErr(t, "copy to unknown", err, store.ErrNotFound)
	_, err = s.CopyMessages(ctxBg, addr, unknownID, idOf(t, s, addr, store.Inbox), []uint32{2})
	wantErr(t, "copy from unknown", err, store.ErrNotFound)
	// Nothing to copy.
	if res, err := s.CopyMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive"), []uint32{77}); err != nil || len(res.Pairs) != 0 {
		t.Errorf("copy of nothing %+v, %v", res, err)
	}
}

func testMove(t *testing.T, s store.Store) {
	const addr = "mv@example.org"
	src := copySetup(t, s, addr)
	in0 := mailbox(t, s, addr, store.Inbox)
	used0 := usedBytes(t, s, addr)
	res, err := s.MoveMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Trash"), []uint32{4, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UIDPair{{Src: 2, Dst: 1}, {Src: 3, Dst: 2}, {Src: 4, Dst: 3}}
	if res.DstUIDValidity != mailbox(t, s, addr, "Trash").UIDValidity || len(res.Pairs) != 3 {
		t.Fatalf("MoveResult %+v", res)
	}
	for i := range want {
		if res.Pairs[i] != want[i] {
			t.Errorf("pair %d = %v, want %v", i, res.Pairs[i], want[i])
		}
	}
	sameContent(t, s, addr, store.Inbox, src, "Trash", res.Pairs)
	if uids := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{})); !equalUIDs(uids, []uint32{1, 5}) {
		t.Errorf("INBOX after move %v", uids)
	}
	in := checkCounters(t, s, addr, store.Inbox)
	if in.HighestModSeq <= in0.HighestModSeq || in.UIDNext != in0.UIDNext {
		t.Errorf("INBOX after move %+v", in)
	}
	checkCounters(t, s, addr, "Trash")
	if used := usedBytes(t, s, addr); used != used0 {
		t.Errorf("move changed used bytes %d -> %d", used0, used)
	}
	_, err = s.Blob(ctxBg, addr, idOf(t, s, addr, store.Inbox), 2)
	wantErr(t, "moved-away blob", err, store.ErrNotFound)
	// Moved messages can be expunged and their bytes freed.
	if _, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, "Trash"), []uint32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if used := usedBytes(t, s, addr); used != 80 {
		t.Errorf("used after expunging moved mail %d", used)
	}
	_, err = s.MoveMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), unknownID, []uint32{1})
	wantErr(t, "move to unknown", err, store.ErrNotFound)
	if uids := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{})); !equalUIDs(uids, []uint32{1, 5}) {
		t.Errorf("failed move changed INBOX: %v", uids)
	}
}

func testSummaries(t *testing.T, s store.Store) {
	const addr = "sum@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 3, 10)
	err := s.SetSummaries(ctxBg, addr, idOf(t, s, addr, store.Inbox), []store.SummaryUpdate{
		{UID: 2, Summary: []byte("summary two"), SessionKey: []byte("key two")},
		{UID: 99, Summary: []byte("nobody"), SessionKey: []byte("nobody")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	if len(ms) != 3 || string(ms[1].Summary) != "summary two" || string(ms[1].SessionKey) != "key two" ||
		ms[0].Summary != nil || ms[2].SessionKey != nil {
		t.Errorf("WithSummary: %+v", ms)
	}
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); ms[1].Summary != nil {
		t.Errorf("summary listed without WithSummary")
	}
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{FromUID: 2, ToUID: 2, WithSummary: true}); len(ms) != 1 || string(ms[0].Summary) != "summary two" {
		t.Errorf("ranged WithSummary: %+v", ms)
	}
	// Replacing a summary; summaries do not touch MODSEQ.
	m0 := mailbox(t, s, addr, store.Inbox)
	if err := s.SetSummaries(ctxBg, addr, idOf(t, s, addr, store.Inbox), []store.SummaryUpdate{{UID: 2, Summary: []byte("v2"), SessionKey: []byte("k2")}}); err != nil {
		t.Fatal(err)
	}
	ms = messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	if string(ms[1].Summary) != "v2" || string(ms[1].SessionKey) != "k2" {
		t.Errorf("replaced summary %+v", ms[1])
	}
	if m := mailbox(t, s, addr, store.Inbox); m != m0 {
		t.Errorf("SetSummaries changed the mailbox")
	}
	err = s.SetSummaries(ctxBg, addr, unknownID, []store.SummaryUpdate{{UID: 1, Summary: []byte("x")}})
	wantErr(t, "SetSummaries unknown mailbox", err, store.ErrNotFound)
}

// testLargeMailbox: a few thousand messages in single calls — deliver,
// list, move, expunge — with exact books.
func testLargeMailbox(t *testing.T, s store.Store) {
	const (
		addr = "large@example.org"
		n    = 3000
	)
	newAccount(t, s, addr)
	uids := deliverN(t, s, addr, "", n, 16)
	if len(uids) != n || uids[n-1] != n {
		t.Fatalf("delivered %d, last UID %d", len(uids), uids[len(uids)-1])
	}
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != n {
		t.Fatalf("listed %d", len(ms))
	}
	res, err := s.MoveMessages(ctxBg, addr, idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive"), uids[:n/2])
	if err != nil || len(res.Pairs) != n/2 {
		t.Fatalf("move %d: %v", len(res.Pairs), err)
	}
	got, err := s.Expunge(ctxBg, addr, idOf(t, s, addr, store.Inbox), uids)
	if err != nil || len(got.UIDs) != n/2 {
		t.Fatalf("expunge removed %d: %v", len(got.UIDs), err)
	}
	got, err = s.Expunge(ctxBg, addr, idOf(t, s, addr, "Archive"), uids)
	if err != nil || len(got.UIDs) != n/2 {
		t.Fatalf("expunge removed %d: %v", len(got.UIDs), err)
	}
	for _, mb := range []string{store.Inbox, "Archive"} {
		if m := checkCounters(t, s, addr, mb); m.Messages != 0 || m.SealedSize != 0 {
			t.Errorf("%s after expunge %+v", mb, m)
		}
	}
	if used := usedBytes(t, s, addr); used != 0 {
		t.Errorf("used %d", used)
	}
	_, err = s.Blob(ctxBg, addr, idOf(t, s, addr, "Archive"), 1)
	wantErr(t, "expunged blob", err, store.ErrNotFound)
}
