package imap

// Resynchronisation of a 10,000-message mailbox after 100 changes (50
// flag changes, 50 expunges), the issue 11 target (< 50 ms), side by side
// with a full FETCH 1:* (FLAGS) and a plain SELECT in the same run:
//
//	go test -run '^$' -bench 'Resync|FullFlags|SelectPlain' -benchmem ./server/imap/
//
// The messages are opaque blobs: FLAGS, MODSEQ and VANISHED never open
// one, so no sealing is needed. Client and server run in this process, so
// the allocations are both sides'.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const (
	resyncMessages = 10000
	resyncFlags    = 50 // flag changes after the client's mod-sequence
	resyncExpunges = 50 // expunges after it
)

// resyncFixture is a server over one 10,000-message INBOX, changed 100
// times since ModSeq.
type resyncFixture struct {
	addr        string
	tls         *tls.Config
	uidValidity uint32
	modSeq      uint64 // the client's mod-sequence, before the changes
}

// newResyncFixture builds the fixture in b's temporary directory.
func newResyncFixture(b *testing.B) *resyncFixture {
	b.Helper()
	ctx := context.Background()
	st, err := badgerstore.Open(b.TempDir(), badgerstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	acc, err := account.New(account.Options{Store: st, Domains: []string{"example.org"}, KDF: crypto.TestKDF()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { acc.Close() })
	if _, err := acc.Create(ctx, alice, []byte(alicePW)); err != nil {
		b.Fatal(err)
	}
	const batch = 2000
	for i := 0; i < resyncMessages; i += batch {
		ds := make([]store.Delivery, batch)
		for j := range ds {
			ds[j] = store.Delivery{Account: alice, InternalDate: time.Now(), Blob: []byte(fmt.Sprint(i + j))}
		}
		if _, err := st.Deliver(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	mb, err := st.Mailbox(ctx, alice, store.Inbox)
	if err != nil {
		b.Fatal(err)
	}
	f := &resyncFixture{uidValidity: mb.UIDValidity, modSeq: mb.HighestModSeq}
	// The changes, spread over the mailbox.
	step := uint32(resyncMessages / (resyncFlags + resyncExpunges))
	for k := uint32(0); k < resyncFlags+resyncExpunges; k++ {
		uid := 1 + k*step
		if k%2 == 0 {
			_, err = st.StoreFlags(ctx, alice, mb.ID, store.FlagUpdate{UIDs: []uint32{uid}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		} else {
			_, err = st.Expunge(ctx, alice, mb.ID, []uint32{uid})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	cert, pool := testCert(b)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	srv, err := New(Options{Store: st, Accounts: acc, TLSConfig: srvTLS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(tls.NewListener(ln, srvTLS))
	}()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		wg.Wait()
	})
	f.addr = ln.Addr().String()
	f.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return f
}

// benchConn is a minimal client: one command at a time, responses read
// to the tagged line.
type benchConn struct {
	b    *testing.B
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func (f *resyncFixture) dial(b *testing.B) *benchConn {
	b.Helper()
	conn, err := tls.Dial("tcp", f.addr, f.tls)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := &benchConn{b: b, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	c.line()
	c.run(fmt.Sprintf("LOGIN %q %q", alice, alicePW))
	return c
}

func (c *benchConn) line() string {
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.b.Fatal(err)
	}
	return l
}

// run sends a command and returns the number of untagged lines, and
// those that contain want.
func (c *benchConn) run(cmd string, want ...string) (int, []string) {
	c.n++
	tag := fmt.Sprintf("b%d", c.n)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, cmd); err != nil {
		c.b.Fatal(err)
	}
	n := 0
	var hits []string
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				c.b.Fatalf("%s: %s", cmd, l)
			}
			return n, hits
		}
		n++
		for _, w := range want {
			if strings.Contains(l, w) {
				hits = append(hits, l)
			}
		}
	}
}

// checkResync checks one resynchronisation's answer: one VANISHED
// (EARLIER) of resyncExpunges UIDs, resyncFlags FETCHes.
func checkResync(b *testing.B, hits []string) {
	b.Helper()
	fetches, vanished := 0, 0
	for _, h := range hits {
		switch {
		case strings.Contains(h, "VANISHED (EARLIER)"):
			vanished += strings.Count(h, ",") + 1
		case strings.Contains(h, "FETCH"):
			fetches++
		}
	}
	if fetches != resyncFlags || vanished != resyncExpunges {
		b.Fatalf("resync: %d FETCH, %d vanished; want %d, %d", fetches, vanished, resyncFlags, resyncExpunges)
	}
}

// measure runs op b.N times, timed and with the process's CPU time per
// operation reported (see cpuMeter).
func measure(b *testing.B, op func()) {
	b.Helper()
	var cpu cpuMeter
	b.ReportAllocs()
	b.ResetTimer()
	cpu.Start()
	for range b.N {
		op()
	}
	cpu.Stop()
	cpu.Report(b)
}

// resync measures cmd, a command of c's whose answer checkResync checks.
func (c *benchConn) resync(cmd string) {
	measure(c.b, func() {
		_, hits := c.run(cmd, "VANISHED", "FETCH")
		checkResync(c.b, hits)
	})
}

// BenchmarkResyncSelect: SELECT INBOX (QRESYNC (uidvalidity modseq)) of
// a client that missed 100 changes; the mailbox is re-selected each time.
func BenchmarkResyncSelect(b *testing.B) {
	f := newResyncFixture(b)
	c := f.dial(b)
	c.run("ENABLE QRESYNC")
	c.resync(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", f.uidValidity, f.modSeq))
}

// BenchmarkResyncFetch: UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq
// VANISHED) in a selected mailbox.
func BenchmarkResyncFetch(b *testing.B) {
	f := newResyncFixture(b)
	c := f.dial(b)
	c.run("ENABLE QRESYNC")
	c.run("SELECT INBOX")
	c.resync(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", f.modSeq))
}

// BenchmarkFullFlags: FETCH 1:* (FLAGS), what a client without QRESYNC
// does to learn the same.
func BenchmarkFullFlags(b *testing.B) {
	f := newResyncFixture(b)
	c := f.dial(b)
	c.run("SELECT INBOX")
	measure(b, func() {
		if n, _ := c.run("FETCH 1:* (FLAGS)"); n != resyncMessages-resyncExpunges {
			b.Fatalf("FETCH 1:* (FLAGS): %d responses", n)
		}
	})
}

// BenchmarkSelectPlain: SELECT INBOX alone, the part of
// BenchmarkResyncSelect that is not resynchronisation.
func BenchmarkSelectPlain(b *testing.B) {
	f := newResyncFixture(b)
	c := f.dial(b)
	measure(b, func() { c.run("SELECT INBOX") })
}
