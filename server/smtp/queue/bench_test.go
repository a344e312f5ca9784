package queue

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/smtp/sink"
)

// BenchmarkQueueMemory queues N messages of 2 KiB to 50 destination
// domains whose server defers every recipient, waits until each was
// tried once, and reports the live heap after a collection (heap-MiB)
// and the largest heap in use sampled meanwhile (peak-heap-MiB). The
// scheduler holds at most Options.Active entries and streams bodies, so
// both stay flat as N grows: compare queued=2000 with queued=20000 in
// one run. What remains is badger's (memtables, caches), bounded by its
// own configuration.
//
//	go test -run '^$' -bench QueueMemory -benchtime 1x ./server/smtp/queue/
func BenchmarkQueueMemory(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			for range b.N {
				benchQueueMemory(b, n)
			}
		})
	}
}

func benchQueueMemory(b *testing.B, n int) {
	var tried atomic.Int64
	sk := startSink(b, sink.Options{Rcpt: func(string) error {
		tried.Add(1)
		return sink.Reply(451, "4.3.0", "try again later")
	}})
	const domains = 50
	tr := make(map[string]string, domains)
	for i := range domains {
		tr[fmt.Sprintf("d%d.example.net", i)] = sk.Addr
	}
	e := newEnv(b, func(o *Options) {
		o.Transports = tr
		o.RetryBase = time.Hour // the test clock stands still: each entry is tried once
		o.DestinationConnections = 4
		o.Logger = slog.New(slog.DiscardHandler) // the env's log buffer would grow with N
	})
	defer e.close()
	body := []byte("From: Alice <alice@example.org>\r\nTo: x@example.net\r\nSubject: load\r\n\r\n" +
		strings.Repeat("a line of a message held in the outbound queue, 2 KiB in all\r\n", 32))

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	for i := range n {
		e.submit(&Message{ID: fmt.Sprintf("m%d", i), Rcpts: []Rcpt{{Addr: fmt.Sprintf("r%d@d%d.example.net", i, i%domains)}}}, body)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for tried.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d entries tried", tried.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.idle()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if got := e.queueLen(); got != n {
		b.Fatalf("%d entries queued, want %d", got, n)
	}
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
}
