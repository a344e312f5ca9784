package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// imapCrashState is what one session last had acknowledged for one of
// its messages, and what it had sent and not seen answered when the
// server died (either may be what the store holds).
type imapCrashState struct {
	acked, pending       []imap.Flag
	expunged, expunging  bool
	hasAcked, hasPending bool
}

// TestIMAPCrashSafety SIGKILLs the real binary while several IMAP
// sessions change flags and expunge in one mailbox (their writes share
// commits), restarts it, and checks against the store: every change a
// session had acknowledged is there (flags exactly as last stored,
// expunged messages gone and in the tombstones), nothing else changed,
// every MODSEQ is unique, and the mailbox and account counters agree
// with a full listing.
func TestIMAPCrashSafety(t *testing.T) {
	const (
		user      = "alice@example.org"
		sessions  = 6
		messages  = 60
		killAfter = 150 // acknowledged changes before SIGKILL
	)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", user, "--password-stdin")
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)
	dial := func() *imapclient.Client {
		c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: conf})
		if err != nil {
			t.Fatalf("imaps: %v", err)
		}
		if err := c.Login(user, alicePW).Wait(); err != nil {
			t.Fatalf("login: %v", err)
		}
		return c
	}
	c := dial()
	for n := range messages {
		msg := fmt.Sprintf("Subject: crash %d\r\nFrom: a@example.net\r\n\r\nmessage %d\r\n", n, n)
		w := c.Append("INBOX", int64(len(msg)), nil)
		w.Write([]byte(msg))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()

	// Session k owns the UIDs u with u%sessions == k, so the state each
	// message must have is known exactly.
	combos := [][]imap.Flag{
		{}, {imap.FlagSeen}, {imap.FlagFlagged}, {imap.FlagSeen, imap.FlagFlagged},
		{imap.FlagAnswered, "$Work"}, {imap.FlagSeen, "$Work"},
	}
	var (
		mu    sync.Mutex
		state = map[uint32]*imapCrashState{}
		acks  atomic.Int32
		wg    sync.WaitGroup
	)
	for u := uint32(1); u <= messages; u++ {
		state[u] = &imapCrashState{}
	}
	killed := make(chan struct{})
	for k := range sessions {
		c := dial()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			var mine []uint32
			for u := uint32(1); u <= messages; u++ {
				if int(u)%sessions == k {
					mine = append(mine, u)
				}
			}
			for n := 0; len(mine) > 0; n++ {
				select {
				case <-killed:
					return
				default:
				}
				u := mine[n%len(mine)]
				st := state[u]
				if n%9 == 8 { // expunge it
					mu.Lock()
					st.expunging = true
					mu.Unlock()
					set := imap.UIDSetNum(imap.UID(u))
					if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
						return
					}
					if err := c.UIDExpunge(set).Close(); err != nil {
						return // cut off by the kill: no promise made
					}
					mu.Lock()
					st.expunged = true
					mu.Unlock()
					acks.Add(1)
					mine = slices.DeleteFunc(mine, func(x uint32) bool { return x == u })
					continue
				}
				flags := combos[(n/len(mine)+int(u))%len(combos)]
				mu.Lock()
				st.pending, st.hasPending = flags, true
				mu.Unlock()
				err := c.Store(imap.UIDSetNum(imap.UID(u)), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: flags}, nil).Close()
				if err != nil {
					return
				}
				mu.Lock()
				st.acked, st.hasAcked = flags, true
				st.pending, st.hasPending = nil, false
				mu.Unlock()
				acks.Add(1)
			}
		}()
	}
	killAfterAcks(t, s, &acks, killAfter, killed, &wg)
	if acks.Load() < killAfter {
		t.Fatalf("only %d changes acknowledged before the deadline:\n%s", acks.Load(), s.logs())
	}
	t.Logf("%d changes acknowledged before SIGKILL", acks.Load())

	// Restart on the same data directory, then look at the store itself.
	s2 := te.serve()
	if err := s2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s2.logs())
	}
	st, err := badgerstore.Open(te.dataDir+"/store", badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	inbox, err := st.Mailbox(ctx, user, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, user, inbox.ID, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uint32]store.Message{}
	modseqs := map[uint64]uint32{}
	var (
		unseen, deleted uint32
		size            int64
		maxModSeq       uint64
	)
	for _, m := range msgs {
		listed[m.UID] = m
		if other, dup := modseqs[m.ModSeq]; dup {
			t.Errorf("UIDs %d and %d share MODSEQ %d", other, m.UID, m.ModSeq)
		}
		modseqs[m.ModSeq] = m.UID
		maxModSeq = max(maxModSeq, m.ModSeq)
		if !store.HasFlag(m.Flags, store.FlagSeen) {
			unseen++
		}
		if store.HasFlag(m.Flags, store.FlagDeleted) {
			deleted++
		}
		size += m.SealedSize
	}
	same := func(stored []string, want []imap.Flag) bool {
		w := make([]string, len(want))
		for i, f := range want {
			w[i] = string(f)
		}
		w, err := store.CanonicalFlags(w)
		return err == nil && store.SameFlags(stored, w)
	}
	var gone []uint32
	for u := uint32(1); u <= messages; u++ {
		st := state[u]
		m, ok := listed[u]
		switch {
		case st.expunged:
			if ok {
				t.Errorf("UID %d: expunge acknowledged, still stored", u)
			}
			gone = append(gone, u)
		case !ok:
			if !st.expunging {
				t.Errorf("UID %d is gone; nobody expunged it", u)
			}
			gone = append(gone, u)
		case st.expunging && store.HasFlag(m.Flags, store.FlagDeleted):
			// Its \Deleted landed, the expunge did not: allowed.
		case st.hasPending && same(m.Flags, st.pending):
		case st.hasAcked:
			if !same(m.Flags, st.acked) {
				t.Errorf("UID %d: flags %v, last acknowledged %v (pending %v)", u, m.Flags, st.acked, st.pending)
			}
		default:
			if len(m.Flags) != 0 {
				t.Errorf("UID %d: flags %v, none stored", u, m.Flags)
			}
		}
	}
	if inbox.Messages != uint32(len(msgs)) || inbox.Unseen != unseen || inbox.Deleted != deleted || inbox.SealedSize != size {
		t.Errorf("INBOX counters: %d messages, %d unseen, %d deleted, %d bytes; listed %d, %d, %d, %d",
			inbox.Messages, inbox.Unseen, inbox.Deleted, inbox.SealedSize, len(msgs), unseen, deleted, size)
	}
	if inbox.HighestModSeq < maxModSeq || inbox.UIDNext != messages+1 {
		t.Errorf("INBOX HIGHESTMODSEQ %d (a message has %d), UIDNEXT %d", inbox.HighestModSeq, maxModSeq, inbox.UIDNext)
	}
	v, err := st.Vanished(ctx, user, inbox.ID, 0)
	if err != nil || !v.Complete || !slices.Equal(v.UIDs, gone) {
		t.Errorf("Vanished: %+v, %v; want complete %v", v, err, gone)
	}
	acct, err := st.Account(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := st.Mailboxes(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	for _, m := range mbs {
		used += m.SealedSize
	}
	if acct.UsedBytes != used {
		t.Errorf("account uses %d bytes, its mailboxes hold %d", acct.UsedBytes, used)
	}
	t.Logf("%d messages stored, %d expunged", len(msgs), len(gone))
}
