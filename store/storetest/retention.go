package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The retention section of the suite: policy data, per-message states,
// the vault, the sweeper's index, and the rule that no path destroys a
// protected message. It runs as Run's "Retention" subtests.
func testRetention(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PolicyData", testRetentionPolicyData},
		{"Deliver", testRetentionDeliver},
		{"ExpungeVaults", testRetentionExpunge},
		{"PendingWithoutPolicy", testRetentionPendingNoPolicy},
		{"DueAndDestroy", testRetentionDue},
		{"SetRetention", testRetentionSet},
		{"MoveCopy", testRetentionMoveCopy},
		{"DeleteMailbox", testRetentionDeleteMailbox},
		{"DeleteAccount", testRetentionDeleteAccount},
		{"RestoreAndRestrict", testRetentionRestore},
		{"LargeExpunge", testRetentionLargeExpunge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir())
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
	t.Run("Reopen", func(t *testing.T) { testRetentionReopen(t, open) })
}

var (
	now0   = time.Now().UTC().Truncate(time.Second)
	past   = now0.Add(-48 * time.Hour)
	future = now0.Add(365 * 24 * time.Hour)
)

// inForce makes some policy in force (an assignment), so that pending
// messages count as protected, and returns the generation.
func inForce(t *testing.T, s store.Store) uint64 {
	t.Helper()
	if err := s.PutAssignment(ctxBg, store.Assignment{Preset: "P", Scope: "org"}); err != nil {
		t.Fatal(err)
	}
	gen, err := s.PolicyGen(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// deliverRet delivers one message with state r to addr's INBOX and
// returns its UID.
func deliverRet(t *testing.T, s store.Store, addr string, seed int, r *store.Retention) uint32 {
	t.Helper()
	got, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Blob: blob(seed, 100+seed), Retention: r}})
	if err != nil {
		t.Fatal(err)
	}
	return got[0].UID
}

func retainedOne(t *testing.T, s store.Store, addr string, mbox uint64, uid uint32) store.RetainedMessage {
	t.Helper()
	rs, err := s.RetainedByUID(ctxBg, addr, mbox, []uint32{uid})
	if err != nil || len(rs) != 1 {
		t.Fatalf("RetainedByUID(%d) = %v, %v", uid, rs, err)
	}
	return rs[0]
}

func vaultIDs(t *testing.T, s store.Store, o store.Owner) map[uint64]store.VaultEntry {
	t.Helper()
	v, err := s.Vault(ctxBg, o)
	if err != nil {
		t.Fatalf("Vault(%+v): %v", o, err)
	}
	m := map[uint64]store.VaultEntry{}
	for _, e := range v {
		m[e.ID] = e
	}
	return m
}

func testRetentionPolicyData(t *testing.T, s store.Store) {
	gen0, err := s.PolicyGen(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		gen, err := s.PolicyGen(ctxBg)
		if err != nil || gen <= gen0 {
			t.Fatalf("%s: generation %d after %d (%v)", what, gen, gen0, err)
		}
		gen0 = gen
	}
	step("PutPreset", s.PutPreset(ctxBg, store.Preset{ID: "B", Version: 1, Source: []byte("id: B\n"), Imported: date0, By: "cli:root"}))
	step("PutPreset", s.PutPreset(ctxBg, store.Preset{ID: "A", Version: 2, Source: []byte("id: A\n"), Imported: date0}))
	step("PutPreset again", s.PutPreset(ctxBg, store.Preset{ID: "B", Version: 3, Source: []byte("id: B\nversion: 3\n"), Imported: date0}))
	ps, err := s.Presets(ctxBg)
	if err != nil || len(ps) != 2 || ps[0].ID != "A" || ps[1].ID != "B" || ps[1].Version != 3 || string(ps[1].Source) != "id: B\nversion: 3\n" {
		t.Fatalf("Presets = %+v, %v", ps, err)
	}
	step("PutAssignment", s.PutAssignment(ctxBg, store.Assignment{Preset: "B", Scope: "user:a@example.org", Created: date0, By: "cli", Reason: "r"}))
	step("PutAssignment", s.PutAssignment(ctxBg, store.Assignment{Preset: "A", Scope: "org"}))
	step("PutAssignment", s.PutAssignment(ctxBg, store.Assignment{Preset: "A", Scope: "mailbox:a@example.org#7", Class: "trash", Zone: "Europe/Berlin", FiscalYearStart: "04-01"}))
	as, err := s.Assignments(ctxBg)
	if err != nil || len(as) != 3 || as[0].Scope != "mailbox:a@example.org#7" || as[0].Class != "trash" || as[0].Zone != "Europe/Berlin" ||
		as[0].FiscalYearStart != "04-01" || as[1].Scope != "org" || as[2].Reason != "r" || !as[2].Created.Equal(date0) {
		t.Fatalf("Assignments = %+v, %v", as, err)
	}
	step("DeleteAssignment", s.DeleteAssignment(ctxBg, "A", "org"))
	wantErr(t, "DeleteAssignment again", s.DeleteAssignment(ctxBg, "A", "org"), store.ErrNotFound)

	h1, err := s.AddHold(ctxBg, store.Hold{Matter: "M-1", Reason: "lawsuit", Scope: "user:a@example.org", From: date0, To: date0.Add(time.Hour), Placed: date0, PlacedBy: "cli"})
	step("AddHold", err)
	h2, err := s.AddHold(ctxBg, store.Hold{Matter: "M-2", Scope: "org"})
	step("AddHold", err)
	if h1.ID == 0 || h2.ID <= h1.ID {
		t.Fatalf("hold IDs %d, %d", h1.ID, h2.ID)
	}
	rel, err := s.ReleaseHold(ctxBg, h1.ID, date0.Add(2*time.Hour), "cli", "settled")
	step("ReleaseHold", err)
	if rel.Active() || rel.ReleaseReason != "settled" {
		t.Errorf("released hold %+v", rel)
	}
	_, err = s.ReleaseHold(ctxBg, h1.ID, time.Time{}, "cli", "again")
	wantErr(t, "ReleaseHold twice", err, store.ErrExists)
	_, err = s.ReleaseHold(ctxBg, 999, time.Time{}, "cli", "x")
	wantErr(t, "ReleaseHold unknown", err, store.ErrNotFound)
	hs, err := s.Holds(ctxBg)
	if err != nil || len(hs) != 2 || hs[0].Matter != "M-1" || hs[0].Active() || !hs[0].To.Equal(date0.Add(time.Hour)) || !hs[1].Active() {
		t.Fatalf("Holds = %+v, %v", hs, err)
	}
	step("PutRetentionEvent", s.PutRetentionEvent(ctxBg, store.RetentionEvent{Name: "account-closed", Scope: "user:a@example.org", At: date0}))
	step("PutRetentionEvent", s.PutRetentionEvent(ctxBg, store.RetentionEvent{Name: "account-closed", Scope: "user:a@example.org", At: date0.Add(time.Hour)}))
	es, err := s.RetentionEvents(ctxBg)
	if err != nil || len(es) != 1 || !es[0].At.Equal(date0.Add(time.Hour)) {
		t.Fatalf("RetentionEvents = %+v, %v", es, err)
	}
}

func testRetentionDeliver(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	r := &store.Retention{Origin: "newsletter", Class: "newsletter", DeleteAfter: future, Rule: "max P@1", Gen: gen}
	before := time.Now().Add(-time.Second)
	uid := deliverRet(t, s, addr, 1, r)
	got := retainedOne(t, s, addr, inbox, uid)
	if got.Retention.Pending || got.Retention.Class != "newsletter" || !got.Retention.DeleteAfter.Equal(future) ||
		got.Retention.Arrival.Before(before) || got.MailboxID != inbox || got.UID != uid || got.Vaulted || got.SealedSize != 101 {
		t.Errorf("stamped delivery: %+v", got)
	}
	// Without a state, or with one from an older generation: pending.
	uid2 := deliverRet(t, s, addr, 2, nil)
	uid3 := deliverRet(t, s, addr, 3, &store.Retention{Class: "default", Gen: gen - 1})
	for _, u := range []uint32{uid2, uid3} {
		if got := retainedOne(t, s, addr, inbox, u); !got.Retention.Pending {
			t.Errorf("UID %d: not pending: %+v", u, got)
		}
	}
	pend, err := s.PendingRetention(ctxBg, 0)
	if err != nil || len(pend) != 2 || pend[0].Owner != (store.Owner{Address: addr}) {
		t.Fatalf("PendingRetention = %+v, %v", pend, err)
	}
	// The APPEND date is the message's internal date, never its arrival.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Blob: blob(4, 50), InternalDate: old}})
	if err != nil {
		t.Fatal(err)
	}
	if got := retainedOne(t, s, addr, inbox, d[0].UID); got.Retention.Arrival.Before(before) {
		t.Errorf("arrival %s follows the APPEND date", got.Retention.Arrival)
	}
	all, err := s.Retained(ctxBg, store.Owner{Address: addr}, 0, 0)
	if err != nil || len(all) != 4 {
		t.Fatalf("Retained = %d, %v", len(all), err)
	}
	page, err := s.Retained(ctxBg, store.Owner{Address: addr}, all[1].ID, 1)
	if err != nil || len(page) != 1 || page[0].ID != all[2].ID {
		t.Errorf("Retained after %d = %+v, %v", all[1].ID, page, err)
	}
	_, err = s.Retained(ctxBg, store.Owner{Address: "nobody@example.org"}, 0, 0)
	wantErr(t, "Retained of unknown account", err, store.ErrNotFound)
}

func testRetentionExpunge(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	keep := deliverRet(t, s, addr, 1, &store.Retention{Class: "business-letter", KeepUntil: future, Rule: "min DE", Gen: gen})
	free := deliverRet(t, s, addr, 2, &store.Retention{Class: "newsletter", KeepUntil: past, Gen: gen})
	held := deliverRet(t, s, addr, 3, &store.Retention{Class: "default", Held: true, Gen: gen})
	pend := deliverRet(t, s, addr, 4, nil)
	stay := deliverRet(t, s, addr, 5, &store.Retention{Gen: gen})
	if _, err := s.StoreFlags(ctxBg, addr, inbox, store.FlagUpdate{UIDs: []uint32{keep}, Op: store.FlagsAdd, Flags: []string{`\Seen`, "$Work"}}); err != nil {
		t.Fatal(err)
	}
	ids := map[uint32]uint64{}
	for _, u := range []uint32{keep, free, held, pend} {
		ids[u] = retainedOne(t, s, addr, inbox, u).ID
	}
	removed, vaulted, err := s.ExpungeReport(ctxBg, addr, inbox, []uint32{keep, free, held, pend})
	if err != nil {
		t.Fatal(err)
	}
	if !equalUIDs(removed.UIDs, []uint32{keep, free, held, pend}) || !equalUIDs(vaulted, []uint32{keep, held, pend}) {
		t.Errorf("ExpungeReport = %v, vaulted %v", removed, vaulted)
	}
	// The user's view is exactly as if they were destroyed.
	if uids := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{})); !equalUIDs(uids, []uint32{stay}) {
		t.Errorf("left %v", uids)
	}
	checkCounters(t, s, addr, store.Inbox)
	if used := usedBytes(t, s, addr); used != 105 {
		t.Errorf("used %d, want 105 (vaulted bytes do not count)", used)
	}
	for _, u := range []uint32{keep, free} {
		_, err := s.Blob(ctxBg, addr, inbox, u)
		wantErr(t, "Blob of an expunged message", err, store.ErrNotFound)
	}
	v := vaultIDs(t, s, store.Owner{Address: addr})
	if len(v) != 3 {
		t.Fatalf("vault %+v", v)
	}
	e := v[ids[keep]]
	if e.MailboxID != inbox || e.Mailbox != store.Inbox || e.UID != keep || e.Reason != "expunge" || e.SealedSize != 101 ||
		!equalStrings(e.Flags, []string{"$Work", `\Seen`}) || e.Retention.Class != "business-letter" || e.Vaulted.IsZero() {
		t.Errorf("vault entry %+v", e)
	}
	if _, ok := v[ids[free]]; ok {
		t.Errorf("unprotected message vaulted")
	}
	all, _ := s.Retained(ctxBg, store.Owner{Address: addr}, 0, 0)
	for _, r := range all {
		if r.ID == ids[free] {
			t.Errorf("destroyed message still has a record %+v", r)
		}
		if r.ID == ids[keep] && (!r.Vaulted || r.MailboxID != inbox || r.UID != keep) {
			t.Errorf("vaulted record %+v", r)
		}
	}
	// Plain Expunge does the same.
	if got, err := s.Expunge(ctxBg, addr, inbox, []uint32{stay}); err != nil || !equalUIDs(got.UIDs, []uint32{stay}) {
		t.Errorf("Expunge = %v, %v", got, err)
	}
	if v := vaultIDs(t, s, store.Owner{Address: addr}); len(v) != 3 {
		t.Errorf("vault after expunging an unprotected message: %d entries", len(v))
	}
}

func testRetentionPendingNoPolicy(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	inbox := idOf(t, s, addr, store.Inbox)
	uids := deliverN(t, s, addr, "", 3, 20)
	// No assignment and no hold: a server without retention destroys.
	_, vaulted, err := s.ExpungeReport(ctxBg, addr, inbox, uids[:1])
	if err != nil || len(vaulted) != 0 {
		t.Errorf("ExpungeReport without policy: vaulted %v, %v", vaulted, err)
	}
	// A hold makes policy in force; released, it is not.
	h, err := s.AddHold(ctxBg, store.Hold{Matter: "M", Scope: "org"})
	if err != nil {
		t.Fatal(err)
	}
	if _, vaulted, err = s.ExpungeReport(ctxBg, addr, inbox, uids[1:2]); err != nil || len(vaulted) != 1 {
		t.Errorf("ExpungeReport under a hold: vaulted %v, %v", vaulted, err)
	}
	if _, err := s.ReleaseHold(ctxBg, h.ID, time.Time{}, "cli", "done"); err != nil {
		t.Fatal(err)
	}
	if _, vaulted, err = s.ExpungeReport(ctxBg, addr, inbox, uids[2:]); err != nil || len(vaulted) != 0 {
		t.Errorf("ExpungeReport after release: vaulted %v, %v", vaulted, err)
	}
}

func testRetentionDue(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	due1 := deliverRet(t, s, addr, 1, &store.Retention{Class: "spam", DeleteAfter: past, Gen: gen})
	due2 := deliverRet(t, s, addr, 2, &store.Retention{Class: "spam", DeleteAfter: past.Add(time.Hour), Gen: gen})
	later := deliverRet(t, s, addr, 3, &store.Retention{Class: "spam", DeleteAfter: future, Gen: gen})
	held := deliverRet(t, s, addr, 4, &store.Retention{Class: "spam", DeleteAfter: past, Held: true, Gen: gen})
	kept := deliverRet(t, s, addr, 5, &store.Retention{Class: "default", KeepUntil: past, Gen: gen})
	pend := deliverRet(t, s, addr, 6, &store.Retention{Class: "spam", DeleteAfter: past, Gen: gen - 1})
	ids := map[uint32]uint64{}
	for _, u := range []uint32{due1, due2, later, held, kept, pend} {
		ids[u] = retainedOne(t, s, addr, inbox, u).ID
	}
	id := func(u uint32) uint64 {
		if v, ok := ids[u]; ok {
			return v
		}
		return retainedOne(t, s, addr, inbox, u).ID
	}
	got, err := s.DueMessages(ctxBg, now0, store.DueMessage{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []uint64
	for _, d := range got {
		gotIDs = append(gotIDs, d.ID)
		if d.Owner != (store.Owner{Address: addr}) || d.Vaulted || d.Due.After(now0) {
			t.Errorf("due entry %+v", d)
		}
	}
	for _, u := range []uint32{later, held, kept} {
		for _, g := range gotIDs {
			if g == id(u) {
				t.Errorf("UID %d listed as due", u)
			}
		}
	}
	if len(got) < 2 || got[len(got)-1].ID != id(due2) {
		t.Fatalf("DueMessages = %+v", got)
	}
	// The cursor continues after an entry.
	rest, err := s.DueMessages(ctxBg, now0, got[0], 0)
	if err != nil || len(rest) != len(got)-1 || rest[0].ID != got[1].ID {
		t.Errorf("DueMessages after %+v = %+v, %v", got[0], rest, err)
	}
	// Destroy refuses what is protected, pending or not due, whatever the
	// caller asks.
	ms0 := mailbox(t, s, addr, store.Inbox).HighestModSeq
	ds, err := s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, []uint64{id(due1), id(later), id(held), id(pend), id(due2), 424242}),
		store.DestroyOptions{Now: now0, Due: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != id(due1) || ds[0].UID != due1 || ds[0].MailboxID != inbox || ds[0].Class != "spam" || ds[1].UID != due2 {
		t.Errorf("DestroyMessages = %+v", ds)
	}
	if uids := uidsOf(messages(t, s, addr, store.Inbox, store.ListOptions{})); !equalUIDs(uids, []uint32{later, held, kept, pend}) {
		t.Errorf("left %v", uids)
	}
	checkCounters(t, s, addr, store.Inbox)
	usedBytes(t, s, addr)
	// The destroyed messages left tombstones (QRESYNC), at the mod-sequence
	// the call reports.
	wantVanished(t, "destroyed", vanished(t, s, addr, inbox, ms0), due1, due2)
	if ms := mailbox(t, s, addr, store.Inbox).HighestModSeq; len(ds) == 2 && (ds[0].ModSeq != ms || ds[1].ModSeq != ms || ms <= ms0) {
		t.Errorf("DestroyMessages reports mod-sequences %d and %d; the mailbox's went from %d to %d", ds[0].ModSeq, ds[1].ModSeq, ms0, ms)
	}
	if len(ds) == 2 {
		wantVanished(t, "destroyed, from just below the reported mod-sequence", vanished(t, s, addr, inbox, ds[0].ModSeq-1), due1, due2)
		wantVanished(t, "destroyed, from the reported mod-sequence", vanished(t, s, addr, inbox, ds[0].ModSeq))
	}
	_, err = s.Blob(ctxBg, addr, inbox, due1)
	wantErr(t, "Blob of a destroyed message", err, store.ErrNotFound)
	// Without Due (an erasure) what is not protected goes: kept's
	// keep-until has passed, later has no minimum.
	ds, err = s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, []uint64{id(later), id(kept), id(held)}), store.DestroyOptions{Now: now0})
	if err != nil || len(ds) != 2 {
		t.Errorf("erasure DestroyMessages = %+v, %v", ds, err)
	}
	// A vaulted message is due at its keep-until.
	vk := deliverRet(t, s, addr, 7, &store.Retention{Class: "default", KeepUntil: now0.Add(time.Hour), Gen: gen})
	vid := id(vk)
	if _, v, err := s.ExpungeReport(ctxBg, addr, inbox, []uint32{vk}); err != nil || len(v) != 1 {
		t.Fatalf("expunge to vault: %v, %v", v, err)
	}
	if got, _ := s.DueMessages(ctxBg, now0, store.DueMessage{}, 0); containsID(got, vid) {
		t.Errorf("vaulted message due before its keep-until")
	}
	later2 := now0.Add(2 * time.Hour)
	got, err = s.DueMessages(ctxBg, later2, store.DueMessage{}, 0)
	if err != nil || !containsID(got, vid) {
		t.Fatalf("vaulted message not due after its keep-until: %+v, %v", got, err)
	}
	if ds, err := s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, []uint64{vid}), store.DestroyOptions{Now: now0, Due: true}); err != nil || len(ds) != 0 {
		t.Errorf("vaulted message destroyed before its keep-until: %+v, %v", ds, err)
	}
	if ds, err := s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, []uint64{vid}), store.DestroyOptions{Now: later2, Due: true}); err != nil || len(ds) != 1 || ds[0].MailboxID != 0 || ds[0].ModSeq != 0 {
		t.Errorf("vaulted DestroyMessages = %+v, %v", ds, err)
	}
	if v := vaultIDs(t, s, store.Owner{Address: addr}); len(v) != 0 {
		t.Errorf("vault after destroy %+v", v)
	}
	if _, err := s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, make([]uint64, store.MaxDestroyBatch+1)), store.DestroyOptions{}); err == nil {
		t.Errorf("DestroyMessages above MaxDestroyBatch succeeded")
	}
	// One call, several owners (a batch in due order mixes accounts); an
	// unknown owner is skipped.
	const other = "b@example.org"
	newAccount(t, s, other)
	oInbox := idOf(t, s, other, store.Inbox)
	ua := deliverRet(t, s, addr, 8, &store.Retention{Class: "spam", DeleteAfter: past, Gen: gen})
	ub := deliverRet(t, s, other, 9, &store.Retention{Class: "spam", DeleteAfter: past, Gen: gen})
	ida, idb := id(ua), retainedOne(t, s, other, oInbox, ub).ID
	ds, err = s.DestroyMessages(ctxBg, []store.MessageRef{
		{Owner: store.Owner{Address: other}, ID: idb},
		{Owner: store.Owner{Address: "nobody@example.org"}, ID: 1},
		{Owner: store.Owner{Address: addr}, ID: ida},
	}, store.DestroyOptions{Due: true})
	if err != nil || len(ds) != 2 || ds[0].Owner.Address != other || ds[0].UID != ub || ds[1].Owner.Address != addr || ds[1].UID != ua {
		t.Errorf("DestroyMessages of two owners = %+v, %v", ds, err)
	}
	checkCounters(t, s, other, store.Inbox)
	usedBytes(t, s, other)
}

// refs names ids of owner o.
func refs(o store.Owner, ids []uint64) []store.MessageRef {
	out := make([]store.MessageRef, len(ids))
	for i, id := range ids {
		out[i] = store.MessageRef{Owner: o, ID: id}
	}
	return out
}

func containsID(ds []store.DueMessage, id uint64) bool {
	for _, d := range ds {
		if d.ID == id {
			return true
		}
	}
	return false
}

func testRetentionSet(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	uid := deliverRet(t, s, addr, 1, nil)
	r := retainedOne(t, s, addr, inbox, uid)
	o := store.Owner{Address: addr}
	set := func(v uint64, ret store.Retention) int {
		t.Helper()
		n, err := s.SetRetention(ctxBg, o, []store.RetentionUpdate{{ID: r.ID, Version: v, Retention: ret}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := set(r.Version, store.Retention{Class: "x", Gen: gen - 1}); n != 0 {
		t.Errorf("an update from an older generation applied")
	}
	if n := set(r.Version+1, store.Retention{Class: "x", Gen: gen}); n != 0 {
		t.Errorf("an update of another version applied")
	}
	locked := future.Add(time.Hour)
	if n := set(r.Version, store.Retention{Arrival: past, Origin: "spam", Class: "regulated-comms", KeepUntil: locked, DeleteAfter: locked.Add(time.Hour), Locked: true, Rule: "min SEC", Gen: gen}); n != 1 {
		t.Fatalf("update not applied")
	}
	r2 := retainedOne(t, s, addr, inbox, uid)
	if r2.Retention.Pending || r2.Version == r.Version || r2.Retention.Class != "regulated-comms" || !r2.Retention.KeepUntil.Equal(locked) ||
		!r2.Retention.Arrival.Equal(r.Retention.Arrival) || r2.Retention.Origin != r.Retention.Origin || r2.Retention.Rule != "min SEC" {
		t.Errorf("after SetRetention %+v (before %+v)", r2, r)
	}
	if p, _ := s.PendingRetention(ctxBg, 0); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	// A locked keep-until never goes down.
	if n := set(r2.Version, store.Retention{Class: "default", KeepUntil: past, Gen: gen}); n != 1 {
		t.Fatalf("update not applied")
	}
	r3 := retainedOne(t, s, addr, inbox, uid)
	if !r3.Retention.KeepUntil.Equal(locked) || !r3.Retention.Locked {
		t.Errorf("locked keep-until lowered: %+v", r3.Retention)
	}
	// A new policy generation: updates computed before it are refused.
	if err := s.PutPreset(ctxBg, store.Preset{ID: "Q", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if n := set(r3.Version, store.Retention{Class: "default", Gen: gen}); n != 0 {
		t.Errorf("an update from before a policy change applied")
	}
	long := strings.Repeat("é", store.MaxRuleLen)
	if n := set(r3.Version, store.Retention{Class: "default", Rule: long, Gen: gen + 1}); n != 1 {
		t.Errorf("update not applied")
	}
	if r4 := retainedOne(t, s, addr, inbox, uid); len(r4.Retention.Rule) > store.MaxRuleLen {
		t.Errorf("rule of %d bytes stored", len(r4.Retention.Rule))
	}
}

func testRetentionMoveCopy(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox, archive := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive")
	uid := deliverRet(t, s, addr, 1, &store.Retention{Class: "default", DeleteAfter: past, Gen: gen})
	r := retainedOne(t, s, addr, inbox, uid)
	res, err := s.MoveMessages(ctxBg, addr, inbox, archive, []uint32{uid})
	if err != nil || len(res.Pairs) != 1 {
		t.Fatal(err)
	}
	m := retainedOne(t, s, addr, archive, res.Pairs[0].Dst)
	if m.ID != r.ID || !m.Retention.Pending || m.MailboxID != archive || m.UID != res.Pairs[0].Dst || !m.Retention.Arrival.Equal(r.Retention.Arrival) {
		t.Errorf("moved record %+v (was %+v)", m, r)
	}
	// Pending after the move: not destroyed even though due.
	if ds, err := s.DestroyMessages(ctxBg, refs(store.Owner{Address: addr}, []uint64{m.ID}), store.DestroyOptions{Due: true}); err != nil || len(ds) != 0 {
		t.Errorf("pending moved message destroyed: %+v, %v", ds, err)
	}
	cres, err := s.CopyMessages(ctxBg, addr, archive, inbox, []uint32{m.UID})
	if err != nil || len(cres.Pairs) != 1 {
		t.Fatal(err)
	}
	c := retainedOne(t, s, addr, inbox, cres.Pairs[0].Dst)
	if c.ID == m.ID || !c.Retention.Pending || !c.Retention.Arrival.Equal(r.Retention.Arrival) || c.MailboxID != inbox {
		t.Errorf("copy's record %+v", c)
	}
	p, err := s.PendingRetention(ctxBg, 0)
	if err != nil || len(p) != 2 {
		t.Errorf("PendingRetention = %+v, %v", p, err)
	}
}

func testRetentionDeleteMailbox(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	mb, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Projects"})
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for i, r := range []*store.Retention{
		{Class: "default", KeepUntil: future, Gen: gen},
		{Class: "spam", Gen: gen},
		{Class: "default", Held: true, Gen: gen},
	} {
		got, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, MailboxID: mb.ID, Blob: blob(i, 30), Retention: r}})
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, got[0].UID)
	}
	before := usedBytes(t, s, addr)
	if err := s.DeleteMailbox(ctxBg, addr, mb.ID); err != nil {
		t.Fatal(err)
	}
	if used := usedBytes(t, s, addr); used != before-90 {
		t.Errorf("used %d after deleting 90 bytes of %d", used, before)
	}
	v, err := s.Vault(ctxBg, store.Owner{Address: addr})
	if err != nil || len(v) != 2 || v[0].Mailbox != "Projects" || v[0].MailboxID != mb.ID || v[0].Reason != "mailbox deleted" ||
		v[0].UID != uids[0] || v[1].UID != uids[2] {
		t.Errorf("vault after DeleteMailbox: %+v, %v", v, err)
	}
}

func testRetentionDeleteAccount(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	soon := time.Now().Add(2 * time.Second)
	keep := deliverRet(t, s, addr, 1, &store.Retention{Class: "default", KeepUntil: soon, Gen: gen})
	deliverRet(t, s, addr, 2, &store.Retention{Class: "spam", Gen: gen})
	kid := retainedOne(t, s, addr, inbox, keep).ID
	if _, err := s.DeleteAccount(ctxBg, addr); err != nil {
		t.Fatal(err)
	}
	fs, err := s.FormerAccounts(ctxBg)
	if err != nil || len(fs) != 1 || fs[0].Address != addr || fs[0].Former == 0 || fs[0].Deleted.IsZero() {
		t.Fatalf("FormerAccounts = %+v, %v", fs, err)
	}
	former := fs[0].Owner
	v := vaultIDs(t, s, former)
	if len(v) != 1 || v[kid].Reason != "account deleted" || v[kid].UID != keep {
		t.Fatalf("former vault %+v", v)
	}
	// The address can be taken again; its vault is its own.
	newAccount(t, s, addr)
	if v := vaultIDs(t, s, store.Owner{Address: addr}); len(v) != 0 {
		t.Errorf("new account sees the old vault: %+v", v)
	}
	rs, err := s.Retained(ctxBg, former, 0, 0)
	if err != nil || len(rs) != 1 || !rs[0].Vaulted {
		t.Errorf("Retained(former) = %+v, %v", rs, err)
	}
	// Due at its keep-until; the sweeper names the former owner.
	after := soon.Add(2 * time.Second)
	due, err := s.DueMessages(ctxBg, after, store.DueMessage{}, 0)
	if err != nil || len(due) != 1 || due[0].Owner != former || !due[0].Vaulted {
		t.Fatalf("DueMessages = %+v, %v", due, err)
	}
	if ds, err := s.DestroyMessages(ctxBg, refs(former, []uint64{kid}), store.DestroyOptions{Now: after, Due: true}); err != nil || len(ds) != 1 {
		t.Fatalf("DestroyMessages(former) = %+v, %v", ds, err)
	}
	if fs, err := s.FormerAccounts(ctxBg); err != nil || len(fs) != 0 {
		t.Errorf("FormerAccounts after the last entry = %+v, %v", fs, err)
	}
	_, err = s.Vault(ctxBg, former)
	wantErr(t, "Vault of a gone former account", err, store.ErrNotFound)
	// An account with nothing under retention leaves nothing.
	deliverRet(t, s, addr, 3, &store.Retention{Gen: gen})
	if _, err := s.DeleteAccount(ctxBg, addr); err != nil {
		t.Fatal(err)
	}
	if fs, _ := s.FormerAccounts(ctxBg); len(fs) != 0 {
		t.Errorf("FormerAccounts = %+v", fs)
	}
}

func testRetentionRestore(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	u1 := deliverRet(t, s, addr, 1, &store.Retention{Class: "default", KeepUntil: future, Gen: gen})
	u2 := deliverRet(t, s, addr, 2, &store.Retention{Class: "default", Gen: gen})
	id1 := retainedOne(t, s, addr, inbox, u1).ID
	id2 := retainedOne(t, s, addr, inbox, u2).ID
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{u1}); err != nil {
		t.Fatal(err)
	}
	before := usedBytes(t, s, addr)
	d, err := s.RestoreFromVault(ctxBg, addr, id1, 0)
	if err != nil || d.MailboxID != inbox || d.UID <= u2 {
		t.Fatalf("RestoreFromVault = %+v, %v", d, err)
	}
	b, err := s.Blob(ctxBg, addr, inbox, d.UID)
	if err != nil || string(b) != string(blob(1, 101)) {
		t.Errorf("restored blob: %v", err)
	}
	if used := usedBytes(t, s, addr); used != before+101 {
		t.Errorf("used %d after restoring 101 bytes to %d", used, before)
	}
	checkCounters(t, s, addr, store.Inbox)
	if r := retainedOne(t, s, addr, inbox, d.UID); r.ID != id1 || r.Vaulted || !r.Retention.Pending {
		t.Errorf("restored record %+v", r)
	}
	_, err = s.RestoreFromVault(ctxBg, addr, id1, 0)
	wantErr(t, "RestoreFromVault twice", err, store.ErrNotFound)
	// A restriction (GDPR Art. 18) vaults whatever the state.
	moved, err := s.VaultMessages(ctxBg, addr, inbox, []uint32{u2, 999}, "erasure: kept for DE-HGB-AO")
	if err != nil || !equalUIDs(moved, []uint32{u2}) {
		t.Fatalf("VaultMessages = %v, %v", moved, err)
	}
	checkCounters(t, s, addr, store.Inbox)
	if err := s.SetVaultReason(ctxBg, store.Owner{Address: addr}, []uint64{id2, 777}, "restricted: hold 3"); err != nil {
		t.Fatal(err)
	}
	if v := vaultIDs(t, s, store.Owner{Address: addr}); v[id2].Reason != "restricted: hold 3" {
		t.Errorf("vault entry %+v", v[id2])
	}
	// Restored into a named mailbox.
	archive := idOf(t, s, addr, "Archive")
	if d, err := s.RestoreFromVault(ctxBg, addr, id2, archive); err != nil || d.MailboxID != archive || d.Mailbox != "Archive" {
		t.Errorf("RestoreFromVault to Archive = %+v, %v", d, err)
	}
}

func testRetentionLargeExpunge(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	const n = 3000
	ds := make([]store.Delivery, n)
	for i := range ds {
		r := &store.Retention{Class: "default", KeepUntil: future, Gen: gen}
		if i%3 == 0 {
			r = &store.Retention{Class: "spam", Gen: gen}
		}
		ds[i] = store.Delivery{Account: addr, Blob: blob(i, 40), Retention: r}
	}
	if _, err := s.Deliver(ctxBg, ds); err != nil {
		t.Fatal(err)
	}
	uids := make([]uint32, n)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	removed, vaulted, err := s.ExpungeReport(ctxBg, addr, inbox, uids)
	if err != nil || len(removed.UIDs) != n || len(vaulted) != n-n/3 {
		t.Fatalf("ExpungeReport: %d removed, %d vaulted, %v", len(removed.UIDs), len(vaulted), err)
	}
	if v := vaultIDs(t, s, store.Owner{Address: addr}); len(v) != n-n/3 {
		t.Errorf("vault holds %d", len(v))
	}
	if rs, _ := s.Retained(ctxBg, store.Owner{Address: addr}, 0, 10000); len(rs) != n-n/3 {
		t.Errorf("%d records left", len(rs))
	}
	checkCounters(t, s, addr, store.Inbox)
	if used := usedBytes(t, s, addr); used != 0 {
		t.Errorf("used %d", used)
	}
}

func testRetentionReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	u := deliverRet(t, s, addr, 1, &store.Retention{Class: "default", KeepUntil: future, Gen: gen})
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{u}); err != nil {
		t.Fatal(err)
	}
	h, err := s.AddHold(ctxBg, store.Hold{Matter: "M", Scope: "org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if v := vaultIDs(t, s, store.Owner{Address: addr}); len(v) != 1 {
		t.Errorf("vault after reopen: %+v", v)
	}
	hs, err := s.Holds(ctxBg)
	if err != nil || len(hs) != 1 || hs[0].ID != h.ID {
		t.Errorf("holds after reopen: %+v, %v", hs, err)
	}
	if g, err := s.PolicyGen(ctxBg); err != nil || g <= gen {
		t.Errorf("generation after reopen %d (was %d), %v", g, gen, err)
	}
	// The hold keeps policy in force after a restart.
	u2 := deliverRet(t, s, addr, 2, nil)
	if _, v, err := s.ExpungeReport(ctxBg, addr, inbox, []uint32{u2}); err != nil || len(v) != 1 {
		t.Errorf("pending after reopen not vaulted: %v, %v", v, err)
	}
}
