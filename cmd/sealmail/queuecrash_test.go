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
// got 250 reaches the sink; a message arrives twice only if the killed
// server sent its first copy and the restarted one the second: the
// window SMTP allows, after the remote's 250 and before our commit of
// it. Neither server sends a message twice.
//
// Which server sent a copy is exact, not a guess from clocks: the sink
// notes when it took each transaction's MAIL (sink.Message.Began), which
// precedes the 354 the sender must read before it sends the data, so a
// copy the killed server sent began before that server was reaped
// (died), and one the restarted server sent began after it started.
// The time the sink took a copy's data (Time) is no proof: data the
// killed server wrote just before the signal landed is read after.
func TestQueueCrashSafety(t *testing.T) {
	const (
		senders   = 6
		killAfter = 60 // acknowledged submissions before SIGKILL
	)
	var greylist atomic.Bool
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
	if err := s.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("serve survived SIGKILL?")
	}
	died := time.Now() // the killed server has been reaped
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
	// Per Message-ID, the copies each server sent.
	type copies struct{ killed, restarted int }
	sent := map[string]*copies{}
	for _, m := range sk.Messages() {
		c := sent[m.MessageID]
		if c == nil {
			c = &copies{}
			sent[m.MessageID] = c
		}
		if m.Began.Before(died) {
			c.killed++
		} else {
			c.restarted++
		}
	}
	dups := 0
	for id, c := range sent {
		switch {
		case c.killed > 1:
			t.Errorf("%s sent %d times by the server before the kill", id, c.killed)
		case c.restarted > 1:
			t.Errorf("%s sent %d times by the restarted server", id, c.restarted)
		case c.killed == 1 && c.restarted == 1:
			dups++ // the window: the sink's 250 came before our commit
		}
	}
	t.Logf("%d messages at the sink, %d duplicates (each sent once by the killed server, once after the restart)", sk.Count(), dups)
	if dups > 10 {
		// At most the deliveries in flight at the kill can repeat:
		// outbound.destination_connections (10) to the one transport.
		t.Errorf("%d duplicates: more than the deliveries that can be in flight", dups)
	}
}
