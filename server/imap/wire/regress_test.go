package wire

import (
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/imap/wire/wiretest"
)

// Regression tests of issue 9 at this layer, with the attack steps of
// package wiretest (server/imap runs the same steps against the real
// server). Memory is sampled in this process, where the server runs.

func target(addr string) wiretest.Target {
	return wiretest.Target{Addr: addr, User: "user", Pass: "pass"}
}

// peakDuring samples the heap every few milliseconds until stop is
// closed, and returns the largest sample.
func peakDuring(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		for {
			peak = max(peak, wiretest.HeapInUse())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestIssue9LiteralFloodPreAuth is item 1: 60 unauthenticated connections
// flooding "a SEARCH TEXT {4096+}…" (3,300 literals each, 13.5 MB) took
// the old server from 232 MiB to 1.7 GiB. SEARCH is refused by state
// before its arguments are read, the literals are discarded within the
// pre-auth budget (40 KiB) and the connection is closed: the heap stays
// flat.
func TestIssue9LiteralFloodPreAuth(t *testing.T) {
	addr, _ := startServer(t, newMemBackend(), func(o *Options) { o.Logger = nil })
	base := wiretest.HeapInUse()
	stop := make(chan struct{})
	peak := peakDuring(stop)
	wiretest.LiteralFlood(t, target(addr), 60, 3300, nil)
	close(stop)
	grew := int64(<-peak) - int64(base)
	t.Logf("heap grew by %d KiB during the flood", grew>>10)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB: literals are buffered", grew>>20)
	}
}

// TestIssue9LiteralFloodAuth: the same flood after login is bounded by
// the command budget (256 KiB) and the discard budget: refused, never
// buffered beyond the bound.
func TestIssue9LiteralFloodAuth(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, func(o *Options) {
		o.Logger = nil
		o.Limits.Auth.DiscardBytes = 1 << 20
	})
	c := wiretest.Dial(t, target(addr))
	c.Login(target(addr))
	c.Send("s SELECT INBOX")
	c.Until("s ")
	chunk := " TEXT {4096+}\r\n" + strings.Repeat("x", 4096)
	go func() {
		c.Raw("a SEARCH")
		for range 3300 {
			if c.Raw(chunk) != nil {
				return
			}
		}
		c.Raw("\r\n")
	}()
	rest, _ := c.Rest(1 << 16)
	if !strings.Contains(rest, "TOOBIG") {
		t.Errorf("authenticated flood: %q", rest)
	}
}

// TestIssue9RefusedAppendNotRun is item 6: "APPEND Sent {52428801+}" was
// refused with NO [TOOBIG] without reading the literal, so the message's
// header lines ran as commands (DELETE, RENAME INBOX). Now the literal is
// discarded or, past the discard budget, the connection is closed with
// BYE [TOOBIG].
func TestIssue9RefusedAppendNotRun(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, nil)
	wiretest.RefusedAppendNotRun(t, target(addr), "Victim", 50<<20+1)

	// A smaller excess, within the discard budget: thrown away, and the
	// connection goes on.
	addr2, _ := startServer(t, newMemBackend(), func(o *Options) {
		o.Limits.AppendLimit = 1000
		o.Limits.Auth.DiscardBytes = 1 << 20
	})
	c := wiretest.Dial(t, target(addr2))
	c.Login(target(addr2))
	payload := "x DELETE INBOX\r\ny RENAME INBOX Pwned\r\n"
	c.Raw("a APPEND INBOX {2000+}\r\n" + payload + strings.Repeat("z", 2000-len(payload)) + "\r\nb NOOP\r\n")
	lines := c.Until("b ")
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "a NO [TOOBIG]") || strings.Contains(all, "x OK") || strings.Contains(all, "y OK") || !strings.HasPrefix(lines[len(lines)-1], "b OK") {
		t.Errorf("within budget: %q", lines)
	}
	// And for a command other than APPEND.
	wiretest.RefusedLiteralDiscarded(t, target(addr2), 300000)
}

// TestIssue9AppendNoPrealloc is item 7: 20 sessions each announcing a
// 50 MiB APPEND and sending nothing took 1.1 GiB. The message streams to
// the Appender as it arrives: nothing is allocated from the declared
// size.
func TestIssue9AppendNoPrealloc(t *testing.T) {
	b := newMemBackend()
	addr, _ := startServer(t, b, func(o *Options) { o.Logger = nil })
	base := wiretest.HeapInUse()
	var during uint64
	wiretest.AppendNoPrealloc(t, target(addr), 20, 50<<20, func() { during = wiretest.HeapInUse() })
	grew := int64(during) - int64(base)
	t.Logf("heap grew by %d KiB with 20 pending 50 MiB APPENDs", grew>>10)
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB: APPEND allocates the declared size", grew>>20)
	}
	b.mu.Lock()
	started := b.appendStarted
	b.mu.Unlock()
	if started != 20 {
		t.Errorf("%d appenders started, want 20", started)
	}
}

// TestIssue9Malformed is item 16: malformed input ("FETCH 4294967296",
// 2,000 nested parentheses before login, NUL in a mailbox name) was
// answered NO [SERVERBUG]; it is BAD, and the connection goes on.
func TestIssue9Malformed(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, nil)
	wiretest.MalformedAnsweredBad(t, target(addr))
}
