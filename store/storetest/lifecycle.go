package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// testSliceCopies: the store copies byte slices in both directions.
func testSliceCopies(t *testing.T, s store.Store) {
	const addr = "copy@example.org"
	a := store.Account{
		Address: addr, PublicKey: []byte("public"), WrappedKey: []byte("wrapped"),
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("slot")}},
	}
	if err := s.CreateAccount(ctxBg, a, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	a.PublicKey[0], a.WrappedKey[0], a.Slots[0].Data[0] = 'X', 'X', 'X'
	got := account(t, s, addr)
	if string(got.PublicKey) != "public" || string(got.WrappedKey) != "wrapped" || string(got.Slots[0].Data) != "slot" {
		t.Fatalf("store kept caller's slices: %q %q %q", got.PublicKey, got.WrappedKey, got.Slots[0].Data)
	}
	got.PublicKey[0], got.WrappedKey[0], got.Slots[0].Data[0] = 'Y', 'Y', 'Y'
	if again := account(t, s, addr); string(again.PublicKey) != "public" || string(again.Slots[0].Data) != "slot" {
		t.Fatalf("store handed out its own slices")
	}
	slot := store.Slot{Kind: store.SlotRecovery, Data: []byte("recovery")}
	if _, err := s.AddSlot(ctxBg, addr, slot); err != nil {
		t.Fatal(err)
	}
	slot.Data[0] = 'X'

	body := []byte("sealed message body")
	flags := []string{`\Seen`, "$k"}
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Blob: body, Flags: flags}}); err != nil {
		t.Fatal(err)
	}
	body[0], flags[1] = 'X', "$changed"
	inbox := idOf(t, s, addr, store.Inbox)
	b, err := s.Blob(ctxBg, addr, inbox, 1)
	if err != nil || string(b) != "sealed message body" {
		t.Fatalf("blob %q, %v", b, err)
	}
	b[0] = 'Y'
	if b2, _ := s.Blob(ctxBg, addr, inbox, 1); string(b2) != "sealed message body" {
		t.Fatalf("Blob handed out the store's slice")
	}
	sum := []byte("summary")
	key := []byte("session")
	if err := s.SetSummaries(ctxBg, addr, inbox, []store.SummaryUpdate{{UID: 1, Summary: sum, SessionKey: key}}); err != nil {
		t.Fatal(err)
	}
	sum[0], key[0] = 'X', 'X'
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	if string(ms[0].Summary) != "summary" || string(ms[0].SessionKey) != "session" || !equalStrings(ms[0].Flags, []string{"$k", `\Seen`}) {
		t.Fatalf("message %+v", ms[0])
	}
	ms[0].Summary[0], ms[0].Flags[0] = 'Y', "$mutated"
	ms = messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	if string(ms[0].Summary) != "summary" || ms[0].Flags[0] != "$k" {
		t.Fatalf("Messages handed out the store's slices")
	}
	if a := account(t, s, addr); len(a.Slots) != 2 || string(a.Slots[1].Data) != "recovery" {
		t.Fatalf("AddSlot kept the caller's slice")
	}
	uids := []uint32{1}
	archive := idOf(t, s, addr, "Archive")
	res, err := s.CopyMessages(ctxBg, addr, inbox, archive, uids)
	if err != nil || len(res.Pairs) != 1 {
		t.Fatal(err)
	}
	uids[0] = 9
	if b, err := s.Blob(ctxBg, addr, archive, 1); err != nil || string(b) != "sealed message body" {
		t.Fatalf("copied blob %q, %v", b, err)
	}
}

// testCancelledContext: a call whose context is already done fails and
// stores nothing.
func testCancelledContext(t *testing.T, s store.Store) {
	const addr = "ctx@example.org"
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", 2, 10)
	inbox, junk, trash := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Junk"), idOf(t, s, addr, "Trash")
	ctx, cancel := context.WithCancel(ctxBg)
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context: %v", what, err)
		}
	}
	_, err := s.Deliver(ctx, []store.Delivery{{Account: addr, Blob: []byte("x")}})
	check("Deliver", err)
	check("CreateAccount", s.CreateAccount(ctx, store.Account{Address: "new@example.org", PublicKey: []byte("k")}, nil))
	_, err = s.CreateMailbox(ctx, addr, store.MailboxSpec{Name: "New"})
	check("CreateMailbox", err)
	_, err = s.StoreFlags(ctx, addr, inbox, store.FlagUpdate{UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	check("StoreFlags", err)
	_, err = s.Expunge(ctx, addr, inbox, []uint32{1})
	check("Expunge", err)
	_, err = s.MoveMessages(ctx, addr, inbox, trash, []uint32{2})
	check("MoveMessages", err)
	check("DeleteMailbox", s.DeleteMailbox(ctx, addr, junk))
	check("RenameMailbox", s.RenameMailbox(ctx, addr, junk, "Spam"))
	check("SetQuota", s.SetQuota(ctx, addr, 5))
	_, err = s.AddSlot(ctx, addr, store.Slot{Kind: store.SlotRecovery, Data: []byte("r")})
	check("AddSlot", err)
	_, err = s.DeleteAccount(ctx, addr)
	check("DeleteAccount", err)
	_, err = s.Messages(ctx, addr, inbox, store.ListOptions{})
	check("Messages", err)
	_, err = s.Account(ctx, addr)
	check("Account", err)
	_, err = s.PublicAccount(ctx, addr)
	check("PublicAccount", err)

	a := account(t, s, addr)
	if a.QuotaBytes != 0 || len(a.Slots) != 1 {
		t.Errorf("account changed: %+v", a)
	}
	if _, err := s.Account(ctxBg, "new@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account created with cancelled context")
	}
	m := checkCounters(t, s, addr, store.Inbox)
	if m.Messages != 2 || m.Unseen != 2 || m.UIDNext != 3 {
		t.Errorf("INBOX changed: %+v", m)
	}
	for _, n := range []string{"Junk", "Trash"} {
		if mm := mailbox(t, s, addr, n); mm.Messages != 0 {
			t.Errorf("%s changed: %+v", n, mm)
		}
	}
	if _, err := s.Mailbox(ctxBg, addr, "New"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("mailbox created with cancelled context")
	}
}

// testReopen: everything survives Close and Open; a closed store refuses
// calls.
func testReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	const addr = "persist@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "doomed@example.org")
	if _, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotRecovery, Label: "paper", Data: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQuota(ctxBg, addr, 1<<20); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "", 20, 100)
	deliverN(t, s, "doomed@example.org", "", 3, 100)
	inbox, archive := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive")
	if _, err := s.StoreFlags(ctxBg, addr, inbox, store.FlagUpdate{UIDs: []uint32{3, 4}, Op: store.FlagsAdd, Flags: []string{`\Seen`, "$x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSummaries(ctxBg, addr, inbox, []store.SummaryUpdate{{UID: 5, Summary: []byte("s5"), SessionKey: []byte("k5")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveMessages(ctxBg, addr, inbox, archive, []uint32{8, 9}); err != nil {
		t.Fatal(err)
	}
	lists, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Lists/go"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctxBg, addr, lists.ID, "L/go"); err != nil {
		t.Fatal(err)
	}
	// Every mailbox ID and UIDVALIDITY handed out so far, deleted ones
	// included: none may come back after the reopen.
	used := mailboxIDs(t, s, addr)
	for id := range mailboxIDs(t, s, "doomed@example.org") {
		used[id] = true
	}
	gone, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Gone"})
	if err != nil {
		t.Fatal(err)
	}
	used[gone.ID] = true
	if err := s.DeleteMailbox(ctxBg, addr, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAccount(ctxBg, "doomed@example.org"); err != nil {
		t.Fatal(err)
	}
	wantAcct := account(t, s, addr)
	wantBoxes, err := s.Mailboxes(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	wantMsgs := messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	usedUV := map[uint32]bool{gone.UIDValidity: true}
	for _, m := range wantBoxes {
		usedUV[m.UIDValidity] = true
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctxBg, addr); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Account after Close: %v", err)
	}
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Blob: []byte("x")}}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Deliver after Close: %v", err)
	}

	s = open(t, dir)
	defer s.Close()
	got := account(t, s, addr)
	if got.UsedBytes != wantAcct.UsedBytes || got.QuotaBytes != wantAcct.QuotaBytes || len(got.Slots) != 2 ||
		!bytes.Equal(got.PublicKey, wantAcct.PublicKey) || !bytes.Equal(got.Slots[1].Data, wantAcct.Slots[1].Data) ||
		got.Slots[1].Label != "paper" || !got.Created.Equal(wantAcct.Created) {
		t.Errorf("account after reopen %+v, want %+v", got, wantAcct)
	}
	gotBoxes, err := s.Mailboxes(ctxBg, addr)
	if err != nil || len(gotBoxes) != len(wantBoxes) {
		t.Fatalf("mailboxes after reopen: %d, %v", len(gotBoxes), err)
	}
	for i := range wantBoxes {
		if gotBoxes[i] != wantBoxes[i] {
			t.Errorf("mailbox after reopen %+v, want %+v", gotBoxes[i], wantBoxes[i])
		}
	}
	gotMsgs := messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true})
	if len(gotMsgs) != len(wantMsgs) {
		t.Fatalf("%d messages after reopen, want %d", len(gotMsgs), len(wantMsgs))
	}
	for i, w := range wantMsgs {
		g := gotMsgs[i]
		if g.UID != w.UID || g.ModSeq != w.ModSeq || !g.InternalDate.Equal(w.InternalDate) || !equalStrings(g.Flags, w.Flags) ||
			g.SealedSize != w.SealedSize || !bytes.Equal(g.Summary, w.Summary) || !bytes.Equal(g.SessionKey, w.SessionKey) {
			t.Errorf("message after reopen %+v, want %+v", g, w)
		}
	}
	if b, err := s.Blob(ctxBg, addr, archive, 2); err != nil || !bytes.Equal(b, blob(8+100, 100)) {
		t.Errorf("moved blob after reopen: %v", err)
	}
	if _, err := s.Account(ctxBg, "doomed@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted account back after reopen: %v", err)
	}
	// UIDs continue, never reused.
	if uids := deliverN(t, s, addr, "", 1, 10); uids[0] != 21 {
		t.Errorf("UID after reopen %d, want 21", uids[0])
	}
	checkCounters(t, s, addr, store.Inbox)
	usedBytes(t, s, addr)
	// Mailbox IDs and UIDVALIDITY are never reused, also after a reopen,
	// in the same account or a re-created one.
	_, err = s.MailboxByID(ctxBg, addr, gone.ID)
	wantErr(t, "MailboxByID of a mailbox deleted before the reopen", err, store.ErrNotFound)
	again, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Gone"})
	if err != nil {
		t.Fatal(err)
	}
	newAccount(t, s, "doomed@example.org")
	fresh := mailboxIDs(t, s, "doomed@example.org")
	fresh[again.ID] = true
	for id := range fresh {
		if used[id] {
			t.Errorf("mailbox ID %d handed out again after reopen", id)
		}
	}
	if usedUV[again.UIDValidity] {
		t.Errorf("UIDVALIDITY %d handed out again after reopen", again.UIDValidity)
	}
}
