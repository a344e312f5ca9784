package mailbox

import (
	"context"
	"errors"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// prefetchWindow is how many messages per worker may be decrypted ahead
// of the one being written.
const prefetchWindow = 4

// PrefetchItem is one message of a Prefetch: its metadata and its
// plaintext size (from its summary); Size < 0 skips it.
type PrefetchItem struct {
	Msg  *store.Message
	Size int64
}

// Prefetcher decrypts and verifies the bodies of a command's messages
// (a FETCH of bodies) on the server's workers, in order and a bounded
// window ahead of the goroutine that writes them, so that reading,
// decrypting and writing overlap. Only messages that fit the memory
// budget are prefetched; Get gives nil for the others, which the writer
// opens itself. Every Body it made is closed by Release or Stop.
type Prefetcher struct {
	cancel  context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup
	slots   chan struct{}
	results []prefetchResult
}

type prefetchResult struct {
	done chan struct{} // closed when body and err are set
	slot bool          // holds a slot (set before the job is dispatched)
	body *Body         // guarded by done
	err  error         // guarded by done
}

// Prefetch starts decrypting items of mailbox. The caller must Stop it.
// The sealed bytes of small messages are read from the store in runs
// (ReadSealed, one store read per run), one run ahead of the messages
// handed to the workers, so that reading overlaps decryption: at most
// three runs (about 3 MiB sealed) are held besides the window.
func (r *Reader) Prefetch(ctx context.Context, mailbox uint64, items []PrefetchItem) *Prefetcher {
	workers := r.svc.Workers()
	ctx, cancel := context.WithCancel(ctx)
	p := &Prefetcher{
		ctx:     ctx,
		cancel:  cancel,
		slots:   make(chan struct{}, workers*prefetchWindow),
		results: make([]prefetchResult, len(items)),
	}
	for i := range p.results {
		p.results[i].done = make(chan struct{})
	}
	// The messages to prefetch; nil for those the writer opens itself.
	msgs := make([]*store.Message, len(items))
	for i, it := range items {
		if it.Size >= 0 && it.Size <= r.svc.inMemoryMax {
			msgs[i] = it.Msg
		}
	}
	runs := make(chan sealedRun, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(runs)
		for lo := 0; lo < len(msgs); {
			sealed, n := r.ReadSealed(ctx, mailbox, msgs[lo:])
			select {
			case runs <- sealedRun{lo: lo, sealed: sealed}:
			case <-ctx.Done():
				return
			}
			lo += n
		}
	}()
	jobs := make(chan prefetchJob)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(jobs)
		for run := range runs {
			for k, pre := range run.sealed {
				i := run.lo + k
				res := &p.results[i]
				if msgs[i] == nil {
					close(res.done) // opened by the writer
					continue
				}
				select {
				case p.slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				res.slot = true
				select {
				case jobs <- prefetchJob{i: i, pre: pre}:
				case <-ctx.Done():
					<-p.slots
					res.slot = false
					return
				}
				run.sealed[k] = nil
			}
		}
	}()
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for job := range jobs {
				i := job.i
				res := &p.results[i]
				err := r.svc.work(ctx, func() {
					res.body, res.err = r.open(ctx, mailbox, items[i].Msg, items[i].Size, true, job.pre)
				})
				if err != nil {
					res.err = err
				}
				close(res.done)
			}
		}()
	}
	return p
}

// sealedRun is the sealed bytes of the messages from index lo on, read
// ahead together (nil where not read).
type sealedRun struct {
	lo     int
	sealed [][]byte
}

// prefetchJob is a message for a worker to open: its index and its
// sealed bytes if they were read ahead.
type prefetchJob struct {
	i   int
	pre []byte
}

// Get returns the verified body of item i; nil and no error if it was
// not prefetched (too large, no room, or the command is ending): the
// writer then opens the message itself. An error is the message's
// (ErrIntegrity, store.ErrNotFound…), already logged. The caller must
// Release i after writing it.
func (p *Prefetcher) Get(i int) (*Body, error) {
	res := &p.results[i]
	select {
	case <-res.done:
	case <-p.ctx.Done():
		return nil, nil
	}
	if res.err != nil {
		if errors.Is(res.err, errNoRoom) || errors.Is(res.err, context.Canceled) {
			return nil, nil
		}
		return nil, res.err
	}
	return res.body, nil
}

// Release closes item i's body and frees its slot.
func (p *Prefetcher) Release(i int) {
	res := &p.results[i]
	select {
	case <-res.done:
	case <-p.ctx.Done():
		return // Stop cleans up
	}
	if res.body != nil {
		res.body.Close()
		res.body = nil
	}
	if res.slot {
		res.slot = false
		<-p.slots
	}
}

// Stop ends the prefetch, waits for its goroutines and closes every body
// not yet released.
func (p *Prefetcher) Stop() {
	p.cancel()
	p.wg.Wait()
	for i := range p.results {
		if p.results[i].body != nil {
			p.results[i].body.Close()
			p.results[i].body = nil
		}
	}
}
