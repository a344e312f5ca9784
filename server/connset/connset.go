package connset

import (
	"context"
	"log/slog"
	"net"
	"sync"
)

// Set is a server's listeners and open connections of type C. The zero
// value is ready. Its methods are safe for concurrent use.
type Set[C comparable] struct {
	once sync.Once
	done chan struct{} // closed when Shutdown begins

	mu      sync.Mutex
	closing bool                      // guarded by mu
	lns     map[net.Listener]struct{} // guarded by mu
	conns   map[C]struct{}            // guarded by mu
	wg      sync.WaitGroup            // one per added connection
}

func (s *Set[C]) init() { s.once.Do(func() { s.done = make(chan struct{}) }) }

// Done is closed when Shutdown begins.
func (s *Set[C]) Done() <-chan struct{} {
	s.init()
	return s.done
}

// Closing reports whether Shutdown has begun.
func (s *Set[C]) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Serve accepts connections on ln until Shutdown and calls start with
// each, in the accept loop: start must not block (it starts the
// connection's goroutine). Temporary accept errors are logged and
// retried with backoff. ln is closed when Serve returns; it returns nil
// after Shutdown, else the accept error that ended it.
func (s *Set[C]) Serve(ln net.Listener, log *slog.Logger, start func(net.Conn)) error {
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.lns == nil {
		s.lns = make(map[net.Listener]struct{})
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	retry := Backoff{Done: s.done}
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.Closing() {
				return nil
			}
			if retry.Retry(err) {
				log.Warn("accept failed; retrying", "err", err)
				continue
			}
			return err
		}
		retry.Reset()
		start(nc)
	}
}

// Add counts c as open until Remove. It returns false, and counts
// nothing, once Shutdown has begun: the caller then closes the
// connection without serving it.
func (s *Set[C]) Add(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[C]struct{})
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Remove forgets c, added before; call it once when c's serving ends.
func (s *Set[C]) Remove(c C) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Len returns the number of open connections.
func (s *Set[C]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Each calls f with every open connection, from a snapshot taken under
// the lock; f runs without it.
func (s *Set[C]) Each(f func(C)) {
	for _, c := range s.snapshot() {
		f(c)
	}
}

func (s *Set[C]) snapshot() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]C, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// Shutdown stops every listener, refuses new connections, calls
// interrupt with each open one, and waits until every connection is
// removed. If ctx ends first, it calls kill with each connection still
// open, waits for them to be removed (a killed connection's next read or
// write fails), and returns ctx's error. Only the first call does this;
// later calls return nil at once.
func (s *Set[C]) Shutdown(ctx context.Context, interrupt, kill func(C)) error {
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	close(s.done)
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	s.Each(interrupt)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Each(kill)
		<-done
		return ctx.Err()
	}
}
