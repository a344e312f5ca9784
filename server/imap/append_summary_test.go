package imap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// heldSummaries is a mailbox store whose SetSummaries waits until release
// is closed, telling entered first.
type heldSummaries struct {
	mailbox.Store
	entered chan struct{} // buffered
	release chan struct{}
}

func (h *heldSummaries) SetSummaries(ctx context.Context, address string, mbox uint64, us []store.SummaryUpdate) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return h.Store.SetSummaries(ctx, address, mbox, us)
}

// TestAppendDoesNotWaitForSummary: APPEND's tagged OK comes once the
// message is committed; the summary and session key it stores for the
// first FETCH follow in the background (a second commit the client used
// to wait for), and are still stored.
func TestAppendDoesNotWaitForSummary(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	held := &heldSummaries{Store: env.st, entered: make(chan struct{}, 1), release: make(chan struct{})}
	mbx, err := mailbox.New(mailbox.Options{Store: held})
	if err != nil {
		t.Fatal(err)
	}
	env.srv.mbx = mbx // before the login: the session reads through it
	var once sync.Once
	release := func() { once.Do(func() { close(held.release) }) }
	t.Cleanup(release) // before the server's shutdown, which waits for it
	r := env.rawLogin(alice, alicePW)
	msg := testMessage("held", "body\r\n")
	// On the old code this waits for release, which only comes after it:
	// the read times out and fails the test.
	out := r.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if !contains(out, "[APPENDUID ") {
		t.Fatalf("APPEND: %s", out)
	}
	<-held.entered // the summary is on its way
	release()
	env.srv.addedWG.Wait()
	msgs, err := env.messages(alice, "INBOX", storeListWithSummary())
	if err != nil || len(msgs) != 1 || msgs[0].Summary == nil || msgs[0].SessionKey == nil {
		t.Fatalf("summary of the appended message not stored: %v %+v", err, msgs)
	}
}

// TestLogoutWaitsForSummary: a LOGOUT right after an APPEND wipes the
// login's keyring only once the summary the APPEND stores in the
// background has used it, so the summary is stored. The old code wiped
// at once, and the summary failed with "keyring wiped" (to be rebuilt
// at the first read). The background summary is held until the keyring
// is about to be wiped.
func TestLogoutWaitsForSummary(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	entered, release := make(chan struct{}), make(chan struct{})
	env.srv.addedHook = func() {
		close(entered)
		<-release
	}
	env.srv.wipeHook = func() { close(release) }
	r := env.rawLogin(alice, alicePW)
	msg := testMessage("at logout", "body\r\n")
	out := r.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if !contains(out, "[APPENDUID ") {
		t.Fatalf("APPEND: %s", out)
	}
	<-entered
	r.ok("LOGOUT")
	env.srv.addedWG.Wait()
	msgs, err := env.messages(alice, "INBOX", storeListWithSummary())
	if err != nil || len(msgs) != 1 || msgs[0].Summary == nil || msgs[0].SessionKey == nil {
		t.Fatalf("summary of the message appended before LOGOUT not stored: %v %+v", err, msgs)
	}
}

// heldDeliver is the server's store holding each Deliver until release
// is closed, having closed entered.
type heldDeliver struct {
	Store
	entered, release chan struct{}
}

func (h *heldDeliver) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	close(h.entered)
	<-h.release
	return h.Store.Deliver(ctx, ds)
}

// TestNoSummaryAfterWipe: once a session's keyring is being wiped (as
// Shutdown does, from its own goroutine, while a command may be
// running), an APPEND that delivers after it starts no background
// summary. The old code counted the summary in the session's WaitGroup
// even after wipeKeys' Wait had returned, an Add that could also run
// concurrently with that Wait (a WaitGroup misuse), and started the
// summary on the wiped keyring.
func TestNoSummaryAfterWipe(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	held := &heldDeliver{Store: env.srv.st, entered: make(chan struct{}), release: make(chan struct{})}
	env.srv.st = held
	var started atomic.Int32
	env.srv.addedHook = func() { started.Add(1) }
	r := env.rawLogin(alice, alicePW)
	msg := testMessage("wiped", "body\r\n")
	if _, err := fmt.Fprintf(r.conn, "A1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg); err != nil {
		t.Fatal(err)
	}
	<-held.entered
	env.srv.mu.Lock()
	var sessions []*session
	for s := range env.srv.sessions {
		sessions = append(sessions, s)
	}
	env.srv.mu.Unlock()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(sessions))
	}
	sessions[0].wipeKeys()
	close(held.release)
	for l := r.line(); !strings.HasPrefix(l, "A1 "); l = r.line() {
	}
	// Its status does not matter here (the keyring is gone); the
	// delivery is made either way.
	env.srv.addedWG.Wait()
	if n := started.Load(); n != 0 {
		t.Errorf("%d background summaries started after the keyring was wiped, want 0", n)
	}
}
