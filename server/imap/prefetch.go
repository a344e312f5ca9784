package imap

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// maxPrefetchSize is the largest plaintext FETCH decrypts ahead of the
// writer; larger messages are streamed when their turn comes. With
// prefetchWindow it bounds the plaintext a FETCH holds at once.
const maxPrefetchSize = 1 << 20

// prefetchWindow is how many messages per worker may be decrypted ahead of
// the one being written.
const prefetchWindow = 4

// prefetcher decrypts the bodies of a FETCH's messages on the server's
// workers, in order and a bounded window ahead of the goroutine that writes
// the responses, so that reading blobs and decrypting overlap with writing
// to the connection. Every plaintext it made is wiped by release or stop.
type prefetcher struct {
	cancel  context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup
	slots   chan struct{}    // one per message in flight
	results []prefetchResult // by item index
}

type prefetchResult struct {
	done  chan struct{} // closed when plain and err are set
	slot  bool          // holds a slot (set before the job is dispatched)
	plain []byte        // guarded by done
	err   error         // guarded by done
}

// fetchNeedsBody reports whether o asks for message content beyond the
// header block kept in the summary.
func fetchNeedsBody(o *imap.FetchOptions) bool {
	if len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return true
	}
	for _, bs := range o.BodySection {
		if len(bs.Part) > 0 || bs.Specifier != imap.PartSpecifierHeader {
			return true
		}
	}
	return false
}

// startPrefetch starts decrypting the bodies of items.
func (s *session) startPrefetch(ctx context.Context, account string, mailbox uint64, keys keyring, items []fetchItem) *prefetcher {
	workers := max(s.srv.workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		ctx:     ctx,
		cancel:  cancel,
		slots:   make(chan struct{}, workers*prefetchWindow),
		results: make([]prefetchResult, len(items)),
	}
	for i := range p.results {
		p.results[i].done = make(chan struct{})
	}
	jobs := make(chan int)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(jobs)
		for i := range items {
			r := &p.results[i]
			if it := items[i]; it.sum == nil || it.sum.Size > maxPrefetchSize {
				close(r.done) // streamed by the writer
				continue
			}
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			r.slot = true
			select {
			case jobs <- i:
			case <-ctx.Done():
				<-p.slots
				r.slot = false
				return
			}
		}
	}()
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := range jobs {
				r := &p.results[i]
				r.plain, r.err = s.readPlain(ctx, account, mailbox, keys, &items[i])
				close(r.done)
			}
		}()
	}
	return p
}

// get returns the plaintext of item i, or nil if it was not prefetched
// (too large, unreadable, or the FETCH is ending); the writer then reads the
// message itself. The caller must release i after writing it.
func (p *prefetcher) get(i int) []byte {
	r := &p.results[i]
	select {
	case <-r.done:
	case <-p.ctx.Done():
		return nil
	}
	if r.err != nil {
		return nil
	}
	return r.plain
}

// release wipes item i's plaintext and frees its slot.
func (p *prefetcher) release(i int) {
	r := &p.results[i]
	select {
	case <-r.done:
	case <-p.ctx.Done():
		return // stop cleans up
	}
	wipeBytes(r.plain)
	r.plain = nil
	if r.slot {
		r.slot = false
		<-p.slots
	}
}

// stop ends the prefetch, waits for its goroutines and wipes every
// plaintext not yet released.
func (p *prefetcher) stop() {
	p.cancel()
	p.wg.Wait()
	for i := range p.results {
		wipeBytes(p.results[i].plain)
		p.results[i].plain = nil
	}
}

// readPlain decrypts a whole message whose summary gives its size.
func (s *session) readPlain(ctx context.Context, account string, mailbox uint64, keys keyring, it *fetchItem) ([]byte, error) {
	r, err := s.openBody(ctx, account, mailbox, keys, it.msg)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, it.sum.Size)
	if _, err := io.ReadFull(r, plain); err != nil {
		wipeBytes(plain)
		return nil, err
	}
	// Read to the end: integrity is checked there, and the summary's size
	// must be the whole message.
	if n, err := io.Copy(io.Discard, r); err != nil || n != 0 {
		wipeBytes(plain)
		if err == nil {
			err = fmt.Errorf("imap: uid %d: plaintext longer than its summary says", it.ref.uid)
		}
		return nil, err
	}
	return plain, nil
}
