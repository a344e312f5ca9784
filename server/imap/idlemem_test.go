package imap

import (
	"runtime"
	"testing"
	"time"
)

// TestIdleSessionStack: a logged-in session waiting for its client — with
// INBOX selected between commands, in IDLE, or with NOTIFY set — holds
// one goroutine with a small stack (issue 11: memory per idle session):
// LOGIN's unlock, SELECT and the TLS handshake ran on goroutines of their
// own and took their grown stacks with them. Before, the connection's
// goroutine kept 8 KiB of stack, and IDLE and NOTIFY had a second one.
func TestIdleSessionStack(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice@example.org", "pw-alice-1234")
	e.deliver("alice@example.org", "INBOX", testMessage("one", "body"))
	const n = 100
	for _, mode := range []string{"select", "idle", "notify"} {
		goroutines, stacks := stackUse()
		conns := make([]*rawConn, n)
		for i := range conns {
			r := e.rawLogin("alice@example.org", "pw-alice-1234")
			r.ok("SELECT INBOX")
			switch mode {
			case "idle":
				r.n++
				if _, err := r.conn.Write([]byte("i IDLE\r\n")); err != nil {
					t.Fatal(err)
				}
				if l := r.line(); l != "+ idling\r\n" {
					t.Fatalf("IDLE: %q", l)
				}
			case "notify":
				r.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew))")
			}
			conns[i] = r
		}
		g, s := stackUse()
		perG := float64(g-goroutines) / n
		perS := float64(s-stacks) / n
		t.Logf("%s: %.2f goroutines and %.0f bytes of stack per session", mode, perG, perS)
		if perG > 1.1 {
			t.Errorf("%s: %.2f goroutines per idle session, want 1", mode, perG)
		}
		// The race detector's frames are larger: there the stack bound is
		// not checked, the goroutine count is.
		if perS > 6<<10 && !raceEnabled {
			t.Errorf("%s: %.0f bytes of stack per idle session, want at most 6 KiB", mode, perS)
		}
		for _, r := range conns {
			r.conn.Close()
		}
		for g, _ := stackUse(); g > goroutines; g, _ = stackUse() {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// stackUse is the goroutine count and the stack memory in use once the
// count stopped changing, after collections (which free the stacks of
// ended goroutines and shrink idle ones).
func stackUse() (int, uint64) {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		if m := runtime.NumGoroutine(); m != n {
			n = m
			continue
		}
		break
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.StackInuse
}
