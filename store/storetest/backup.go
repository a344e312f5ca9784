package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// RestoreFunc restores a backup stream of the backend into dir, which is
// absent or empty (badgerstore.Restore). It returns store.ErrNotEmpty for
// a used dir and store.ErrBadBackup for a damaged or short stream.
type RestoreFunc func(ctx context.Context, dir string, r io.Reader) (store.BackupInfo, error)

// RunBackup checks a backend's online backup (store.Backuper) and its
// restore: a restored store holds exactly what the original held (every
// account, slot, mailbox, counter, message, flag, summary and blob) and
// keeps handing out never-used IDs; a damaged or truncated backup and a
// used target are refused and leave the target as it was; a backup taken
// while messages arrive is one consistent moment. open opens (or
// reopens) the backend in dir.
func RunBackup(t *testing.T, open func(t *testing.T, dir string) store.Store, restore RestoreFunc) {
	t.Run("RoundTrip", func(t *testing.T) { testBackupRoundTrip(t, open, restore) })
	t.Run("Damaged", func(t *testing.T) { testBackupDamaged(t, open, restore) })
	t.Run("WhileDelivering", func(t *testing.T) { testBackupWhileDelivering(t, open, restore) })
	t.Run("WhileExpunging", func(t *testing.T) { testBackupWhileExpunging(t, open, restore) })
}

// backupOf takes a backup of s.
func backupOf(t *testing.T, s store.Store, ctx context.Context) []byte {
	t.Helper()
	b, ok := s.(store.Backuper)
	if !ok {
		t.Fatalf("%T does not implement store.Backuper", s)
	}
	var buf bytes.Buffer
	info, err := b.Backup(ctx, &buf)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if info.Bytes != int64(buf.Len()) || info.Records == 0 {
		t.Errorf("Backup says %+v, wrote %d bytes", info, buf.Len())
	}
	data := buf.Bytes()
	if len(data) < sha256.Size {
		t.Fatalf("backup of %d bytes", len(data))
	}
	if sum := sha256.Sum256(data[:len(data)-sha256.Size]); !bytes.Equal(sum[:], data[len(data)-sha256.Size:]) {
		t.Error("the backup does not end with the SHA-256 of what precedes it")
	}
	return data
}

// snapshot is everything a store holds, through the API.
type snapshot struct {
	Accounts  []store.Account
	Mailboxes map[string][]store.Mailbox
	Messages  map[string][]store.Message // by "address/mailbox ID"
	Blobs     map[string][]byte          // by "address/mailbox ID/UID"
}

func takeSnapshot(t *testing.T, s store.Store) snapshot {
	t.Helper()
	accts, err := s.Accounts(ctxBg)
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	snap := snapshot{Accounts: accts, Mailboxes: map[string][]store.Mailbox{},
		Messages: map[string][]store.Message{}, Blobs: map[string][]byte{}}
	for _, a := range accts {
		mbs, err := s.Mailboxes(ctxBg, a.Address)
		if err != nil {
			t.Fatalf("Mailboxes: %v", err)
		}
		snap.Mailboxes[a.Address] = mbs
		for _, m := range mbs {
			ms, err := s.Messages(ctxBg, a.Address, m.ID, store.ListOptions{WithSummary: true})
			if err != nil {
				t.Fatalf("Messages: %v", err)
			}
			key := fmt.Sprintf("%s/%d", a.Address, m.ID)
			snap.Messages[key] = ms
			for _, msg := range ms {
				b, err := s.Blob(ctxBg, a.Address, m.ID, msg.UID)
				if err != nil {
					t.Fatalf("Blob: %v", err)
				}
				snap.Blobs[fmt.Sprintf("%s/%d", key, msg.UID)] = b
			}
		}
	}
	return snap
}

func testBackupRoundTrip(t *testing.T, open func(t *testing.T, dir string) store.Store, restore RestoreFunc) {
	s := open(t, t.TempDir())
	defer s.Close()
	newAccount(t, s, "a@example.org")
	newAccount(t, s, "b@example.org")
	gone := newAccount(t, s, "gone@example.org")
	if _, err := s.AddSlot(ctxBg, "a@example.org", store.Slot{Kind: store.SlotAppPassword, Label: "phone", Created: date0, Data: []byte("app slot")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQuota(ctxBg, "b@example.org", 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPublishWKD(ctxBg, "b@example.org", false); err != nil {
		t.Fatal(err)
	}
	uids := deliverN(t, s, "a@example.org", "", 20, 3000, store.FlagSeen)
	deliverN(t, s, "a@example.org", "Archive", 3, 2<<20) // large blobs
	// Staged blobs (files in badgerstore), one copied, one expunged.
	archive := idOf(t, s, "a@example.org", "Archive")
	var staged []uint32
	for i := range 3 {
		sb := stage(t, s, "a@example.org", blob(40+i, bigSize+i), 1<<20)
		got, err := s.Deliver(ctxBg, []store.Delivery{{Account: "a@example.org", MailboxID: archive, Staged: &sb}})
		if err != nil {
			t.Fatal(err)
		}
		staged = append(staged, got[0].UID)
	}
	if _, err := s.CopyMessages(ctxBg, "a@example.org", archive, idOf(t, s, "a@example.org", "Sent"), staged[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctxBg, "a@example.org", archive, staged[2:]); err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, "b@example.org", "", 5, 100)
	work, err := s.CreateMailbox(ctxBg, "a@example.org", store.MailboxSpec{Name: "Work", Subscribed: true})
	if err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, "a@example.org", "Work", 4, 500)
	inbox := idOf(t, s, "a@example.org", store.Inbox)
	if _, err := s.StoreFlags(ctxBg, "a@example.org", inbox, store.FlagUpdate{UIDs: uids[:5], Op: store.FlagsAdd, Flags: []string{store.FlagFlagged, "$Label1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSummaries(ctxBg, "a@example.org", inbox, []store.SummaryUpdate{{UID: uids[0], Summary: []byte("sealed summary"), SessionKey: []byte("sealed key")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctxBg, "a@example.org", inbox, uids[18:]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MoveMessages(ctxBg, "a@example.org", inbox, work.ID, uids[10:12]); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctxBg, "a@example.org", work.ID, "Projects"); err != nil {
		t.Fatal(err)
	}
	junk := idOf(t, s, "a@example.org", "Junk")
	if err := s.DeleteMailbox(ctxBg, "a@example.org", junk); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAccount(ctxBg, gone.Address); err != nil {
		t.Fatal(err)
	}
	// The newest mailbox ID belongs to a deleted mailbox: only the
	// store's own counter knows it was handed out.
	tmp, err := s.CreateMailbox(ctxBg, "b@example.org", store.MailboxSpec{Name: "Temp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctxBg, "b@example.org", tmp.ID); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, s)

	var reports atomic.Int64
	ctx := store.WithProgress(ctxBg, func(done, total int64) {
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
		reports.Add(1)
	})
	data := backupOf(t, s, ctx)
	if reports.Load() == 0 {
		t.Error("Backup reported no progress")
	}
	// The backup is a consistent copy, not a move: the original goes on.
	deliverN(t, s, "a@example.org", "", 1, 10)

	dir := filepath.Join(t.TempDir(), "restored")
	info, err := restore(ctxBg, dir, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if info.Bytes != int64(len(data)) {
		t.Errorf("restore read %d of %d bytes", info.Bytes, len(data))
	}
	r := open(t, dir)
	defer r.Close()
	after := takeSnapshot(t, r)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("restored store differs:\nbefore %+v\nafter  %+v", before.Accounts, after.Accounts)
		for k, v := range before.Messages {
			if !reflect.DeepEqual(v, after.Messages[k]) {
				t.Errorf("messages of %s differ:\nbefore %+v\nafter  %+v", k, v, after.Messages[k])
			}
		}
	}
	if _, err := r.Account(ctxBg, gone.Address); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted account after restore: %v", err)
	}
	for _, addr := range []string{"a@example.org", "b@example.org"} {
		usedBytes(t, r, addr)
	}
	for _, name := range []string{store.Inbox, "Projects", "Archive"} {
		checkCounters(t, r, "a@example.org", name)
	}
	// The restored store goes on from where the original was: new UIDs
	// above the old, and mailbox IDs never handed out before (Junk's
	// included).
	got := deliverN(t, r, "a@example.org", "", 1, 10)
	if last := before.Messages[fmt.Sprintf("a@example.org/%d", inbox)]; got[0] <= last[len(last)-1].UID {
		t.Errorf("UID after restore %d, last before %d", got[0], last[len(last)-1].UID)
	}
	seen := map[uint64]bool{junk: true, tmp.ID: true}
	for _, mbs := range before.Mailboxes {
		for _, m := range mbs {
			seen[m.ID] = true
		}
	}
	m, err := r.CreateMailbox(ctxBg, "b@example.org", store.MailboxSpec{Name: "New"})
	if err != nil {
		t.Fatal(err)
	}
	if seen[m.ID] {
		t.Errorf("restored store handed out mailbox ID %d again", m.ID)
	}

	// A used target is refused and left alone.
	if _, err := restore(ctxBg, dir, bytes.NewReader(data)); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("restore into a used directory: %v", err)
	}
}

// testBackupWhileExpunging: a large message expunged while a backup
// runs is in the backup whole, as the backup's snapshot saw it, and
// gone from the store afterwards.
func testBackupWhileExpunging(t *testing.T, open func(t *testing.T, dir string) store.Store, restore RestoreFunc) {
	s := open(t, t.TempDir())
	defer s.Close()
	// An account created first, with a large message of its own, so that
	// the backup is under way (writing) before it reaches the second
	// account's message.
	const first, addr = "w@example.org", "x@example.org"
	newAccount(t, s, first)
	newAccount(t, s, addr)
	early := stage(t, s, first, blob(76, bigSize), 1<<20)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: first, Staged: &early}}); err != nil {
		t.Fatal(err)
	}
	big := blob(77, bigSize)
	sb := stage(t, s, addr, big, 1<<20)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb}}); err != nil {
		t.Fatal(err)
	}
	inbox := idOf(t, s, addr, store.Inbox)
	w := &gateWriter{started: make(chan struct{}), open: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.(store.Backuper).Backup(ctxBg, w)
		done <- err
	}()
	<-w.started // the backup has its snapshot and is writing
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	close(w.open)
	if err := <-done; err != nil {
		t.Fatalf("backup while expunging: %v", err)
	}
	if _, err := s.Blob(ctxBg, addr, inbox, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expunged message after the backup: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := restore(ctxBg, dir, bytes.NewReader(w.buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r := open(t, dir)
	defer r.Close()
	if b := readBlob(t, r, addr, idOf(t, r, addr, store.Inbox), 1); !bytes.Equal(b, big) {
		t.Fatalf("the restored large message differs: %d bytes", len(b))
	}
}

// gateWriter blocks its first Write until open is closed, after closing
// started.
type gateWriter struct {
	started, open chan struct{}
	once          sync.Once
	buf           bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.started)
		<-g.open
	})
	return g.buf.Write(p)
}

func testBackupDamaged(t *testing.T, open func(t *testing.T, dir string) store.Store, restore RestoreFunc) {
	s := open(t, t.TempDir())
	defer s.Close()
	newAccount(t, s, "a@example.org")
	deliverN(t, s, "a@example.org", "", 10, 5000)
	data := backupOf(t, s, ctxBg)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"empty":         nil,
		"not a backup":  []byte("hello, this is not a backup at all\n"),
		"cut in half":   data[:len(data)/2],
		"no checksum":   data[:len(data)-32],
		"cut checksum":  data[:len(data)-1],
		"flipped bit":   flipped,
		"trailing junk": append(bytes.Clone(data), 'x'),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir() // exists and is empty
			if _, err := restore(ctxBg, dir, bytes.NewReader(b)); !errors.Is(err, store.ErrBadBackup) {
				t.Fatalf("restore: %v, want ErrBadBackup", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 0 {
				t.Errorf("target after a failed restore: %v, %v", entries, err)
			}
			// It can be retried with the good copy.
			if _, err := restore(ctxBg, dir, bytes.NewReader(data)); err != nil {
				t.Fatalf("restore after a failed one: %v", err)
			}
		})
	}
}

func testBackupWhileDelivering(t *testing.T, open func(t *testing.T, dir string) store.Store, restore RestoreFunc) {
	s := open(t, t.TempDir())
	defer s.Close()
	newAccount(t, s, "a@example.org")
	newAccount(t, s, "b@example.org")
	deliverN(t, s, "a@example.org", "", 200, 2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Two accounts in one transaction: a consistent copy
				// has both or neither.
				_, err := s.Deliver(ctxBg, []store.Delivery{
					{Account: "a@example.org", Blob: blob(w*100000+i, 700)},
					{Account: "b@example.org", Blob: blob(w*100000+i, 700)},
				})
				if err != nil {
					t.Errorf("Deliver: %v", err)
					return
				}
			}
		}()
	}
	data := backupOf(t, s, ctxBg)
	close(stop)
	wg.Wait()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := restore(ctxBg, dir, bytes.NewReader(data)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r := open(t, dir)
	defer r.Close()
	a := checkCounters(t, r, "a@example.org", store.Inbox)
	b := checkCounters(t, r, "b@example.org", store.Inbox)
	if a.Messages != b.Messages+200 {
		t.Errorf("backup is not one moment: a has %d messages, b %d (want a = b + 200)", a.Messages, b.Messages)
	}
	usedBytes(t, r, "a@example.org")
	usedBytes(t, r, "b@example.org")
}
