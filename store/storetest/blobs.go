package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// testBlobs: Blobs returns what Blob returns for each UID asked, in the
// order asked, small and staged blobs alike; nil for UIDs the mailbox
// does not hold (never delivered, expunged, in another mailbox);
// ErrNotFound for an unknown mailbox or account.
func testBlobs(t *testing.T, s store.Store) {
	addr := "blobs@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "other@example.org")
	inbox := idOf(t, s, addr, store.Inbox)
	small := deliverN(t, s, addr, store.Inbox, 5, 300)
	big := blob(7, bigSize)
	sb := stage(t, s, addr, big, 1<<20)
	got, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, InternalDate: date0, Staged: &sb}})
	if err != nil {
		t.Fatalf("Deliver staged: %v", err)
	}
	staged := got[0].UID
	deliverN(t, s, addr, "Archive", 2, 100)
	deliverN(t, s, "other@example.org", store.Inbox, 8, 50)
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{small[1]}); err != nil {
		t.Fatalf("Expunge: %v", err)
	}

	// Out of order, a repeat, the staged blob, an expunged UID, one never
	// used and one of another mailbox's range.
	uids := []uint32{small[4], small[0], staged, small[1], 999, small[0], small[2]}
	bs, err := s.Blobs(ctxBg, addr, inbox, uids)
	if err != nil {
		t.Fatalf("Blobs: %v", err)
	}
	if len(bs) != len(uids) {
		t.Fatalf("Blobs returned %d, want %d", len(bs), len(uids))
	}
	for i, uid := range uids {
		want, err := s.Blob(ctxBg, addr, inbox, uid)
		switch {
		case uid == small[1] || uid == 999:
			if bs[i] != nil {
				t.Errorf("Blobs[%d] (uid %d, not in the mailbox) = %d bytes, want nil", i, uid, len(bs[i]))
			}
			wantErr(t, "Blob of a UID not in the mailbox", err, store.ErrNotFound)
		case err != nil:
			t.Fatalf("Blob(%d): %v", uid, err)
		case bs[i] == nil || !bytes.Equal(bs[i], want):
			t.Errorf("Blobs[%d] (uid %d) = %d bytes, want Blob's %d", i, uid, len(bs[i]), len(want))
		}
	}
	if !bytes.Equal(bs[2], big) {
		t.Errorf("staged blob: %d bytes, want %d", len(bs[2]), len(big))
	}
	// The caller owns what it got: changing it changes nothing stored.
	bs[0][0] ^= 0xff
	if again, err := s.Blob(ctxBg, addr, inbox, small[4]); err != nil || again[0] == bs[0][0] {
		t.Errorf("a returned blob is shared with the store (%v)", err)
	}

	if bs, err := s.Blobs(ctxBg, addr, inbox, nil); err != nil || len(bs) != 0 {
		t.Errorf("Blobs of no UIDs = %d, %v", len(bs), err)
	}
	_, err = s.Blobs(ctxBg, addr, unknownID, []uint32{1})
	wantErr(t, "Blobs in an unknown mailbox", err, store.ErrNotFound)
	_, err = s.Blobs(ctxBg, "nobody@example.org", inbox, []uint32{1})
	wantErr(t, "Blobs of an unknown account", err, store.ErrNotFound)
	// Another account's mailbox ID is not this account's.
	_, err = s.Blobs(ctxBg, "other@example.org", inbox, []uint32{1})
	wantErr(t, "Blobs in another account's mailbox", err, store.ErrNotFound)
	archive := idOf(t, s, addr, "Archive")
	if bs, err := s.Blobs(ctxBg, addr, archive, []uint32{1, 2}); err != nil || bs[0] == nil || bs[1] == nil {
		t.Fatalf("Blobs in Archive: %v", err)
	}
	if err := s.DeleteMailbox(ctxBg, addr, archive); err != nil {
		t.Fatal(err)
	}
	_, err = s.Blobs(ctxBg, addr, archive, []uint32{1, 2})
	wantErr(t, "Blobs in a deleted mailbox", err, store.ErrNotFound)
}

// testBlobsInterleaved: messages whose blobs are far apart and out of
// UID order (delivered in turns to two mailboxes, some moved back and
// forth) come back right from Blobs and, with their summaries, from
// Messages, whether the listing is the mailbox's first or not, and
// after the store wrote more.
func testBlobsInterleaved(t *testing.T, s store.Store) {
	const addr = "turns@example.org"
	newAccount(t, s, addr)
	inbox, archive := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive")
	for turn := range 6 {
		name := store.Inbox
		if turn%2 == 1 {
			name = "Archive"
		}
		deliverN(t, s, addr, name, 5+turn*7, 40+turn)
	}
	// Archive's first messages move to INBOX, after INBOX's: their blob
	// IDs are lower than those of INBOX's later UIDs.
	arch := messages(t, s, addr, "Archive", store.ListOptions{})
	var move []uint32
	for _, m := range arch[:9] {
		move = append(move, m.UID)
	}
	if _, err := s.MoveMessages(ctxBg, addr, archive, inbox, move); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
		var us []store.SummaryUpdate
		uids := make([]uint32, 0, len(ms)+2)
		for i := len(ms) - 1; i >= 0; i-- { // descending, so not in blob order
			uids = append(uids, ms[i].UID)
			if ms[i].UID%3 != 0 {
				us = append(us, store.SummaryUpdate{UID: ms[i].UID, Summary: fmt.Appendf(nil, "sum %d", ms[i].UID), SessionKey: fmt.Appendf(nil, "sk %d", ms[i].UID)})
			}
		}
		uids = append(uids, 0, 10000)
		if err := s.SetSummaries(ctxBg, addr, inbox, us); err != nil {
			t.Fatal(err)
		}
		bs, err := s.Blobs(ctxBg, addr, inbox, uids)
		if err != nil {
			t.Fatalf("%s: Blobs: %v", when, err)
		}
		for i, uid := range uids {
			want, err := s.Blob(ctxBg, addr, inbox, uid)
			if err != nil {
				if bs[i] != nil {
					t.Errorf("%s: Blobs gave %d bytes for uid %d, Blob %v", when, len(bs[i]), uid, err)
				}
				continue
			}
			if !bytes.Equal(bs[i], want) {
				t.Errorf("%s: Blobs of uid %d differs from Blob", when, uid)
			}
		}
		for range 2 { // the first listing reads the disk, the second may not
			for _, m := range messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true}) {
				want, wantSK := fmt.Sprintf("sum %d", m.UID), fmt.Sprintf("sk %d", m.UID)
				if m.UID%3 == 0 {
					want, wantSK = "", ""
				}
				if string(m.Summary) != want || string(m.SessionKey) != wantSK {
					t.Errorf("%s: uid %d summary %q, %q; want %q, %q", when, m.UID, m.Summary, m.SessionKey, want, wantSK)
				}
			}
		}
	}
	check("after the move")
	// More deliveries elsewhere and flag changes in INBOX.
	deliverN(t, s, addr, "Archive", 40, 33)
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if _, err := s.StoreFlags(ctxBg, addr, inbox, store.FlagUpdate{UIDs: []uint32{ms[0].UID, ms[5].UID}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}}); err != nil {
		t.Fatal(err)
	}
	check("after more writes")
}
