package badgerstore

import (
	"context"
	"sync"
	"testing"
	"time"

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

// TestOnCommit: every write transaction's commit is reported with the
// calls it carried.
func TestOnCommit(t *testing.T) {
	var mu sync.Mutex
	var commits, calls int
	db, err := Open(t.TempDir(), Options{GCInterval: -1, OnCommit: func(d time.Duration, n int) {
		mu.Lock()
		defer mu.Unlock()
		if d <= 0 || n < 1 {
			t.Errorf("OnCommit(%v, %d)", d, n)
		}
		commits++
		calls += n
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// What Open itself committed (a new store's retention marker) is not
	// the test's.
	mu.Lock()
	commits, calls = 0, 0
	mu.Unlock()
	ctx := context.Background()
	if err := db.CreateAccount(ctx, store.Account{Address: "a@example.org"}, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.Deliver(ctx, []store.Delivery{{Account: "a@example.org", Blob: []byte("x")}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if calls != 21 || commits < 2 || commits > 21 {
		t.Errorf("%d commits carried %d calls, want 21 calls", commits, calls)
	}
}
