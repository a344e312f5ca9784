package storetest

import (
	"bytes"
	"errors"
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
	if got, err := s.MailboxByID(ctxBg, addr, m.ID); err != nil || got != m {
		t.Errorf("MailboxByID = %+v, %v; want %+v", got, err, m)
	}
	_, err = s.MailboxByID(ctxBg, addr, m.ID+1000)
	wantErr(t, "MailboxByID of an unknown ID", err, store.ErrNotFound)
	_, err = s.MailboxByID(ctxBg, addr, 0)
	wantErr(t, "MailboxByID(0)", err, store.ErrNotFound)
	// An ID belongs to its account.
	newAccount(t, s, "other@example.org")
	_, err = s.MailboxByID(ctxBg, "other@example.org", m.ID)
	wantErr(t, "MailboxByID of another account's mailbox", err, store.ErrNotFound)
	_, err = s.Messages(ctxBg, "other@example.org", m.ID, store.ListOptions{})
	wantErr(t, "Messages of another account's mailbox", err, store.ErrNotFound)
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
	wantErr(t, "SetSubscribed unknown account", s.SetSubscribed(ctxBg, "nobody@example.org", "Work", true), store.ErrNotFound)

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
	if err := s.DeleteMailbox(ctxBg, addr, old.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Mailbox(ctxBg, addr, "P")
	wantErr(t, "Mailbox after delete", err, store.ErrNotFound)
	_, err = s.MailboxByID(ctxBg, addr, old.ID)
	wantErr(t, "MailboxByID after delete", err, store.ErrNotFound)
	_, err = s.Messages(ctxBg, addr, old.ID, store.ListOptions{})
	wantErr(t, "Messages after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteMailbox twice", s.DeleteMailbox(ctxBg, addr, old.ID), store.ErrNotFound)
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
	_, err = s.Blob(ctxBg, addr, m.ID, 1)
	wantErr(t, "old blob", err, store.ErrNotFound)
	if uids := deliverN(t, s, addr, "P", 1, 5); uids[0] != 1 {
		t.Errorf("first UID in re-created mailbox %d", uids[0])
	}
	checkCounters(t, s, addr, "P")
}

// testStaleMailboxID: a mailbox is deleted and created again under the
// same name, and the new one gets mail with the same UIDs as the old one
// had (issue 8 §1). Every operation through the old ID is refused with
// ErrNotFound and changes nothing: a UID with the old UIDVALIDITY never
// names a message of the new mailbox (RFC 9051 §2.3.1.1).
func testStaleMailboxID(t *testing.T, s store.Store) {
	const addr = "stale@example.org"
	newAccount(t, s, addr)
	foo, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Foo"})
	if err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, addr, "Foo", 2, 40)
	if err := s.DeleteMailbox(ctxBg, addr, foo.ID); err != nil {
		t.Fatal(err)
	}
	foo2, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Foo"})
	if err != nil {
		t.Fatal(err)
	}
	if foo2.ID == foo.ID || foo2.UIDValidity == foo.UIDValidity {
		t.Fatalf("re-created Foo %+v reuses the old ID or UIDVALIDITY %+v", foo2, foo)
	}
	if uids := deliverN(t, s, addr, "Foo", 3, 50); !equalUIDs(uids, []uint32{1, 2, 3}) {
		t.Fatalf("new Foo UIDs %v", uids)
	}
	if _, err := s.StoreFlags(ctxBg, addr, foo2.ID, store.FlagUpdate{UIDs: []uint32{3}, Op: store.FlagsAdd, Flags: []string{store.FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSummaries(ctxBg, addr, foo2.ID, []store.SummaryUpdate{{UID: 1, Summary: []byte("sum"), SessionKey: []byte("key")}}); err != nil {
		t.Fatal(err)
	}
	inbox := idOf(t, s, addr, store.Inbox)
	deliverN(t, s, addr, store.Inbox, 1, 60)
	snapshot := func() ([]store.Mailbox, []store.Message, []store.Message, int64) {
		mbs, err := s.Mailboxes(ctxBg, addr)
		if err != nil {
			t.Fatal(err)
		}
		return mbs, messages(t, s, addr, "Foo", store.ListOptions{WithSummary: true}),
			messages(t, s, addr, store.Inbox, store.ListOptions{WithSummary: true}), account(t, s, addr).UsedBytes
	}
	mbs0, foo0, inbox0, used0 := snapshot()

	uids := []uint32{1, 2, 3}
	_, err = s.MailboxByID(ctxBg, addr, foo.ID)
	wantErr(t, "MailboxByID(old)", err, store.ErrNotFound)
	_, err = s.Messages(ctxBg, addr, foo.ID, store.ListOptions{WithSummary: true})
	wantErr(t, "Messages(old)", err, store.ErrNotFound)
	for _, uid := range uids {
		_, err = s.Blob(ctxBg, addr, foo.ID, uid)
		wantErr(t, "Blob(old)", err, store.ErrNotFound)
	}
	err = s.SetSummaries(ctxBg, addr, foo.ID, []store.SummaryUpdate{{UID: 1, Summary: []byte("x"), SessionKey: []byte("y")}})
	wantErr(t, "SetSummaries(old)", err, store.ErrNotFound)
	_, err = s.StoreFlags(ctxBg, addr, foo.ID, store.FlagUpdate{UIDs: uids, Op: store.FlagsSet, Flags: []string{store.FlagDeleted}})
	wantErr(t, "StoreFlags(old)", err, store.ErrNotFound)
	_, err = s.Expunge(ctxBg, addr, foo.ID, uids)
	wantErr(t, "Expunge(old)", err, store.ErrNotFound)
	_, err = s.CopyMessages(ctxBg, addr, foo.ID, inbox, uids)
	wantErr(t, "CopyMessages(old, INBOX)", err, store.ErrNotFound)
	_, err = s.MoveMessages(ctxBg, addr, foo.ID, inbox, uids)
	wantErr(t, "MoveMessages(old, INBOX)", err, store.ErrNotFound)
	_, err = s.CopyMessages(ctxBg, addr, inbox, foo.ID, []uint32{1})
	wantErr(t, "CopyMessages(INBOX, old)", err, store.ErrNotFound)
	_, err = s.MoveMessages(ctxBg, addr, inbox, foo.ID, []uint32{1})
	wantErr(t, "MoveMessages(INBOX, old)", err, store.ErrNotFound)
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, MailboxID: foo.ID, Blob: []byte("late")}})
	wantErr(t, "Deliver(old)", err, store.ErrNotFound)
	// One bad delivery fails the whole call.
	_, err = s.Deliver(ctxBg, []store.Delivery{
		{Account: addr, MailboxID: foo2.ID, Blob: []byte("fine")},
		{Account: addr, MailboxID: foo.ID, Blob: []byte("late")},
	})
	wantErr(t, "Deliver(new, old)", err, store.ErrNotFound)
	wantErr(t, "RenameMailbox(old)", s.RenameMailbox(ctxBg, addr, foo.ID, "Bar"), store.ErrNotFound)
	wantErr(t, "DeleteMailbox(old)", s.DeleteMailbox(ctxBg, addr, foo.ID), store.ErrNotFound)

	mbs1, foo1, inbox1, used1 := snapshot()
	if len(mbs1) != len(mbs0) || used1 != used0 {
		t.Errorf("mailboxes %d -> %d, used %d -> %d", len(mbs0), len(mbs1), used0, used1)
	}
	for i := range mbs0 {
		if i < len(mbs1) && mbs1[i] != mbs0[i] {
			t.Errorf("mailbox changed: %+v -> %+v", mbs0[i], mbs1[i])
		}
	}
	for _, c := range []struct {
		name   string
		before []store.Message
		after  []store.Message
	}{{"Foo", foo0, foo1}, {store.Inbox, inbox0, inbox1}} {
		if len(c.after) != len(c.before) {
			t.Errorf("%s: %d messages, had %d", c.name, len(c.after), len(c.before))
			continue
		}
		for i, w := range c.before {
			g := c.after[i]
			if g.UID != w.UID || g.ModSeq != w.ModSeq || !equalStrings(g.Flags, w.Flags) ||
				!bytes.Equal(g.Summary, w.Summary) || !bytes.Equal(g.SessionKey, w.SessionKey) {
				t.Errorf("%s message changed: %+v -> %+v", c.name, w, g)
			}
		}
	}
	for _, uid := range uids {
		if b, err := s.Blob(ctxBg, addr, foo2.ID, uid); err != nil || !bytes.Equal(b, blob(int(uid)-1+50, 50)) {
			t.Errorf("new Foo's blob %d: %v", uid, err)
		}
	}
	checkCounters(t, s, addr, "Foo")
	checkCounters(t, s, addr, store.Inbox)
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
	for _, n := range []string{"A", "A/B", "A/B/C", "AB", "X"} {
		before[n] = mailbox(t, s, addr, n)
	}
	if err := s.RenameMailbox(ctxBg, addr, before["A"].ID, "Z/A"); err != nil {
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
		if byID, err := s.MailboxByID(ctxBg, addr, b.ID); err != nil || byID != m {
			t.Errorf("MailboxByID after rename = %+v, %v; want %+v", byID, err, m)
		}
	}
	if m := mailbox(t, s, addr, "AB"); m != before["AB"] {
		t.Errorf("AB (not a child) changed: %+v", m)
	}
	if ms := messages(t, s, addr, "Z/A/B", store.ListOptions{}); len(ms) != 3 {
		t.Errorf("renamed mailbox lists %d messages", len(ms))
	}
	if b, err := s.Blob(ctxBg, addr, before["A/B"].ID, 2); err != nil || len(b) != 10 {
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

	x := before["X"].ID
	wantErr(t, "rename onto existing", s.RenameMailbox(ctxBg, addr, x, "AB"), store.ErrExists)
	wantErr(t, "rename unknown", s.RenameMailbox(ctxBg, addr, x+1000, "Y"), store.ErrNotFound)
	// A child would collide: nothing moves.
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "W/B"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "rename with colliding child", s.RenameMailbox(ctxBg, addr, before["A"].ID, "W"), store.ErrExists)
	if _, err := s.Mailbox(ctxBg, addr, "Z/A/B/C"); err != nil {
		t.Errorf("failed rename moved a child: %v", err)
	}
	if err := s.RenameMailbox(ctxBg, addr, x, "X/Y"); err == nil {
		t.Errorf("rename below itself succeeded")
	}
	if err := s.RenameMailbox(ctxBg, addr, x, "X"); err == nil {
		t.Errorf("rename to its own name succeeded")
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
		if err := s.RenameMailbox(ctxBg, addr, idOf(t, s, addr, "Junk"), n); err == nil {
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

// testSubscriptions: subscriptions are kept by name, apart from mailboxes
// (RFC 9051 §6.3.7): a name without a mailbox can be subscribed, a
// deleted mailbox's subscription stays, a renamed one's moves with it.
func testSubscriptions(t *testing.T, s store.Store) {
	const addr = "subs@example.org"
	newAccount(t, s, addr)
	subs := func() string {
		t.Helper()
		l, err := s.Subscriptions(ctxBg, addr)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(l, ",")
	}
	base := subs() // the default mailboxes that are subscribed
	if base == "" {
		t.Fatalf("default mailboxes not subscribed")
	}
	if err := s.SetSubscribed(ctxBg, addr, "Later/Child", true); err != nil {
		t.Fatalf("subscribe to a name without a mailbox: %v", err)
	}
	a, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "A", Subscribed: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "A/B"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctxBg, addr, "A/B", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctxBg, addr, a.ID, "C"); err != nil {
		t.Fatal(err)
	}
	if !mailbox(t, s, addr, "C").Subscribed || !mailbox(t, s, addr, "C/B").Subscribed {
		t.Errorf("subscriptions did not follow RENAME")
	}
	c := mailbox(t, s, addr, "C")
	if err := s.DeleteMailbox(ctxBg, addr, c.ID); err != nil {
		t.Fatal(err)
	}
	got := subs()
	for _, want := range []string{"C", "C/B", "Later/Child"} {
		if !strings.Contains(","+got+",", ","+want+",") {
			t.Errorf("subscriptions %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "A") && strings.Contains(","+got+",", ",A,") {
		t.Errorf("old name still subscribed: %q", got)
	}
	// A mailbox created under a subscribed name is subscribed.
	if _, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "C"}); err != nil {
		t.Fatal(err)
	}
	if !mailbox(t, s, addr, "C").Subscribed {
		t.Errorf("mailbox under a subscribed name not shown as subscribed")
	}
	for _, n := range []string{"C", "C/B", "Later/Child"} {
		if err := s.SetSubscribed(ctxBg, addr, n, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := subs(); got != base {
		t.Errorf("after unsubscribing: %q, want %q", got, base)
	}
	wantErr(t, "SetSubscribed bad name", s.SetSubscribed(ctxBg, addr, "a//b", true), store.ErrBadName)
	if _, err := s.Subscriptions(ctxBg, "nobody@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Subscriptions of an unknown account: %v", err)
	}
}
