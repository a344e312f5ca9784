package storetest

import (
	"strings"
	"testing"

	"github.com/sealmail/sealmail/store"
)

func testMailboxes(t *testing.T, s store.Store) {
	const addr = "mb@example.org"
	newAccount(t, s, addr)
	m, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Work", SpecialUse: `\Flagged`, Subscribed: false})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "Work" || m.SpecialUse != `\Flagged` || m.Subscribed || m.UIDNext != 1 || m.UIDValidity == 0 || m.ID == 0 {
		t.Errorf("CreateMailbox = %+v", m)
	}
	if got := mailbox(t, s, addr, "Work"); got != m {
		t.Errorf("Mailbox = %+v, want %+v", got, m)
	}
	_, err = s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Work"})
	wantErr(t, "duplicate CreateMailbox", err, store.ErrExists)
	_, err = s.Mailbox(ctxBg, addr, "work")
	wantErr(t, "Mailbox names are case-sensitive", err, store.ErrNotFound)

	// IDs and UIDVALIDITY differ between mailboxes.
	mbs, err := s.Mailboxes(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]bool{}
	uvs := map[uint32]bool{}
	for _, mb := range mbs {
		if ids[mb.ID] || uvs[mb.UIDValidity] {
			t.Errorf("mailbox %q repeats an ID or UIDVALIDITY", mb.Name)
		}
		ids[mb.ID], uvs[mb.UIDValidity] = true, true
	}
	if len(mbs) != len(store.DefaultMailboxes)+1 {
		t.Errorf("%d mailboxes", len(mbs))
	}

	if err := s.SetSubscribed(ctxBg, addr, "Work", true); err != nil {
		t.Fatal(err)
	}
	if !mailbox(t, s, addr, "Work").Subscribed {
		t.Errorf("SetSubscribed(true) not kept")
	}
	if err := s.SetSubscribed(ctxBg, addr, "Work", false); err != nil {
		t.Fatal(err)
	}
	if mailbox(t, s, addr, "Work").Subscribed {
		t.Errorf("SetSubscribed(false) not kept")
	}
	wantErr(t, "SetSubscribed unknown", s.SetSubscribed(ctxBg, addr, "Nope", true), store.ErrNotFound)

	// UTF-8 names are fine.
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Entwürfe/Ärger & Co"}); err != nil {
		t.Errorf("UTF-8 name: %v", err)
	}
}

func testDeleteMailbox(t *testing.T, s store.Store) {
	const addr = "del@example.org"
	newAccount(t, s, addr)
	for _, n := range []string{"P", "P/child", "Q"} {
		if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	deliverN(t, s, addr, "P", 4, 100)
	deliverN(t, s, addr, "P/child", 2, 10)
	deliverN(t, s, addr, "Q", 1, 7)
	old := mailbox(t, s, addr, "P")
	if used := usedBytes(t, s, addr); used != 427 {
		t.Fatalf("used %d", used)
	}
	if err := s.DeleteMailbox(ctxBg, addr, "P"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Mailbox(ctxBg, addr, "P")
	wantErr(t, "Mailbox after delete", err, store.ErrNotFound)
	_, err = s.Messages(ctxBg, addr, "P", store.ListOptions{})
	wantErr(t, "Messages after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteMailbox twice", s.DeleteMailbox(ctxBg, addr, "P"), store.ErrNotFound)
	if ms := messages(t, s, addr, "P/child", store.ListOptions{}); len(ms) != 2 {
		t.Errorf("child lost messages: %d", len(ms))
	}
	if used := usedBytes(t, s, addr); used != 27 {
		t.Errorf("used after delete %d, want 27", used)
	}

	// Re-created: a new incarnation, empty, with a new UIDVALIDITY.
	m, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "P"})
	if err != nil {
		t.Fatal(err)
	}
	if m.UIDValidity == old.UIDValidity || m.ID == old.ID || m.UIDNext != 1 || m.Messages != 0 {
		t.Errorf("re-created %+v, old %+v", m, old)
	}
	if ms := messages(t, s, addr, "P", store.ListOptions{}); len(ms) != 0 {
		t.Errorf("re-created mailbox lists %d old messages", len(ms))
	}
	_, err = s.Blob(ctxBg, addr, "P", 1)
	wantErr(t, "old blob", err, store.ErrNotFound)
	if uids := deliverN(t, s, addr, "P", 1, 5); uids[0] != 1 {
		t.Errorf("first UID in re-created mailbox %d", uids[0])
	}
	checkCounters(t, s, addr, "P")
}

func testRenameMailbox(t *testing.T, s store.Store) {
	const addr = "ren@example.org"
	newAccount(t, s, addr)
	for _, n := range []string{"A", "A/B", "A/B/C", "AB", "X"} {
		if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	deliverN(t, s, addr, "A/B", 3, 10)
	before := map[string]store.Mailbox{}
	for _, n := range []string{"A", "A/B", "A/B/C", "AB"} {
		before[n] = mailbox(t, s, addr, n)
	}
	if err := s.RenameMailbox(ctxBg, addr, "A", "Z/A"); err != nil {
		t.Fatal(err)
	}
	for old, nw := range map[string]string{"A": "Z/A", "A/B": "Z/A/B", "A/B/C": "Z/A/B/C"} {
		_, err := s.Mailbox(ctxBg, addr, old)
		wantErr(t, "old name "+old, err, store.ErrNotFound)
		m := mailbox(t, s, addr, nw)
		b := before[old]
		if m.ID != b.ID || m.UIDValidity != b.UIDValidity || m.UIDNext != b.UIDNext || m.Messages != b.Messages || m.Name != nw {
			t.Errorf("renamed %q -> %+v, was %+v", old, m, b)
		}
	}
	if m := mailbox(t, s, addr, "AB"); m != before["AB"] {
		t.Errorf("AB (not a child) changed: %+v", m)
	}
	if ms := messages(t, s, addr, "Z/A/B", store.ListOptions{}); len(ms) != 3 {
		t.Errorf("renamed mailbox lists %d messages", len(ms))
	}
	if b, err := s.Blob(ctxBg, addr, "Z/A/B", 2); err != nil || len(b) != 10 {
		t.Errorf("blob after rename: %d bytes, %v", len(b), err)
	}
	// Mailboxes stays ordered by name after a rename.
	mbs, err := s.Mailboxes(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(mbs); i++ {
		if mbs[i-1].Name >= mbs[i].Name {
			t.Errorf("Mailboxes not ordered: %q before %q", mbs[i-1].Name, mbs[i].Name)
		}
	}

	wantErr(t, "rename onto existing", s.RenameMailbox(ctxBg, addr, "X", "AB"), store.ErrExists)
	wantErr(t, "rename unknown", s.RenameMailbox(ctxBg, addr, "Nope", "Y"), store.ErrNotFound)
	// A child would collide: nothing moves.
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "W/B"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "rename with colliding child", s.RenameMailbox(ctxBg, addr, "Z/A", "W"), store.ErrExists)
	if _, err := s.Mailbox(ctxBg, addr, "Z/A/B/C"); err != nil {
		t.Errorf("failed rename moved a child: %v", err)
	}
	if err := s.RenameMailbox(ctxBg, addr, "X", "X/Y"); err == nil {
		t.Errorf("rename below itself succeeded")
	}
	if _, err := s.Mailbox(ctxBg, addr, "X"); err != nil {
		t.Errorf("X after refused rename: %v", err)
	}
	// Deliveries follow the new name.
	if uids := deliverN(t, s, addr, "Z/A/B", 1, 10); uids[0] != 4 {
		t.Errorf("UID after rename %d, want 4", uids[0])
	}
	checkCounters(t, s, addr, "Z/A/B")
}

func testBadNames(t *testing.T, s store.Store) {
	const addr = "bad@example.org"
	newAccount(t, s, addr)
	for _, n := range []string{"", "a\x00b", "a\nb", "/lead", "trail/", "dou//ble", "\xff", strings.Repeat("x", 5000)} {
		if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: n}); err == nil {
			t.Errorf("CreateMailbox(%q) succeeded", n)
		}
		if err := s.RenameMailbox(ctxBg, addr, "Junk", n); err == nil {
			t.Errorf("RenameMailbox to %q succeeded", n)
		}
		_, err := s.Mailbox(ctxBg, addr, n)
		if err == nil {
			t.Errorf("Mailbox(%q) found something", n)
		}
	}
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "ok", SpecialUse: "Sent"}); err == nil {
		t.Errorf("special use without backslash accepted")
	}
	for _, a := range []string{"", strings.Repeat("a", 400) + "@x", "a\x00@example.org"} {
		if err := s.CreateAccount(ctxBg, store.Account{Address: a, PublicKey: []byte("k")}, nil); err == nil {
			t.Errorf("CreateAccount(%q) succeeded", a)
		}
	}
	if mbs, err := s.Mailboxes(ctxBg, addr); err != nil || len(mbs) != len(store.DefaultMailboxes) {
		t.Errorf("bad names changed the mailboxes: %d, %v", len(mbs), err)
	}
	if all, err := s.Accounts(ctxBg); err != nil || len(all) != 1 {
		t.Errorf("bad addresses changed the accounts: %d, %v", len(all), err)
	}
}
