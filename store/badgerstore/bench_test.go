package badgerstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

func benchDB(b *testing.B) *DB {
	b.Helper()
	db, err := Open(b.TempDir(), Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	err = db.CreateAccount(context.Background(), store.Account{
		Address: "bench@example.org", PublicKey: []byte("k"),
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}},
	}, store.DefaultMailboxes)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkDeliver delivers 10 KiB sealed blobs, one per Deliver call, to
// one INBOX from conc concurrent callers, with SyncWrites on.
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			db := benchDB(b)
			body := make([]byte, 10<<10)
			rand.Read(body)
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, conc)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			start := time.Now()
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						_, err := db.Deliver(context.Background(), []store.Delivery{{Account: "bench@example.org", Blob: body}})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkMessages lists a 10,000-message mailbox, as every IMAP SELECT
// does.
func BenchmarkMessages(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	const n = 10000
	ds := make([]store.Delivery, 500)
	for i := range ds {
		ds[i] = store.Delivery{Account: "bench@example.org", Flags: []string{`\Seen`, "$Label1"}, Blob: make([]byte, 2000)}
	}
	for i := 0; i < n; i += len(ds) {
		if _, err := db.Deliver(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		ms, err := db.Messages(ctx, "bench@example.org", store.Inbox, store.ListOptions{})
		if err != nil || len(ms) != n {
			b.Fatalf("listed %d, %v", len(ms), err)
		}
	}
}
