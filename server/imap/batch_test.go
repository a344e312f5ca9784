package imap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// deliverMany puts n messages into addr's mailbox, in store batches. The
// blobs are one sealed message shared by all: COPY, MOVE and STORE never
// open them.
func (e *testEnv) deliverMany(addr, mailbox string, n int) {
	e.t.Helper()
	blob := e.seal(addr, testMessage("many", "one of many\r\n"))
	id := e.mailboxID(addr, mailbox)
	for done := 0; done < n; {
		ds := make([]store.Delivery, min(1000, n-done))
		for i := range ds {
			ds[i] = store.Delivery{Account: addr, MailboxID: id, InternalDate: time.Now(), Blob: blob}
		}
		if _, err := e.st.Deliver(context.Background(), ds); err != nil {
			e.t.Fatalf("Deliver: %v", err)
		}
		done += len(ds)
	}
}

// TestCopyMoveStoreLarge: COPY, MOVE and STORE of more messages than one
// store transaction holds (about 8,000 copies, 12,000 moves, 25,000 flag
// changes in badger) go through in several transactions instead of
// failing with NO [LIMIT], as Dovecot's do.
func TestCopyMoveStoreLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("delivers 27,000 messages")
	}
	env := newEnv(t)
	env.addUser(alice, alicePW)
	const n = 27000
	env.deliverMany(alice, "", n)
	r := env.rawLogin(alice, alicePW)
	r.ok("CREATE Old")
	r.ok("SELECT INBOX")

	r.ok("STORE 1:* +FLAGS.SILENT (\\Flagged)")
	mustContain(t, "SEARCH FLAGGED", r.ok("SEARCH RETURN (COUNT) FLAGGED"), fmt.Sprintf("COUNT %d", n))

	out := r.ok("COPY 1:9000 Archive")
	mustContain(t, "COPY", out, "[COPYUID ", " 1:9000 1:9000]")
	mustContain(t, "STATUS Archive", r.ok("STATUS Archive (MESSAGES)"), "(MESSAGES 9000)")

	r.ok("SELECT Archive")
	out = r.ok("MOVE 1:* Old")
	if got := strings.Count(out, " EXPUNGE\r\n"); got != 9000 {
		t.Errorf("MOVE: %d EXPUNGE responses, want 9000", got)
	}
	mustContain(t, "MOVE", out, "[COPYUID ", " 1:9000 1:9000]")
	mustContain(t, "STATUS Old", r.ok("STATUS Old (MESSAGES)"), "(MESSAGES 9000)")
	mustContain(t, "NOOP", r.ok("SEARCH RETURN (COUNT) ALL"), "COUNT 0")
}

// smallStore is a store whose transactions hold at most max messages
// (ErrTooLarge above, as badger's), and whose failAt-th CopyMessages or
// MoveMessages call fails with ErrOverQuota (0: none does).
type smallStore struct {
	Store
	max    int
	failAt int

	mu    sync.Mutex
	calls int
}

func (s *smallStore) check(uids []uint32) error {
	if len(uids) > s.max {
		return fmt.Errorf("smallStore: %d messages: %w", len(uids), store.ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == s.failAt {
		return fmt.Errorf("smallStore: call %d: %w", s.calls, store.ErrOverQuota)
	}
	return nil
}

func (s *smallStore) CopyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	if err := s.check(uids); err != nil {
		return store.CopyResult{}, err
	}
	return s.Store.CopyMessages(ctx, address, src, dst, uids)
}

func (s *smallStore) MoveMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	if err := s.check(uids); err != nil {
		return store.CopyResult{}, err
	}
	return s.Store.MoveMessages(ctx, address, src, dst, uids)
}

// TestCopyMoveRuns: with a store that takes 1,000 messages per
// transaction, a COPY of 3,000 is still one command (in runs of 750); a
// COPY whose third run fails leaves the destination as it was (COPY is
// all or nothing); a MOVE whose third run fails reports what moved
// (COPYUID and EXPUNGEs of the first two runs) and fails, each message
// moved or untouched (RFC 6851 §3.3).
func TestCopyMoveRuns(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	small := &smallStore{Store: env.srv.st, max: 1000}
	env.srv.st = small
	env.deliverMany(alice, "", 3000)
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")

	mustContain(t, "COPY", r.ok("COPY 1:* Archive"), " 1:3000 1:3000]")
	mustContain(t, "STATUS", r.ok("STATUS Archive (MESSAGES)"), "(MESSAGES 3000)")

	small.mu.Lock()
	small.calls, small.failAt = 0, 3
	small.mu.Unlock()
	r.ok("CREATE Kept")
	out, status := r.cmd("COPY 1:* Kept")
	if status != "NO" || !strings.Contains(out, "[OVERQUOTA]") {
		t.Errorf("COPY with a failing third run: %s", out)
	}
	mustContain(t, "STATUS", r.ok("STATUS Kept (MESSAGES)"), "(MESSAGES 0)")

	small.mu.Lock()
	small.calls, small.failAt = 0, 3
	small.mu.Unlock()
	out, status = r.cmd("MOVE 1:* Kept")
	if status != "NO" || !strings.Contains(out, "[OVERQUOTA]") {
		t.Errorf("MOVE with a failing third run: %s", out)
	}
	// Runs of 3,000 and 1,500 were too large; runs of 750 went through.
	mustContain(t, "MOVE", out, "[COPYUID ", " 1:1500 ")
	if got := strings.Count(out, " EXPUNGE\r\n"); got != 1500 {
		t.Errorf("MOVE: %d EXPUNGE responses, want 1500", got)
	}
	mustContain(t, "STATUS", r.ok("STATUS Kept (MESSAGES)"), "(MESSAGES 1500)")
	mustContain(t, "SEARCH", r.ok("SEARCH RETURN (COUNT) ALL"), "COUNT 1500")
}
