package smtp

import (
	"context"
	"sync"
	"time"
)

// budget is a server-wide count of bytes of memory that messages in
// flight may hold (Limits.InFlightBytes). Holders take bytes before they
// allocate and give them back after they free; nothing blocks while
// holding its mutex.
type budget struct {
	total int64 // immutable

	mu      sync.Mutex
	used    int64         // guarded by mu
	changed chan struct{} // guarded by mu; closed and replaced when bytes are given back
}

func newBudget(total int64) *budget {
	return &budget{total: total, changed: make(chan struct{})}
}

// tryTake takes n bytes if they are free now.
func (b *budget) tryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total {
		return false
	}
	b.used += n
	return true
}

// take takes n bytes, waiting at most wait (or until ctx ends) for them
// to be given back by others. It reports whether it got them.
func (b *budget) take(ctx context.Context, n int64, wait time.Duration) bool {
	if n > b.total {
		return false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			return true
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// give returns n bytes.
func (b *budget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	// Never below zero, even if a caller gave back too much (a bug the
	// tests look for with inUse): the budget then errs on the safe side.
	b.used = max(b.used-n, 0)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// inUse returns the bytes taken.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
