package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The audit log's hash is package crypto's business; the suite only needs
// distinct values that link, so it uses a plain SHA-256 of the fields.
func fakeAuditHash(r store.AuditRecord) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%s|%s|%s|%s|%s|%v|%x", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Actor, r.Action, r.Scope, r.Reason, r.Detail, r.Prev)
	return h.Sum(nil)
}

// nextAudit returns the record that follows head.
func nextAudit(head store.AuditHead, actor string, n int) store.AuditRecord {
	r := store.AuditRecord{
		Seq:    head.Seq + 1,
		Time:   date0.Add(time.Duration(head.Seq) * time.Second),
		Actor:  actor,
		Action: "test.append",
		Scope:  fmt.Sprintf("user:u%d@example.org", n),
		Reason: "reason " + actor,
		Detail: map[string]string{"n": fmt.Sprint(n), "actor": actor},
		Prev:   head.Hash,
	}
	if r.Prev == nil {
		r.Prev = make([]byte, 32)
	}
	r.Hash = fakeAuditHash(r)
	return r
}

// chainOf makes n linked records after head.
func chainOf(head store.AuditHead, n int) []store.AuditRecord {
	rs := make([]store.AuditRecord, n)
	for i := range rs {
		rs[i] = nextAudit(head, "chain", i)
		head = store.AuditHead{Seq: rs[i].Seq, Hash: rs[i].Hash, Time: rs[i].Time}
	}
	return rs
}

func headOf(r store.AuditRecord) store.AuditHead {
	return store.AuditHead{Seq: r.Seq, Hash: r.Hash, Time: r.Time}
}

func auditHead(t *testing.T, s store.Store) store.AuditHead {
	t.Helper()
	h, err := s.AuditHead(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameAudit(t *testing.T, got, want store.AuditRecord) {
	t.Helper()
	if got.Seq != want.Seq || !got.Time.Equal(want.Time) || got.Actor != want.Actor || got.Action != want.Action ||
		got.Scope != want.Scope || got.Reason != want.Reason || !bytes.Equal(got.Prev, want.Prev) || !bytes.Equal(got.Hash, want.Hash) ||
		len(got.Detail) != len(want.Detail) || (len(want.Detail) > 0 && !reflect.DeepEqual(got.Detail, want.Detail)) {
		t.Errorf("audit record:\n got %+v\nwant %+v", got, want)
	}
}

// testAudit: appends keep one linear chain; a record that does not follow
// the head (wrong seq, wrong prev, a gap inside a batch) is ErrConflict
// and stores nothing; reads page in seq order; slices are copies.
func testAudit(t *testing.T, s store.Store) {
	if h := auditHead(t, s); h.Seq != 0 || h.Hash != nil {
		t.Fatalf("empty log has head %+v", h)
	}
	if rs, err := s.AuditRecords(ctxBg, 1, 10); err != nil || len(rs) != 0 {
		t.Fatalf("empty log lists %d records, %v", len(rs), err)
	}
	if err := s.AppendAudit(ctxBg, nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}

	// The first record must be seq 1.
	bad := nextAudit(store.AuditHead{Seq: 1, Hash: bytes.Repeat([]byte{1}, 32)}, "x", 0)
	if err := s.AppendAudit(ctxBg, []store.AuditRecord{bad}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("seq 2 on an empty log: %v", err)
	}
	first := chainOf(store.AuditHead{}, 3)
	if err := s.AppendAudit(ctxBg, first); err != nil {
		t.Fatal(err)
	}
	h := auditHead(t, s)
	if h.Seq != 3 || !bytes.Equal(h.Hash, first[2].Hash) || !h.Time.Equal(first[2].Time) {
		t.Fatalf("head %+v, want record 3", h)
	}

	more := chainOf(h, 4)
	conflicts := map[string][]store.AuditRecord{
		"repeated seq":  {nextAudit(headOf(first[1]), "x", 0)},
		"skipped seq":   chainOf(store.AuditHead{Seq: 4, Hash: h.Hash}, 1),
		"wrong prev":    chainOf(store.AuditHead{Seq: 3, Hash: first[1].Hash}, 1),
		"gap in batch":  {more[0], more[2]},
		"prev in batch": {more[0], nextAudit(store.AuditHead{Seq: 4, Hash: first[0].Hash}, "x", 0)},
	}
	for name, rs := range conflicts {
		err := s.AppendAudit(ctxBg, rs)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %v, want ErrConflict", name, err)
		}
		// A first record that does not follow the head names the head.
		var c *store.AuditConflict
		if rs[0].Seq != h.Seq+1 || !bytes.Equal(rs[0].Prev, h.Hash) {
			if !errors.As(err, &c) || c.Head.Seq != h.Seq || !bytes.Equal(c.Head.Hash, h.Hash) || !c.Head.Time.Equal(h.Time) {
				t.Errorf("%s: %v, want an AuditConflict naming head %d", name, err, h.Seq)
			}
		}
	}
	if h2 := auditHead(t, s); h2.Seq != 3 {
		t.Fatalf("a refused append moved the head to %d", h2.Seq)
	}
	if rs, _ := s.AuditRecords(ctxBg, 4, 10); len(rs) != 0 {
		t.Fatalf("a refused append stored %d records", len(rs))
	}

	// Slices are copied both ways.
	mine := chainOf(h, 1)
	if err := s.AppendAudit(ctxBg, mine); err != nil {
		t.Fatal(err)
	}
	want := mine[0]
	want.Hash, want.Prev = bytes.Clone(want.Hash), bytes.Clone(want.Prev)
	want.Detail = map[string]string{"n": "0", "actor": "chain"}
	mine[0].Hash[0] ^= 0xff
	mine[0].Prev[0] ^= 0xff
	mine[0].Detail["n"] = "changed"
	got, err := s.AuditRecords(ctxBg, 4, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("read record 4: %d, %v", len(got), err)
	}
	sameAudit(t, got[0], want)
	got[0].Hash[0] ^= 0xff
	got[0].Detail["n"] = "changed"
	again, _ := s.AuditRecords(ctxBg, 4, 1)
	sameAudit(t, again[0], want)

	// A record without details comes back without them; paging.
	h = auditHead(t, s)
	var rest []store.AuditRecord
	for range 20 {
		r := nextAudit(h, "page", 0)
		r.Detail, r.Reason = nil, ""
		r.Hash = fakeAuditHash(r)
		rest = append(rest, r)
		h = headOf(r)
	}
	if err := s.AppendAudit(ctxBg, rest); err != nil {
		t.Fatal(err)
	}
	all := append(append(first, want), rest...)
	var read []store.AuditRecord
	for from := uint64(1); ; {
		page, err := s.AuditRecords(ctxBg, from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d, asked for 7", len(page))
		}
		read = append(read, page...)
		from = page[len(page)-1].Seq + 1
	}
	if len(read) != len(all) {
		t.Fatalf("read %d records, want %d", len(read), len(all))
	}
	for i := range all {
		sameAudit(t, read[i], all[i])
	}
	if rs, _ := s.AuditRecords(ctxBg, 0, 2); len(rs) != 2 || rs[0].Seq != 1 {
		t.Errorf("from 0 reads from the start: %d records", len(rs))
	}
	if rs, _ := s.AuditRecords(ctxBg, 1000, 2); len(rs) != 0 {
		t.Errorf("beyond the head: %d records", len(rs))
	}

	// Too many records for one call.
	if err := s.AppendAudit(ctxBg, chainOf(h, store.MaxAuditBatch+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("append of %d: %v, want ErrTooLarge", store.MaxAuditBatch+1, err)
	}
	if err := s.AppendAudit(ctxBg, chainOf(h, store.MaxAuditBatch)); err != nil {
		t.Errorf("append of %d: %v", store.MaxAuditBatch, err)
	}

	ctx, cancel := context.WithCancel(ctxBg)
	cancel()
	if err := s.AppendAudit(ctx, chainOf(auditHead(t, s), 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendAudit with cancelled context: %v", err)
	}
}

// testAuditConcurrent: writers race to append, each rereading the head
// and retrying on ErrConflict, as auditors in several processes or nodes
// would. The log ends up one chain holding every record exactly once.
func testAuditConcurrent(t *testing.T, s store.Store) {
	const (
		writers = 8
		each    = 25
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := fmt.Sprintf("w%d", w)
			for i := range each {
				for attempt := 0; ; attempt++ {
					h, err := s.AuditHead(ctxBg)
					if err != nil {
						errs <- err
						return
					}
					err = s.AppendAudit(ctxBg, []store.AuditRecord{nextAudit(h, actor, i)})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) || attempt > 10_000 {
						errs <- fmt.Errorf("%s record %d: %w", actor, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rs, err := s.AuditRecords(ctxBg, 1, writers*each+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != writers*each {
		t.Fatalf("%d records, want %d", len(rs), writers*each)
	}
	seen := map[string]bool{}
	prev := make([]byte, 32)
	for i, r := range rs {
		if r.Seq != uint64(i+1) || !bytes.Equal(r.Prev, prev) || !bytes.Equal(r.Hash, fakeAuditHash(r)) {
			t.Fatalf("record %d (seq %d) does not continue the chain", i+1, r.Seq)
		}
		key := r.Actor + "/" + r.Detail["n"]
		if seen[key] {
			t.Fatalf("%s appended twice", key)
		}
		seen[key] = true
		prev = r.Hash
	}
	if h := auditHead(t, s); h.Seq != uint64(len(rs)) || !bytes.Equal(h.Hash, prev) {
		t.Fatalf("head %d, chain ends at %d", h.Seq, len(rs))
	}
}

// testEscrowKeys: keys get IDs, the newest is in use and retires the one
// before; a fingerprint is added once; slices are copies.
func testEscrowKeys(t *testing.T, s store.Store) {
	keys, err := s.EscrowKeys(ctxBg)
	if err != nil || len(keys) != 0 {
		t.Fatalf("no escrow keys yet: %v %v", keys, err)
	}
	pub := []byte("escrow public key 1")
	t1 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	k1, err := s.AddEscrowKey(ctxBg, store.EscrowKey{Fingerprint: "aa01", PublicKey: pub, Created: t1})
	if err != nil {
		t.Fatal(err)
	}
	pub[0] = 'X'
	if k1.ID == 0 || !k1.Retired.IsZero() || string(k1.PublicKey) != "escrow public key 1" {
		t.Fatalf("added %+v", k1)
	}
	if _, err := s.AddEscrowKey(ctxBg, store.EscrowKey{Fingerprint: "aa01", PublicKey: []byte("again")}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same fingerprint twice: %v", err)
	}
	if _, err := s.AddEscrowKey(ctxBg, store.EscrowKey{Fingerprint: "", PublicKey: []byte("k")}); err == nil {
		t.Fatal("key without fingerprint accepted")
	}
	t2 := t1.Add(time.Hour)
	k2, err := s.AddEscrowKey(ctxBg, store.EscrowKey{Fingerprint: "bb02", PublicKey: []byte("escrow public key 2"), Created: t2})
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID <= k1.ID {
		t.Fatalf("IDs %d then %d", k1.ID, k2.ID)
	}
	keys, err = s.EscrowKeys(ctxBg)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %+v %v", keys, err)
	}
	if keys[0].Fingerprint != "aa01" || !keys[0].Retired.Equal(t2) || !keys[0].Created.Equal(t1) ||
		keys[1].Fingerprint != "bb02" || !keys[1].Retired.IsZero() || string(keys[1].PublicKey) != "escrow public key 2" {
		t.Fatalf("keys %+v", keys)
	}
	keys[1].PublicKey[0] = 'X'
	if again, _ := s.EscrowKeys(ctxBg); string(again[1].PublicKey) != "escrow public key 2" {
		t.Fatal("store handed out its own slice")
	}
}

// testVaultBlob: a vaulted message's sealed bytes stay readable by its
// vault entry, a deleted account's too (escrow export produces them),
// small and staged ones alike; the bytes are a copy.
func testVaultBlob(t *testing.T, s store.Store) {
	const addr = "a@example.org"
	newAccount(t, s, addr)
	gen := inForce(t, s)
	inbox := idOf(t, s, addr, store.Inbox)
	u1 := deliverRet(t, s, addr, 1, &store.Retention{Class: "default", KeepUntil: future, Gen: gen})
	u2 := deliverRet(t, s, addr, 2, &store.Retention{Class: "default", KeepUntil: future, Gen: gen})
	id1 := retainedOne(t, s, addr, inbox, u1).ID
	id2 := retainedOne(t, s, addr, inbox, u2).ID
	// A large message, staged piece by piece, into the vault as well.
	big := blob(3, bigSize)
	w, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	sb, err := w.Finish(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb, Retention: &store.Retention{Class: "default", KeepUntil: future, Gen: gen}}})
	if err != nil {
		t.Fatal(err)
	}
	id3 := retainedOne(t, s, addr, inbox, got[0].UID).ID
	owner := store.Owner{Address: addr}
	_, err = s.VaultBlob(ctxBg, owner, id1)
	wantErr(t, "VaultBlob of a live message", err, store.ErrNotFound)
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{u1, got[0].UID}); err != nil {
		t.Fatal(err)
	}
	b, err := s.VaultBlob(ctxBg, owner, id1)
	if err != nil || !bytes.Equal(b, blob(1, 101)) {
		t.Fatalf("VaultBlob(%d) = %d bytes, %v", id1, len(b), err)
	}
	b[0] ^= 0xff
	if again, _ := s.VaultBlob(ctxBg, owner, id1); !bytes.Equal(again, blob(1, 101)) {
		t.Error("store handed out its own slice")
	}
	// The account goes; its vault (the rest of its mail) stays readable.
	if _, err := s.DeleteAccount(ctxBg, addr); err != nil {
		t.Fatal(err)
	}
	fs, err := s.FormerAccounts(ctxBg)
	if err != nil || len(fs) != 1 {
		t.Fatalf("FormerAccounts = %+v, %v", fs, err)
	}
	former := fs[0].Owner
	for id, want := range map[uint64][]byte{id1: blob(1, 101), id2: blob(2, 102), id3: big} {
		if b, err := s.VaultBlob(ctxBg, former, id); err != nil || !bytes.Equal(b, want) {
			t.Errorf("VaultBlob(former, %d) = %d bytes, %v; want %d", id, len(b), err, len(want))
		}
	}
	_, err = s.VaultBlob(ctxBg, former, id3+1000)
	wantErr(t, "VaultBlob of an unknown entry", err, store.ErrNotFound)
	_, err = s.VaultBlob(ctxBg, owner, id1)
	wantErr(t, "VaultBlob of a gone account", err, store.ErrNotFound)
}

// testAuditReopen: the log, its head and the escrow keys survive a
// reopen, and appends continue the chain.
func testAuditReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	rs := chainOf(store.AuditHead{}, 5)
	if err := s.AppendAudit(ctxBg, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddEscrowKey(ctxBg, store.EscrowKey{Fingerprint: "cc03", PublicKey: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	h := auditHead(t, s)
	if h.Seq != 5 || !bytes.Equal(h.Hash, rs[4].Hash) {
		t.Fatalf("head after reopen %+v", h)
	}
	got, err := s.AuditRecords(ctxBg, 1, 100)
	if err != nil || len(got) != 5 {
		t.Fatalf("records after reopen: %d %v", len(got), err)
	}
	for i := range rs {
		sameAudit(t, got[i], rs[i])
	}
	if err := s.AppendAudit(ctxBg, chainOf(h, 2)); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.EscrowKeys(ctxBg); err != nil || len(keys) != 1 || keys[0].Fingerprint != "cc03" {
		t.Fatalf("escrow keys after reopen %+v %v", keys, err)
	}
}
