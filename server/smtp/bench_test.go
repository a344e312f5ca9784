package smtp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
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

// benchMessage returns a message of about size bytes with CRLF lines.
func benchMessage(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Bench <bench@remote.test>\r\nTo: alice@example.org\r\nSubject: bench %d\r\nMessage-ID: <bench.%d@remote.test>\r\n\r\n", i, i)
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// BenchmarkIngest measures end-to-end SMTP ingest: go-smtp client over
// TCP on 127.0.0.1, real sealing (Ed25519/X25519 keys), badger with
// SyncWrites, 10 KiB messages, one persistent connection per worker.
func BenchmarkIngest(b *testing.B) {
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) { benchIngest(b, conc, 10<<10) })
	}
}

func benchIngest(b *testing.B, conc, size int) { benchIngestWith(b, conc, size, nil) }

// benchIngestWith is benchIngest with setup changing the options (it
// gets the store) before the server starts; one message per connection
// is sent before the timer starts, to warm caches.
func benchIngestWith(b *testing.B, conc, size int, setup func(*Options, *badgerstore.DB)) {
	dir := b.TempDir()
	db, err := badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	createAccount(b, db, "alice@example.org")
	ts := &timedStore{Store: db}
	opt := Options{
		Hostname: "mx.example.org",
		Domains:  []string{"example.org"},
		Store:    ts,
		Limits:   Limits{RateMessages: 1 << 30, RateBytes: 1 << 50},
	}
	if setup != nil {
		setup(&opt, db)
	}
	srv, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = benchMessage(i, size)
	}
	clients := make([]*gosmtp.Client, conc)
	for i := range clients {
		c, err := gosmtp.Dial(ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("bench.remote.test"); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
		defer c.Close()
		if setup != nil {
			if err := c.SendMail("bench@remote.test", []string{"alice@example.org"}, bytes.NewReader(msgs[i%len(msgs)])); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
	}

	var next atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for w := range conc {
		wg.Go(func() {
			c := clients[w]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := c.SendMail("bench@remote.test", []string{"alice@example.org"}, bytes.NewReader(msgs[i%int64(len(msgs))])); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	// CPU time of the whole process (server and clients) per message:
	// what a message costs whatever else the machine runs.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/msg")
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("send: %v", err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if n := ts.calls.Load(); n > 0 {
		// Wall time one message spends in Store.Deliver (queueing for
		// and sharing a group commit, fsync included).
		b.ReportMetric(float64(ts.nanos.Load())/float64(n)/1e6, "commit-ms")
	}
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timedStore measures the wall time spent in Deliver.
type timedStore struct {
	Store
	calls atomic.Int64
	nanos atomic.Int64
}

func (t *timedStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	start := time.Now()
	out, err := t.Store.Deliver(ctx, ds)
	t.nanos.Add(int64(time.Since(start)))
	t.calls.Add(1)
	return out, err
}

// BenchmarkSeal measures sealing one 10 KiB message (trace fields
// included) to one recipient with a cached key: the CPU cost Data adds
// per recipient outside the store.
func BenchmarkSeal(b *testing.B) {
	sec := accountSecrets(b, "alice@example.org")
	s := &Server{keys: newKeyCache(8)}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	a := store.PublicAccount{Address: "alice@example.org", PublicKey: sec.PublicKey, KeyFingerprint: sec.Fingerprint}
	plain := benchMessage(0, 10<<10)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		out := s.getBuf()
		if err := s.seal(a, bytes.NewReader(plain), out); err != nil {
			b.Fatal(err)
		}
		s.putBuf(out)
	}
}

// BenchmarkReadDotData measures reading a 10 KiB message after DATA:
// dot-unstuffing and the checks (bare CR/LF, NUL, line length, Received
// count).
func BenchmarkReadDotData(b *testing.B) {
	msg := append(benchMessage(0, 10<<10), ".\r\n"...)
	lim := dataLimits{maxBytes: DefaultMessageBytes, maxLine: DefaultLineLength, maxHops: DefaultHops}
	var dst bytes.Buffer
	r := bytes.NewReader(msg)
	br := bufio.NewReaderSize(r, readBufSize)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		dst.Reset()
		r.Reset(msg)
		br.Reset(r)
		sink := newMsgSink(&dst, lim)
		if err := readDotData(br, sink); err != nil || sink.finish() != nil {
			b.Fatal(err, sink.err)
		}
	}
}
