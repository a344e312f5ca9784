package badgerstore

import (
	"context"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestDeleteAccountProgress: deleting a large account reports its
// progress through the context, ending complete.
func TestDeleteAccountProgress(t *testing.T) {
	db, err := Open(t.TempDir(), Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.CreateAccount(ctx, store.Account{Address: "a@example.org"}, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	ds := make([]store.Delivery, 2000)
	for i := range ds {
		ds[i] = store.Delivery{Account: "a@example.org", Blob: []byte("sealed")}
	}
	for range 3 {
		if _, err := db.Deliver(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	var reports [][2]int64
	pctx := store.WithProgress(ctx, func(done, total int64) { reports = append(reports, [2]int64{done, total}) })
	if _, err := db.DeleteAccount(pctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if len(reports) < 2 {
		t.Fatalf("reports %v", reports)
	}
	for i, r := range reports {
		if r[0] > r[1] || (i > 0 && r[0] < reports[i-1][0]) {
			t.Errorf("report %d: %v", i, reports)
		}
	}
	if last := reports[len(reports)-1]; last[0] != last[1] || last[1] < 6000 {
		t.Errorf("last report %v", last)
	}
}
