package queue

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// Queue is the outbound queue: New builds it over a store (enough for
// listing, showing, retrying and dropping entries, as the CLI does with
// the server stopped); Start runs deliveries until Shutdown.
type Queue struct {
	opt   Options            // immutable; validated
	st    Store              // immutable
	seal  *sealer            // immutable
	codec *trace.Codec       // immutable
	log   *slog.Logger       // immutable
	rcpts *policy.Recipients // immutable
	now   func() time.Time   // immutable

	wake     chan struct{} // buffered 1: something changed, schedule again
	stop     chan struct{} // closed by Shutdown
	loopDone chan struct{} // closed when the scheduler has returned
	jobCtx   context.Context
	jobStop  context.CancelFunc // cuts running deliveries off
	jobs     sync.WaitGroup

	mu      sync.Mutex
	started bool                 // guarded by mu
	closing bool                 // guarded by mu
	active  map[string]*item     // guarded by mu: entries held in memory, by ID
	dests   map[string]*dest     // guarded by mu: by route key
	running int                  // guarded by mu: deliveries in progress
	dirty   bool                 // guarded by mu: due entries may exist that active lacks
	moreDue bool                 // guarded by mu: the last refill stopped for want of room
	held    map[string]time.Time // guarded by mu: entries kept out after a failed commit, until
	// finishedDuring, while a refill runs, names the entries whose
	// delivery ended since it began: what it read of them may be stale
	// (delivered, or deferred to later), so it does not load them.
	finishedDuring map[string]bool // guarded by mu; nil when no refill runs
	lastTrim       time.Time       // guarded by mu: when traces were last pruned
}

// item is an entry the scheduler holds.
type item struct {
	e    store.QueueEntry // as loaded
	env  *envelope        // opened Meta
	dest *dest            // its destination
	// guarded by Queue.mu:
	running bool
	dropped bool               // Drop is waiting for the delivery to end
	cancel  context.CancelFunc // while running
	done    chan struct{}      // closed when the delivery ended
}

// dest is one destination's state: entries waiting for it, deliveries
// running to it, and its rate bucket.
type dest struct {
	key      string
	waiting  []*item // FIFO
	running  int
	tokens   float64 // rate bucket; used only with DestinationRate
	refilled time.Time
}

// New returns a queue over opt.Store. It does not deliver until Start.
func New(opt Options) (*Queue, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	seal, err := newSealer(opt.Key)
	if err != nil {
		return nil, err
	}
	codec, err := trace.NewCodec(opt.Key)
	if err != nil {
		return nil, err
	}
	rcpts, err := policy.NewRecipients(policy.RecipientOptions{Domains: opt.Domains, Aliases: opt.Aliases, Postmaster: opt.Postmaster})
	if err != nil {
		return nil, err
	}
	jobCtx, jobStop := context.WithCancel(context.Background())
	q := &Queue{
		opt:      opt,
		st:       opt.Store,
		seal:     seal,
		codec:    codec,
		log:      opt.Logger.With("proto", "queue"),
		rcpts:    rcpts,
		now:      opt.Now,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		jobCtx:   jobCtx,
		jobStop:  jobStop,
		active:   make(map[string]*item),
		dests:    make(map[string]*dest),
		held:     make(map[string]time.Time),
		dirty:    true,
	}
	return q, nil
}

// CheckKey reports ErrWrongKey if the queue holds entries sealed under
// another server key, so that a replaced key file stops the server at
// start instead of every delivery failing.
func (q *Queue) CheckKey(ctx context.Context) error {
	es, err := q.st.QueueEntries(ctx, "", "", 1)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		return nil
	}
	if _, err := q.seal.decodeEnvelope(es[0].ID, es[0].Meta); err != nil {
		return err
	}
	return nil
}

// Start runs the scheduler until Shutdown. It returns at once.
func (q *Queue) Start() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closing {
		return errors.New("queue: started twice")
	}
	if q.opt.Smarthost == nil && q.opt.Resolver == nil {
		return errors.New("queue: Options.Resolver is required to deliver without a smarthost")
	}
	q.started = true
	go q.loop()
	return nil
}

// Shutdown stops starting deliveries, lets those in progress finish
// until ctx ends, then cuts them off and waits for them to record what
// they know. A delivery cut off before the remote server's final reply
// is tried again later; one cut off after it, before its outcome was
// committed, may be sent again (the window SMTP allows: see doc.go).
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	started, already := q.started, q.closing
	q.closing = true
	q.mu.Unlock()
	if already {
		return nil
	}
	close(q.stop)
	if started {
		<-q.loopDone
	}
	done := make(chan struct{})
	go func() { q.jobs.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		q.jobStop()
		<-done
		err = fmt.Errorf("queue: shutdown: %w", ctx.Err())
	}
	q.jobStop()
	return err
}

// poke marks that due entries may exist and wakes the scheduler.
func (q *Queue) poke() {
	q.mu.Lock()
	q.dirty = true
	q.mu.Unlock()
	q.kick()
}

// kick wakes the scheduler.
func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// idEncoding renders IDs: lower-case base32 without padding, as
// server/smtp's transaction ids.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random message id (80 bits), for the queue's own
// notices.
func NewID() string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

// entryID is the ID of a message's n-th entry (n from 1).
func entryID(msg string, n int) string { return fmt.Sprintf("%s-%d", msg, n) }

// addTrace seals an outbound record for the change.
func (q *Queue) traceRecord(ref string, when time.Time, o *trace.Outbound) (store.TraceRecord, bool) {
	r, err := q.codec.Encode(&trace.Record{Kind: store.TraceOutbound, Time: when, Ref: ref, Out: o})
	if err != nil {
		q.log.Error("trace record", "err", err)
		return store.TraceRecord{}, false
	}
	return r, true
}

// addTraces appends records for ref to c.
func (q *Queue) addTraces(c *store.QueueChange, ref string, when time.Time, os ...*trace.Outbound) {
	for _, o := range os {
		if r, ok := q.traceRecord(ref, when, o); ok {
			c.Trace = append(c.Trace, r)
		}
	}
}
