package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

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

// errThrottled refuses a login before any work: too many attempts in
// flight from the address or on the account.
var errThrottled = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeUnavailable,
	Text: "Too many login attempts; try again later",
}

// Login implements imapserver.Session. imapserver refuses it (and
// AUTHENTICATE PLAIN, which ends here too) unless the connection is TLS.
func (s *session) Login(username, password string) error {
	pw := []byte(password)
	defer wipeBytes(pw)

	login, err := s.srv.accounts.Login(s.srv.ctx, account.LoginRequest{
		Remote: s.remote, Username: username, Secret: pw, Log: s.log,
	})
	switch {
	case err == nil:
	case errors.Is(err, account.ErrBadCredentials):
		return imapserver.ErrAuthFailed
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
	s.byeOnce.Do(func() {
		if err := s.conn.Bye(text); err != nil {
			s.log.Debug("BYE not sent", "err", err)
		}
	})
}
