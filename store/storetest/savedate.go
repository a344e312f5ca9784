package storetest

import (
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// testSaveDateEmailID: a message's save date is when it was saved into
// its mailbox (delivery, copy, move), by the store's clock; its email ID
// is unique per delivery and kept by copies and moves.
func testSaveDateEmailID(t *testing.T, s store.Store) {
	const addr = "saved@example.org"
	newAccount(t, s, addr)
	inbox, trash, archive := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Trash"), idOf(t, s, addr, "Archive")
	before := time.Now().Add(-time.Second)
	deliverN(t, s, addr, "", 3, 10) // internal dates in 2026-11, not now
	after := time.Now().Add(time.Second)
	in := messages(t, s, addr, store.Inbox, store.ListOptions{})
	ids := map[uint64]bool{}
	for _, m := range in {
		if m.SaveDate.Before(before) || m.SaveDate.After(after) {
			t.Errorf("UID %d: save date %v, want the time of delivery", m.UID, m.SaveDate)
		}
		if m.EmailID == 0 || ids[m.EmailID] {
			t.Errorf("UID %d: email ID %d, want a new one", m.UID, m.EmailID)
		}
		ids[m.EmailID] = true
	}

	time.Sleep(1100 * time.Millisecond) // the copies' save date is later
	mid := time.Now().Add(-10 * time.Millisecond)
	if _, err := s.CopyMessages(ctxBg, addr, inbox, trash, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveMessages(ctxBg, addr, inbox, archive, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	res, err := s.StoreFlags(ctxBg, addr, trash, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %+v, %v", res, err)
	}
	copies := messages(t, s, addr, "Trash", store.ListOptions{})
	moved := messages(t, s, addr, "Archive", store.ListOptions{})
	if len(copies) != 2 || len(moved) != 1 {
		t.Fatalf("copied %d, moved %d", len(copies), len(moved))
	}
	for i, m := range append(copies, moved...) {
		orig := in[i]
		if m.EmailID != orig.EmailID {
			t.Errorf("copy or move of UID %d: email ID %d, want the original's %d", orig.UID, m.EmailID, orig.EmailID)
		}
		if m.SaveDate.Before(mid) || !m.SaveDate.After(orig.SaveDate) {
			t.Errorf("copy or move of UID %d: save date %v, want the time of the copy (after %v)", orig.UID, m.SaveDate, mid)
		}
		if !m.InternalDate.Equal(orig.InternalDate) {
			t.Errorf("copy or move of UID %d: internal date %v, want %v", orig.UID, m.InternalDate, orig.InternalDate)
		}
	}
	if c := res.Changed[0]; c.EmailID != copies[0].EmailID || !c.SaveDate.Equal(copies[0].SaveDate) {
		t.Errorf("StoreFlags result %+v, want email ID and save date of %+v", c, copies[0])
	}
	// A copy of a copy still shares the ID; the originals keep theirs.
	if _, err := s.CopyMessages(ctxBg, addr, trash, inbox, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	in2 := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if len(in2) != 3 || in2[2].EmailID != in[1].EmailID || in2[0].EmailID != in[0].EmailID || !in2[0].SaveDate.Equal(in[0].SaveDate) {
		t.Errorf("after copying back: %+v", in2)
	}
}
