package trace

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Store is what the Writer needs: store.Tracer.
type Store interface {
	AddTraces(ctx context.Context, recs []store.TraceRecord) error
	PruneTraces(ctx context.Context, kind store.TraceKind, before time.Time) (int, error)
}

// Writer batches trace records into the store off the path of the
// reply: Trace queues a record and returns; a goroutine seals a batch
// and writes it in one transaction every flushEvery or flushBatch
// records. Records queued beyond queueMax are dropped and counted (the
// trace must never hold mail back). It also prunes the records of its
// kinds older than Retention, hourly.
type Writer struct {
	codec     *Codec
	st        Store
	log       *slog.Logger
	retention time.Duration
	kinds     []store.TraceKind

	mu      sync.Mutex
	queue   []Record // guarded by mu
	dropped int      // guarded by mu
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

const (
	flushEvery = 200 * time.Millisecond
	flushBatch = 256
	queueMax   = 20000
	pruneEvery = time.Hour
	// writeBatch bounds the records of one transaction.
	writeBatch = 1000
)

// WriterOptions configures NewWriter.
type WriterOptions struct {
	Codec *Codec // required
	Store Store  // required
	// Retention is how long records are kept. 0: forever.
	Retention time.Duration
	// Kinds are the kinds this writer prunes.
	Kinds  []store.TraceKind
	Logger *slog.Logger // nil: discard
}

// NewWriter starts a writer; Close stops it.
func NewWriter(opt WriterOptions) *Writer {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{codec: opt.Codec, st: opt.Store, log: log, retention: opt.Retention, kinds: opt.Kinds,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Trace queues r. It never blocks.
func (w *Writer) Trace(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	w.mu.Lock()
	if len(w.queue) >= queueMax {
		w.dropped++
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, r)
	full := len(w.queue) >= flushBatch
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// Flush writes what is queued now.
func (w *Writer) Flush(ctx context.Context) {
	for {
		w.mu.Lock()
		batch := w.queue[:min(len(w.queue), writeBatch)]
		w.queue = w.queue[len(batch):]
		dropped := w.dropped
		w.dropped = 0
		w.mu.Unlock()
		if dropped > 0 {
			w.log.Warn("trace: records dropped: the store could not keep up", "records", dropped)
		}
		if len(batch) == 0 {
			return
		}
		recs := make([]store.TraceRecord, 0, len(batch))
		for i := range batch {
			sr, err := w.codec.Encode(&batch[i])
			if err != nil {
				w.log.Error("trace: encode", "err", err)
				continue
			}
			recs = append(recs, sr)
		}
		if err := w.st.AddTraces(ctx, recs); err != nil {
			w.log.Error("trace: write", "records", len(recs), "err", err)
		}
	}
}

func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-w.stop:
			w.Flush(context.Background())
			return
		case <-t.C:
		case <-w.kick:
		}
		w.Flush(context.Background())
		if w.retention > 0 && time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			for _, k := range w.kinds {
				n, err := w.st.PruneTraces(context.Background(), k, time.Now().Add(-w.retention))
				if err != nil {
					w.log.Error("trace: prune", "err", err)
				} else if n > 0 {
					w.log.Info("trace: pruned old records", "records", n)
				}
			}
		}
	}
}

// Close writes what is queued and stops the writer.
func (w *Writer) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
