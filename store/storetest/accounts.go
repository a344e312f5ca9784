package storetest

import (
	"bytes"
	"testing"

	"github.com/sealmail/sealmail/store"
)

func testAccounts(t *testing.T, s store.Store) {
	want := newAccount(t, s, "bob@example.org")
	newAccount(t, s, "alice@example.org")
	newAccount(t, s, "carol@example.net")

	got := account(t, s, "bob@example.org")
	if got.Address != want.Address || !got.Created.Equal(want.Created) || got.KeyFingerprint != want.KeyFingerprint ||
		!bytes.Equal(got.PublicKey, want.PublicKey) || !bytes.Equal(got.WrappedKey, want.WrappedKey) ||
		got.PublishWKD != want.PublishWKD || got.QuotaBytes != 0 || got.UsedBytes != 0 {
		t.Errorf("Account = %+v, want %+v", got, want)
	}
	if len(got.Slots) != 1 || got.Slots[0].ID == 0 || got.Slots[0].Kind != store.SlotPassword ||
		got.Slots[0].Label != "password" || !bytes.Equal(got.Slots[0].Data, want.Slots[0].Data) ||
		!got.Slots[0].Created.Equal(want.Slots[0].Created) {
		t.Errorf("Slots = %+v", got.Slots)
	}

	err := s.CreateAccount(ctxBg, store.Account{Address: "bob@example.org", PublicKey: []byte("other")}, nil)
	wantErr(t, "duplicate CreateAccount", err, store.ErrExists)
	if a := account(t, s, "bob@example.org"); !bytes.Equal(a.PublicKey, want.PublicKey) {
		t.Errorf("duplicate CreateAccount changed the account")
	}

	_, err = s.Account(ctxBg, "nobody@example.org")
	wantErr(t, "Account(unknown)", err, store.ErrNotFound)
	_, err = s.PublicAccount(ctxBg, "nobody@example.org")
	wantErr(t, "PublicAccount(unknown)", err, store.ErrNotFound)

	// The public view is the account without wrapped key and slots.
	if err := s.SetQuota(ctxBg, "alice@example.org", 1000); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, "alice@example.org", store.Inbox, 2, 30)
	alice := account(t, s, "alice@example.org")
	if pub, err := s.PublicAccount(ctxBg, "alice@example.org"); err != nil || !equalPublic(pub, alice.Public()) || pub.UsedBytes != 60 {
		t.Errorf("PublicAccount = %+v, %v; want %+v", pub, err, alice.Public())
	}

	all, err := s.Accounts(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, a := range all {
		addrs = append(addrs, a.Address)
		if len(a.Slots) != 1 {
			t.Errorf("Accounts: %s has %d slots", a.Address, len(a.Slots))
		}
	}
	if !equalStrings(addrs, []string{"alice@example.org", "bob@example.org", "carol@example.net"}) {
		t.Errorf("Accounts order = %v", addrs)
	}
	pubs, err := s.PublicAccounts(ctxBg)
	if err != nil || len(pubs) != len(all) {
		t.Fatalf("PublicAccounts: %d, %v", len(pubs), err)
	}
	for i := range pubs {
		if !equalPublic(pubs[i], all[i].Public()) {
			t.Errorf("PublicAccounts[%d] = %+v, want %+v", i, pubs[i], all[i].Public())
		}
	}

	// Default mailboxes, ordered by name, special use kept.
	mbs, err := s.Mailboxes(ctxBg, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mbs {
		names = append(names, m.Name)
		if m.UIDNext != 1 || m.UIDValidity == 0 || m.Messages != 0 || !m.Subscribed {
			t.Errorf("new mailbox %+v", m)
		}
	}
	if !equalStrings(names, []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}) {
		t.Errorf("Mailboxes = %v", names)
	}
	if m := mailbox(t, s, "bob@example.org", "Sent"); m.SpecialUse != `\Sent` {
		t.Errorf("Sent special use %q", m.SpecialUse)
	}

	if err := s.SetPublishWKD(ctxBg, "bob@example.org", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQuota(ctxBg, "bob@example.org", 12345); err != nil {
		t.Fatal(err)
	}
	if a := account(t, s, "bob@example.org"); a.PublishWKD || a.QuotaBytes != 12345 {
		t.Errorf("after SetPublishWKD/SetQuota: wkd %v quota %d", a.PublishWKD, a.QuotaBytes)
	}
	// Autocrypt: on unless turned off; the public view says so too.
	if a := account(t, s, "bob@example.org"); a.AutocryptOff {
		t.Errorf("new account has Autocrypt off")
	}
	if err := s.SetAutocrypt(ctxBg, "bob@example.org", false); err != nil {
		t.Fatal(err)
	}
	if a := account(t, s, "bob@example.org"); !a.AutocryptOff || a.PublishWKD || a.QuotaBytes != 12345 {
		t.Errorf("after SetAutocrypt(false): %+v", a)
	}
	if p, err := s.PublicAccount(ctxBg, "bob@example.org"); err != nil || !p.AutocryptOff {
		t.Errorf("public view after SetAutocrypt(false): %v %v", p.AutocryptOff, err)
	}
	if err := s.SetAutocrypt(ctxBg, "bob@example.org", true); err != nil {
		t.Fatal(err)
	}
	if a := account(t, s, "bob@example.org"); a.AutocryptOff {
		t.Errorf("after SetAutocrypt(true): still off")
	}
	if err := s.SetQuota(ctxBg, "bob@example.org", -2); err == nil {
		t.Errorf("SetQuota(-2) succeeded")
	}

	// Unknown accounts everywhere.
	const nobody = "nobody@example.org"
	wantErr(t, "SetPublishWKD", s.SetPublishWKD(ctxBg, nobody, true), store.ErrNotFound)
	wantErr(t, "SetQuota", s.SetQuota(ctxBg, nobody, 1), store.ErrNotFound)
	wantErr(t, "SetAutocrypt", s.SetAutocrypt(ctxBg, nobody, false), store.ErrNotFound)
	_, err = s.AddSlot(ctxBg, nobody, store.Slot{Kind: store.SlotPassword, Data: []byte("x")})
	wantErr(t, "AddSlot", err, store.ErrNotFound)
	wantErr(t, "RemoveSlot", s.RemoveSlot(ctxBg, nobody, 1), store.ErrNotFound)
	_, err = s.DeleteAccount(ctxBg, nobody)
	wantErr(t, "DeleteAccount", err, store.ErrNotFound)
	_, err = s.CreateMailbox(ctxBg, nobody, store.MailboxSpec{Name: "X"})
	wantErr(t, "CreateMailbox", err, store.ErrNotFound)
	_, err = s.Mailboxes(ctxBg, nobody)
	wantErr(t, "Mailboxes", err, store.ErrNotFound)
	_, err = s.Messages(ctxBg, nobody, 1, store.ListOptions{})
	wantErr(t, "Messages", err, store.ErrNotFound)
	_, err = s.MailboxByID(ctxBg, nobody, 1)
	wantErr(t, "MailboxByID", err, store.ErrNotFound)
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: nobody, Blob: []byte("x")}})
	wantErr(t, "Deliver", err, store.ErrNotFound)

	// An account without mailboxes is allowed.
	if err := s.CreateAccount(ctxBg, store.Account{Address: "bare@example.org", PublicKey: []byte("k")}, nil); err != nil {
		t.Fatal(err)
	}
	if mbs, err := s.Mailboxes(ctxBg, "bare@example.org"); err != nil || len(mbs) != 0 {
		t.Errorf("bare account mailboxes %v, %v", mbs, err)
	}
}

func testSlots(t *testing.T, s store.Store) {
	const addr = "slots@example.org"
	newAccount(t, s, addr)
	id2, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotRecovery, Label: "recovery", Data: []byte("r")})
	if err != nil {
		t.Fatal(err)
	}
	id3, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotAppPassword, Label: "phone", Data: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	a := account(t, s, addr)
	if len(a.Slots) != 3 || id2 == id3 || id2 == a.Slots[0].ID {
		t.Fatalf("slots %+v, ids %d %d", a.Slots, id2, id3)
	}
	if err := s.RemoveSlot(ctxBg, addr, id2); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "RemoveSlot twice", s.RemoveSlot(ctxBg, addr, id2), store.ErrNotFound)
	wantErr(t, "RemoveSlot unknown", s.RemoveSlot(ctxBg, addr, 999), store.ErrNotFound)
	a = account(t, s, addr)
	if len(a.Slots) != 2 {
		t.Fatalf("after remove: %+v", a.Slots)
	}
	for _, sl := range a.Slots {
		if sl.ID == id2 {
			t.Errorf("removed slot %d still listed", id2)
		}
		if sl.ID == id3 && (sl.Kind != store.SlotAppPassword || sl.Label != "phone" || string(sl.Data) != "p" || sl.Created.IsZero()) {
			t.Errorf("slot %+v", sl)
		}
	}
	id4, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotPassword, Data: []byte("n")})
	if err != nil {
		t.Fatal(err)
	}
	if id4 == id2 || id4 == id3 || id4 == a.Slots[0].ID {
		t.Errorf("slot ID %d reused", id4)
	}
	// Bad slots change nothing.
	if _, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: 0, Data: []byte("x")}); err == nil {
		t.Errorf("AddSlot with kind 0 succeeded")
	}
	if _, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotPassword}); err == nil {
		t.Errorf("AddSlot without data succeeded")
	}
	if a := account(t, s, addr); len(a.Slots) != 3 {
		t.Errorf("slots after bad AddSlot: %d", len(a.Slots))
	}
}

func testDeleteAccount(t *testing.T, s store.Store) {
	const addr = "gone@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, "stays@example.org")
	if _, err := s.AddSlot(ctxBg, addr, store.Slot{Kind: store.SlotRecovery, Data: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "", 5, 100)
	deliverN(t, s, addr, "Archive", 2, 50)
	deliverN(t, s, "stays@example.org", "", 3, 10)
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Archive/2025"}); err != nil {
		t.Fatal(err)
	}
	oldBoxes := mailboxIDs(t, s, addr)
	oldInbox := mailbox(t, s, addr, store.Inbox)
	rep, err := s.DeleteAccount(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	want := store.DeleteReport{Slots: 2, Mailboxes: 7, Messages: 7, Bytes: 600}
	if rep != want {
		t.Errorf("DeleteReport = %+v, want %+v", rep, want)
	}
	_, err = s.Account(ctxBg, addr)
	wantErr(t, "Account after delete", err, store.ErrNotFound)
	_, err = s.Mailbox(ctxBg, addr, store.Inbox)
	wantErr(t, "Mailbox after delete", err, store.ErrNotFound)
	_, err = s.Blob(ctxBg, addr, oldInbox.ID, 1)
	wantErr(t, "Blob after delete", err, store.ErrNotFound)
	_, err = s.PublicAccount(ctxBg, addr)
	wantErr(t, "PublicAccount after delete", err, store.ErrNotFound)
	_, err = s.DeleteAccount(ctxBg, addr)
	wantErr(t, "DeleteAccount twice", err, store.ErrNotFound)
	all, err := s.Accounts(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Address == addr {
			t.Errorf("deleted account listed")
		}
	}

	// Re-created, the address starts empty.
	newAccount(t, s, addr)
	if a := account(t, s, addr); a.UsedBytes != 0 || len(a.Slots) != 1 {
		t.Errorf("re-created account: used %d, %d slots", a.UsedBytes, len(a.Slots))
	}
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != 0 {
		t.Errorf("re-created account has %d old messages", len(ms))
	}
	if m := mailbox(t, s, addr, store.Inbox); m.UIDNext != 1 || m.Messages != 0 {
		t.Errorf("re-created INBOX %+v", m)
	}
	// The old account's mailbox IDs name nothing in the new one: a
	// session of the deleted account cannot reach the new mail.
	deliverN(t, s, addr, store.Inbox, 1, 10)
	for id := range oldBoxes {
		if mb, err := s.MailboxByID(ctxBg, addr, id); err == nil {
			t.Errorf("old mailbox ID %d names %q of the re-created account", id, mb.Name)
		}
		_, err := s.Blob(ctxBg, addr, id, 1)
		wantErr(t, "Blob through an old mailbox ID", err, store.ErrNotFound)
	}
	if _, err := s.Mailbox(ctxBg, addr, "Archive/2025"); err == nil {
		t.Errorf("old mailbox survived")
	}
	// The other account is untouched.
	if ms := messages(t, s, "stays@example.org", store.Inbox, store.ListOptions{}); len(ms) != 3 {
		t.Errorf("other account has %d messages", len(ms))
	}
	if u := usedBytes(t, s, "stays@example.org"); u != 30 {
		t.Errorf("other account uses %d", u)
	}
}
