package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleClientsEnv switches the test binary into the client process of
// TestIdleSessionMemory: "addr" or "tls addr".
const idleClientsEnv = "SEALMAIL_WIRE_IDLE_CLIENTS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(idleClientsEnv); spec != "" {
		if err := runIdleClients(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "idle clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The live heap an idle session (logged in, INBOX selected, waiting for
// a command) held in the wire layer and the test's Session, measured on
// 2026-12-01 (200 sessions over 20, load 11-12, with and without the
// race detector): 2,162-2,191 bytes over plain TCP, 8,414-8,456 over TLS
// (crypto/tls's connection state). The bounds leave about a quarter of
// margin: a 4 KiB read buffer kept by every idle connection, say, would
// cross them.
const (
	idleHeapMax    = 2800
	idleHeapTLSMax = 10600
)

// TestIdleSessionMemory measures what an idle session costs the server:
// the live heap it holds, after full collections, per session that
// logged in, selected INBOX and waits for its next command, over plain
// TCP and over TLS. The clients run in a child process (this test binary,
// see TestMain), so nothing of theirs is counted; the sessions are
// counted from the 21st to the 220th once each waits for its client, so
// what the first ones set up for all (pools, the shared capability set)
// is not either. A live heap after collections depends neither on the
// machine's load nor on what earlier tests left, as the process's
// resident memory does (cmd/sealbench measures that, in a fresh server
// process). Stacks are logged, not checked: StackInuse counts stack spans
// that freed goroutines' stacks (TLS handshakes, commands) leave
// partly used; imap.TestIdleSessionStack checks the one goroutine and its
// stack per session.
func TestIdleSessionMemory(t *testing.T) {
	const warm, n = 20, 200
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			b := newMemBackend()
			srv, err := New(Options{NewSession: b.newSession, InsecureAuth: true})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			spec := ln.Addr().String()
			if useTLS {
				spec = "tls " + spec
				go srv.Serve(tls.NewListener(ln, testTLS(t)))
			} else {
				go srv.Serve(ln)
			}
			defer srv.Shutdown(context.Background())

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), idleClientsEnv+"="+spec)
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			out := bufio.NewReader(stdout)
			open := func(k, total int) (heap, stack uint64) {
				t.Helper()
				fmt.Fprintln(stdin, k)
				if l, err := out.ReadString('\n'); err != nil || l != "ready\n" {
					t.Fatalf("client process: %q, %v", l, err)
				}
				waitIdle(t, total)
				return liveMemory()
			}
			heap0, stack0 := open(warm, warm)
			heap1, stack1 := open(n, warm+n)
			perHeap := (int64(heap1) - int64(heap0)) / n
			perStack := (int64(stack1) - int64(stack0)) / n
			limit := int64(idleHeapMax)
			if useTLS {
				limit = idleHeapTLSMax
			}
			t.Logf("per idle session: %d bytes of live heap (bound %d), %d of stack spans", perHeap, limit, perStack)
			if perHeap > limit {
				t.Errorf("%d bytes of live heap per idle session, want at most %d", perHeap, limit)
			}
		})
	}
}

// waitIdle waits until n connections wait for their client's next
// command (readFirstByte blocked in a read): each has answered its last
// command and given its buffers back.
func waitIdle(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 8<<20)
	var waiting int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		waiting = 0
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, ").readFirstByte(") {
				waiting++
			}
		}
		if waiting >= n {
			return
		}
	}
	t.Fatalf("%d of %d connections wait for their client", waiting, n)
}

// liveMemory is the live heap and the stacks in use after two full
// collections (the second drops what sync.Pools kept through the first).
func liveMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse
}

// runIdleClients is the child process of TestIdleSessionMemory. For each
// number read from in it opens that many more sessions to the server of
// spec, each logged in with INBOX selected, and writes "ready" to out; at
// the end of in it closes them.
func runIdleClients(spec string, in io.Reader, out io.Writer) error {
	addr, useTLS := strings.CutPrefix(spec, "tls ")
	dial := func() (net.Conn, error) {
		if useTLS {
			return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		}
		return net.Dial("tcp", addr)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		k, err := strconv.Atoi(sc.Text())
		if err != nil {
			return err
		}
		for range k {
			c, err := dial()
			if err != nil {
				return err
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, "a LOGIN user pass\r\nb SELECT INBOX\r\n"); err != nil {
				return err
			}
			var got []byte
			for !strings.Contains(string(got), "\r\nb OK") {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				m, err := c.Read(buf)
				if err != nil {
					return fmt.Errorf("session %d: %w (after %q)", len(conns), err, got)
				}
				got = append(got[max(0, len(got)-64):], buf[:m]...)
			}
		}
		if _, err := io.WriteString(out, "ready\n"); err != nil {
			return err
		}
	}
	return sc.Err()
}
