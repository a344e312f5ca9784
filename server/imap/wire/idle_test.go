package wire

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestIdleOneGoroutine: a connection in IDLE, or waiting for a command
// with NOTIFY set, waits on its one goroutine when its Session is a
// SessionWaker (issue 11: memory per idle session), and still writes
// updates at once and keepalives on time; a Session without it gets a
// forwarding goroutine and the same behaviour.
func TestIdleOneGoroutine(t *testing.T) {
	const n = 20
	for _, waker := range []bool{true, false} {
		for _, mode := range []string{"idle", "notify"} {
			b := newMemBackend()
			b.waker = waker
			addr, _ := startServer(t, b, func(o *Options) {
				o.Logger = nil
				o.Limits.IdleKeepalive = 300 * time.Millisecond
			})
			base := settledGoroutines()
			clients := make([]*tclient, n)
			for i := range clients {
				c := dial(t, addr)
				c.login()
				c.selectInbox()
				if mode == "idle" {
					c.send("i IDLE")
					c.expect("+ idling")
				} else {
					c.send("n NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
					c.until("n OK")
				}
				clients[i] = c
			}
			per := float64(settledGoroutines()-base) / n
			want := 1.0
			if !waker && mode == "idle" {
				want = 2 // the forwarder of Updates
			}
			if waker && per > want+0.1 || !waker && mode == "idle" && per < want-0.1 {
				t.Errorf("waker=%v %s: %.2f goroutines per session, want %.0f", waker, mode, per, want)
			}
			b.deliver("INBOX", msg2)
			for _, c := range clients {
				if mode == "notify" {
					c.until("* 1 EXISTS")
					continue
				}
				for {
					l := c.line()
					if l == "* 1 EXISTS" {
						break
					}
					if l != "* OK Still here" && !strings.HasPrefix(l, "* 1 RECENT") {
						t.Fatalf("waker=%v: %q during IDLE", waker, l)
					}
				}
			}
			if mode == "idle" {
				// Keepalives go on after an update; DONE ends IDLE.
				clients[0].expect("* OK Still here")
				for _, c := range clients {
					c.send("DONE")
					c.until("i OK")
				}
			}
			for _, c := range clients {
				c.send("z LOGOUT")
				c.until("z OK")
			}
		}
	}
}

// settledGoroutines is the goroutine count once it stopped changing.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}
