package main

import (
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/server/smtp/sink"
)

// submitOne submits one message to a remote recipient over its own
// connection.
func submitOne(addr string, conf *tls.Config, rcpt, id string) error {
	c, err := gosmtp.DialStartTLS(addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(plainSASL{"alice@example.org", alicePW}); err != nil {
		return err
	}
	msg := "From: alice@example.org\r\nTo: " + rcpt + "\r\nSubject: " + id + "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\n" +
		strings.Repeat("queued mail survives a crash\r\n", 40)
	if err := c.SendMail("alice@example.org", []string{rcpt}, strings.NewReader(msg)); err != nil {
		return err
	}
	c.Quit()
	return nil
}

// TestQueueCrashSafety SIGKILLs the real binary while clients submit
// remote mail and the queue delivers it (to a sink that takes half of it
// at once and greylists the rest). After a restart every message that
// got 250 reaches the sink; a message arrives twice only if its first
// copy arrived before the kill: the window SMTP allows, after the
// remote's 250 and before our commit of it.
func TestQueueCrashSafety(t *testing.T) {
	const (
		senders   = 6
		killAfter = 60 // acknowledged submissions before SIGKILL
	)
	var (
		greylist atomic.Bool
		killTime atomic.Int64 // Unix nanoseconds of the SIGKILL
	)
	greylist.Store(true)
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		// rcpt-<n>@: odd n are greylisted until the restart.
		var n int
		fmt.Sscanf(to, "rcpt-%d@", &n)
		if greylist.Load() && n%2 == 1 {
			return sink.Reply(451, "4.7.1", "greylisted")
		}
		return nil
	}})
	te := newTestEnv(t)
	te.env = append(te.env, "SEALMAIL_OUTBOUND_TRANSPORTS=remote.test="+sk.Addr)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	conf := trustSelfSigned(t, te.dataDir)
	addr := s.addr("submission")

	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		acks     atomic.Int32
		seq      atomic.Int32
		wg       sync.WaitGroup
	)
	killed := make(chan struct{})
	for range senders {
		wg.Go(func() {
			for {
				select {
				case <-killed:
					return
				default:
				}
				n := seq.Add(1)
				id := fmt.Sprintf("crash-%d", n)
				if err := submitOne(addr, conf, fmt.Sprintf("rcpt-%d@remote.test", n), id); err != nil {
					continue // refused or cut off by the kill: no promise made
				}
				mu.Lock()
				accepted[id] = true
				mu.Unlock()
				acks.Add(1)
			}
		})
	}
	waitUntil(t, "submissions to be acknowledged", func() bool { return acks.Load() >= killAfter })
	killTime.Store(time.Now().UnixNano())
	if err := s.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("serve survived SIGKILL?")
	}
	close(killed)
	wg.Wait()
	beforeKill := sk.Count()
	t.Logf("%d submissions acknowledged, %d messages at the sink before SIGKILL", len(accepted), beforeKill)

	// Restart; the greylisting ends; the deferred entries are made due.
	greylist.Store(false)
	s2 := te.serve()
	te.ok("", "queue", "retry", "--all")
	waitUntil(t, "every acknowledged message at the sink", func() bool {
		got := map[string]bool{}
		for _, m := range sk.Messages() {
			got[strings.Trim(m.MessageID, "<>")] = true
		}
		for id := range accepted {
			if !got[id+"@example.org"] {
				return false
			}
		}
		return true
	})
	waitUntil(t, "an empty queue", func() bool {
		return strings.Contains(te.ok("", "queue", "list").stdout, "the outbound queue is empty")
	})
	if err := s2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s2.logs())
	}
	kill := time.Unix(0, killTime.Load())
	first := map[string]time.Time{}
	dups := 0
	for _, m := range sk.Messages() {
		id := m.MessageID
		if t0, seen := first[id]; seen {
			dups++
			if t0.After(kill) {
				t.Errorf("%s delivered twice, the first time after the restart", id)
			}
			continue
		}
		first[id] = m.Time
	}
	t.Logf("%d messages at the sink, %d duplicates (each first delivered before the kill)", sk.Count(), dups)
	if dups > 10 {
		// At most the deliveries in flight at the kill can repeat:
		// outbound.destination_connections (10) to the one transport.
		t.Errorf("%d duplicates: more than the deliveries that can be in flight", dups)
	}
}
