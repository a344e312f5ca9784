package smtp

import (
	"log/slog"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// notifyPending bounds the mailboxes whose news waits for OnDeliver:
// beyond it, news is dropped (and counted in the log). IMAP sessions
// then learn of the mail at their next command that looks.
const notifyPending = 4096

// notifier calls OnDeliver from a goroutine of its own, so the 250 never
// waits for IMAP (whose Delivered may wait on mailbox locks). Deliveries
// that arrive while a call runs are merged, one entry per mailbox (the
// latest, which carries the highest UID), so memory stays bounded however
// slow the callee is.
type notifier struct {
	fn  func([]store.Delivered) // immutable
	log *slog.Logger            // immutable

	mu      sync.Mutex
	pending map[notifyKey]store.Delivered // guarded by mu
	order   []notifyKey                   // guarded by mu; first-come order of pending
	dropped int                           // guarded by mu
	wake    chan struct{}                 // buffered 1
	quit    chan struct{}                 // closed by stop
	once    sync.Once
}

type notifyKey struct {
	account string
	mailbox uint64
}

func newNotifier(fn func([]store.Delivered), log *slog.Logger) *notifier {
	n := &notifier{
		fn:      fn,
		log:     log,
		pending: make(map[notifyKey]store.Delivered),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	go n.run()
	return n
}

// add queues ds and returns at once.
func (n *notifier) add(ds []store.Delivered) {
	n.mu.Lock()
	for _, d := range ds {
		k := notifyKey{d.Account, d.MailboxID}
		if _, ok := n.pending[k]; !ok {
			if len(n.pending) >= notifyPending {
				n.dropped++
				continue
			}
			n.order = append(n.order, k)
		}
		n.pending[k] = d
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	for {
		select {
		case <-n.quit:
			return
		case <-n.wake:
		}
		n.mu.Lock()
		batch := make([]store.Delivered, 0, len(n.order))
		for _, k := range n.order {
			batch = append(batch, n.pending[k])
		}
		clear(n.pending)
		n.order = n.order[:0]
		dropped := n.dropped
		n.dropped = 0
		n.mu.Unlock()
		if dropped > 0 {
			n.log.Warn("delivery notifications dropped: IMAP is slow to take them", "count", dropped)
		}
		if len(batch) > 0 {
			n.fn(batch)
		}
	}
}

// stop ends the goroutine after the call in progress, if any; what is
// pending is dropped. stop does not wait.
func (n *notifier) stop() {
	n.once.Do(func() { close(n.quit) })
}
