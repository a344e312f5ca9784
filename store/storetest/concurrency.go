package storetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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

// testConcurrentOneMailbox runs flag changes, expunges, deliveries and
// copies at once on one mailbox (a backend that commits them together
// must keep them exact) and checks the result against what each call
// reported: UIDs handed out once each and all accounted for (listed or
// expunged, never both), every MODSEQ handed out once and rising in each
// caller's order, HIGHESTMODSEQ the number of changes made, each
// message's MODSEQ and flags those of its last change, tombstones exactly
// the expunged UIDs, and counters and quota use agreeing with a listing.
func testConcurrentOneMailbox(t *testing.T, s store.Store) {
	const (
		addr  = "one@example.org"
		start = 40 // messages delivered first
		calls = 40 // per worker
	)
	newAccount(t, s, addr)
	deliverN(t, s, addr, "", start, 64)
	inbox := idOf(t, s, addr, store.Inbox)
	m0 := mailbox(t, s, addr, store.Inbox)

	type change struct {
		modseq uint64
		flags  []string
	}
	var (
		mu        sync.Mutex
		changes   = map[uint32][]change{} // flag changes per UID
		modseqs   = map[uint64]bool{}     // every MODSEQ reported
		created   []uint32                // UIDs of deliveries and copies
		expunged  []uint32
		increment uint64 // HIGHESTMODSEQ steps the calls reported
		maxUID    atomic.Uint32
	)
	maxUID.Store(m0.UIDNext - 1)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	run := func(seed uint64, f func(r *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for range calls {
				if err := f(r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	someUIDs := func(r *rand.Rand) []uint32 {
		uids := make([]uint32, 1+r.IntN(3))
		for i := range uids {
			uids[i] = 1 + r.Uint32N(maxUID.Load())
		}
		return uids
	}
	created0 := func(uids ...uint32) {
		for _, u := range uids {
			for {
				old := maxUID.Load()
				if u <= old || maxUID.CompareAndSwap(old, u) {
					break
				}
			}
		}
	}
	for w := range 4 {
		flags := [][]string{{store.FlagSeen}, {store.FlagFlagged}, {store.FlagDeleted}, {"$Label" + fmt.Sprint(w)}}
		run(uint64(w), func(r *rand.Rand) error {
			var last uint64
			res, err := s.StoreFlags(ctxBg, addr, inbox, store.FlagUpdate{
				UIDs: someUIDs(r), Op: store.FlagOp(r.IntN(3)), Flags: flags[r.IntN(len(flags))],
			})
			if err != nil {
				return fmt.Errorf("StoreFlags: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range res.Changed {
				if c.ModSeq <= last || modseqs[c.ModSeq] {
					return fmt.Errorf("StoreFlags: UID %d got MODSEQ %d again or out of order", c.UID, c.ModSeq)
				}
				last = c.ModSeq
				modseqs[c.ModSeq] = true
				changes[c.UID] = append(changes[c.UID], change{c.ModSeq, c.Flags})
				increment++
			}
			return nil
		})
	}
	for w := range 2 {
		run(uint64(10+w), func(r *rand.Rand) error {
			if r.IntN(3) != 0 {
				return nil
			}
			removed, err := s.Expunge(ctxBg, addr, inbox, someUIDs(r))
			if err != nil {
				return fmt.Errorf("Expunge: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			expunged = append(expunged, removed.UIDs...)
			if len(removed.UIDs) > 0 {
				increment++
			}
			return nil
		})
	}
	for w := range 2 {
		run(uint64(20+w), func(r *rand.Rand) error {
			n := 1 + r.IntN(2)
			ds := make([]store.Delivery, n)
			for i := range ds {
				ds[i] = store.Delivery{Account: addr, Blob: blob(r.IntN(1000), 32+r.IntN(64))}
			}
			got, err := s.Deliver(ctxBg, ds)
			if err != nil {
				return fmt.Errorf("Deliver: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range got {
				created = append(created, d.UID)
				created0(d.UID)
				increment++
			}
			return nil
		})
	}
	for w := range 2 {
		run(uint64(30+w), func(r *rand.Rand) error {
			res, err := s.CopyMessages(ctxBg, addr, inbox, inbox, someUIDs(r))
			if err != nil {
				return fmt.Errorf("CopyMessages: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range res.Pairs {
				created = append(created, p.Dst)
				created0(p.Dst)
				increment++
			}
			return nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	m := checkCounters(t, s, addr, store.Inbox)
	if want := m0.UIDNext + uint32(len(created)); m.UIDNext != want {
		t.Errorf("UIDNEXT %d, want %d (%d created)", m.UIDNext, want, len(created))
	}
	if want := m0.HighestModSeq + increment; m.HighestModSeq != want {
		t.Errorf("HIGHESTMODSEQ %d, want %d (%d changes)", m.HighestModSeq, want, increment)
	}
	// Every UID below UIDNEXT is listed or was expunged, never both; each
	// was created once and expunged at most once.
	all := map[uint32]int{}
	for u := uint32(1); u < m0.UIDNext; u++ {
		all[u]++
	}
	for _, u := range created {
		all[u]++
	}
	gone := map[uint32]bool{}
	for _, u := range expunged {
		if gone[u] {
			t.Errorf("UID %d expunged twice", u)
		}
		gone[u] = true
	}
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	for _, msg := range ms {
		if gone[msg.UID] {
			t.Errorf("UID %d listed and expunged", msg.UID)
		}
		if modseqs[msg.ModSeq] && len(changes[msg.UID]) == 0 {
			t.Errorf("UID %d has MODSEQ %d of another message's change", msg.UID, msg.ModSeq)
		}
		if c := changes[msg.UID]; len(c) > 0 {
			// The callers noted their changes in any order.
			last := slices.MaxFunc(c, func(a, b change) int { return cmp.Compare(a.modseq, b.modseq) })
			if msg.ModSeq != last.modseq || !store.SameFlags(msg.Flags, last.flags) {
				t.Errorf("UID %d: MODSEQ %d flags %v; its last change was %d %v", msg.UID, msg.ModSeq, msg.Flags, last.modseq, last.flags)
			}
		}
	}
	if len(ms)+len(gone) != len(all) {
		t.Errorf("%d listed + %d expunged, %d UIDs handed out", len(ms), len(gone), len(all))
	}
	for u, n := range all {
		if n != 1 {
			t.Errorf("UID %d handed out %d times", u, n)
		}
		if u >= m.UIDNext {
			t.Errorf("UID %d at or above UIDNEXT %d", u, m.UIDNext)
		}
	}
	v := vanished(t, s, addr, inbox, m0.HighestModSeq)
	slices.Sort(expunged)
	wantVanished(t, "after the concurrent expunges", v, expunged...)
	usedBytes(t, s, addr)
}
