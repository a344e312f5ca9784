package connset

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Backoff delays between temporary accept errors: 5 ms after the first,
// doubling up to 1 s, as net/http's Server.Serve does. The zero value is
// ready; it is not safe for concurrent use (one accept loop owns it).
type Backoff struct {
	// Done, when closed, ends a wait early (the listener is closing).
	// nil: waits always run their course.
	Done <-chan struct{}

	delay time.Duration
}

const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Retry reports whether err, returned by an accept call, is temporary. If
// it is, Retry first waits the next backoff delay (or until Done is
// closed) and the caller should accept again.
func (b *Backoff) Retry(err error) bool {
	if !Temporary(err) {
		return false
	}
	if b.delay == 0 {
		b.delay = minBackoff
	} else {
		b.delay = min(2*b.delay, maxBackoff)
	}
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.Done:
	}
	return true
}

// Reset starts the next run of errors at the shortest delay; call it
// after each successful accept.
func (b *Backoff) Reset() { b.delay = 0 }

// Temporary reports whether an accept error is worth retrying: the
// process or system is out of descriptors or buffers, or a connection
// died before it was accepted. A closed listener is never temporary.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
		syscall.EPROTO, syscall.EPERM, syscall.ETIMEDOUT,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
