package testutil

import (
	"net"
	"sync"
)

// FlakyListener fails Accept with the errors it was given, one per call,
// then accepts from the listener it wraps: accept errors on demand, for
// tests of accept loops.
type FlakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error // guarded by mu
}

// NewFlakyListener wraps ln; its first Accept calls fail with errs.
func NewFlakyListener(ln net.Listener, errs ...error) *FlakyListener {
	return &FlakyListener{Listener: ln, errs: errs}
}

// Fail makes the next Accept calls fail with errs, after any errors
// still waiting.
func (f *FlakyListener) Fail(errs ...error) {
	f.mu.Lock()
	f.errs = append(f.errs, errs...)
	f.mu.Unlock()
}

// Accept returns the next error waiting, or the wrapped listener's next
// connection.
func (f *FlakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}
