package pop3

// BenchmarkRetr: RETR of every message of a 10,000 × 10 KB INBOX in one
// session over TLS (issue 15), to compare with server/imap's
// BenchmarkFetchBody on the same kind of mailbox, in one run:
//
//	go test -p 1 -run '^$' -bench 'BenchmarkFetchBody$|BenchmarkRetr' -benchtime 3x ./server/imap/ ./server/pop3/
//
// MB/s is of message bytes as stored (what RETR announces). The mailbox
// is built once per test binary run, the first time a benchmark asks for
// it (plain `go test` never does), and the login that builds its
// summaries is not timed.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const (
	benchMessages = 10000
	benchMsgSize  = 10 << 10
	benchUser     = "bench@example.org"
	benchPW       = "bench password"
)

type benchFixture struct {
	dir        string
	st         *badgerstore.DB
	acc        *account.Service
	srv        *Server
	addr       string // implicit TLS
	clientTLS  *tls.Config
	plainBytes int64
	serveDone  <-chan struct{}
}

var (
	benchOnce sync.Once
	benchFix  *benchFixture
	benchErr  error
)

func getBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	benchOnce.Do(func() {
		start := time.Now()
		benchFix, benchErr = buildBenchFixture()
		if benchErr == nil {
			fmt.Fprintf(os.Stderr, "bench fixture: %d messages, %.1f MB, built in %v\n",
				benchMessages, float64(benchFix.plainBytes)/1e6, time.Since(start).Round(time.Millisecond))
		}
	})
	if benchErr != nil {
		b.Fatalf("bench fixture: %v", benchErr)
	}
	return benchFix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFix != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		benchFix.srv.Shutdown(ctx)
		cancel()
		<-benchFix.serveDone
		benchFix.acc.Close()
		benchFix.st.Close()
		os.RemoveAll(benchFix.dir)
	}
	os.Exit(code)
}

func buildBenchFixture() (f *benchFixture, err error) {
	dir, err := os.MkdirTemp("", "sealmail-pop3-bench-")
	if err != nil {
		return nil, err
	}
	st, err := badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
			os.RemoveAll(dir)
		}
	}()
	ctx := context.Background()
	acc, err := account.New(account.Options{Store: st, Domains: []string{"example.org"}, KDF: crypto.TestKDF()})
	if err != nil {
		return nil, err
	}
	if _, err := acc.Create(ctx, benchUser, []byte(benchPW)); err != nil {
		acc.Close()
		return nil, err
	}
	pk, err := testutil.PublicKey(ctx, st, benchUser)
	if err != nil {
		acc.Close()
		return nil, err
	}
	f = &benchFixture{dir: dir, st: st, acc: acc}
	blobs, err := testutil.SealAll(pk, benchMessages, benchMessage)
	if err != nil {
		acc.Close()
		return nil, err
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < benchMessages; i += 100 {
		var ds []store.Delivery
		for j := i; j < min(i+100, benchMessages); j++ {
			ds = append(ds, store.Delivery{Account: benchUser, InternalDate: base.Add(time.Duration(j) * time.Minute), Blob: blobs[j]})
			f.plainBytes += int64(len(benchMessage(j)))
		}
		if _, err := st.Deliver(ctx, ds); err != nil {
			acc.Close()
			return nil, err
		}
	}
	srv, err := New(Options{Store: st, Accounts: acc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		acc.Close()
		return nil, err
	}
	f.srv = srv
	f.addr, f.clientTLS, f.serveDone, err = testutil.ServeTLS(srv.Serve)
	if err != nil {
		acc.Close()
		return nil, err
	}
	return f, nil
}

// benchMessage is message i: about benchMsgSize bytes of text/plain,
// deterministic (the shape of server/imap's benchmark messages).
func benchMessage(i int) []byte { return testutil.BenchMessage(i, benchUser, benchMsgSize, "") }

// benchConn is a logged-in POP3 client.
type benchConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func (f *benchFixture) login(b *testing.B) *benchConn {
	b.Helper()
	nc, err := tls.Dial("tcp", f.addr, f.clientTLS)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriter(nc)}
	c.status(b)
	fmt.Fprintf(c.w, "USER %s\r\nPASS %s\r\n", benchUser, benchPW)
	c.w.Flush()
	c.status(b)
	if l := c.status(b); !strings.HasPrefix(l, "+OK "+strconv.Itoa(benchMessages)+" messages") {
		b.Fatalf("login: %q", l)
	}
	return c
}

func (c *benchConn) status(b *testing.B) string {
	l, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "+OK") {
		b.Fatalf("response %q, %v", l, err)
	}
	return l
}

// body reads a multi-line body and returns its size, unstuffed.
func (c *benchConn) body(b *testing.B) int64 {
	var n int64
	for {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(l) == 3 && l[0] == '.' {
			return n
		}
		if l[0] == '.' {
			l = l[1:]
		}
		n += int64(len(l))
	}
}

// BenchmarkRetr retrieves every message, one RETR at a time
// (sequential) or with up to 32 commands in flight (pipelined, RFC 2449
// PIPELINING).
func BenchmarkRetr(b *testing.B) {
	for _, window := range []int{1, 32} {
		name := "sequential"
		if window > 1 {
			name = "pipelined"
		}
		b.Run(name, func(b *testing.B) {
			f := getBenchFixture(b)
			c := f.login(b)
			defer c.nc.Close()
			b.SetBytes(f.plainBytes)
			b.ResetTimer()
			cpu0 := processCPU()
			defer func() {
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			}()
			for b.Loop() {
				var total int64
				sent := 0
				for got := 0; got < benchMessages; got++ {
					for sent < benchMessages && sent-got < window {
						sent++
						fmt.Fprintf(c.w, "RETR %d\r\n", sent)
					}
					c.w.Flush()
					c.status(b)
					total += c.body(b)
				}
				if total != f.plainBytes {
					b.Fatalf("retrieved %d bytes, want %d", total, f.plainBytes)
				}
			}
			b.StopTimer()
			io.WriteString(c.nc, "QUIT\r\n")
		})
	}
}

// processCPU is the CPU time of this process (server and client alike,
// as in server/imap's benchmarks).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
