package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

func openDB(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

var bg = context.Background()

func mkAccount(t *testing.T, db *DB, addr string, secret []byte) {
	t.Helper()
	err := db.CreateAccount(bg, store.Account{
		Address: addr, PublicKey: []byte("pub"), WrappedKey: secret,
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: secret}},
	}, store.DefaultMailboxes)
	if err != nil {
		t.Fatal(err)
	}
}

// holdWriter keeps the writer busy with a transaction of its own until
// release is called, so that calls made meanwhile queue up behind it.
// release waits for the held transaction's commit and fails t if it
// failed.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started := make(chan struct{})
	unblock := make(chan struct{})
	blocked := make(chan error, 1)
	go func() {
		blocked <- db.update(bg, func(*tx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		t.Helper()
		close(unblock)
		if err := <-blocked; err != nil {
			t.Fatal(err)
		}
	}
}

// deliverT delivers n messages to addr's mailbox called name ("": INBOX).
func deliverT(t *testing.T, db *DB, addr, name string, n int) {
	t.Helper()
	var id uint64
	if name != "" {
		id = mboxID(t, db, addr, name)
	}
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = store.Delivery{Account: addr, MailboxID: id, Blob: bytes.Repeat([]byte{byte(i)}, 2000)}
	}
	if _, err := db.Deliver(bg, ds); err != nil {
		t.Fatal(err)
	}
}

// rawKeys returns every key in the database whose account ID is acct, and
// whether any value contains needle.
func rawKeys(t *testing.T, db *DB, acct uint64, needle []byte) (keys []string, found bool) {
	t.Helper()
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if k[0] != pAccount && k[0] != pCounter && len(k) >= 9 && binary.BigEndian.Uint64(k[1:9]) == acct {
				keys = append(keys, string(k))
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if bytes.Contains(v, needle) {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, found
}

func mboxID(t *testing.T, db *DB, addr, name string) uint64 {
	t.Helper()
	m, err := db.Mailbox(bg, addr, name)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func acctIDOf(t *testing.T, db *DB, addr string) uint64 {
	t.Helper()
	var id uint64
	err := db.read(bg, func(tx *tx) (err error) {
		id, err = accountID(tx, addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	_, err := Open(dir, Options{})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory", err)
	}
}

func TestOpenMakesDirPrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dir)
	defer db.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v", fi.Mode().Perm())
	}
}

func TestCloseTwice(t *testing.T) {
	db := openDB(t, t.TempDir())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// TestDeleteAccountLeavesNothing: after DeleteAccount no live key of the
// account remains and no live value holds its secret bytes.
func TestDeleteAccountLeavesNothing(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	secret := []byte("SECRET-WRAPPED-KEY-CANARY")
	mkAccount(t, db, "a@example.org", secret)
	mkAccount(t, db, "b@example.org", []byte("other"))
	deliverT(t, db, "a@example.org", "", 30)
	deliverT(t, db, "a@example.org", "Archive", 3)
	deliverT(t, db, "b@example.org", "", 2)
	acct := acctIDOf(t, db, "a@example.org")
	if keys, found := rawKeys(t, db, acct, secret); len(keys) == 0 || !found {
		t.Fatalf("setup: %d keys, secret found %v", len(keys), found)
	}
	if _, err := db.DeleteAccount(bg, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if keys, found := rawKeys(t, db, acct, secret); len(keys) != 0 || found {
		t.Errorf("after delete: keys %q, secret found %v", keys, found)
	}
	if keys, _ := rawKeys(t, db, acctIDOf(t, db, "b@example.org"), nil); len(keys) == 0 {
		t.Errorf("other account's keys gone")
	}
}

// TestDeleteResumesAfterCrash: when only the first (shredding) transaction
// of a deletion made it, Open finishes the job.
func TestDeleteResumesAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("s"))
	mkAccount(t, db, "b@example.org", []byte("s"))
	deliverT(t, db, "a@example.org", "", 10)
	deliverT(t, db, "b@example.org", "Junk", 10)
	deliverT(t, db, "b@example.org", "", 1)
	a, b := acctIDOf(t, db, "a@example.org"), acctIDOf(t, db, "b@example.org")
	if _, _, err := db.shred(bg, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.unlinkMailbox(bg, "b@example.org", mboxID(t, db, "b@example.org", "Junk")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rawKeys(t, db, a, nil); len(keys) < 10 {
		t.Fatalf("setup: only %d keys left", len(keys))
	}
	if _, err := db.Account(bg, "a@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("shredded account still readable: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	defer db.Close()
	if keys, _ := rawKeys(t, db, a, nil); len(keys) != 0 {
		t.Errorf("after reopen: %d keys of the deleted account", len(keys))
	}
	// b keeps exactly: usage, account's slot, 5 mailboxes + names, 1 message + blob.
	keys, _ := rawKeys(t, db, b, nil)
	var metas, blobs, marks int
	for _, k := range keys {
		switch k[0] {
		case pMeta:
			metas++
		case pBlob:
			blobs++
		case pPurge:
			marks++
		}
	}
	if metas != 1 || blobs != 1 || marks != 0 {
		t.Errorf("b after reopen: %d metas, %d blobs, %d purge markers", metas, blobs, marks)
	}
	if u, err := db.Account(bg, "b@example.org"); err != nil || u.UsedBytes != 2000 {
		t.Errorf("b: %+v, %v", u, err)
	}
}

// TestTooLarge: a Deliver call too big for one transaction fails cleanly
// with ErrTooLarge while concurrent small calls succeed.
func TestTooLarge(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	mkAccount(t, db, "a@example.org", []byte("s"))
	n := int(db.bdb.MaxBatchCount()) // two entries per delivery: surely too many
	big := make([]store.Delivery, n)
	for i := range big {
		big[i] = store.Delivery{Account: "a@example.org", Blob: []byte("x")}
	}
	var wg sync.WaitGroup
	smallErr := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Deliver(bg, []store.Delivery{{Account: "a@example.org", Blob: []byte("small")}})
			smallErr <- err
		}()
	}
	_, err := db.Deliver(bg, big)
	wg.Wait()
	close(smallErr)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("big Deliver: %v, want ErrTooLarge", err)
	}
	for err := range smallErr {
		if err != nil {
			t.Errorf("small Deliver: %v", err)
		}
	}
	m, err := db.Mailbox(bg, "a@example.org", store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if m.Messages != 20 || m.UIDNext != 21 || m.SealedSize != 100 {
		t.Errorf("INBOX %+v, want only the 20 small messages", m)
	}
}

// TestCancelWhileQueued: a call whose context ends while it waits for the
// writer returns the context's error and stores nothing.
func TestCancelWhileQueued(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	mkAccount(t, db, "a@example.org", []byte("s"))
	release := holdWriter(t, db)
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	_, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Blob: []byte("x")}})
	release()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deliver: %v, want deadline exceeded", err)
	}
	// A write after it proves the writer has moved past the cancelled op.
	deliverT(t, db, "a@example.org", "", 1)
	m, err := db.Mailbox(bg, "a@example.org", store.Inbox)
	if err != nil || m.Messages != 1 || m.UIDNext != 2 {
		t.Errorf("INBOX %+v, %v", m, err)
	}
}

// TestCorruptRecord: a damaged record gives an error, not a panic or a
// wrong answer.
func TestCorruptRecord(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	mkAccount(t, db, "a@example.org", []byte("s"))
	deliverT(t, db, "a@example.org", "", 2)
	acct := acctIDOf(t, db, "a@example.org")
	m, err := db.Mailbox(bg, "a@example.org", store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	err = db.badgerUpdate(func(txn *badger.Txn) error {
		return txn.Set(metaKey(acct, m.ID, 2), []byte{vMeta, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Messages(bg, "a@example.org", m.ID, store.ListOptions{})
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Messages over a corrupt meta: %v", err)
	}
	_, err = db.StoreFlags(bg, "a@example.org", m.ID, store.FlagUpdate{UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	if err == nil {
		t.Errorf("StoreFlags over a corrupt meta succeeded")
	}
}

type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogger(t *testing.T) {
	h := &recordHandler{}
	l := badgerLogger{slog.New(h)}
	l.Infof("info %d", 1)
	l.Debugf("debug")
	l.Warningf("disk %s\n", "slow")
	l.Errorf("broken")
	if len(h.recs) != 2 || h.recs[0].Level != slog.LevelWarn || h.recs[0].Message != "badger: disk slow" ||
		h.recs[1].Level != slog.LevelError {
		t.Errorf("records %+v", h.recs)
	}
}

// TestLargeExpungePurgesBlobs: an Expunge above inlineExpunge leaves no
// blob or summary behind, and an orphan list left by a crash is finished
// by Open.
func TestLargeExpungePurgesBlobs(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("s"))
	const n = inlineExpunge + 500
	deliverT(t, db, "a@example.org", "", n)
	uids := make([]uint32, n)
	var us []store.SummaryUpdate
	for i := range uids {
		uids[i] = uint32(i + 1)
		us = append(us, store.SummaryUpdate{UID: uint32(i + 1), Summary: []byte("s"), SessionKey: []byte("k")})
	}
	inbox := mboxID(t, db, "a@example.org", store.Inbox)
	if err := db.SetSummaries(bg, "a@example.org", inbox, us); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Expunge(bg, "a@example.org", inbox, uids); err != nil || len(got.UIDs) != n {
		t.Fatalf("Expunge: %d, %v", len(got.UIDs), err)
	}
	acct := acctIDOf(t, db, "a@example.org")
	count := func() map[byte]int {
		keys, _ := rawKeys(t, db, acct, nil)
		c := map[byte]int{}
		for _, k := range keys {
			c[k[0]]++
		}
		return c
	}
	if c := count(); c[pMeta]+c[pBlob]+c[pSummary]+c[pOrphans] != 0 {
		t.Errorf("left after large expunge: %v", c)
	}

	// A crash after the first transaction: an orphan list and its blobs.
	deliverT(t, db, "a@example.org", "", 3)
	var ids []byte
	for _, uid := range []uint32{n + 1, n + 2} {
		var md meta
		err := db.bdb.View(func(txn *badger.Txn) (err error) {
			md, err = loadMeta(&tx{txn: txn}, acct, inbox, uid)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = binary.BigEndian.AppendUint64(ids, md.Blob)
	}
	err := db.badgerUpdate(func(txn *badger.Txn) error {
		if err := txn.Delete(metaKey(acct, inbox, uint32(n+1))); err != nil {
			return err
		}
		if err := txn.Delete(metaKey(acct, inbox, uint32(n+2))); err != nil {
			return err
		}
		return txn.Set(orphansKey(acct, 1<<40), ids)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	if c := count(); c[pMeta] != 1 || c[pBlob] != 1 || c[pOrphans] != 0 || c[pRetention] != 1 || c[pDisposal] != 0 {
		t.Errorf("after reopen: %v", c)
	}
}

// TestDeleteAccountLogsPurge: the purge after a deletion reports what it
// removed, naming the account, so an operator sees a long one finish.
func TestDeleteAccountLogsPurge(t *testing.T) {
	h := &recordHandler{}
	db, err := Open(t.TempDir(), Options{GCInterval: -1, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mkAccount(t, db, "a@example.org", []byte("wrapped"))
	deliverT(t, db, "a@example.org", "", 5)
	if _, err := db.DeleteAccount(bg, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message != "badgerstore: purged deleted account" {
			continue
		}
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
		// 5 metas, 5 blobs, the mailboxes and their names, usage.
		if attrs["account"].String() != "a@example.org" || attrs["rows"].Int64() < 10 {
			t.Errorf("purge record %v", attrs)
		}
		return
	}
	t.Errorf("no purge record among %d log records", len(h.recs))
}

// TestMailboxIDMigration: a store written when mailbox IDs were counted
// per account (no global counter; the account record's "nextMailbox") gets
// a global counter at Open that starts above every ID handed out before.
func TestMailboxIDMigration(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("s"))
	mkAccount(t, db, "b@example.org", []byte("s"))
	// Make it look old: no counter, and a's record is version 1 (JSON)
	// saying it handed out 50 IDs (44 of them deleted since).
	v1 := append(binary.BigEndian.AppendUint64([]byte{vAccountJSON}, acctIDOf(t, db, "a@example.org")),
		`{"created":"2026-11-01T12:00:00Z","fpr":"","pub":"cHVi","wrapped":"cw==","wkd":false,"quota":0,"nextSlot":1,"nextMailbox":50}`...)
	err := db.badgerUpdate(func(txn *badger.Txn) error {
		if err := txn.Delete(counterKey(counterMbox)); err != nil {
			return err
		}
		return txn.Set(accountKey("a@example.org"), v1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	if a, err := db.Account(bg, "a@example.org"); err != nil || string(a.WrappedKey) != "s" || len(a.Slots) != 1 {
		t.Fatalf("old record: %+v, %v", a, err)
	}
	// Open rewrote the old record in the current version.
	err = db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(accountKey("a@example.org"))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if v[0] != vAccount {
				t.Errorf("account record version %d after Open, want %d", v[0], vAccount)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := db.CreateMailbox(bg, "b@example.org", store.MailboxSpec{Name: "New"})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 51 {
		t.Errorf("first ID after migration %d, want 51", m.ID)
	}

	// Without the legacy field the largest existing mailbox row counts.
	dir2 := t.TempDir()
	db2 := openDB(t, dir2)
	mkAccount(t, db2, "c@example.org", []byte("s"))
	if err := db2.badgerUpdate(func(txn *badger.Txn) error { return txn.Delete(counterKey(counterMbox)) }); err != nil {
		t.Fatal(err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	db2 = openDB(t, dir2)
	defer db2.Close()
	m, err = db2.CreateMailbox(bg, "c@example.org", store.MailboxSpec{Name: "New"})
	if err != nil || m.ID != uint64(len(store.DefaultMailboxes))+1 {
		t.Errorf("CreateMailbox after migration: %+v, %v", m, err)
	}
}

// TestSubscriptionsUpgrade: a store from before subscriptions had their
// own rows keeps them in the mailbox records; Open moves them, once.
func TestSubscriptionsUpgrade(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "up@example.org", []byte("secret"))
	mb := mboxID(t, db, "up@example.org", "Sent")
	// Make it look old: no marker, no rows, flags in the records.
	err := db.badgerUpdate(func(txn *badger.Txn) error {
		tt := &tx{txn: txn}
		acct, err := accountID(tt, "up@example.org")
		if err != nil {
			return err
		}
		if err := tt.del(counterKey(counterSubs)); err != nil {
			return err
		}
		var keys [][]byte
		tt.scan(acctKey(pSubscr, acct), nil, true, func(k, _ []byte) (bool, error) {
			keys = append(keys, append([]byte(nil), k...))
			return true, nil
		})
		for _, k := range keys {
			if err := tt.del(k); err != nil {
				return err
			}
		}
		m, err := loadMailbox(tt, acct, mb)
		if err != nil {
			return err
		}
		m.Subscribed = true
		rec := mailboxRec{m}
		return tt.set(mailboxKey(acct, mb), rec.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	if subs, _ := db.Subscriptions(bg, "up@example.org"); len(subs) != 0 {
		t.Fatalf("rows left: %v", subs)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	subs, err := db.Subscriptions(bg, "up@example.org")
	if err != nil || len(subs) != 1 || subs[0] != "Sent" {
		t.Errorf("after upgrade: %v %v", subs, err)
	}
}
