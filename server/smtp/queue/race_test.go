package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// dueHookStore lets a test act between the store's answer to QueueDue
// and the scheduler's use of it.
type dueHookStore struct {
	*badgerstore.DB
	hook atomic.Pointer[func([]store.QueueEntry)]
}

func (s *dueHookStore) QueueDue(ctx context.Context, after store.QueueCursor, until time.Time, limit int) ([]store.QueueEntry, error) {
	es, err := s.DB.QueueDue(ctx, after, until, limit)
	if h := s.hook.Load(); h != nil && err == nil {
		(*h)(es)
	}
	return es, err
}

// TestRefillStaleRead: a refill that read an entry just before its
// delivery ended must not load it again: the entry is gone (delivered)
// or deferred to later, and would be tried again at once — a message
// sent twice, or a retry that ignores the backoff. Found by the
// delivery benchmark ("open body: not found" after a delivery
// committed).
func TestRefillStaleRead(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	var bobTries atomic.Int32
	sk := startSink(t, sink.Options{Rcpt: func(to string) error {
		if to == "bob@example.net" {
			bobTries.Add(1)
			<-release // hold the first delivery until the refill has read
			return sink.Reply(451, "4.7.1", "try later")
		}
		return nil
	}})
	var hs *dueHookStore
	e := newEnv(t, func(o *Options) {
		hs = &dueHookStore{DB: o.Store.(*badgerstore.DB)}
		o.Store = hs
		o.Transports = map[string]string{"example.net": sk.Addr}
	})
	e.submit(&Message{ID: "first", Rcpts: []Rcpt{{Addr: "bob@example.net"}}}, message("first", ""))
	waitFor(t, "the first delivery to run", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		it := e.q.active["first-1"]
		return it != nil && it.running
	})
	// The next refill reads "first-1" (still due in the store), then,
	// before it looks at what it read, the delivery ends.
	h := func(es []store.QueueEntry) {
		for _, en := range es {
			if en.ID != "first-1" {
				continue
			}
			once.Do(func() {
				close(release)
				waitFor(t, "the first delivery to end", func() bool {
					e.q.mu.Lock()
					defer e.q.mu.Unlock()
					_, active := e.q.active["first-1"]
					return !active
				})
			})
		}
	}
	hs.hook.Store(&h)
	e.submit(&Message{ID: "second", Rcpts: []Rcpt{{Addr: "carol@example.net"}}}, message("second", ""))
	if sk.Wait(1, time.Minute) < 1 {
		t.Fatal("the second message was not delivered")
	}
	e.idle()
	if n := bobTries.Load(); n != 1 {
		t.Fatalf("the deferred message was tried %d times before its next attempt was due", n)
	}
	if n := len(events(e.traceOf("first"), trace.EventAttempt)); n != 1 {
		t.Fatalf("the trace has %d attempts", n)
	}
	if en := e.entry("first-1"); en.Attempts != 1 {
		t.Fatalf("entry after one attempt: %+v", en)
	}
}
