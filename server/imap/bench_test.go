package imap

// Benchmarks of issue 4 on a mailbox of benchMessages messages of about
// 10 KB, delivered straight through the store, sealed. The mailbox is built
// once per test binary run, the first time a benchmark asks for it (plain
// `go test` never does: benchmarks only run with -bench), and removed by
// TestMain. Building it is not timed.
//
//	go test -run '^$' -bench . -benchtime 1x ./server/imap/
//
// Targets (issue 4): first envelope fetch < 3 s, second < 0.5 s, body fetch
// >= 100 MB/s, SEARCH TEXT < 1 s, LOGIN < 150 ms, < 100 KiB per idle
// session.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const (
	benchMessages = 10000
	benchMsgSize  = 10 << 10
	benchWord     = "quokkaberry" // in 1% of the messages
	benchUser     = "bench@example.org"
	benchPW       = "bench password with default KDF"
	benchIdleUser = "idle@example.org" // TestKDF: 1,000 logins stay cheap
	benchIdlePW   = "idle password"
	benchSessions = 1000

	// benchClientsEnv switches the test binary into the client process of
	// BenchmarkIdleSessionMemory (see TestMain).
	benchClientsEnv = "SEALMAIL_IMAP_BENCH_CLIENTS"
)

// benchFixture is the shared 10,000-message mailbox and a server over it.
type benchFixture struct {
	dir        string
	st         *badgerstore.DB
	acc        *account.Service
	srv        *Server
	addr       string // implicit TLS
	clientTLS  *tls.Config
	plainBytes int64 // total plaintext size of INBOX
	hits       int   // messages of INBOX containing benchWord
	serveDone  <-chan struct{}
}

var (
	benchOnce sync.Once
	benchFix  *benchFixture
	benchErr  error
)

// getBenchFixture builds the fixture on first use.
func getBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	benchOnce.Do(func() {
		start := time.Now()
		benchFix, benchErr = buildBenchFixture()
		if benchErr == nil {
			fmt.Fprintf(os.Stderr, "bench fixture: %d messages, %.1f MB plaintext, built in %v\n",
				benchMessages, float64(benchFix.plainBytes)/1e6, time.Since(start).Round(time.Millisecond))
		}
	})
	if benchErr != nil {
		b.Fatalf("bench fixture: %v", benchErr)
	}
	return benchFix
}

// closeBenchFixture stops the server and removes the store (TestMain).
func closeBenchFixture() {
	if benchFix == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	benchFix.srv.Shutdown(ctx)
	<-benchFix.serveDone
	benchFix.acc.Close()
	benchFix.st.Close()
	os.RemoveAll(benchFix.dir)
}

func buildBenchFixture() (f *benchFixture, err error) {
	dir, err := os.MkdirTemp("", "sealmail-imap-bench-")
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
	// The server's account service has the production argon2id cost and
	// no unlock cache, so BenchmarkLogin measures a real unlock; the idle
	// sessions' account is made by a second service with a cheap one.
	acc, err := account.New(account.Options{Store: st, Domains: []string{"example.org"}})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			acc.Close()
		}
	}()
	cheap, err := account.New(account.Options{Store: st, Domains: []string{"example.org"}, KDF: crypto.TestKDF()})
	if err != nil {
		return nil, err
	}
	_, err = acc.Create(ctx, benchUser, []byte(benchPW))
	if err == nil {
		_, err = cheap.Create(ctx, benchIdleUser, []byte(benchIdlePW))
	}
	cheap.Close()
	if err != nil {
		return nil, err
	}
	pk, err := testutil.PublicKey(ctx, st, benchUser)
	if err != nil {
		return nil, err
	}
	f = &benchFixture{dir: dir, st: st, acc: acc}

	// Seal on every core; deliver in batches (one fsync each).
	blobs, err := testutil.SealAll(pk, benchMessages, benchMessage)
	if err != nil {
		return nil, err
	}
	for i := range benchMessages {
		msg := benchMessage(i)
		f.plainBytes += int64(len(msg))
		if strings.Contains(string(msg), benchWord) {
			f.hits++
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 100
	for i := 0; i < benchMessages; i += batch {
		ds := make([]store.Delivery, 0, batch)
		for j := i; j < min(i+batch, benchMessages); j++ {
			ds = append(ds, store.Delivery{Account: benchUser, InternalDate: base.Add(time.Duration(j) * time.Minute), Blob: blobs[j]})
		}
		if _, err := st.Deliver(ctx, ds); err != nil {
			return nil, err
		}
	}
	// A few messages for the idle sessions' INBOX.
	ipk, err := testutil.PublicKey(ctx, st, benchIdleUser)
	if err != nil {
		return nil, err
	}
	for i := range 3 {
		blob, err := ipk.SealBytes(benchMessage(i))
		if err != nil {
			return nil, err
		}
		if _, err := st.Deliver(ctx, []store.Delivery{{Account: benchIdleUser, InternalDate: base, Blob: blob}}); err != nil {
			return nil, err
		}
	}

	srv, err := New(Options{Store: st, Accounts: acc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	f.srv = srv
	f.addr, f.clientTLS, f.serveDone, err = testutil.ServeTLS(srv.Serve)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// benchMessage returns message i: about benchMsgSize bytes of text/plain,
// deterministic, with benchWord in every 100th message.
func benchMessage(i int) []byte { return testutil.BenchMessage(i, benchUser, benchMsgSize, benchWord) }

// benchLogin connects and logs in.
func (f *benchFixture) login(b *testing.B, user, pw string) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialTLS(f.addr, &imapclient.Options{TLSConfig: f.clientTLS})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Login(user, pw).Wait(); err != nil {
		c.Close()
		b.Fatalf("login: %v", err)
	}
	return c
}

func selectBench(b *testing.B, c *imapclient.Client, name string) {
	b.Helper()
	sd, err := c.Select(name, nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	if sd.NumMessages != benchMessages {
		b.Fatalf("%s has %d messages", name, sd.NumMessages)
	}
}

var allUIDs = imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}

var envelopeItems = &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true}

// fetchEnvelopes runs UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE) and
// checks every message came back with an envelope.
func fetchEnvelopes(b *testing.B, c *imapclient.Client) {
	b.Helper()
	msgs, err := c.Fetch(allUIDs, envelopeItems).Collect()
	if err != nil {
		b.Fatal(err)
	}
	if len(msgs) != benchMessages {
		b.Fatalf("fetched %d messages", len(msgs))
	}
	for _, m := range msgs {
		if m.Envelope == nil || m.RFC822Size == 0 {
			b.Fatalf("uid %d: incomplete %+v", m.UID, m)
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	b.ResetTimer()
	for b.Loop() {
		selectBench(b, c, store.Inbox)
	}
}

// BenchmarkFetchEnvelopeCold fetches envelopes right after delivery: every
// message is opened with the private key once and its summary stored. Each
// iteration gets a fresh copy of the mailbox (untimed).
func BenchmarkFetchEnvelopeCold(b *testing.B) {
	coldRuns(b, func(b *testing.B, c *imapclient.Client) { fetchEnvelopes(b, c) })
}

// freshCopy delivers INBOX's sealed blobs again into a new mailbox, as SMTP
// would: no summaries, no session keys.
func (f *benchFixture) freshCopy(ctx context.Context, name string) error {
	dst, err := f.st.CreateMailbox(ctx, benchUser, store.MailboxSpec{Name: name})
	if err != nil {
		return err
	}
	inbox, err := f.st.Mailbox(ctx, benchUser, store.Inbox)
	if err != nil {
		return err
	}
	msgs, err := f.st.Messages(ctx, benchUser, inbox.ID, store.ListOptions{})
	if err != nil {
		return err
	}
	const batch = 100
	for i := 0; i < len(msgs); i += batch {
		ds := make([]store.Delivery, 0, batch)
		for _, m := range msgs[i:min(i+batch, len(msgs))] {
			blob, err := f.st.Blob(ctx, benchUser, inbox.ID, m.UID)
			if err != nil {
				return err
			}
			ds = append(ds, store.Delivery{Account: benchUser, MailboxID: dst.ID, InternalDate: m.InternalDate, Blob: blob})
		}
		if _, err := f.st.Deliver(ctx, ds); err != nil {
			return err
		}
	}
	return nil
}

// warm makes sure INBOX's summaries are built (untimed).
func (f *benchFixture) warm(b *testing.B, c *imapclient.Client) {
	b.Helper()
	selectBench(b, c, store.Inbox)
	fetchEnvelopes(b, c)
}

// BenchmarkFetchEnvelopeWarm fetches envelopes from stored summaries.
func BenchmarkFetchEnvelopeWarm(b *testing.B) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	f.warm(b, c)
	var cpu cpuMeter
	b.ResetTimer()
	cpu.Start()
	for b.Loop() {
		fetchEnvelopes(b, c)
	}
	cpu.Stop()
	cpu.Report(b)
}

// BenchmarkFetchBody streams UID FETCH 1:* BODY.PEEK[]; MB/s is of
// plaintext.
func BenchmarkFetchBody(b *testing.B) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	f.warm(b, c)
	b.SetBytes(f.plainBytes)
	var cpu cpuMeter
	defer cpu.Report(b)
	b.ResetTimer()
	cpu.Start()
	defer cpu.Stop()
	for b.Loop() {
		cmd := c.Fetch(allUIDs, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		var n, total int64
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			for it := m.Next(); it != nil; it = m.Next() {
				if bs, ok := it.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
					k, err := io.Copy(io.Discard, bs.Literal)
					if err != nil {
						b.Fatal(err)
					}
					total += k
				}
			}
			n++
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if n != benchMessages || total != f.plainBytes {
			b.Fatalf("fetched %d messages, %d bytes; want %d, %d", n, total, benchMessages, f.plainBytes)
		}
	}
}

// BenchmarkSearchText runs UID SEARCH TEXT on a word in 1% of the messages.
func BenchmarkSearchText(b *testing.B) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	f.warm(b, c)
	var cpu cpuMeter
	defer cpu.Report(b)
	b.ResetTimer()
	cpu.Start()
	defer cpu.Stop()
	for b.Loop() {
		res, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{benchWord}}, nil).Wait()
		if err != nil {
			b.Fatal(err)
		}
		if n := len(res.AllUIDs()); n != f.hits {
			b.Fatalf("SEARCH TEXT found %d, want %d", n, f.hits)
		}
	}
}

// BenchmarkLogin times LOGIN with crypto.DefaultKDF() (argon2id unlock
// included). Connecting is not timed.
func BenchmarkLogin(b *testing.B) {
	f := getBenchFixture(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c, err := imapclient.DialTLS(f.addr, &imapclient.Options{TLSConfig: f.clientTLS})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Capability().Wait(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := c.Login(benchUser, benchPW).Wait(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Logout().Wait()
		c.Close()
		b.StartTimer()
	}
}

// BenchmarkIdleSessionMemory measures the server's memory per logged-in
// session with a selected INBOX: idling in IDLE ("idle"), and waiting
// between commands with NOTIFY set for the selected mailbox and every
// other one ("notify", whose sessions are also subscribed to the change
// feed). The 1,000 clients run in a child process (this test binary, see
// TestMain) so their memory is not counted. It reports the growth of the
// live heap (heap-bytes/session: reachable objects after two full
// collections, which earlier benchmarks in the process do not disturb)
// and of the stack spans in use (stack-bytes/session, rougher: freed
// goroutines leave stacks behind in them). It does not report resident
// memory: in a process whose heap earlier benchmarks grew, new sessions
// reuse pages it already holds, so RSS growth says nothing; `sealbench
// serve` with `sealbench imap -sessions N -pid` measures RSS per session
// in a fresh server process.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, mode := range []string{"idle", "notify"} {
		b.Run(mode, func(b *testing.B) { benchIdleSessionMemory(b, mode) })
	}
}

func benchIdleSessionMemory(b *testing.B, mode string) {
	f := getBenchFixture(b)
	cert, _ := testCert(nil)
	var heapPerSession, stackPerSession float64
	for i := 0; i < b.N; i++ {
		heapBefore, stackBefore := liveMemory()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchClientsEnv+"="+strings.Join([]string{
			f.addr, benchIdleUser, benchIdlePW, strconv.Itoa(benchSessions), hex.EncodeToString(cert.Certificate[0]), mode,
		}, "\n"))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			stdin.Close()
			cmd.Wait()
			b.Fatalf("client process: %q %v", line, err)
		}
		if n := f.srv.sessionCount(); n < benchSessions {
			b.Fatalf("%d sessions open", n)
		}
		heapAfter, stackAfter := liveMemory()
		heapPerSession = float64(heapAfter-heapBefore) / benchSessions
		stackPerSession = float64(stackAfter-stackBefore) / benchSessions
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("client process: %v", err)
		}
		// Let the server notice the closed connections before the next round.
		for deadline := time.Now().Add(30 * time.Second); f.srv.sessionCount() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(heapPerSession, "heap-bytes/session")
	b.ReportMetric(stackPerSession, "stack-bytes/session")
}

// cpuMeter adds up the process's CPU time (user and system, server and
// in-process client together) over the timed parts of a benchmark: on a
// machine whose other load changes, CPU per operation moves much less
// than time per operation. Report gives it as cpu-ns/op.
type cpuMeter struct {
	start, total time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) Start() { m.start = processCPU() }
func (m *cpuMeter) Stop()  { m.total += processCPU() - m.start }

func (m *cpuMeter) Report(b *testing.B) {
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// sessionCount is the number of live sessions.
func (s *Server) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// liveMemory is the live heap (reachable objects) and the stack spans in
// use after two full collections (the second frees what sync.Pools kept
// through the first).
func liveMemory() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// runBenchClients is the child process of BenchmarkIdleSessionMemory: it
// opens the sessions, logs in, selects INBOX, enters IDLE (mode "idle")
// or sets NOTIFY ("notify"), prints "ready" and holds them until stdin is
// closed.
func runBenchClients(spec string) error {
	f := strings.Split(spec, "\n")
	if len(f) != 6 {
		return fmt.Errorf("bad %s", benchClientsEnv)
	}
	addr, user, pw := f[0], f[1], f[2]
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return err
	}
	der, err := hex.DecodeString(f[4])
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	conns := make([]*tls.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	wait := struct{ send, want string }{"c IDLE\r\n", "+"}
	if f[5] == "notify" {
		wait.send, wait.want = "c NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge FlagChange)) (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))\r\n", "c OK"
	}
	for i := range n {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		conns = append(conns, c)
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
		for _, step := range []struct{ send, want string }{
			{fmt.Sprintf("a LOGIN %q %q\r\n", user, pw), "a OK"},
			{"b SELECT INBOX\r\n", "b OK"},
			wait,
		} {
			if _, err := io.WriteString(c, step.send); err != nil {
				return err
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("session %d: %w", i, err)
				}
				if strings.HasPrefix(l, step.want) {
					break
				}
				if strings.HasPrefix(l, step.send[:2]) {
					return fmt.Errorf("session %d: %s", i, strings.TrimSpace(l))
				}
			}
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}
