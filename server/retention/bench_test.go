package retention

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// BenchmarkSweep sweeps 50,000 due messages of 100 accounts, in process,
// without pacing, and reports the time and allocations per message
// (population not timed). BenchmarkSweepWhileIngesting in cmd/sealmail
// measures a million over the real binary, with SMTP ingest alongside.
func BenchmarkSweep(b *testing.B) {
	const accounts, per = 100, 500
	for range b.N {
		b.StopTimer()
		st, err := badgerstore.Open(b.TempDir(), badgerstore.Options{GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		svc, err := New(bg, Options{Store: st})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.ImportPreset(bg, "bench", []byte(zeroDay), "zero.yaml", ChangeOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Assign(bg, "bench", AssignRequest{Preset: "ZERO", Scope: "org"}, ChangeOptions{}); err != nil {
			b.Fatal(err)
		}
		ws := svc.Store()
		start := time.Now().Add(-24 * time.Hour)
		for a := range accounts {
			addr := fmt.Sprintf("u%03d@example.org", a)
			if err := st.CreateAccount(bg, store.Account{Address: addr, PublicKey: []byte("k"), Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}}}, store.DefaultMailboxes); err != nil {
				b.Fatal(err)
			}
			ds := make([]store.Delivery, per)
			for i := range ds {
				at := start.Add(time.Duration(a+accounts*i) * time.Millisecond)
				ds[i] = store.Delivery{Account: addr, Blob: make([]byte, 64), Retention: &store.Retention{Arrival: at, Class: "default", DeleteAfter: at, Gen: svc.Policy().Gen}}
			}
			if _, err := ws.Deliver(bg, ds); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		rep, err := svc.Sweep(bg, ActorSweeper, SweepOptions{})
		b.StopTimer()
		if err != nil || rep.Messages != accounts*per {
			b.Fatalf("sweep: %+v, %v", rep, err)
		}
		purge := time.Duration(0)
		if rep.Purge != nil {
			purge = rep.Purge.Duration
		}
		b.ReportMetric(float64(rep.Duration.Nanoseconds())/float64(rep.Messages), "ns/msg")
		b.ReportMetric(float64(purge.Milliseconds()), "purge-ms")
		st.Close()
		b.StartTimer()
	}
}
