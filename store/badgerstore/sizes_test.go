package badgerstore

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestSizes: the sizes count allocated blocks, so a fresh store's sparse
// value-log file does not count at its mapped size, and delivered mail
// shows up in the value log.
func TestSizes(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fresh := db.Sizes()
	if fresh["vlog"] > 16<<20 {
		t.Errorf("fresh store: vlog %d bytes allocated", fresh["vlog"])
	}
	ctx := context.Background()
	if err := db.CreateAccount(ctx, store.Account{Address: "a@example.org"}, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 64<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	for range 32 {
		if _, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Blob: blob}}); err != nil {
			t.Fatal(err)
		}
	}
	db.sizes.mu.Lock()
	db.sizes.sizes = nil // no waiting for sizesMaxAge
	db.sizes.mu.Unlock()
	if got := db.Sizes(); got["vlog"] < fresh["vlog"]+32*64<<10-4096 {
		t.Errorf("after 2 MiB of mail: %v (fresh %v)", got, fresh)
	}
	// A large blob is a file: counted as "blobs", not in the value log.
	w, err := db.StageBlob(ctx, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 4<<20))
	sb, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Staged: &sb}}); err != nil {
		t.Fatal(err)
	}
	db.sizes.mu.Lock()
	db.sizes.sizes = nil
	db.sizes.mu.Unlock()
	if got := db.Sizes(); got["blobs"] < 4<<20 || got["other"] > 1<<20 {
		t.Errorf("after a 4 MiB blob: %v", got)
	}
}

func TestValueLogFileSize(t *testing.T) {
	for in, want := range map[int64]int64{
		0:         64 << 20,
		1:         64 << 20,
		50 << 20:  64 << 20,
		63 << 20:  64 << 20,
		64 << 20:  80 << 20,
		100 << 20: 112 << 20,
		5 << 30:   1<<30 - 1,
	} {
		if got := valueLogFileSize(in); got != want {
			t.Errorf("valueLogFileSize(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestLargestValue: a store takes a sealed message of MaxValueBytes,
// and a store made with the old 256 MiB value-log files opens with the
// smaller size and keeps its values.
func TestLargestValue(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	big := make([]byte, 50<<20)
	for i := range big {
		big[i] = byte(i * 31)
	}
	{
		db, err := Open(dir, Options{MaxValueBytes: 200 << 20, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CreateAccount(ctx, store.Account{Address: "a@example.org"}, store.DefaultMailboxes); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Blob: big}}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Blob: big}}); err != nil {
		t.Fatalf("a 50 MiB message with the default size: %v", err)
	}
	inbox, err := db.Mailbox(ctx, "a@example.org", store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	for uid := uint32(1); uid <= 4; uid++ {
		b, err := db.Blob(ctx, "a@example.org", inbox.ID, uid)
		if err != nil || !bytes.Equal(b, big) {
			t.Fatalf("blob %d: %v", uid, err)
		}
	}
}
