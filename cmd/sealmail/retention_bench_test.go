package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

var (
	sweepMessages = flag.Int("sweep.messages", 20000, "BenchmarkSweepWhileIngesting: messages to sweep")
	sweepAccounts = flag.Int("sweep.accounts", 100, "BenchmarkSweepWhileIngesting: accounts they belong to")
	sweepConns    = flag.Int("sweep.conns", 4, "BenchmarkSweepWhileIngesting: SMTP connections ingesting")
	sweepWindow   = flag.Duration("sweep.window", 10*time.Second, "BenchmarkSweepWhileIngesting: length of each window")
	sweepRounds   = flag.Int("sweep.rounds", 2, "BenchmarkSweepWhileIngesting: windows without and with a sweep, alternating")
)

// populate writes n due messages (64 sealed bytes each) into accounts
// accounts, with due times spread over a year so that the sweeper's index
// interleaves them, straight into the store of a stopped server.
func populate(b *testing.B, dataDir string, n, accounts int) {
	b.Helper()
	db, err := badgerstore.Open(filepath.Join(dataDir, "store"), badgerstore.Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.PutAssignment(ctx, store.Assignment{Preset: "ZERO", Scope: "domain:sweep.test"}); err != nil {
		b.Fatal(err)
	}
	gen, _ := db.PolicyGen(ctx)
	blob := make([]byte, 64)
	per := n / accounts
	start := time.Now().Add(-366 * 24 * time.Hour)
	for a := 0; a < accounts; a++ {
		addr := fmt.Sprintf("u%04d@sweep.test", a)
		err := db.CreateAccount(ctx, store.Account{Address: addr, PublicKey: []byte("k"), WrappedKey: []byte("w"),
			Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}}}, store.DefaultMailboxes)
		if err != nil {
			b.Fatal(err)
		}
		for done := 0; done < per; {
			k := min(1000, per-done)
			ds := make([]store.Delivery, k)
			for i := range ds {
				at := start.Add(time.Duration(a+accounts*(done+i)) * (365 * 24 * time.Hour / time.Duration(n)))
				ds[i] = store.Delivery{Account: addr, Blob: blob, Retention: &store.Retention{Arrival: at, Class: "default", DeleteAfter: at, Rule: "max ZERO@1 default", Gen: gen}}
			}
			if _, err := db.Deliver(ctx, ds); err != nil {
				b.Fatal(err)
			}
			done += k
		}
	}
}

// procStatus returns a field of /proc/PID/status in bytes (RssAnon,
// VmHWM, …). RssAnon is the process's own memory; VmRSS also counts the
// store's files that badger maps, which the kernel drops when it needs.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s", field)
}

// ingest sends 10 KiB messages over conns connections until stop closes,
// counting each one the server accepted.
func ingest(b *testing.B, addr, rcpt string, conns int, stop <-chan struct{}, accepted *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	body := "Subject: load\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := gosmtp.Dial(addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer cl.Close()
			if err := cl.Hello("bench.test"); err != nil {
				b.Error(err)
				return
			}
			for {
				select {
				case <-stop:
					cl.Quit()
					return
				default:
				}
				if err := cl.SendMail("load@bench.test", []string{rcpt}, strings.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
				accepted.Add(1)
			}
		}()
	}
	return &wg
}

// BenchmarkSweepWhileIngesting measures, against the real binary, the
// sweep of -sweep.messages due messages in -sweep.accounts accounts and
// what it does to SMTP ingest (sealed 10 KiB messages over -sweep.conns
// connections, running throughout):
//
//   - side by side: -sweep.rounds rounds of a -sweep.window without a
//     sweep, then one with `sealmail retention sweep` running (stopped
//     with Ctrl-C at the window's end), so that the machine's drift hits
//     both alike; the ingest rate of each window, the sweep's rate while
//     paced, and the server's anonymous memory (RssAnon) at its peak in
//     each kind of window;
//   - then, the server stopped, `sealmail retention sweep` on the store
//     destroys the rest flat out and purges: its rate and the purge's
//     time.
//
// Issue 10's figures:
//
//	go test -run '^$' -bench SweepWhileIngesting -benchtime 1x -timeout 3h ./cmd/sealmail \
//	    -args -sweep.messages 1000000 -sweep.accounts 1000
func BenchmarkSweepWhileIngesting(b *testing.B) {
	for range b.N {
		b.StopTimer()
		te := newTestEnv(b)
		// The MX's per-client rate limit would refuse the ingest.
		te.env = append(te.env, "SEALMAIL_DOMAINS=example.org sweep.test",
			"SEALMAIL_LIMITS_RATE_MESSAGES=100000000", "SEALMAIL_LIMITS_RATE_BYTES=1000GiB")
		te.ok(alicePW+"\n", "user", "add", "bench@example.org", "--password-stdin")
		zero := filepath.Join(te.dir, "zero.yaml")
		os.WriteFile(zero, []byte(zeroDayPreset), 0o600)
		te.ok("", "policy", "import", zero)
		t0 := time.Now()
		populate(b, te.dataDir, *sweepMessages, *sweepAccounts)
		b.Logf("populated %d messages in %d accounts in %s", *sweepMessages, *sweepAccounts, time.Since(t0).Round(time.Second))
		s := te.serve()
		pid := s.cmd.Process.Pid

		var accepted atomic.Int64
		stop := make(chan struct{})
		wg := ingest(b, s.addr("smtp"), "bench@example.org", *sweepConns, stop, &accepted)
		// Peak anonymous memory, sampled each second, per kind of window.
		var sweeping atomic.Bool
		var peakOff, peakOn atomic.Int64
		sampleDone := make(chan struct{})
		go func() {
			defer close(sampleDone)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				v, err := procStatus(pid, "RssAnon")
				if err != nil {
					continue
				}
				p := &peakOff
				if sweeping.Load() {
					p = &peakOn
				}
				if v > p.Load() {
					p.Store(v)
				}
			}
		}()
		time.Sleep(5 * time.Second) // warm up
		var offRates, onRates []float64
		for round := 0; round < *sweepRounds; round++ {
			n0, w0 := accepted.Load(), time.Now()
			time.Sleep(*sweepWindow)
			offRates = append(offRates, float64(accepted.Load()-n0)/time.Since(w0).Seconds())

			cmd := te.command("", "retention", "sweep")
			sweeping.Store(true)
			n0, w0 = accepted.Load(), time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(*sweepWindow)
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			onRates = append(onRates, float64(accepted.Load()-n0)/time.Since(w0).Seconds())
			sweeping.Store(false)
			time.Sleep(2 * time.Second) // the server notices the hang-up
		}
		close(stop)
		wg.Wait()
		<-sampleDone
		if err := s.stop(b, syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		var dry struct{ Messages int }
		if err := json.Unmarshal([]byte(te.ok("", "retention", "sweep", "--dry-run", "--json").stdout), &dry); err != nil {
			b.Fatal(err)
		}
		pacedDone := *sweepMessages - dry.Messages
		pacedTime := time.Duration(*sweepRounds) * *sweepWindow

		b.StartTimer()
		r := te.ok("", "retention", "sweep", "--json")
		b.StopTimer()
		var rep struct {
			Messages int
			Duration time.Duration `json:"duration_ns"`
			Purge    *struct {
				Rewritten int
				Duration  time.Duration
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			b.Fatalf("sweep output %q: %v", r.stdout, err)
		}
		purge := time.Duration(0)
		if rep.Purge != nil {
			purge = rep.Purge.Duration
		}
		off, on := mean(offRates), mean(onRates)
		b.Logf("ingest msgs/s without a sweep %s, with one %s (side by side)", fmtRates(offRates), fmtRates(onRates))
		b.Logf("paced sweep in the running server: %d messages in %s; the rest (%d) on the stopped server in %s, of which the purge %s",
			pacedDone, pacedTime, rep.Messages, rep.Duration.Round(time.Millisecond), purge.Round(time.Millisecond))
		b.Logf("server RssAnon peak: %d MiB without a sweep, %d MiB with one", peakOff.Load()>>20, peakOn.Load()>>20)
		b.ReportMetric(off, "ingest-no-sweep/s")
		b.ReportMetric(on, "ingest-sweeping/s")
		b.ReportMetric(100*(on-off)/off, "ingest-change-%")
		b.ReportMetric(float64(pacedDone)/pacedTime.Seconds(), "swept-paced-msgs/s")
		b.ReportMetric(float64(rep.Messages)/rep.Duration.Seconds(), "swept-offline-msgs/s")
		b.ReportMetric(purge.Seconds(), "purge-s")
		b.ReportMetric(float64(peakOff.Load())/(1<<20), "RssAnon-no-sweep-MiB")
		b.ReportMetric(float64(peakOn.Load())/(1<<20), "RssAnon-sweeping-MiB")
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func fmtRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return "[" + strings.Join(parts, " ") + "] mean " + strconv.FormatFloat(mean(xs), 'f', 1, 64)
}
