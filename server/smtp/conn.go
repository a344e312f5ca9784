package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sealmail/sealmail/server/account"
)

// Read faults, sticky in conn.readErr.
var (
	errReadTimeout = errors.New("smtp: read timed out")
	errTooSlow     = errors.New("smtp: data arrives too slowly")
	errInterrupted = errors.New("smtp: read interrupted by shutdown")
	errLineTooLong = errors.New("smtp: command line too long")
)

// dataRateGrace is how long message data may arrive at any rate before
// Limits.MinDataRate applies.
const dataRateGrace = 30 * time.Second

// Connection buffers: commands are short (maxCommandLine), message lines
// pass through in pieces.
const (
	readBufSize  = 8 << 10
	writeBufSize = 4 << 10
)

// conn is one client connection: the SMTP wire protocol (RFC 5321 and
// the extensions offered), run by one goroutine, serve. Everything but
// the fields under mu belongs to that goroutine.
type conn struct {
	srv    *Server
	raw    net.Conn     // immutable: as accepted
	client string       // immutable: rate and limit key (clientKey)
	ip     net.IP       // immutable; may be nil
	log    *slog.Logger // immutable; carries cid and remote
	ctx    context.Context
	cancel context.CancelFunc // ends ctx: abort, or the end of serve

	nc       net.Conn // raw, or the TLS connection over it
	br       *bufio.Reader
	bw       *bufio.Writer
	wbuf     []byte // scratch for replies
	last     *Reply // the last reply queued, for Metrics
	tls      bool
	helo     string // "" until HELO/EHLO
	extended bool   // EHLO, not HELO
	errs     int    // refused commands
	unknown  int    // unknown local recipients named
	tx       *transaction

	// Submission: the login, from a successful AUTH until the end.
	login     *account.Session // nil until AUTH succeeds
	account   string           // the login's account; "" before
	stopWatch func() bool      // stops watching login's end
	authFails int              // failed AUTH commands

	readErr   error     // sticky: nothing is read after a timeout or failure
	deadline  time.Time // of the next command read
	inData    bool      // reading message data
	dataStart time.Time // of the current data read phase
	dataEnd   time.Time // total deadline of the current data read phase
	dataRead  int64     // bytes read in the current data read phase

	mu          sync.Mutex
	inTx        bool               // guarded by mu: a transaction is open, from MAIL to its final reply
	draining    bool               // guarded by mu: close as soon as no transaction is open
	interrupted bool               // guarded by mu: drain interrupted a read
	authCancel  context.CancelFunc // guarded by mu: ends the login in progress, if any
}

func (s *Server) newConn(nc net.Conn, client string) *conn {
	var ip net.IP
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		srv:    s,
		raw:    nc,
		client: client,
		ip:     ip,
		log:    s.log.With(keyCID, s.newCID(), keyRemote, nc.RemoteAddr().String()),
		ctx:    ctx,
		cancel: cancel,
		nc:     nc,
	}
	_, c.tls = nc.(*tls.Conn)
	if h := s.opt.hooks; h != nil && h.plainIsTLS {
		c.tls = true
	}
	c.br = bufio.NewReaderSize(connReader{c}, readBufSize)
	c.bw = bufio.NewWriterSize(connWriter{c}, writeBufSize)
	return c
}

// connReader is what br reads from. It sends pending replies before it
// blocks, so pipelined replies go out together (RFC 2920 §3) and never
// wait on a read; it sets the read deadline of the phase (a command
// line, or a piece of message data under the transfer's deadline); it
// enforces the minimum data rate; and after any failure it reads nothing
// more, so bytes after a timeout are never taken for commands.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.readErr != nil {
		return 0, c.readErr
	}
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.readErr = err
			return 0, err
		}
	}
	now := time.Now()
	dl := c.deadline
	if c.inData {
		dl = earlier(c.dataEnd, now.Add(c.srv.lim.CommandTimeout))
	}
	c.nc.SetReadDeadline(dl)
	c.mu.Lock()
	intr := c.interrupted
	c.mu.Unlock()
	if intr {
		c.readErr = errInterrupted
		return 0, c.readErr
	}
	n, err := c.nc.Read(p)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			c.mu.Lock()
			intr := c.interrupted
			c.mu.Unlock()
			if intr {
				err = errInterrupted
			} else {
				err = errReadTimeout
			}
		}
		c.readErr = err
		return n, err
	}
	if c.inData {
		c.dataRead += int64(n)
		if el := time.Since(c.dataStart); el > c.srv.rateGrace &&
			float64(c.dataRead) < float64(c.srv.lim.MinDataRate)*(el-c.srv.rateGrace).Seconds() {
			c.readErr = errTooSlow // the next read fails
		}
	}
	return n, nil
}

// connWriter is what bw writes to: each write has CommandTimeout.
type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.srv.lim.CommandTimeout))
	return w.c.nc.Write(p)
}

// reply queues r; it is sent before the next read blocks, or at close.
func (c *conn) reply(r *Reply) {
	c.last = r
	c.wbuf = appendReply(c.wbuf[:0], r)
	c.bw.Write(c.wbuf)
}

// beginData starts a phase of reading message data, which must end by
// end and keep up Limits.MinDataRate.
func (c *conn) beginData(end time.Time) {
	c.inData = true
	c.dataStart = time.Now()
	c.dataEnd = end
	c.dataRead = 0
}

func (c *conn) endData() { c.inData = false }

// serve runs the connection to its end.
func (c *conn) serve() {
	defer c.srv.conns.Remove(c)
	defer c.finish()
	c.log.Debug("connected", "tls", c.tls)
	if c.shouldClose() {
		c.reply(replyShutdown)
		return
	}
	c.reply(&Reply{220, "", c.srv.opt.Hostname + " ESMTP"})
	for {
		if c.shouldClose() {
			c.reply(replyShutdown)
			return
		}
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				c.reply(replyLineTooLong)
				if c.refused() {
					return
				}
				continue
			}
			c.readFailed(err)
			return
		}
		if c.login != nil && c.login.Context().Err() != nil {
			// The login ended (its secret revoked, the account deleted):
			// nothing more is served, not even a command that arrived
			// before the watcher (auth.go) cut the connection.
			return
		}
		cmd, rep := parseCommand(line)
		if rep != nil {
			c.reply(rep)
			c.countCommand("")
			if c.refused() {
				return
			}
			continue
		}
		ok := c.dispatch(cmd)
		c.countCommand(cmd.verb)
		if !ok {
			return
		}
	}
}

// readFailed answers a failed read, if the failure leaves anything to
// say: a timeout gets 421 4.4.2, a shutdown 421 4.3.2; a client that went
// away gets nothing.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, errInterrupted):
		c.reply(replyShutdown)
	case errors.Is(err, errTooSlow):
		c.log.Info("client too slow", keyErr, err)
		c.reply(replyTooSlow)
	case errors.Is(err, errReadTimeout):
		if c.inData || c.tx != nil && c.tx.bdat != nil {
			c.reply(replyDataTimeout)
		} else {
			c.reply(replyTimeout)
		}
		c.log.Debug("timeout", "in_transaction", c.tx != nil)
	default:
		c.log.Debug("connection ended", keyErr, err)
	}
}

// readLine reads one command line within CommandTimeout (and within the
// transfer's deadline while BDAT chunks arrive) and returns it without
// its line ending. The slice is valid until the next read.
func (c *conn) readLine() ([]byte, error) {
	c.deadline = time.Now().Add(c.srv.lim.CommandTimeout)
	if c.tx != nil && c.tx.bdat != nil {
		c.deadline = earlier(c.deadline, c.tx.bdat.deadline)
	}
	tooLong := false
	for {
		line, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			tooLong = true
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if tooLong || len(line) > maxCommandLine {
			return nil, errLineTooLong
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
}

// refused counts a refused command and, past Limits.Errors, says
// goodbye: it reports whether the connection must close.
func (c *conn) refused() bool {
	c.errs++
	if c.errs >= c.srv.lim.Errors {
		c.log.Info("too many errors; closing")
		c.reply(replyTooManyErrs)
		return true
	}
	return false
}

// finish sends what is queued, frees the transaction and closes.
func (c *conn) finish() {
	c.resetTx()
	c.endLogin()
	c.bw.Flush()
	c.cancel()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Close()
	c.log.Debug("closed")
}

// beginTx marks a transaction open (MAIL accepted). It reports false if
// the server is shutting down: no transaction may begin then.
func (c *conn) beginTx() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.inTx = true
	return true
}

// shouldClose reports whether the server shuts down and no transaction
// is open.
func (c *conn) shouldClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining && !c.inTx
}

// drain asks the connection to close as soon as no transaction is open:
// now, if none is (a read in progress is interrupted, and the client gets
// 421 4.3.2), or after the reply that ends the open one.
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	idle := !c.inTx
	if idle {
		c.interrupted = true
		if c.authCancel != nil {
			c.authCancel()
		}
	}
	c.mu.Unlock()
	if idle {
		c.raw.SetReadDeadline(time.Now())
	}
}

// abort cuts the connection off, whatever it is doing.
func (c *conn) abort() {
	c.cancel()
	c.raw.Close()
}

// earlier returns the earlier of two times.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
