package badgerstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// benchAddr is the account benchDB creates.
const benchAddr = "bench@example.org"

// benchDB opens a store in a temporary directory with opts (garbage
// collection always off, so it cannot run during a measurement) and
// creates benchAddr with the default mailboxes.
func benchDB(b *testing.B, opts Options) *DB {
	b.Helper()
	opts.GCInterval = -1
	db, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	err = db.CreateAccount(context.Background(), store.Account{
		Address: benchAddr, PublicKey: []byte("k"),
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}},
	}, store.DefaultMailboxes)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// runCallers resets the timer and makes b.N calls of call from conc
// goroutines; call gets its goroutine's number w and the call's number i
// (1 to b.N). It stops the timer, fails b on the first error and returns
// calls per second.
func runCallers(b *testing.B, conc int, call func(w int, i int64) error) (perSecond float64) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := call(w, i); err != nil {
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
	return float64(b.N) / elapsed.Seconds()
}

// BenchmarkDeliver delivers 10 KiB sealed blobs, one per Deliver call, to
// one INBOX from conc concurrent callers, with SyncWrites on.
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			db := benchDB(b, Options{})
			body := make([]byte, 10<<10)
			rand.Read(body)
			b.SetBytes(int64(len(body)))
			rate := runCallers(b, conc, func(int, int64) error {
				_, err := db.Deliver(context.Background(), []store.Delivery{{Account: benchAddr, Blob: body}})
				return err
			})
			b.ReportMetric(rate, "deliveries/s")
		})
	}
}

// BenchmarkDeliverLarge delivers one blob per Deliver call, handed over
// in memory (kept in badger up to fileThreshold, written to a file by
// Deliver above it) or staged (a file through a BlobWriter), to see where
// a file starts to pay, what fileThreshold is, and what Deliver's own
// file costs above it.
func BenchmarkDeliverLarge(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20, 2 << 20} {
		for _, how := range []string{"memory", "staged"} {
			b.Run(fmt.Sprintf("size=%dKiB/%s", size>>10, how), func(b *testing.B) {
				db := benchDB(b, Options{})
				body := make([]byte, size)
				rand.Read(body)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					d := store.Delivery{Account: benchAddr, Blob: body}
					if how == "staged" {
						w, err := db.StageBlob(ctx, d.Account)
						if err != nil {
							b.Fatal(err)
						}
						w.Write(body)
						sb, err := w.Finish(ctx)
						if err != nil {
							b.Fatal(err)
						}
						d.Blob, d.Staged = nil, &sb
					}
					if _, err := db.Deliver(ctx, []store.Delivery{d}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// fillInbox delivers n messages of size bytes with flags to benchAddr's
// INBOX, 500 to a Deliver call, and returns the INBOX's ID.
func fillInbox(b *testing.B, db *DB, n, size int, flags ...string) (inbox uint64) {
	b.Helper()
	ctx := context.Background()
	ds := make([]store.Delivery, 500)
	for i := range ds {
		ds[i] = store.Delivery{Account: benchAddr, Flags: flags, Blob: make([]byte, size)}
	}
	for i := 0; i < n; i += len(ds) {
		if _, err := db.Deliver(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	m, err := db.Mailbox(ctx, benchAddr, store.Inbox)
	if err != nil {
		b.Fatal(err)
	}
	return m.ID
}

// BenchmarkMessages lists a 10,000-message mailbox, as every IMAP SELECT
// does.
func BenchmarkMessages(b *testing.B) {
	db := benchDB(b, Options{})
	ctx := context.Background()
	const n = 10000
	inbox := fillInbox(b, db, n, 2000, `\Seen`, "$Label1")
	b.ResetTimer()
	for range b.N {
		ms, err := db.Messages(ctx, benchAddr, inbox, store.ListOptions{})
		if err != nil || len(ms) != n {
			b.Fatalf("listed %d, %v", len(ms), err)
		}
	}
}

// BenchmarkAccountLookup compares the full account (wrapped key and
// slots, what LOGIN needs) with the public view (what every RCPT TO and
// WKD request needs) of a typical account: an Ed25519 key pair, a
// password and a recovery slot.
func BenchmarkAccountLookup(b *testing.B) {
	db, err := Open(b.TempDir(), Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	rnd := func(n int) []byte {
		p := make([]byte, n)
		rand.Read(p)
		return p
	}
	err = db.CreateAccount(ctx, store.Account{
		Address: benchAddr, KeyFingerprint: fmt.Sprintf("%x", rnd(20)),
		PublicKey: rnd(600), WrappedKey: rnd(400), PublishWKD: true, QuotaBytes: 1 << 30,
		Slots: []store.Slot{
			{Kind: store.SlotPassword, Label: "password", Data: rnd(120)},
			{Kind: store.SlotRecovery, Label: "recovery code", Data: rnd(120)},
		},
	}, store.DefaultMailboxes)
	if err != nil {
		b.Fatal(err)
	}
	// The same account as a version 1 (JSON) record, as stores written
	// before the binary record keep it until it next changes.
	v1, err := json.Marshal(struct {
		Created  time.Time `json:"created"`
		Fpr      string    `json:"fpr"`
		Pub      []byte    `json:"pub"`
		Wrapped  []byte    `json:"wrapped"`
		WKD      bool      `json:"wkd"`
		Quota    int64     `json:"quota"`
		NextSlot uint32    `json:"nextSlot"`
	}{time.Now().UTC(), fmt.Sprintf("%x", rnd(20)), rnd(600), rnd(400), true, 1 << 30, 2})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.CreateAccount(ctx, store.Account{Address: "old@example.org", PublicKey: []byte("k"),
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: rnd(120)}, {Kind: store.SlotRecovery, Data: rnd(120)}}}, nil); err != nil {
		b.Fatal(err)
	}
	err = db.update(ctx, func(t *tx) error {
		id, err := accountID(t, "old@example.org")
		if err != nil {
			return err
		}
		return t.set(accountKey("old@example.org"), append(binary.BigEndian.AppendUint64([]byte{vAccountJSON}, id), v1...))
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Account/v1-record", func(b *testing.B) {
		for range b.N {
			if _, err := db.Account(ctx, "old@example.org"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PublicAccount/v1-record", func(b *testing.B) {
		for range b.N {
			if _, err := db.PublicAccount(ctx, "old@example.org"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Account", func(b *testing.B) {
		for range b.N {
			if _, err := db.Account(ctx, benchAddr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PublicAccount", func(b *testing.B) {
		for range b.N {
			if _, err := db.PublicAccount(ctx, benchAddr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStoreFlags toggles \Seen on one message per call, conc
// callers at once, each in its own mailbox of one account (as IMAP
// sessions do), with every write alone in its own transaction ("alone",
// as before group commit covered sessions' writes) and batched. It
// reports calls per second and fsyncs (commits) per call.
func BenchmarkStoreFlags(b *testing.B) {
	ctx := context.Background()
	for _, conc := range []int{1, 10, 32} {
		for _, mode := range []string{"alone", "batched"} {
			b.Run(fmt.Sprintf("conc=%d/%s", conc, mode), func(b *testing.B) {
				var commits atomic.Int64
				db := benchDB(b, Options{OnCommit: func(time.Duration, int) { commits.Add(1) }})
				db.solo = mode == "alone"
				boxes := make([]uint64, conc)
				for i := range boxes {
					m, err := db.CreateMailbox(ctx, benchAddr, store.MailboxSpec{Name: fmt.Sprintf("box%d", i)})
					if err != nil {
						b.Fatal(err)
					}
					boxes[i] = m.ID
					ds := make([]store.Delivery, 20)
					for j := range ds {
						ds[j] = store.Delivery{Account: benchAddr, MailboxID: m.ID, Blob: make([]byte, 2000)}
					}
					if _, err := db.Deliver(ctx, ds); err != nil {
						b.Fatal(err)
					}
				}
				commits.Store(0)
				// Each caller sets \Seen on a message and then clears it,
				// so that every call changes something and commits it.
				seq := make([]int, conc)
				rate := runCallers(b, conc, func(w int, _ int64) error {
					k := seq[w]
					seq[w]++
					op := store.FlagsAdd
					if k%2 == 1 {
						op = store.FlagsRemove
					}
					_, err := db.StoreFlags(ctx, benchAddr, boxes[w], store.FlagUpdate{
						UIDs: []uint32{uint32(1 + (k/2)%20)}, Op: op, Flags: []string{store.FlagSeen},
					})
					return err
				})
				b.ReportMetric(rate, "calls/s")
				b.ReportMetric(float64(commits.Load())/float64(b.N), "fsyncs/call")
			})
		}
	}
}

// BenchmarkMessagesRange lists one message, by UID range, of a
// 10,000-message mailbox, as a FETCH of one message does: fresh, and
// busy (after 10,000 flag changes among its first 100 messages, whose
// older versions badger keeps until compaction).
func BenchmarkMessagesRange(b *testing.B) {
	for _, busy := range []bool{false, true} {
		b.Run(fmt.Sprintf("busy=%v", busy), func(b *testing.B) {
			db := benchDB(b, Options{})
			ctx := context.Background()
			const n = 10000
			inbox := fillInbox(b, db, n, 200, `\Seen`)
			for i := range n {
				if !busy {
					break
				}
				op := store.FlagsAdd
				if i%2 == 1 {
					op = store.FlagsRemove
				}
				_, err := db.StoreFlags(ctx, benchAddr, inbox, store.FlagUpdate{
					UIDs: []uint32{uint32(1 + (i/2)%100)}, Op: op, Flags: []string{store.FlagFlagged},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				uid := uint32(1 + i%100)
				ms, err := db.Messages(ctx, benchAddr, inbox, store.ListOptions{FromUID: uid, ToUID: uid, WithSummary: true})
				if err != nil || len(ms) != 1 {
					b.Fatalf("listed %d, %v", len(ms), err)
				}
			}
		})
	}
}

// BenchmarkListing lists a whole mailbox, as SELECT and every poll for
// changes do, after churn flag changes (whose older versions badger keeps
// until compaction, and its iterators step over), with the listing cache
// and without. With change, each listing follows a flag change of its
// own (imaptest's mix), so the writer must keep the cache up to date.
// Run with a fixed -benchtime (e.g. 2000x): the churn is set up again
// for every round of b.N.
func BenchmarkListing(b *testing.B) {
	for _, size := range []int{30, 1000} {
		for _, churn := range []int{0, 10000} {
			for _, change := range []bool{false, true} {
				for _, cache := range []bool{false, true} {
					name := fmt.Sprintf("size=%d/churn=%d/change=%v/cache=%v", size, churn, change, cache)
					b.Run(name, func(b *testing.B) { benchListing(b, size, churn, change, cache) })
				}
			}
		}
	}
}

func benchListing(b *testing.B, size, churn int, change, cache bool) {
	opt := Options{GCInterval: -1}
	if !cache {
		opt.ListCache = -1
	}
	db, err := Open(b.TempDir(), opt)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const addr = "bench@example.org"
	err = db.CreateAccount(ctx, store.Account{
		Address: addr, PublicKey: []byte("k"), Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}},
	}, store.DefaultMailboxes)
	if err != nil {
		b.Fatal(err)
	}
	ds := make([]store.Delivery, size)
	for i := range ds {
		ds[i] = store.Delivery{Account: addr, Flags: []string{`\Seen`}, Blob: make([]byte, 200)}
	}
	if _, err := db.Deliver(ctx, ds); err != nil {
		b.Fatal(err)
	}
	inbox, err := db.Mailbox(ctx, addr, store.Inbox)
	if err != nil {
		b.Fatal(err)
	}
	flip := func(i int) {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		_, err := db.StoreFlags(ctx, addr, inbox.ID, store.FlagUpdate{
			UIDs: []uint32{uint32(1 + (i/2)%size)}, Op: op, Flags: []string{store.FlagFlagged},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range churn {
		flip(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var listing time.Duration
	for i := range b.N {
		if change {
			flip(churn + i)
		}
		start := time.Now()
		ms, err := db.Messages(ctx, addr, inbox.ID, store.ListOptions{})
		listing += time.Since(start)
		if err != nil || len(ms) != size {
			b.Fatalf("listed %d, %v", len(ms), err)
		}
	}
	b.ReportMetric(float64(listing.Microseconds())/float64(b.N), "µs/listing")
}
