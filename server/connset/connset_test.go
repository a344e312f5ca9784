package connset

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/internal/testutil"
)

// echoConn is a test connection: it echoes until interrupted (then says
// "bye") or killed.
type echoConn struct {
	nc       net.Conn
	mu       sync.Mutex
	stubborn bool // ignores interrupt
	said     string
}

func (c *echoConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stubborn {
		c.said = "bye"
		c.nc.Write([]byte("bye\n"))
		c.nc.Close()
	}
}

func (c *echoConn) kill() { c.nc.Close() }

type server struct {
	set Set[*echoConn]
	wg  sync.WaitGroup
}

func (s *server) start(nc net.Conn, stubborn bool) {
	c := &echoConn{nc: nc, stubborn: stubborn}
	if !s.set.Add(c) {
		nc.Close()
		return
	}
	go func() {
		defer s.set.Remove(c)
		io.Copy(nc, nc)
	}()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func dialEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("echo: %q %v", b, err)
	}
	return c
}

// TestShutdownInterrupts: Shutdown stops Serve (which returns nil),
// interrupts every open connection, waits for them, and refuses new ones.
func TestShutdownInterrupts(t *testing.T) {
	var s server
	ln := listen(t)
	served := make(chan error, 1)
	go func() {
		served <- s.set.Serve(ln, slog.New(slog.DiscardHandler), func(nc net.Conn) { s.start(nc, false) })
	}()
	a, b := dialEcho(t, ln.Addr().String()), dialEcho(t, ln.Addr().String())
	if n := s.set.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if err := s.set.Shutdown(context.Background(), (*echoConn).interrupt, (*echoConn).kill); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range []net.Conn{a, b} {
		if got, _ := io.ReadAll(c); string(got) != "bye\n" {
			t.Errorf("an open connection read %q, want the goodbye", got)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if s.set.Len() != 0 || !s.set.Closing() {
		t.Errorf("after Shutdown: Len %d, Closing %v", s.set.Len(), s.set.Closing())
	}
	select {
	case <-s.set.Done():
	default:
		t.Error("Done not closed")
	}
	if s.set.Add(&echoConn{}) {
		t.Error("Add after Shutdown counted a connection")
	}
	if err := s.set.Serve(listen(t), slog.New(slog.DiscardHandler), nil); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if err := s.set.Shutdown(context.Background(), nil, nil); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestShutdownKills: a connection that ignores the interrupt is killed
// when Shutdown's context ends, and Shutdown returns its error only after
// the connection is gone.
func TestShutdownKills(t *testing.T) {
	var s server
	ln := listen(t)
	go s.set.Serve(ln, slog.New(slog.DiscardHandler), func(nc net.Conn) { s.start(nc, true) })
	c := dialEcho(t, ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.set.Shutdown(ctx, (*echoConn).interrupt, (*echoConn).kill); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	if n := s.set.Len(); n != 0 {
		t.Errorf("Shutdown returned with %d connections open", n)
	}
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("a killed connection read %q", got)
	}
}

// TestServeRetries: temporary accept errors are retried, others end
// Serve with the error.
func TestServeRetries(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	var s server
	fl := testutil.NewFlakyListener(listen(t), emfile, syscall.ECONNABORTED, emfile)
	go s.set.Serve(fl, slog.New(slog.DiscardHandler), func(nc net.Conn) { s.start(nc, false) })
	dialEcho(t, fl.Addr().String())
	s.set.Shutdown(context.Background(), (*echoConn).interrupt, (*echoConn).kill)

	var s2 server
	bad := errors.New("something else")
	fl = testutil.NewFlakyListener(listen(t), bad)
	if err := s2.set.Serve(fl, slog.New(slog.DiscardHandler), nil); !errors.Is(err, bad) {
		t.Errorf("Serve after a permanent error: %v", err)
	}
}

func TestTemporary(t *testing.T) {
	for _, err := range []error{net.ErrClosed, errors.New("something else"), nil} {
		if Temporary(err) {
			t.Errorf("Temporary(%v) = true", err)
		}
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	if !Temporary(emfile) || !Temporary(os.NewSyscallError("accept", syscall.ENFILE)) {
		t.Error("EMFILE/ENFILE not temporary")
	}
}

func TestOrDefault(t *testing.T) {
	if got := OrDefault(0, 7); got != 7 {
		t.Errorf("OrDefault(0, 7) = %d", got)
	}
	if got := OrDefault(-1, int64(7)); got != 7 {
		t.Errorf("OrDefault(-1, 7) = %d", got)
	}
	if got := OrDefault(3*time.Second, time.Minute); got != 3*time.Second {
		t.Errorf("OrDefault(3s, 1m) = %v", got)
	}
}
