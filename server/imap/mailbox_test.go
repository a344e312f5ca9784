package imap

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func listNames(t *testing.T, c *imapclient.Client, ref, pattern string, o *imap.ListOptions) map[string]*imap.ListData {
	t.Helper()
	l, err := c.List(ref, pattern, o).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := map[string]*imap.ListData{}
	for _, d := range l {
		out[d.Mailbox] = d
	}
	return out
}

func hasAttr(d *imap.ListData, a imap.MailboxAttr) bool {
	return d != nil && slices.Contains(d.Attrs, a)
}

func TestMailboxCommands(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)

	// Default mailboxes with SPECIAL-USE.
	all := listNames(t, c, "", "*", nil)
	for name, attr := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive} {
		if !hasAttr(all[name], attr) {
			t.Errorf("%s lacks %s: %+v", name, attr, all[name])
		}
	}
	if all["INBOX"] == nil {
		t.Fatalf("no INBOX in %v", all)
	}
	su := listNames(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	if len(su) != 5 || su["INBOX"] != nil {
		t.Errorf("LIST (SPECIAL-USE) = %v", su)
	}

	// CREATE makes missing parents; CREATE-SPECIAL-USE.
	if err := c.Create("Projects/2026/Q4", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Receipts", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Projects", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE existing: %v", err)
	}
	if err := c.Create("inbox", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE inbox: %v", err)
	}
	top := listNames(t, c, "", "%", nil)
	if !hasAttr(top["Projects"], imap.MailboxAttrHasChildren) || !hasAttr(top["Sent"], imap.MailboxAttrHasNoChildren) || top["Projects/2026"] != nil {
		t.Errorf("LIST %% = %+v", top)
	}
	if !hasAttr(listNames(t, c, "", "Receipts", nil)["Receipts"], imap.MailboxAttrArchive) {
		t.Errorf("Receipts lacks \\Archive")
	}

	// Non-ASCII names and "&" round-trip (modified UTF-7 on the wire).
	for _, name := range []string{"Grüße", "Tom & Jerry", "日本語/子"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", name, err)
		}
		if got := listNames(t, c, "", name, nil); got[name] == nil {
			t.Errorf("LIST %q = %v", name, got)
		}
		if _, err := c.Select(name, nil).Wait(); err != nil {
			t.Errorf("SELECT %q: %v", name, err)
		}
	}
	// Invalid names get NO, never SERVERBUG.
	for _, name := range []string{"a//b", "/lead", "wild*", "c1\u0085ctl"} {
		err := c.Create(name, nil).Wait()
		if err == nil || imapCode(err) == imap.ResponseCodeServerBug {
			t.Errorf("CREATE %q: %v", name, err)
		}
	}

	// RENAME moves children; deliveries follow the new name.
	if err := c.Rename("Projects", "Work/Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	all = listNames(t, c, "", "*", nil)
	if all["Work/Projects/2026/Q4"] == nil || all["Projects"] != nil || all["Projects/2026"] != nil {
		t.Errorf("after RENAME: %v", all)
	}
	if err := c.Rename("Nope", "Other", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("RENAME missing: %v", err)
	}
	if err := c.Rename("Sent", "Drafts", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("RENAME onto existing: %v", err)
	}

	// RENAME INBOX moves its messages and leaves it empty.
	env.deliver(alice, "", testMessage("in", "x"))
	if err := c.Rename("INBOX", "Old Inbox", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"INBOX": 0, "Old Inbox": 1} {
		sd, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *sd.NumMessages != want {
			t.Errorf("STATUS %s = %v, %v", name, sd, err)
		}
	}

	// DELETE keeps children; INBOX cannot be deleted.
	if err := c.Delete("Work/Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	all = listNames(t, c, "", "*", nil)
	if all["Work/Projects"] != nil && !hasAttr(all["Work/Projects"], imap.MailboxAttrNoSelect) {
		t.Errorf("deleted mailbox still listed selectable: %+v", all["Work/Projects"])
	}
	if all["Work/Projects/2026/Q4"] == nil {
		t.Errorf("children of deleted mailbox vanished")
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Errorf("DELETE INBOX allowed")
	}
	if err := c.Delete("Nope").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("DELETE missing: %v", err)
	}

	// SUBSCRIBE/UNSUBSCRIBE, LSUB and LIST (SUBSCRIBED).
	if err := c.Unsubscribe("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Receipts").Wait(); err != nil {
		t.Fatal(err)
	}
	sub := listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if sub["Junk"] != nil || sub["Receipts"] == nil || !hasAttr(sub["Receipts"], imap.MailboxAttrSubscribed) {
		t.Errorf("LIST (SUBSCRIBED) = %v", sub)
	}

	// LIST RETURN (STATUS) and STATUS SIZE.
	env.deliver(alice, "Receipts", testMessage("r", "receipt"))
	st := listNames(t, c, "", "Receipts", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true, Size: true}})
	if d := st["Receipts"]; d == nil || d.Status == nil || *d.Status.NumMessages != 1 || *d.Status.NumUnseen != 1 || *d.Status.Size <= 0 {
		t.Errorf("LIST RETURN (STATUS) = %+v", d)
	}
	sd, err := c.Status("Receipts", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *sd.NumMessages != 1 || sd.UIDNext != 2 || sd.UIDValidity == 0 || *sd.NumDeleted != 0 || *sd.Size < int64(len(testMessage("r", "receipt"))) {
		t.Errorf("STATUS = %+v", sd)
	}
	if _, err := c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("STATUS missing: %v", err)
	}

	// NAMESPACE.
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}

	// LIST "" "" gives the delimiter.
	l, err := c.List("", "", nil).Collect()
	if err != nil || len(l) != 1 || l[0].Delim != '/' {
		t.Errorf(`LIST "" "" = %v, %v`, l, err)
	}
}

func TestSelectRev2AndUnauthenticate(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.Select("Sent", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.List == nil || sd.List.Mailbox != "Sent" || !hasAttr(sd.List, imap.MailboxAttrSent) {
		t.Errorf("rev2 SELECT LIST = %+v", sd.List)
	}
	if err := c.Unauthenticate().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err == nil {
		t.Errorf("SELECT after UNAUTHENTICATE succeeded")
	}
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("login after UNAUTHENTICATE: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}
