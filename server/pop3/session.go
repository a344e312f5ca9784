package pop3

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sealmail/sealmail/server/account"
)

// greeting is the banner: no product name or version (RFC 2449's
// IMPLEMENTATION is not advertised either), no APOP timestamp.
const greeting = "POP3 server ready"

// session is one connection. Its goroutine runs the commands one at a
// time; Shutdown (interrupt), the account service (when it ends the
// login) and other sessions (removed) reach it from other goroutines
// through mu.
type session struct {
	srv   *Server      // immutable
	log   *slog.Logger // immutable: proto, cid, remote
	start time.Time    // immutable

	// Owned by the session's goroutine.
	c        *conn
	tls      bool
	user     string // from USER, until PASS
	cmds     int    // commands before login
	bad      int    // bad commands
	quit     bool
	drop     *maildrop // nil before login
	alog     *slog.Logger
	ahead    *readahead // may be nil
	lastRetr int        // message index of the last RETR; -1 none
	stopped  func() bool
	// cctx is the context of the commands after login: it ends with the
	// login (account service) or at Shutdown.
	cctx    context.Context
	ccancel context.CancelFunc

	mu      sync.Mutex
	idle    bool             // guarded by mu: waiting for a command
	stop    bool             // guarded by mu: Shutdown asked the session to end
	login   *account.Session // guarded by mu; nil before login
	account string           // guarded by mu
	mailbox uint64           // guarded by mu: INBOX's ID after login
	gone    map[uint32]bool  // guarded by mu: removed by others meanwhile
}

// serve runs the session until QUIT, an error or Shutdown.
func (s *session) serve() {
	defer s.srv.sessions.Remove(s)
	defer s.close()
	s.log.Debug("connected")
	s.c.ok(greeting)
	if err := s.c.bw.Flush(); err != nil {
		return
	}
	for !s.quit {
		line, err := s.next()
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				s.c.fail(e)
				s.c.bw.Flush()
				return
			}
			if errors.Is(err, errLong) {
				if s.reply(errLineTooLong) {
					continue
				}
				return
			}
			if errors.Is(err, errFlood) {
				s.log.Info("line too long to discard; closing")
				s.c.fail(&Error{Text: "Line too long; closing"})
				s.c.bw.Flush()
			}
			return
		}
		if !s.run(line) {
			return
		}
		if err := s.c.flush(); err != nil {
			return
		}
	}
	s.c.bw.Flush()
}

// next waits for the next command line within the state's deadlines.
// Its errors are *Error for what the client is told before the
// connection closes, or the wire's.
func (s *session) next() ([]byte, error) {
	var deadline time.Time
	var timeout *Error
	if s.drop == nil {
		if s.cmds >= s.srv.lim.PreAuthCommands {
			return nil, errTooManyCmds
		}
		deadline = s.start.Add(s.srv.lim.LoginTimeout)
		timeout = errLoginTimeout
		if idle := time.Now().Add(s.srv.lim.PreAuthIdle); idle.Before(deadline) {
			deadline, timeout = idle, errIdle
		}
	} else {
		deadline, timeout = time.Now().Add(s.srv.lim.IdleTimeout), errIdle
	}
	if s.c.br.Buffered() == 0 {
		if err := s.c.bw.Flush(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if s.stop {
		s.mu.Unlock()
		return nil, errShutdown
	}
	s.idle = true
	s.c.nc.SetReadDeadline(deadline)
	s.mu.Unlock()
	line, err := s.c.readLine()
	s.mu.Lock()
	s.idle = false
	stop := s.stop
	s.mu.Unlock()
	if stop && err != nil {
		return nil, errShutdown
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.log.Info("timed out waiting for a command", "logged_in", s.drop != nil)
		return nil, timeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, timeout
	}
	return line, err
}

// interrupt asks the session to end (Shutdown): at once if it waits for
// a command, else after the command it runs.
func (s *session) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = true
	if s.idle {
		s.c.nc.SetReadDeadline(time.Now())
	}
}

// closeConn closes the connection from another goroutine.
func (s *session) closeConn() {
	s.mu.Lock()
	nc := s.c.nc
	s.mu.Unlock()
	nc.Close()
}

// reply writes a negative response and counts a bad command; it reports
// whether the session goes on.
func (s *session) reply(e *Error) bool {
	s.bad++
	if s.bad >= s.srv.lim.BadCommands {
		e = errTooManyBad
	}
	s.c.fail(e)
	if e.Close {
		s.c.bw.Flush()
		return false
	}
	return true
}

// run runs one command line; it reports whether the session goes on.
func (s *session) run(line []byte) bool {
	if s.drop == nil {
		s.cmds++
	}
	cmd, err := parseCommand(line)
	if err != nil {
		wipe(line) // it may be a password a client sent out of turn
		if err == errUnknownCommand {
			return s.reply(errUnknownCommand)
		}
		s.c.fail(err.(*Error))
		return true
	}
	var h handler
	if s.drop == nil {
		h = authCommands[cmd.name]
	} else {
		h = transCommands[cmd.name]
	}
	if h == nil {
		wipe(line) // it may be a password a client sent out of turn
		if authCommands[cmd.name] != nil || transCommands[cmd.name] != nil {
			return s.reply(errBadState)
		}
		return s.reply(errUnknownCommand)
	}
	// PASS and AUTH wipe the secrets of their lines themselves, before
	// they read more (a later read reuses the buffer).
	e := h(s, &cmd)
	if e == nil {
		return true
	}
	if e.Close {
		s.c.fail(e)
		s.c.bw.Flush()
		return false
	}
	if e == errBadState {
		return s.reply(e)
	}
	s.c.fail(e)
	return true
}

// handler runs one command; it writes the positive response itself and
// returns the negative one.
type handler func(s *session, cmd *command) *Error

var authCommands, transCommands map[string]handler

func init() {
	authCommands = map[string]handler{
		"CAPA": (*session).capa,
		"USER": (*session).userCmd,
		"PASS": (*session).pass,
		"AUTH": (*session).auth,
		"STLS": (*session).stls,
		"QUIT": (*session).quitAuth,
	}
	transCommands = map[string]handler{
		"CAPA": (*session).capa,
		"STAT": (*session).stat,
		"LIST": (*session).list,
		"UIDL": (*session).uidl,
		"RETR": (*session).retr,
		"TOP":  (*session).top,
		"DELE": (*session).dele,
		"RSET": (*session).rset,
		"NOOP": (*session).noop,
		"QUIT": (*session).quitTrans,
	}
}

// close ends the session: the readahead stops, the login ends and its
// keys are wiped, the connection closes.
func (s *session) close() {
	if s.ahead != nil {
		s.ahead.stop()
		s.ahead = nil
	}
	if s.stopped != nil {
		s.stopped()
	}
	if s.ccancel != nil {
		s.ccancel()
	}
	s.mu.Lock()
	login := s.login
	s.login = nil
	s.mu.Unlock()
	if login != nil {
		login.Close()
	}
	s.c.nc.Close()
	s.log.Debug("disconnected")
}

// loginEnded runs when the account service ended the login (account
// deleted, the slot revoked or replaced, shutdown): the keys are wiped
// already; the connection is closed, since POP3 cannot tell the client
// anything it did not ask for.
func (s *session) loginEnded(login *account.Session) {
	s.mu.Lock()
	if s.login != login {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.log.Info("session ended by the account service", "account", login.Account(), "err", context.Cause(login.Context()))
	s.c.nc.Close()
}

// removed marks messages gone that another session removed.
func (s *session) removed(account string, mailbox uint64, uids []uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.account != account || s.mailbox != mailbox || s.login == nil {
		return
	}
	if s.gone == nil {
		s.gone = make(map[uint32]bool, len(uids))
	}
	for _, u := range uids {
		s.gone[u] = true
	}
}

// isGone reports whether another session removed uid.
func (s *session) isGone(uid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone[uid]
}

// wipe zeroes b in place (a line in the read buffer).
func wipe(b []byte) { clear(b) }
