package imap

import (
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestConcurrentSessions runs deliveries, APPENDs, flag changes and
// expunges from several sessions at once, then checks that every session
// ends with the store's view. The trackers panic on inconsistent counts,
// which would end connections and fail the test.
func TestConcurrentSessions(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for range 10 {
		env.deliver(alice, "", testMessage("seed", "x"))
	}
	const sessions = 3
	clients := make([]*imapclient.Client, sessions)
	for i := range clients {
		clients[i] = env.dial(alice, alicePW)
		if _, err := clients[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 15 {
			env.deliver(alice, "", testMessage("bg", "y"))
		}
	}()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				msg := testMessage("app", "z")
				cmd := c.Append("INBOX", int64(len(msg)), nil)
				cmd.Write(msg)
				cmd.Close()
				if _, err := cmd.Wait(); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				if err := c.Store(imap.SeqSetNum(uint32(1+j+i)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
					t.Errorf("store: %v", err)
					return
				}
				if _, err := c.Expunge().Collect(); err != nil {
					t.Errorf("expunge: %v", err)
					return
				}
				// Another session's EXPUNGE this one has not been told of
				// yet (FETCH by sequence number may not tell it) makes the
				// FETCH answer NO [EXPUNGEISSUED] for the messages that are
				// gone (RFC 2180 §4.1.2), after the others.
				if _, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect(); err != nil && imapCode(err) != "EXPUNGEISSUED" {
					t.Errorf("fetch: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stored, err := env.messages(alice, "INBOX", storeList())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if c.Mailbox().NumMessages != uint32(len(stored)) || len(msgs) != len(stored) {
			t.Fatalf("session %d sees %d (fetched %d), store has %d", i, c.Mailbox().NumMessages, len(msgs), len(stored))
		}
		for k, m := range msgs {
			if m.SeqNum != uint32(k+1) || uint32(m.UID) != stored[k].UID {
				t.Fatalf("session %d: seq %d uid %d, store uid %d", i, m.SeqNum, m.UID, stored[k].UID)
			}
		}
	}
}
