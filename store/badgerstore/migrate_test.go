package badgerstore

import (
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

// makeModSeqOld makes the store at dir look as stores written before new
// mailboxes started at mod-sequence 1: the mailboxes named (of addr)
// record HighestModSeq 0, older than the store's tombstones (no
// tombstone state), and the migration's marker is gone.
func makeModSeqOld(t testing.TB, dir, addr string, names ...string) {
	t.Helper()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	err = db.badgerUpdate(func(txn *badger.Txn) error {
		tt := &tx{txn: txn}
		acct, err := accountID(tt, addr)
		if err != nil {
			return err
		}
		for _, name := range names {
			id, err := decodeU64Get(tt, mboxNameKey(acct, name))
			if err != nil {
				return err
			}
			m, err := loadMailboxRec(tt, acct, id)
			if err != nil {
				return err
			}
			m.HighestModSeq = 0
			if err := tt.set(mailboxKey(acct, id), m.encode()); err != nil {
				return err
			}
			if err := tt.del(tombStateKey(acct, id)); err != nil {
				return err
			}
			if id > db.tombSince {
				if err := tt.set(counterKey(counterTomb), putU64(id)); err != nil {
					return err
				}
			}
		}
		return tt.del(counterKey(counterModSeq))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func decodeU64Get(t *tx, key []byte) (uint64, error) {
	v, err := t.get(key)
	if err != nil {
		return 0, err
	}
	return decodeU64(v)
}

// TestModSeqMigration: a mailbox nothing has changed since before new
// mailboxes started at mod-sequence 1 still records HighestModSeq 0,
// which IMAP reports as NOMODSEQ. Open raises it to 1, logs it, keeps
// its tombstone floor at 0 (it never removed anything), and the first
// change gets 2; a mailbox at 0 that has messages after all is left
// alone, and a second Open changes nothing.
func TestModSeqMigration(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	mkAccount(t, db, "a@example.org", []byte("s"))
	deliverT(t, db, "a@example.org", "Sent", 2)
	inbox := mboxID(t, db, "a@example.org", store.Inbox)
	deliverT(t, db, "a@example.org", "", 3)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	makeModSeqOld(t, dir, "a@example.org", "Drafts", "Junk", "Sent")

	h := &recordHandler{}
	db, err := Open(dir, Options{GCInterval: -1, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Drafts", "Junk"} {
		m, err := db.Mailbox(bg, "a@example.org", name)
		if err != nil || m.HighestModSeq != 1 {
			t.Errorf("%s after Open: %+v, %v; want HighestModSeq 1", name, m, err)
		}
		v, err := db.Vanished(bg, "a@example.org", m.ID, 0)
		if err != nil || v.Floor != 0 || !v.Complete || len(v.UIDs) != 0 {
			t.Errorf("%s: Vanished since 0 = %+v, %v; want floor 0, complete", name, v, err)
		}
	}
	if m, err := db.Mailbox(bg, "a@example.org", "Sent"); err != nil || m.HighestModSeq != 0 {
		t.Errorf("Sent (messages, at 0) after Open: %+v, %v; want it left at 0", m, err)
	}
	if m, err := db.MailboxByID(bg, "a@example.org", inbox); err != nil || m.HighestModSeq != 4 {
		t.Errorf("INBOX after Open: %+v, %v; want HighestModSeq 4 as it was", m, err)
	}
	var raised, warned bool
	h.mu.Lock()
	for _, r := range h.recs {
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
		switch r.Message {
		case "badgerstore: raised mod-sequences of old empty mailboxes to 1":
			raised = attrs["count"].Int64() == 2
		case "badgerstore: open: mailbox at mod-sequence 0 has messages or removals; left at 0":
			warned = attrs["mailbox"].String() == "Sent"
		}
	}
	h.mu.Unlock()
	if !raised || !warned {
		t.Errorf("log: raised 2 logged %v, Sent left logged %v", raised, warned)
	}
	deliverT(t, db, "a@example.org", "Drafts", 1)
	msgs, err := db.Messages(bg, "a@example.org", mboxID(t, db, "a@example.org", "Drafts"), store.ListOptions{})
	if err != nil || len(msgs) != 1 || msgs[0].ModSeq != 2 {
		t.Errorf("first message after the raise: %+v, %v; want MODSEQ 2", msgs, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Done once: the marker keeps a second Open from scanning again.
	h = &recordHandler{}
	db, err = Open(dir, Options{GCInterval: -1, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if m, err := db.Mailbox(bg, "a@example.org", "Junk"); err != nil || m.HighestModSeq != 1 {
		t.Errorf("Junk after the second Open: %+v, %v", m, err)
	}
	for _, r := range h.recs {
		if r.Message == "badgerstore: open: mailbox at mod-sequence 0 has messages or removals; left at 0" {
			t.Errorf("second Open scanned again: %q", r.Message)
		}
	}
}

// MakeModSeqOld is makeModSeqOld for the package's external tests.
var MakeModSeqOld = makeModSeqOld
