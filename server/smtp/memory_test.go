package smtp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Tests for bounded memory (issue 8 §3): the in-flight budget, the
// encrypted spool, streaming into staged blobs, and the asynchronous
// delivery notification.

// blockingStore holds Deliver until release is closed, after telling
// entered; it counts StageBlob calls.
type blockingStore struct {
	Store
	entered chan struct{}
	release chan struct{}
	stages  atomic.Int32
}

func (b *blockingStore) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	if b.entered != nil {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Store.Deliver(ctx, ds)
}

func (b *blockingStore) StageBlob(ctx context.Context, addr string) (store.BlobWriter, error) {
	b.stages.Add(1)
	return b.Store.StageBlob(ctx, addr)
}

// bigMessage returns a message of about n bytes with canary in its
// subject and body.
func bigMessage(canary string, n int) string {
	var b strings.Builder
	b.WriteString("From: Sender <sender@remote.test>\r\nTo: alice@example.org\r\nSubject: " + canary + "\r\n\r\n")
	line := canary + " " + strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len()+len(line) < n {
		b.WriteString(line)
	}
	return b.String()
}

// TestInFlightBudget: while messages in flight hold the whole budget, a
// new DATA (and a first BDAT) waits Limits.InFlightWait and then gets
// 452 4.3.1; once memory is free, the same client gets through. Nothing
// is half-stored.
func TestInFlightBudget(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, func(o *Options) {
		bs = &blockingStore{Store: o.Store, entered: make(chan struct{}, 1), release: make(chan struct{})}
		o.Store = bs
		o.Limits.InFlightBytes = txWorkingSet + memStep // one transfer's worth
		o.Limits.InFlightWait = 200 * time.Millisecond
	})
	first := dialRaw(t, e.addr)
	first.begin("alice@example.org")
	first.cmd("DATA", "354")
	first.send("Subject: holds the budget\r\n\r\nbody\r\n.\r\n")
	<-bs.entered // first's transfer holds its working set, in Deliver

	second := dialRaw(t, e.addr)
	second.begin("bob@example.org")
	second.cmd("DATA", "452 4.3.1")
	body := "Subject: chunk\r\n\r\nbody\r\n"
	second.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	second.expect("452 4.3.1")
	second.cmd("NOOP", "250 ") // the chunk was read, the connection is in step

	close(bs.release)
	first.expect("250 2.0.0")
	second.cmd("MAIL FROM:<sender@remote.test>", "250 ")
	second.cmd("RCPT TO:<bob@example.org>", "250 ")
	second.cmd("DATA", "354")
	second.cmd("Subject: after\r\n\r\nbody\r\n.", "250 2.0.0")
	if c := e.counts(); c["alice@example.org"] != 1 || c["bob@example.org"] != 1 {
		t.Errorf("counts %v, want one each", c)
	}
	waitBudgetFree(t, e.srv)
}

// waitBudgetFree waits until every transfer has given back its memory.
func waitBudgetFree(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.budget.inUse() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the in-flight budget still taken", s.budget.inUse())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spoolFiles returns the contents of this process's open files in the
// spool directory dir (they are unlinked: found through /proc/self/fd).
func spoolFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list open files: %v", err)
	}
	var out [][]byte
	for _, fd := range fds {
		p := filepath.Join("/proc/self/fd", fd.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, dir+"/") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s (%s): %v", p, target, err)
		}
		out = append(out, b)
	}
	return out
}

// TestLargeMessageSpooled: a message over the in-memory size goes to the
// spool, which has no name on disk and holds nothing readable; it is
// sealed into staged blobs, arrives byte for byte, and leaves nothing
// behind.
func TestLargeMessageSpooled(t *testing.T) {
	var bs *blockingStore
	spool := t.TempDir()
	e := newEnv(t, func(o *Options) {
		bs = &blockingStore{Store: o.Store, entered: make(chan struct{}, 1), release: make(chan struct{})}
		o.Store = bs
		o.SpoolDir = spool
		o.Limits.MessageBytes = 8 << 20
	})
	const canary = "CanarySpool5e1f0a"
	msg := bigMessage(canary, 3<<20+777)
	sent := make(chan error, 1)
	go func() {
		sent <- sendGo(t, e.addr, "sender@remote.test", []string{"alice@example.org", "bob@example.org"}, msg)
	}()
	<-bs.entered // the whole message has arrived; its spool is open
	files := spoolFiles(t, spool)
	if len(files) != 1 || len(files[0]) < len(msg) {
		t.Fatalf("open spool files: %d, want one of at least %d bytes", len(files), len(msg))
	}
	if bytes.Contains(files[0], []byte(canary)) || bytes.Contains(files[0], []byte("0123456789")) {
		t.Fatal("the spool file holds plaintext")
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Fatalf("the spool directory lists %d names", len(ents))
	}
	close(bs.release)
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	if n := bs.stages.Load(); n != 2 {
		t.Errorf("%d copies staged, want 2 (one per account)", n)
	}
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		got := e.inbox(a)
		if len(got) != 1 || !strings.HasSuffix(got[0], msg) {
			t.Fatalf("%s: message differs", a)
		}
	}
	if files := spoolFiles(t, spool); len(files) != 0 {
		t.Errorf("%d spool files still open", len(files))
	}
	waitBudgetFree(t, e.srv)
}

// TestManyCopiesStaged: a message small enough for memory but going to
// so many accounts that its sealed copies would not be is sealed as
// streams into staged blobs; one with few copies stays inline.
func TestManyCopiesStaged(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, func(o *Options) {
		bs = &blockingStore{Store: o.Store}
		o.Store = bs
	})
	var rcpts []string
	for i := range 16 {
		a := fmt.Sprintf("user%d@example.org", i)
		createAccount(t, e.db, a)
		rcpts = append(rcpts, a)
	}
	msg := bigMessage("many", 700<<10) // 16 × 700 KiB > inlineMax
	if err := sendGo(t, e.addr, "sender@remote.test", rcpts, msg); err != nil {
		t.Fatal(err)
	}
	if n := bs.stages.Load(); n != 16 {
		t.Errorf("%d copies staged, want 16", n)
	}
	if err := sendGo(t, e.addr, "sender@remote.test", rcpts[:2], bigMessage("few", 10<<10)); err != nil {
		t.Fatal(err)
	}
	if n := bs.stages.Load(); n != 16 {
		t.Errorf("a small message to two accounts was staged (%d stages)", n-16)
	}
	for a, want := range map[string]int{rcpts[0]: 2, rcpts[15]: 1} {
		if got := e.inbox(a); len(got) != want || !strings.HasSuffix(got[0], msg) {
			t.Errorf("%s: %d messages (want %d) or content differs", a, len(got), want)
		}
	}
	waitBudgetFree(t, e.srv)
}

// TestOnDeliverDoesNotHoldReply: the client's 250 does not wait for
// OnDeliver (IMAP's Delivered can wait on mailbox locks); deliveries that
// arrive while it runs are merged and passed in the next call.
func TestOnDeliverDoesNotHoldReply(t *testing.T) {
	var (
		mu       sync.Mutex
		calls    [][]store.Delivered
		released atomic.Bool
	)
	block := make(chan struct{})
	e := newEnv(t, func(o *Options) {
		o.OnDeliver = func(ds []store.Delivered) {
			<-block
			mu.Lock()
			calls = append(calls, ds)
			mu.Unlock()
		}
	})
	defer func() {
		if !released.Load() {
			close(block)
		}
	}()
	rc := dialRaw(t, e.addr)
	for i := range 3 {
		rc.begin("alice@example.org", "bob@example.org")
		rc.cmd("DATA", "354")
		rc.cmd(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n.", i), "250 2.0.0")
		if released.Load() {
			t.Fatal("250 came after OnDeliver was released")
		}
	}
	released.Store(true)
	close(block)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var last map[string]uint32
		n := 0
		for _, c := range calls {
			last = map[string]uint32{}
			for _, d := range c {
				last[d.Account] = d.UID
				n++
			}
		}
		done := last != nil && last["alice@example.org"] == 3 && last["bob@example.org"] == 3
		mu.Unlock()
		if done {
			if n > 4 {
				t.Errorf("OnDeliver saw %d entries for 6 copies in two mailboxes; want them merged", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnDeliver never saw UID 3 of both mailboxes: %v", calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
