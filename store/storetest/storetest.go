// Package storetest is the conformance suite for store.Store backends.
// Every backend runs it from its own tests by calling Run with a function
// that opens the backend in a directory (see TestConformance in
// store/badgerstore).
//
// The suite treats keys, slots and blobs as the opaque bytes they are to a
// store, so it needs no crypto. Each subtest opens a fresh store in its own
// directory; the reopen test closes and reopens one.
//
// Implementation notes: the suite checks behaviour through the store.Store
// API only (results, counters, sentinel errors with errors.Is), never a
// backend's files, so the same tests hold a SQL backend to the same
// contract.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Run runs the conformance suite against the backend that open opens (or
// reopens) in dir; open fails t itself if it cannot. The backend must
// have no default quota.
func Run(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Accounts", testAccounts},
		{"Slots", testSlots},
		{"DeleteAccount", testDeleteAccount},
		{"Mailboxes", testMailboxes},
		{"DeleteMailbox", testDeleteMailbox},
		{"RenameMailbox", testRenameMailbox},
		{"Subscriptions", testSubscriptions},
		{"StaleMailboxID", testStaleMailboxID},
		{"BadNames", testBadNames},
		{"Deliver", testDeliver},
		{"ListRange", testListRange},
		{"DeliverAtomic", testDeliverAtomic},
		{"Quota", testQuota},
		{"Flags", testFlags},
		{"UnchangedSince", testUnchangedSince},
		{"Expunge", testExpunge},
		{"Copy", testCopy},
		{"Move", testMove},
		{"Summaries", testSummaries},
		{"Blobs", testBlobs},
		{"BlobsInterleaved", testBlobsInterleaved},
		{"LargeMailbox", testLargeMailbox},
		{"ConcurrentDeliver", testConcurrentDeliver},
		{"ConcurrentMixed", testConcurrentMixed},
		{"ConcurrentOneMailbox", testConcurrentOneMailbox},
		{"SliceCopies", testSliceCopies},
		{"CancelledContext", testCancelledContext},
		{"Staged", testStaged},
		{"StagedQuota", testStagedQuota},
		{"StagedLifecycle", testStagedLifecycle},
		{"QuotaSettings", testQuotaSettings},
		{"FilterRules", testFilterRules},
		{"Greylist", testGreylist},
		{"FilterModels", testFilterModels},
		{"Queue", testQueue},
		{"QueueAtomic", testQueueAtomic},
		{"QueueDeliver", testQueueDeliver},
		{"QueueStaged", testQueueStaged},
		{"Trace", testTrace},
		{"TraceMany", testTraceMany},
		{"Audit", testAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"EscrowKeys", testEscrowKeys},
		{"VaultBlob", testVaultBlob},
		{"Tombstones", testTombstones},
		{"TombstonesBounded", testTombstonesBounded},
		{"SaveDateEmailID", testSaveDateEmailID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir())
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("StagedReopen", func(t *testing.T) { testStagedReopen(t, open) })
	t.Run("QueueReopen", func(t *testing.T) { testQueueReopen(t, open) })
	t.Run("AuditReopen", func(t *testing.T) { testAuditReopen(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("TombstonesReopen", func(t *testing.T) { testTombstonesReopen(t, open) })
}

// fixture helpers

var ctxBg = context.Background()

// newAccount creates an account with fake (opaque) key material, one
// password slot and the default mailboxes.
func newAccount(t *testing.T, s store.Store, addr string) store.Account {
	t.Helper()
	a := store.Account{
		Address:        addr,
		Created:        time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
		KeyFingerprint: fmt.Sprintf("%040x", len(addr)),
		PublicKey:      []byte("public key of " + addr),
		WrappedKey:     []byte("wrapped private key of " + addr),
		PublishWKD:     true,
		Slots: []store.Slot{{
			Kind: store.SlotPassword, Label: "password",
			Created: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
			Data:    []byte("slot for " + addr),
		}},
	}
	if err := s.CreateAccount(ctxBg, a, store.DefaultMailboxes); err != nil {
		t.Fatalf("CreateAccount(%s): %v", addr, err)
	}
	return a
}

// blob returns a fake sealed message of n bytes, distinct per seed.
func blob(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

var date0 = time.Date(2026, 11, 20, 8, 30, 15, 0, time.UTC)

// unknownID is a mailbox ID no test creates.
const unknownID = 1 << 60

// deliverN delivers n messages of size bytes to addr's mailbox called
// name ("" delivers to ID 0, INBOX) and returns their UIDs.
func deliverN(t *testing.T, s store.Store, addr, name string, n, size int, flags ...string) []uint32 {
	t.Helper()
	var id uint64
	if name != "" {
		id = idOf(t, s, addr, name)
	}
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = store.Delivery{
			Account: addr, MailboxID: id, InternalDate: date0.Add(time.Duration(i) * time.Minute),
			Flags: flags, Blob: blob(i+size, size),
		}
	}
	got, err := s.Deliver(ctxBg, ds)
	if err != nil {
		t.Fatalf("Deliver %d to %s %q: %v", n, addr, name, err)
	}
	uids := make([]uint32, len(got))
	for i, d := range got {
		uids[i] = d.UID
	}
	return uids
}

func mailbox(t *testing.T, s store.Store, addr, name string) store.Mailbox {
	t.Helper()
	m, err := s.Mailbox(ctxBg, addr, name)
	if err != nil {
		t.Fatalf("Mailbox(%s, %q): %v", addr, name, err)
	}
	return m
}

// idOf returns the ID of the mailbox now called name.
func idOf(t *testing.T, s store.Store, addr, name string) uint64 {
	t.Helper()
	return mailbox(t, s, addr, name).ID
}

// mailboxIDs returns the IDs of addr's mailboxes.
func mailboxIDs(t *testing.T, s store.Store, addr string) map[uint64]bool {
	t.Helper()
	mbs, err := s.Mailboxes(ctxBg, addr)
	if err != nil {
		t.Fatalf("Mailboxes(%s): %v", addr, err)
	}
	ids := make(map[uint64]bool, len(mbs))
	for _, m := range mbs {
		ids[m.ID] = true
	}
	return ids
}

// messages lists the messages of the mailbox now called name.
func messages(t *testing.T, s store.Store, addr, name string, opt store.ListOptions) []store.Message {
	t.Helper()
	ms, err := s.Messages(ctxBg, addr, idOf(t, s, addr, name), opt)
	if err != nil {
		t.Fatalf("Messages(%s, %q): %v", addr, name, err)
	}
	return ms
}

func account(t *testing.T, s store.Store, addr string) store.Account {
	t.Helper()
	a, err := s.Account(ctxBg, addr)
	if err != nil {
		t.Fatalf("Account(%s): %v", addr, err)
	}
	return a
}

func uidsOf(ms []store.Message) []uint32 {
	out := make([]uint32, len(ms))
	for i, m := range ms {
		out[i] = m.UID
	}
	return out
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func equalUIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalPublic(a, b store.PublicAccount) bool {
	return a.Address == b.Address && a.Created.Equal(b.Created) && a.KeyFingerprint == b.KeyFingerprint &&
		string(a.PublicKey) == string(b.PublicKey) && a.PublishWKD == b.PublishWKD &&
		a.QuotaBytes == b.QuotaBytes && a.UsedBytes == b.UsedBytes
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkCounters checks a mailbox's counters against its listed messages.
func checkCounters(t *testing.T, s store.Store, addr, name string) store.Mailbox {
	t.Helper()
	m := mailbox(t, s, addr, name)
	ms := messages(t, s, addr, name, store.ListOptions{})
	var unseen, deleted uint32
	var size int64
	var maxMod uint64
	for _, msg := range ms {
		if !store.HasFlag(msg.Flags, store.FlagSeen) {
			unseen++
		}
		if store.HasFlag(msg.Flags, store.FlagDeleted) {
			deleted++
		}
		size += msg.SealedSize
		maxMod = max(maxMod, msg.ModSeq)
		if msg.UID >= m.UIDNext {
			t.Errorf("%q: UID %d >= UIDNEXT %d", name, msg.UID, m.UIDNext)
		}
	}
	if m.Messages != uint32(len(ms)) || m.Unseen != unseen || m.Deleted != deleted || m.SealedSize != size {
		t.Errorf("%q counters: messages %d unseen %d deleted %d size %d; listed %d %d %d %d",
			name, m.Messages, m.Unseen, m.Deleted, m.SealedSize, len(ms), unseen, deleted, size)
	}
	if m.HighestModSeq < maxMod {
		t.Errorf("%q: HIGHESTMODSEQ %d below a message's MODSEQ %d", name, m.HighestModSeq, maxMod)
	}
	return m
}

// usedBytes returns the account's UsedBytes and checks it against the sum
// of its mailboxes' sealed sizes.
func usedBytes(t *testing.T, s store.Store, addr string) int64 {
	t.Helper()
	a := account(t, s, addr)
	mbs, err := s.Mailboxes(ctxBg, addr)
	if err != nil {
		t.Fatalf("Mailboxes: %v", err)
	}
	var sum int64
	for _, m := range mbs {
		sum += m.SealedSize
	}
	if sum != a.UsedBytes {
		t.Errorf("UsedBytes %d, but mailboxes hold %d", a.UsedBytes, sum)
	}
	return a.UsedBytes
}
