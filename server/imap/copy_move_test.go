package imap

import (
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestCopyAndMove(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	var msgs [][]byte
	for _, s := range []string{"one", "two", "three"} {
		m := testMessage(s, "body of "+s)
		msgs = append(msgs, m)
		env.deliver(alice, "", m)
	}
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Build summaries in INBOX, then COPY: the copies keep them.
	if _, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Envelope: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	cd, err := c.Copy(imap.SeqSetNum(1, 3), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cd.UIDValidity == 0 || cd.SourceUIDs.String() != "1,3" || cd.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID = %+v src %v dst %v", cd, cd.SourceUIDs, cd.DestUIDs)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to missing: %v", err)
	}

	// MOVE: COPYUID then EXPUNGE; sequence numbers follow.
	md, err := c.Move(imap.UIDSetNum(2), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.UIDValidity == 0 || md.SourceUIDs.String() != "2" || md.DestUIDs.String() != "1" {
		t.Errorf("MOVE COPYUID = %+v", md)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Errorf("INBOX has %d messages after MOVE", n)
	}
	// MOVE into the selected mailbox itself gives the message a new UID,
	// as Dovecot does.
	sd, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait()
	if err != nil {
		t.Fatalf("MOVE into the same mailbox: %v", err)
	}
	if sd.SourceUIDs.String() != "1" || sd.DestUIDs.String() != "4" {
		t.Errorf("MOVE into itself: COPYUID = %+v", sd)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Errorf("INBOX has %d messages after MOVE into itself", n)
	}

	// The copies and the moved message read back byte-identical, with
	// summaries copied (no rebuild needed).
	whole := &imap.FetchItemBodySection{Peek: true}
	for box, want := range map[string][][]byte{"Archive": {msgs[0], msgs[2]}, "Trash": {msgs[1]}} {
		stored, err := env.messages(alice, box, storeListWithSummary())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range stored {
			if m.Summary == nil || m.SessionKey == nil {
				t.Errorf("%s uid %d lacks a summary after COPY/MOVE", box, m.UID)
			}
		}
		if _, err := c.Select(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		got, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages", box, len(got))
		}
		for i := range got {
			if !bytes.Equal(got[i].FindBodySection(whole), want[i]) {
				t.Errorf("%s %d: body differs", box, i+1)
			}
		}
	}
}
