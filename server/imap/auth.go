package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/account"
)

// Authenticator checks credentials and unlocks accounts. *account.Service
// implements it: the throttle, the unlock cache and the fixed failure
// delay are shared by every protocol there.
type Authenticator interface {
	// Login returns an unlocked session, or account.ErrBadCredentials
	// (also for unknown accounts, after the failure delay),
	// account.ErrThrottled, account.ErrUnavailable or account.ErrClosed.
	Login(ctx context.Context, req account.LoginRequest) (*account.Session, error)
}

var _ Authenticator = (*account.Service)(nil)

// Errors of LOGIN and AUTHENTICATE.
var (
	errAuthFailed = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeAuthenticationFailed,
		Text: "Authentication failed",
	}
	// errThrottled refuses a login before any work: too many attempts in
	// flight from the address or on the account.
	errThrottled = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "Too many login attempts; try again later",
	}
)

// Login implements wire.Session. The wire layer calls it (for LOGIN and
// AUTHENTICATE PLAIN) only on TLS connections, and wipes password after.
// ctx ends if the client hangs up meanwhile.
func (s *session) Login(ctx context.Context, username string, password []byte) error {
	login, err := s.srv.accounts.Login(ctx, account.LoginRequest{
		Remote: s.conn.RemoteAddr().String(), Username: username, Secret: password, Log: s.log,
	})
	switch {
	case err == nil:
	case errors.Is(err, account.ErrBadCredentials):
		return errAuthFailed
	case errors.Is(err, account.ErrThrottled):
		return errThrottled
	default:
		return errUnavailable
	}

	s.mu.Lock()
	if s.closed || s.srv.ctx.Err() != nil {
		s.mu.Unlock()
		login.Close()
		return errUnavailable
	}
	old, oldStop := s.login, s.stopWatch
	s.account = login.Account()
	s.keys = login.Keyring()
	s.login = login
	s.alog = s.log.With("account", login.Account())
	s.reader = s.srv.mbx.Reader(login.Account(), login.Keyring(), s.alog)
	// The account service ends the login when the account is deleted or
	// the slot it used is revoked; the client is then told and dropped.
	s.stopWatch = context.AfterFunc(login.Context(), func() { s.loginEnded(login) })
	s.mu.Unlock()
	if old != nil {
		oldStop()
		old.Close()
	}
	return nil
}

// loginEnded runs when the account service ended this session's login:
// the keys are already wiped; say why and close the connection.
func (s *session) loginEnded(login *account.Session) {
	s.mu.Lock()
	if s.login != login || s.closed {
		s.mu.Unlock()
		return
	}
	s.keys = nil
	s.reader = nil
	s.mu.Unlock()
	cause := context.Cause(login.Context())
	text := "Session ended"
	switch {
	case errors.Is(cause, account.ErrAccountDeleted):
		text = "Account deleted"
	case errors.Is(cause, account.ErrSlotRemoved):
		text = "Credentials revoked or changed; log in again"
	case errors.Is(cause, account.ErrClosed):
		text = "Server shutting down"
	}
	s.log.Info("session ended by the account service", "account", login.Account(), "err", cause)
	s.conn.Disconnect("", text)
}
