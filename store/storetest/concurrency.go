package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// testConcurrentDeliver: 32 goroutines deliver 50 messages each to one
// mailbox. Every UID is handed out once, each caller sees its UIDs rise,
// nothing is lost and the counters are exact.
func testConcurrentDeliver(t *testing.T, s store.Store) {
	const (
		addr    = "busy@example.org"
		workers = 32
		each    = 50
	)
	newAccount(t, s, addr)
	var wg sync.WaitGroup
	uids := make([][]uint32, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				flags := []string(nil)
				if n%3 == 0 {
					flags = []string{`\Seen`}
				}
				got, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Flags: flags, Blob: blob(n, 64+n%64)}})
				if err != nil {
					errs <- fmt.Errorf("worker %d delivery %d: %w", w, i, err)
					return
				}
				uids[w] = append(uids[w], got[0].UID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := make(map[uint32]int)
	var size int64
	var unseen uint32
	for w := range workers {
		for i, u := range uids[w] {
			if i > 0 && u <= uids[w][i-1] {
				t.Errorf("worker %d: UID %d after %d", w, u, uids[w][i-1])
			}
			if prev, dup := seen[u]; dup {
				t.Errorf("UID %d given to workers %d and %d", u, prev, w)
			}
			seen[u] = w
			n := w*each + i
			size += int64(64 + n%64)
			if n%3 != 0 {
				unseen++
			}
		}
	}
	const total = workers * each
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if len(ms) != total {
		t.Fatalf("listed %d messages, want %d", len(ms), total)
	}
	for i, m := range ms {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
		if i > 0 && m.ModSeq <= ms[i-1].ModSeq {
			t.Errorf("MODSEQ not rising at UID %d", m.UID)
		}
	}
	m := checkCounters(t, s, addr, store.Inbox)
	if m.Messages != total || m.UIDNext != total+1 || m.SealedSize != size || m.Unseen != unseen {
		t.Errorf("counters %+v, want %d messages, %d bytes, %d unseen", m, total, size, unseen)
	}
	if used := usedBytes(t, s, addr); used != size {
		t.Errorf("used %d, want %d", used, size)
	}
	// Every blob is the one its caller delivered.
	for w := 0; w < workers; w += 7 {
		for i, u := range uids[w] {
			n := w*each + i
			b, err := s.Blob(ctxBg, addr, m.ID, u)
			if err != nil || !bytes.Equal(b, blob(n, 64+n%64)) {
				t.Fatalf("blob of UID %d (worker %d #%d): %v", u, w, i, err)
			}
		}
	}
}

// testConcurrentMixed runs deliveries, flag changes, expunges, copies and
// listings at once across two accounts, then checks the books balance.
func testConcurrentMixed(t *testing.T, s store.Store) {
	accts := []string{"m1@example.org", "m2@example.org"}
	ids := make(map[string]map[string]uint64)
	for _, a := range accts {
		newAccount(t, s, a)
		if err := s.SetQuota(ctxBg, a, 1<<20); err != nil {
			t.Fatal(err)
		}
		ids[a] = map[string]uint64{}
		for _, name := range []string{store.Inbox, "Archive", "Trash"} {
			ids[a][name] = idOf(t, s, a, name)
		}
	}
	ctx, cancel := context.WithCancel(ctxBg)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for k := range 4 {
		run(func(i int) error {
			_, err := s.Deliver(ctx, []store.Delivery{
				{Account: accts[0], Blob: blob(i, 100)},
				{Account: accts[1], MailboxID: ids[accts[1]]["Archive"], Blob: blob(i+k, 50)},
			})
			return err
		})
	}
	for _, a := range accts {
		run(func(i int) error {
			_, err := s.StoreFlags(ctx, a, ids[a][store.Inbox], store.FlagUpdate{UIDs: []uint32{uint32(i), uint32(i + 1)}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
			return err
		})
		run(func(i int) error {
			if i%4 != 3 {
				return nil
			}
			_, err := s.Expunge(ctx, a, ids[a][store.Inbox], []uint32{uint32(i - 2)})
			return err
		})
		run(func(i int) error {
			_, err := s.CopyMessages(ctx, a, ids[a]["Archive"], ids[a]["Trash"], []uint32{uint32(i)})
			return err
		})
		run(func(i int) error {
			_, err := s.Messages(ctx, a, ids[a][store.Inbox], store.ListOptions{WithSummary: true})
			return err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, a := range accts {
		for _, mb := range []string{store.Inbox, "Archive", "Trash"} {
			checkCounters(t, s, a, mb)
		}
		usedBytes(t, s, a)
	}
	if m := mailbox(t, s, accts[0], store.Inbox); m.UIDNext != 161 {
		t.Errorf("UIDNEXT %d, want 161", m.UIDNext)
	}
}
