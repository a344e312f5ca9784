package badgerstore

import (
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
}
