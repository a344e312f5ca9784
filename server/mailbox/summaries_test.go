package mailbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// slowStore is a memStore whose first SetSummaries waits until release
// is closed, and which counts the sealed blobs read.
type slowStore struct {
	*memStore
	release chan struct{}
	mu      sync.Mutex
	reads   int  // guarded by mu
	waited  bool // guarded by mu
}

func (s *slowStore) Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.memStore.Blob(ctx, address, mailbox, uid)
}

func (s *slowStore) Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error) {
	s.mu.Lock()
	s.reads += len(uids)
	s.mu.Unlock()
	return s.memStore.Blobs(ctx, address, mailbox, uids)
}

func (s *slowStore) SetSummaries(ctx context.Context, address string, mailbox uint64, us []store.SummaryUpdate) error {
	s.mu.Lock()
	first := !s.waited
	s.waited = true
	s.mu.Unlock()
	if first {
		<-s.release
	}
	return s.memStore.SetSummaries(ctx, address, mailbox, us)
}

func (s *slowStore) blobReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// TestSummariesWriteBehind: while a batch of rebuilt summaries is being
// stored (a durable write), the workers go on opening messages instead
// of waiting for it; and every summary is stored when Summaries returns.
func TestSummariesWriteBehind(t *testing.T) {
	_, pk := keys(t)
	ms := newMemStore()
	n := summaryBatch*(1+summaryWriteQueue) + 5
	for i := 1; i <= n; i++ {
		ms.blobs[uint32(i)] = seal(t, pk, fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	st := &slowStore{memStore: ms, release: make(chan struct{})}
	kr, _ := keys(t)
	svc, err := New(Options{Store: st, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	rd := svc.Reader("alice@example.org", kr, nil)
	msgs, _ := ms.Messages(context.Background(), "", 1, store.ListOptions{WithSummary: true})

	type result struct {
		sums []*Summary
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sums, _, err := rd.Summaries(context.Background(), 1, msgs)
		done <- result{sums, err}
	}()
	// The first batch's write is held; every message must still be read.
	// (Before, the worker writing held the lock the others needed, and
	// reading stopped at the first batch.)
	for deadline := time.Now().Add(60 * time.Second); st.blobReads() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(st.release)
			t.Fatalf("%d of %d messages read while the first batch was being stored", st.blobReads(), n)
		}
	}
	select {
	case <-done:
		t.Fatal("Summaries returned before its summaries were stored")
	default:
	}
	close(st.release)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	ms.mu.Lock()
	stored := len(ms.sums)
	ms.mu.Unlock()
	if stored != n {
		t.Fatalf("%d summaries stored, want %d", stored, n)
	}
	for i, sm := range res.sums {
		if sm == nil || sm.Envelope.Subject != fmt.Sprint(i+1) {
			t.Fatalf("summary %d: %+v", i+1, sm)
		}
	}
}
