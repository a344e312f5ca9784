package wire

import (
	"net"
	"sync"
	"testing"
	"time"
)

// lateDeadlineConn applies the watcher read's future deadline only after
// stop's past one: the interleaving in which netReader.Read has computed
// its deadline when the command ends, and sets it after the wake-up.
type lateDeadlineConn struct {
	net.Conn
	once    sync.Once
	reading chan struct{} // closed when the watcher's read sets its deadline
	woken   chan struct{} // closed when a past deadline was set
	wOnce   sync.Once
}

func (c *lateDeadlineConn) SetReadDeadline(t time.Time) error {
	if t.Before(time.Now()) {
		err := c.Conn.SetReadDeadline(t)
		c.wOnce.Do(func() { close(c.woken) })
		return err
	}
	first := false
	c.once.Do(func() { first = true })
	if first {
		close(c.reading)
		<-c.woken
	}
	return c.Conn.SetReadDeadline(t)
}

// TestWatchDisconnectStopRace: a command's end must wake the watcher even
// when the watcher's read sets its own deadline after the wake-up; before
// the fix, stop waited for the client's next byte (a FETCH hung for
// minutes in TestSelectedMailboxDeletedAndRecreated under load).
func TestWatchDisconnectStopRace(t *testing.T) {
	srv, err := New(Options{NewSession: newMemBackend().newSession})
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	defer client.Close()
	lc := &lateDeadlineConn{Conn: server, reading: make(chan struct{}), woken: make(chan struct{})}
	c := newConn(srv, lc)
	c.takeReadBuf()                        // as while a command runs
	c.setReadPhase(time.Hour, time.Time{}) // a command phase's read timeout
	stop := c.watchDisconnect(func() {})
	select {
	case <-lc.reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never read")
	}
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second): // only ends a failing test
		t.Fatal("stop still waiting for the watcher's read")
	}
}
