package imap

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/store"
)

// TestChangesOfOtherProtocols: what another protocol of the process (POP3)
// changed reaches a session with the mailbox selected (Expunged,
// FlagsChanged), and Options.OnExpunge hears of this server's own
// removals only.
func TestChangesOfOtherProtocols(t *testing.T) {
	var mu sync.Mutex
	var told []uint32
	env := newEnv(t, envOptions{opt: Options{OnExpunge: func(account string, mailbox uint64, uids []uint32) {
		mu.Lock()
		told = append(told, uids...)
		mu.Unlock()
	}}})
	env.addUser(alice, alicePW)
	d1 := env.deliver(alice, "", testMessage("one", "1"))
	d2 := env.deliver(alice, "", testMessage("two", "2"))
	d3 := env.deliver(alice, "", testMessage("three", "3"))
	rec := newRecorder()
	c := env.dial(alice, alicePW, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := env.mailboxID(alice, "")
	res, err := env.st.StoreFlags(ctx, alice, id, store.FlagUpdate{UIDs: []uint32{d2.UID}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
	if err != nil {
		t.Fatal(err)
	}
	env.srv.FlagsChanged(alice, id, res.Changed)
	removed, err := env.st.Expunge(ctx, alice, id, []uint32{d1.UID})
	if err != nil {
		t.Fatal(err)
	}
	env.srv.Expunged(alice, id, removed.UIDs)
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "EXPUNGE 1 and FETCH 1 (FLAGS (\\Seen))", func() bool {
		return slices.Equal(rec.expunged, []uint32{1}) && slices.Contains(rec.flags[1], imap.FlagSeen)
	})
	mu.Lock()
	if len(told) != 0 {
		t.Errorf("OnExpunge told of another protocol's removal: %v", told)
	}
	mu.Unlock()

	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(told, []uint32{d3.UID}) {
		t.Errorf("OnExpunge told %v, want [%d]", told, d3.UID)
	}
}
