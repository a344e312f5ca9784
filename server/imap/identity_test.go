package imap

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/server/internal/testutil"
)

// staleOps are the commands a session may send with a selected mailbox.
// Each must be refused once another session has deleted that mailbox,
// even though a new mailbox of the same name exists.
var staleOps = []struct {
	name string
	run  func(c *imapclient.Client) error
}{
	{"FETCH", func(c *imapclient.Client) error {
		_, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
		return err
	}},
	{"UID FETCH BODY", func(c *imapclient.Client) error {
		_, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		return err
	}},
	{"STORE and EXPUNGE", func(c *imapclient.Client) error {
		flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		if err := c.Store(imap.SeqSetNum(1), flags, nil).Close(); err != nil {
			return err
		}
		_, err := c.Expunge().Collect()
		return err
	}},
	{"COPY", func(c *imapclient.Client) error {
		_, err := c.Copy(imap.SeqSetNum(1), "INBOX").Wait()
		return err
	}},
	{"MOVE", func(c *imapclient.Client) error {
		_, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait()
		return err
	}},
	{"SEARCH", func(c *imapclient.Client) error {
		_, err := c.Search(&imap.SearchCriteria{Body: []string{"body"}}, nil).Wait()
		return err
	}},
	{"NOOP", func(c *imapclient.Client) error { return c.Noop().Wait() }},
}

// TestSelectedMailboxDeletedAndRecreated is issue 8 §1: session A selects
// Foo; session B deletes Foo and creates it again; a message is delivered
// into the new Foo. A's UIDs and UIDVALIDITY name the old Foo's messages,
// so nothing A sends may read, flag, copy, move or expunge the new
// message: A is told with an untagged BYE (as Dovecot does) and the new
// Foo is unchanged.
func TestSelectedMailboxDeletedAndRecreated(t *testing.T) {
	for _, op := range staleOps {
		t.Run(op.name, func(t *testing.T) {
			env := newEnv(t)
			env.addUser(alice, alicePW)
			b := env.dial(alice, alicePW)
			if err := b.Create("Foo", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			env.deliver(alice, "Foo", testMessage("old", "old body"))

			trace := &testutil.LogBuffer{}
			a := env.dial(alice, alicePW, &imapclient.Options{DebugWriter: trace})
			sd, err := a.Select("Foo", nil).Wait()
			if err != nil || sd.NumMessages != 1 {
				t.Fatalf("A: SELECT Foo = %+v, %v", sd, err)
			}

			if err := b.Delete("Foo").Wait(); err != nil {
				t.Fatalf("B: DELETE: %v", err)
			}
			if err := b.Create("Foo", nil).Wait(); err != nil {
				t.Fatalf("B: CREATE: %v", err)
			}
			d := env.deliver(alice, "Foo", testMessage("new", "new body"))
			if d.UID != 1 || d.UIDValidity == sd.UIDValidity {
				t.Fatalf("new Foo: UID %d UIDVALIDITY %d (old %d)", d.UID, d.UIDValidity, sd.UIDValidity)
			}

			err = op.run(a)
			if err == nil {
				t.Errorf("A: %s through the deleted mailbox succeeded", op.name)
			}
			if !strings.Contains(trace.String(), "* BYE ") {
				t.Errorf("A was not told with BYE; A's transcript:\n%s", trace.String())
			}
			if strings.Contains(trace.String(), `"new"`) || strings.Contains(trace.String(), "new body") {
				t.Errorf("A read the new mailbox's message:\n%s", trace.String())
			}

			// Nothing changed: the new Foo holds its message, unflagged,
			// and nothing reached INBOX.
			sd, err = b.Select("Foo", nil).Wait()
			if err != nil || sd.NumMessages != 1 {
				t.Fatalf("B: SELECT Foo after A's %s = %+v, %v", op.name, sd, err)
			}
			m := fetchOne(t, b, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, Envelope: true})
			if m.Envelope == nil || m.Envelope.Subject != "new" || len(m.Flags) > 1 || len(m.Flags) == 1 && m.Flags[0] != `\Recent` {
				t.Errorf("new Foo's message after A's %s: flags %v, envelope %+v", op.name, m.Flags, m.Envelope)
			}
			st, err := b.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || st.NumMessages == nil || *st.NumMessages != 0 {
				t.Errorf("INBOX after A's %s: %+v, %v", op.name, st, err)
			}
		})
	}
}

// TestIdleSelectedMailboxDeleted: a session IDLE in a mailbox that another
// session deletes is told at once with an untagged BYE and disconnected.
func TestIdleSelectedMailboxDeleted(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	b := env.dial(alice, alicePW)
	if err := b.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	trace := &testutil.LogBuffer{}
	a := env.dial(alice, alicePW, &imapclient.Options{DebugWriter: trace})
	if _, err := a.Select("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := b.Delete("Foo").Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(trace.String(), "* BYE ") {
		if time.Now().After(deadline) {
			t.Fatalf("no BYE during IDLE; A's transcript:\n%s", trace.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := idle.Wait(); err == nil {
		t.Errorf("IDLE ended without error after BYE")
	}
}

// TestSelectedMailboxRenamed: a rename by another session keeps the
// selected mailbox (same ID, same UIDVALIDITY) usable under its new name,
// and a new mailbox under the old name is not reachable through it.
func TestSelectedMailboxRenamed(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	b := env.dial(alice, alicePW)
	if err := b.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "Foo", testMessage("old", "old body"))
	a := env.dial(alice, alicePW)
	sd, err := a.Select("Foo", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Rename("Foo", "Bar", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "Foo", testMessage("new", "new body"))
	env.deliver(alice, "Bar", testMessage("later", "later body"))

	if err := a.Noop().Wait(); err != nil {
		t.Fatalf("A: NOOP after rename: %v", err)
	}
	msgs, err := a.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("A: FETCH after rename: %d messages, %v", len(msgs), err)
	}
	if msgs[0].Envelope.Subject != "old" || msgs[1].Envelope.Subject != "later" {
		t.Errorf("A reads %q, %q; want old, later", msgs[0].Envelope.Subject, msgs[1].Envelope.Subject)
	}
	flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}
	if err := a.Store(imap.SeqSetNum(1), flags, nil).Close(); err != nil {
		t.Fatalf("A: STORE after rename: %v", err)
	}

	bd, err := b.Select("Bar", nil).Wait()
	if err != nil || bd.UIDValidity != sd.UIDValidity || bd.NumMessages != 2 {
		t.Fatalf("B: SELECT Bar = %+v, %v; A selected UIDVALIDITY %d", bd, err, sd.UIDValidity)
	}
	m := fetchOne(t, b, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true})
	if !hasFlag(m.Flags, imap.FlagFlagged) {
		t.Errorf("A's STORE did not reach Bar: %v", m.Flags)
	}
	if _, err := b.Select("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m = fetchOne(t, b, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, Envelope: true})
	if m.Envelope.Subject != "new" || len(m.Flags) > 1 || len(m.Flags) == 1 && m.Flags[0] != `\Recent` {
		t.Errorf("new Foo changed: %v %+v", m.Flags, m.Envelope)
	}
}

// TestSelectedMailboxDeletedOutsideRegistry: a deletion this server did not
// see (another process on a shared store; here the store directly) is
// found at the next store call through the stale selection, and told the
// same way.
func TestSelectedMailboxDeletedOutsideRegistry(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	b := env.dial(alice, alicePW)
	if err := b.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "Foo", testMessage("old", "old body"))
	trace := &testutil.LogBuffer{}
	a := env.dial(alice, alicePW, &imapclient.Options{DebugWriter: trace})
	if _, err := a.Select("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := env.st.DeleteMailbox(t.Context(), alice, env.mailboxID(alice, "Foo")); err != nil {
		t.Fatal(err)
	}
	if err := b.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "Foo", testMessage("new", "new body"))
	if _, err := a.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect(); err == nil {
		t.Errorf("FETCH through the deleted mailbox succeeded")
	}
	if !strings.Contains(trace.String(), "* BYE ") || strings.Contains(trace.String(), `"new"`) {
		t.Errorf("A's transcript:\n%s", trace.String())
	}
}

// TestDeleteOwnSelectedMailbox: the session that deletes its own selected
// mailbox gets OK and is left with nothing selected (it knows what it
// did); it is not disconnected and can select another mailbox.
func TestDeleteOwnSelectedMailbox(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("in inbox", "x"))
	a := env.dial(alice, alicePW)
	if err := a.Create("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "Foo", testMessage("old", "old body"))
	if _, err := a.Select("Foo", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("Foo").Wait(); err != nil {
		t.Fatalf("DELETE of the selected mailbox: %v", err)
	}
	_, err := a.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err == nil {
		t.Errorf("FETCH after deleting the selected mailbox succeeded")
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after DELETE: %v (disconnected?)", err)
	}
	sd, err := a.Select("INBOX", nil).Wait()
	if err != nil || sd.NumMessages != 1 {
		t.Fatalf("SELECT INBOX after DELETE: %+v, %v", sd, err)
	}
	m := fetchOne(t, a, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true})
	if m.Envelope.Subject != "in inbox" {
		t.Errorf("INBOX message %q", m.Envelope.Subject)
	}
}
