package wire

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Buffer sizes. The write buffer is held only while a response is
// written (encoder), the read buffer only while a command is read
// (waitInput); bodies stream through them without being held. The write
// buffer is two full TLS records: with 8 KiB, a FETCH of 10,000 10 KB
// bodies went out as two records and two writes per message, and the
// server spent ~7% more CPU and delivered 131 instead of 148 MB/s (medians)
// (sealbench mailbox, six alternating rounds).
const (
	readBufSize  = 4 << 10
	writeBufSize = 32 << 10
)

// Conn is one client connection. The Session gets it at creation; its
// exported methods tell the Session about the connection and are safe for
// concurrent use.
type Conn struct {
	srv *Server      // immutable
	id  uint64       // immutable
	log *slog.Logger // immutable (cid, remote)
	raw net.Conn     // immutable: the accepted connection
	lim *Limits      // immutable
	ctx context.Context
	end context.CancelFunc

	mu        sync.Mutex
	netConn   net.Conn             // guarded by mu: raw, or its TLS layer after STARTTLS
	state     connState            // guarded by mu
	enabled   imap.CapSet          // guarded by mu
	tlsState  *tls.ConnectionState // guarded by mu; nil without TLS
	compress  bool                 // guarded by mu: COMPRESS=DEFLATE is active
	sessionUp bool                 // guarded by mu: sess was created

	// Used by the connection's goroutine only (and by the disconnect
	// watcher while that goroutine waits for it).
	deflate       *flate.Writer // nil unless COMPRESS
	enc           encoder
	r             reader
	uw            UpdateWriter
	sess          Session
	updates       <-chan struct{}
	caps          imap.CapSet // advertised once authenticated; shared, read-only
	notifyActive  bool
	loginDeadline time.Time
	// cmdCtx is the context of the running command: cancelled when the
	// connection ends, and when the client goes away while the command
	// runs (watchDisconnect).
	cmdCtx context.Context

	rdTimeout atomic.Int64 // current read timeout (ns)
	rdHard    atomic.Int64 // current absolute read deadline (Unix ns; 0: none)
	closing   atomic.Bool  // Shutdown: interrupt reads
	ending    atomic.Bool  // Disconnect: interrupt reads
	bye       *byeError    // guarded by mu; Disconnect's BYE

	// The wait for the client's next bytes (readFirst). It holds no read
	// buffer, and wake interrupts it when it is wakeable. Every read sets
	// its deadline under waitMu, and everything that interrupts reads
	// (wake, Disconnect, Shutdown) sets the past one under it, so no
	// interruption is lost. Lock order: waitMu, then mu.
	waitMu  sync.Mutex
	waiting bool // guarded by waitMu: a wakeable wait is in progress
	woken   bool // guarded by waitMu: wake was called during it
	// first is the byte that ended a wait without a read buffer, until
	// the buffer takes it (nfirst 1). Connection's goroutine only.
	first  [1]byte
	nfirst int
	// updated: the forwarder of a Session without SessionWaker saw
	// Updates signal.
	updated atomic.Bool
	waker   bool // the Session implements SessionWaker
}

func newConn(s *Server, nc net.Conn) *Conn {
	id := s.nextID.Add(1)
	remote := ""
	if a := nc.RemoteAddr(); a != nil {
		remote = a.String()
	}
	ctx, cancel := context.WithCancel(s.ctx)
	c := &Conn{
		srv:     s,
		id:      id,
		log:     s.log.With("cid", id, "remote", remote),
		raw:     nc,
		lim:     &s.lim,
		ctx:     ctx,
		end:     cancel,
		netConn: nc,
		state:   stateNotAuth,
		enabled: imap.CapSet{},
	}
	c.enc.dst = netWriter{c}
	c.enc.bufs = &s.writeBufs
	c.r.cont = c.continueLiteral
	c.uw.c = c
	c.loginDeadline = time.Now().Add(c.lim.LoginTimeout)
	c.cmdCtx = ctx
	return c
}

// writeOffStack writes and flushes s off the connection's goroutine
// (TLS's record sealing is deep).
func (c *Conn) writeOffStack(s string) error {
	return offStack(func() error {
		c.enc.raw(s)
		return c.flush()
	})
}

// offStack runs f on a goroutine of its own and waits for it: the stack
// that f grows (a TLS handshake, LOGIN's unlock, SELECT, FETCH: 8 KiB and
// more) goes with that goroutine when f returns, instead of staying with
// the connection's goroutine, which then waits for its client with the
// small stack that waiting needs (issue 11: memory per idle session).
// It costs a goroutine start, about a microsecond, per call.
func offStack[T any](f func() T) T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return <-ch
}

// watchDelay is how long a command runs before a goroutine starts watching
// for the client going away: quick commands never pay for it.
const watchDelay = 20 * time.Millisecond

// watchDisconnect cancels cancel if the client closes the connection while
// a command runs (so that a long SEARCH or an argon2id unlock stops when
// nobody waits for it). It may only be used while the command does not
// read from the client itself. The returned stop must be called when the
// command ends, before the connection is read again.
func (c *Conn) watchDisconnect(cancel context.CancelFunc) (stop func()) {
	var mu sync.Mutex
	stopped, running := false, false
	done := make(chan struct{})
	t := time.AfterFunc(watchDelay, func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running = true
		mu.Unlock()
		defer close(done)
		_, err := c.r.br.Peek(1)
		mu.Lock()
		gone := err != nil && !stopped
		mu.Unlock()
		if gone {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !c.closing.Load() {
				// The read timeout of the command phase, not a hang-up.
				return
			}
			c.log.Info("client went away during a command", "err", err)
			cancel()
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		stopped = true
		wasRunning := running
		mu.Unlock()
		if !wasRunning {
			return
		}
		// Wake the watcher's read; bufio and TLS keep what they read. The
		// read may set its own deadline after this one (it computed it
		// before): set the past one again until the watcher is done.
		for {
			c.nc().SetReadDeadline(time.Unix(1, 0))
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// ID returns the connection's number, as logged under "cid".
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// LocalAddr returns the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// Logger returns the connection's logger (proto, cid, remote).
func (c *Conn) Logger() *slog.Logger { return c.log }

// TLS returns the TLS state, or nil while the connection is not TLS.
func (c *Conn) TLS() *tls.ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlsState
}

// Enabled reports whether the client enabled an extension: with ENABLE
// (CONDSTORE, QRESYNC, IMAP4rev2, UTF8=ACCEPT) or, for CONDSTORE, by using
// it (RFC 7162 §3.1).
func (c *Conn) Enabled(cap imap.Cap) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.enabled[cap]
	return ok
}

func (c *Conn) nc() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.netConn
}

// getState returns the connection state.
func (c *Conn) getState() connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Conn) setState(s connState) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

func (c *Conn) enable(caps ...imap.Cap) {
	c.mu.Lock()
	for _, cp := range caps {
		c.enabled[cp] = struct{}{}
	}
	_, rev2 := c.enabled[imap.CapIMAP4rev2]
	_, u8 := c.enabled[imap.CapUTF8Accept]
	c.mu.Unlock()
	c.enc.utf8 = rev2 || u8
}

// stateLimits returns the limits of a state.
func (c *Conn) stateLimits(s connState) *StateLimits {
	if s == stateNotAuth {
		return &c.lim.PreAuth
	}
	return &c.lim.Auth
}

// netReader reads from the connection with the current read deadline.
type netReader struct{ c *Conn }

func (r netReader) Read(p []byte) (int, error) {
	c := r.c
	if c.nfirst > 0 && len(p) > 0 {
		p[0] = c.first[0]
		c.nfirst = 0
		return 1, nil
	}
	nc := c.nc()
	c.waitMu.Lock()
	nc.SetReadDeadline(c.readDeadlineLocked())
	c.waitMu.Unlock()
	return nc.Read(p)
}

// netWriter writes to the connection with a deadline per write.
type netWriter struct{ c *Conn }

func (w netWriter) Write(p []byte) (int, error) {
	nc := w.c.nc()
	nc.SetWriteDeadline(time.Now().Add(w.c.lim.WriteTimeout))
	return nc.Write(p)
}

// readDeadlineLocked is now + the phase's timeout, capped by its hard
// deadline; in the past once the server shuts down, the session is ended,
// or a wakeable wait is woken. The caller holds waitMu.
func (c *Conn) readDeadlineLocked() time.Time {
	if c.closing.Load() || c.ending.Load() || c.woken {
		return time.Unix(1, 0)
	}
	d := time.Now().Add(time.Duration(c.rdTimeout.Load()))
	if h := c.rdHard.Load(); h != 0 && h < d.UnixNano() {
		return time.Unix(0, h)
	}
	return d
}

// setReadPhase sets the read timeout and hard deadline (zero: none).
func (c *Conn) setReadPhase(timeout time.Duration, hard time.Time) {
	c.rdTimeout.Store(int64(timeout))
	if hard.IsZero() {
		c.rdHard.Store(0)
	} else {
		c.rdHard.Store(hard.UnixNano())
	}
}

// Disconnect ends the connection from any goroutine (the Session's, when
// its login is revoked): the running command's context is cancelled, and
// "* BYE [code] text" is sent once no command is writing, at once if the
// connection waits for a command or is in IDLE; then it is closed.
func (c *Conn) Disconnect(code imap.ResponseCode, text string) {
	c.mu.Lock()
	if c.bye == nil {
		c.bye = &byeError{code: code, text: text}
	}
	c.mu.Unlock()
	c.ending.Store(true)
	c.end()
	c.interruptReads()
}

// interruptReads makes the read in progress, if any, fail now; the
// reads after it see closing, ending or woken and fail too.
func (c *Conn) interruptReads() {
	if h := c.srv.interruptHook; h != nil {
		h()
	}
	c.waitMu.Lock()
	c.nc().SetReadDeadline(time.Unix(1, 0))
	c.waitMu.Unlock()
}

// wake interrupts a wakeable wait for the client (readFirst): the
// Session has updates, or IDLE's keepalive is due. Safe for concurrent
// use; it does nothing while no such wait is in progress.
func (c *Conn) wake() {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	if c.waiting && !c.woken {
		c.woken = true
		c.nc().SetReadDeadline(time.Unix(1, 0))
	}
}

// pendingBye returns Disconnect's BYE, or nil.
func (c *Conn) pendingBye() *byeError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bye
}

// interrupt makes blocked and future reads fail at once (Shutdown).
func (c *Conn) interrupt() {
	c.closing.Store(true)
	c.interruptReads()
}

// flush sends what is buffered (through the compressor, if any).
func (c *Conn) flush() error {
	if err := c.enc.flush(); err != nil {
		return err
	}
	if c.deflate != nil {
		if err := c.deflate.Flush(); err != nil {
			c.enc.err = err
			return err
		}
	}
	return nil
}

// continueLiteral sends the continuation request of an accepted
// synchronising literal.
func (c *Conn) continueLiteral() error {
	c.enc.raw("+ Ready for literal data\r\n")
	return c.flush()
}

// serve runs the connection to its end.
func (c *Conn) serve() {
	defer c.close()
	if tc, ok := c.raw.(*tls.Conn); ok {
		if err := c.handshake(tc); err != nil {
			c.log.Info("TLS handshake failed", "err", err)
			return
		}
	}
	sess, err := c.srv.opt.NewSession(c)
	if err != nil {
		c.log.Error("new session", "err", err)
		c.enc.raw("* BYE [UNAVAILABLE] Service temporarily unavailable\r\n")
		c.flush()
		return
	}
	c.mu.Lock()
	c.sess = sess
	c.sessionUp = true
	c.mu.Unlock()
	c.updates = sess.Updates()
	if w, ok := sess.(SessionWaker); ok && c.updates != nil {
		c.waker = true
		w.OnUpdates(c.wake)
	}
	c.caps = c.computeCaps()
	c.writeGreeting()
	if err := c.flush(); err != nil {
		return
	}
	for {
		err := c.next()
		if err != nil {
			c.finish(err)
			return
		}
	}
}

// handshake completes a TLS handshake within the pre-auth read timeout.
func (c *Conn) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.lim.PreAuth.ReadTimeout)
	defer cancel()
	if err := offStack(func() error { return tc.HandshakeContext(ctx) }); err != nil {
		return err
	}
	st := tc.ConnectionState()
	c.mu.Lock()
	c.tlsState = &st
	c.mu.Unlock()
	return nil
}

func (c *Conn) close() {
	c.end()
	if c.sess != nil {
		if err := c.sess.Close(); err != nil {
			c.log.Warn("closing session", "err", err)
		}
	}
	if c.deflate != nil {
		c.deflate.Close()
	}
	c.nc().Close()
}

var errShutdown = errors.New("imap wire: server shutting down")

// finish ends the connection after err: with a BYE where the stream still
// allows one.
func (c *Conn) finish(err error) {
	var be *byeError
	var ne net.Error
	if pb := c.pendingBye(); pb != nil {
		c.log.Info("closing connection", "err", pb)
		c.writeBye(pb.code, pb.text)
		return
	}
	switch {
	case errors.Is(err, errSessionEnded):
		return
	case errors.As(err, &be):
		c.log.Info("closing connection", "err", err)
		c.writeBye(be.code, be.text)
	case errors.Is(err, errShutdown), c.closing.Load():
		c.writeBye("", "Server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Info("closing idle connection")
		c.writeBye("", "Autologout; idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("client closed the connection")
	case errors.Is(err, errShortBody):
		c.log.Error("response cut short; closing", "err", err)
	default:
		c.log.Info("connection ended", "err", err)
	}
}

func (c *Conn) writeBye(code imap.ResponseCode, text string) {
	if c.enc.err != nil {
		return
	}
	c.enc.raw("* BYE ")
	if code != "" {
		c.enc.raw("[" + string(code) + "] ")
	}
	c.enc.raw(text)
	c.enc.crlf()
	c.flush()
}

func (c *Conn) writeGreeting() {
	text := c.srv.opt.Greeting
	if text == "" {
		text = "sealmail ready"
	}
	c.enc.raw("* OK [CAPABILITY ")
	c.enc.raw(strings.Join(c.capabilityList(), " "))
	c.enc.raw("] ")
	c.enc.raw(safeText(text))
	c.enc.crlf()
}

// computeCaps returns what is advertised once authenticated: the base
// set, APPENDLIMIT and Options.Caps that this Session implements. The set
// is shared, read-only, by every connection whose Session implements the
// same of them (Server.capSets), so an idle connection does not keep a
// map of its own.
func (c *Conn) computeCaps() imap.CapSet {
	var have uint64 // bit i: c.srv.caps[i] is advertised
	for i, cp := range c.srv.caps {
		if need := optionalCaps[cp]; need != nil && !need(c.sess) {
			c.log.Error("capability not advertised: the session does not implement it", "capability", string(cp))
			continue
		}
		have |= 1 << i
	}
	return c.srv.capSet(have)
}

// canAuth reports whether passwords may be sent now.
func (c *Conn) canAuth() bool {
	return c.srv.opt.InsecureAuth || c.TLS() != nil
}

// capabilityList returns the CAPABILITY response's list for the current
// state: before authentication only what a client needs to log in.
func (c *Conn) capabilityList() []string {
	st := c.getState()
	if st == stateNotAuth {
		l := []string{"IMAP4rev1", "IMAP4rev2", "SASL-IR", "LITERAL+", "ENABLE", "IDLE", "ID"}
		if c.TLS() == nil && c.srv.opt.TLSConfig != nil {
			l = append(l, "STARTTLS")
		}
		if c.canAuth() {
			l = append(l, "AUTH=PLAIN")
		} else {
			l = append(l, "LOGINDISABLED")
		}
		return l
	}
	l := make([]string, 0, len(c.caps)+1)
	for _, cp := range baseCaps {
		l = append(l, string(cp))
	}
	c.mu.Lock()
	compress := c.compress
	c.mu.Unlock()
	for _, cp := range c.srv.caps {
		if _, ok := c.caps[cp]; !ok || cp == "COMPRESS=DEFLATE" && compress {
			continue
		}
		l = append(l, string(cp))
	}
	l = append(l, "APPENDLIMIT="+itoa(c.lim.AppendLimit))
	return l
}

// next waits for one command and runs it.
func (c *Conn) next() error {
	if c.closing.Load() {
		return errShutdown
	}
	if c.ending.Load() {
		return errSessionEnded
	}
	st := c.getState()
	sl := c.stateLimits(st)
	var hard time.Time
	if st == stateNotAuth {
		hard = c.loginDeadline
	}
	c.setReadPhase(sl.IdleTimeout, hard)
	if err := c.waitCommand(); err != nil {
		return err
	}
	if sl.CommandTimeout > 0 {
		if h := time.Now().Add(sl.CommandTimeout); hard.IsZero() || h.Before(hard) {
			hard = h
		}
	}
	c.setReadPhase(sl.ReadTimeout, hard)
	c.r.begin(sl)
	return c.readAndRun(st)
}

// waitCommand blocks until the client sends something. When NOTIFY is
// active it meanwhile writes the Session's updates as they come.
func (c *Conn) waitCommand() error {
	if !c.notifyActive || c.updates == nil {
		return c.readFirst(false)
	}
	return c.waitUpdating(PollNotify, 0)
}

// errWoken ends a wakeable wait that wake interrupted, or that found
// updates pending.
var errWoken = errors.New("imap wire: wait woken")

// readFirst blocks until the client sends something and the read buffer
// holds it. While nothing has arrived it holds no read buffer (one is
// taken from the Server's pool when the first byte is in), except under
// COMPRESS, whose decompressor reads ahead into it. If wakeable, it ends
// with errWoken when the Session has updates, at once or when wake is
// called.
func (c *Conn) readFirst(wakeable bool) error {
	if c.r.br != nil && c.r.br.Buffered() > 0 {
		return nil
	}
	c.waitMu.Lock()
	c.waiting, c.woken = wakeable, false
	c.waitMu.Unlock()
	var err error
	if wakeable && c.updatesPending() {
		// Signalled before the wait began: wake did nothing then.
		err = errWoken
	} else {
		err = c.readFirstByte()
	}
	c.waitMu.Lock()
	woken := c.woken
	c.waiting, c.woken = false, false
	c.waitMu.Unlock()
	var ne net.Error
	if woken && errors.As(err, &ne) && ne.Timeout() && !c.closing.Load() && !c.ending.Load() {
		return errWoken
	}
	return err
}

// updatesPending reports whether Updates signalled (taking the signal).
func (c *Conn) updatesPending() bool {
	select {
	case <-c.updates:
		c.updated.Store(false)
		return true
	default:
		return c.updated.Swap(false)
	}
}

func (c *Conn) readFirstByte() error {
	if c.deflate != nil {
		c.takeReadBuf()
		_, err := c.r.br.Peek(1)
		return err
	}
	c.releaseReadBuf()
	if c.r.br != nil {
		// Bytes left over: the buffer could not be given back.
		_, err := c.r.br.Peek(1)
		return err
	}
	var n int
	var err error
	for n == 0 && err == nil {
		n, err = netReader{c}.Read(c.first[:])
	}
	if n == 0 {
		return err
	}
	c.nfirst = 1
	c.takeReadBuf()
	_, err = c.r.br.Peek(1) // takes first, without reading the network
	return err
}

// takeReadBuf gives the reader a buffer from the Server's pool if it has
// none.
func (c *Conn) takeReadBuf() {
	if c.r.br == nil {
		br := c.srv.readBufs.Get().(*bufio.Reader)
		br.Reset(netReader{c})
		c.r.br = br
	}
}

// releaseReadBuf gives the read buffer back to the pool if it holds
// nothing and reads from the connection itself.
func (c *Conn) releaseReadBuf() {
	if c.r.br != nil && c.r.br.Buffered() == 0 && c.deflate == nil {
		c.r.br.Reset(nil)
		c.srv.readBufs.Put(c.r.br)
		c.r.br = nil
	}
}

// waitUpdating waits for the client's next bytes on this goroutine,
// meanwhile writing the Session's updates (Poll at at) as they are
// signalled and "* OK Still here" every keepalive (0: never). A Session
// with SessionWaker wakes the wait itself; for one without, a goroutine
// forwards Updates while it lasts.
func (c *Conn) waitUpdating(at PollPoint, keepalive time.Duration) error {
	if !c.waker && c.updates != nil {
		quit, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-quit:
					return
				case <-c.updates:
					c.updated.Store(true)
					c.wake()
				}
			}
		}()
		defer func() {
			close(quit)
			<-done
		}()
	}
	var next time.Time
	var t *time.Timer
	if keepalive > 0 {
		next = time.Now().Add(keepalive)
		t = time.AfterFunc(keepalive, c.wake)
		defer t.Stop()
	}
	for {
		err := c.readFirst(true)
		if !errors.Is(err, errWoken) {
			return err
		}
		// Woken for updates or the keepalive: Poll is cheap when
		// nothing is pending.
		if err := c.poll(at); err != nil {
			return err
		}
		if keepalive > 0 && !time.Now().Before(next) {
			if err := c.writeOffStack("* OK Still here\r\n"); err != nil {
				return err
			}
			next = time.Now().Add(keepalive)
			t.Reset(keepalive)
		}
	}
}

// poll asks the Session for its pending updates and sends them, off the
// connection's goroutine (it is called while that goroutine waits for
// its client).
func (c *Conn) poll(at PollPoint) error {
	st := c.getState()
	if st != stateAuth && st != stateSelected {
		return nil
	}
	return offStack(func() error { return c.pollNow(at) })
}

func (c *Conn) pollNow(at PollPoint) error {
	perr := c.sess.Poll(c.ctx, &c.uw, at)
	if err := c.uw.end(); err != nil {
		return err
	}
	if err := c.pollFailed(perr); err != nil {
		return err
	}
	return c.flush()
}

// pollFailed handles an error of Poll: a BYE (the selected mailbox was
// deleted, the account is gone) is sent and ends the connection; other
// errors are logged, as no command waits for them.
func (c *Conn) pollFailed(err error) error {
	if err == nil {
		return nil
	}
	resp, internal := responseFor(err)
	if internal {
		c.log.Error("poll", "err", err)
	}
	if resp.Type == imap.StatusResponseTypeBye {
		c.writeBye(resp.Code, resp.Text)
		return errSessionEnded
	}
	return nil
}

// startTLS switches the connection to TLS after "OK Begin TLS".
func (c *Conn) startTLS() error {
	// Anything the client sent after STARTTLS was sent in the clear and
	// must not be taken as coming over TLS (command injection).
	if n := c.r.br.Buffered(); n > 0 {
		c.log.Warn("discarding plaintext sent after STARTTLS", "bytes", n)
	}
	tc := tls.Server(c.raw, c.srv.opt.TLSConfig)
	if err := c.handshake(tc); err != nil {
		return err
	}
	c.mu.Lock()
	c.netConn = tc
	c.mu.Unlock()
	c.r.br.Reset(netReader{c})
	c.enc.setDst(netWriter{c})
	return nil
}

// startCompress switches both directions to DEFLATE (RFC 4978) after the
// OK has been sent. Bytes the client already sent after COMPRESS are
// compressed data and go to the decompressor.
func (c *Conn) startCompress() error {
	n := c.r.br.Buffered()
	pending, _ := c.r.br.Peek(n)
	pending = bytes.Clone(pending)
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(pending), netReader{c}))
	fw, err := flate.NewWriter(netWriter{c}, flate.BestSpeed)
	if err != nil {
		return err
	}
	c.r.br.Reset(fr)
	c.enc.setDst(fw)
	c.deflate = fw
	c.mu.Lock()
	c.compress = true
	c.mu.Unlock()
	return nil
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
