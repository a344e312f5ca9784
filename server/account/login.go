package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// maxCredentialBytes bounds user names and secrets a login reads.
const maxCredentialBytes = 1024

// LoginRequest is one protocol login.
type LoginRequest struct {
	// Remote is the client's address ("ip:port" or an IP): the throttle
	// counts per IPv4 address and per IPv6 /64.
	Remote string
	// Username is what the client sent; it is canonicalised here.
	Username string
	// Secret is the password or app password. The service does not keep
	// it; the caller wipes it.
	Secret []byte
	// Log receives the login's outcome, with the caller's attributes
	// (proto, cid, remote). nil means the service's logger.
	Log *slog.Logger
}

// Login checks credentials and unlocks the account for a protocol
// session. It accepts the account password or an app password (not a
// recovery code). Failures are answered FailureDelay after the work
// started, with ErrBadCredentials for unknown accounts and wrong secrets
// alike; ErrThrottled refuses an attempt before any work; ErrUnavailable
// and ErrClosed are temporary. ctx is the connection's: a client that
// leaves stops waiting.
//
// The caller owns the returned Session and must Close it when the
// protocol session ends.
func (s *Service) Login(ctx context.Context, req LoginRequest) (*Session, error) {
	sess, err := s.loginRequest(ctx, req)
	s.metrics.Login(loginResult(err))
	return sess, err
}

// loginRequest is Login without the metrics.
func (s *Service) loginRequest(ctx context.Context, req LoginRequest) (*Session, error) {
	log := req.Log
	if log == nil {
		log = s.log
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	account, err := policy.CanonicalAddress(req.Username)
	if err != nil || len(req.Username) > maxCredentialBytes || len(req.Secret) > maxCredentialBytes {
		account = ""
	}
	key := account
	if key == "" {
		key = "invalid:" + strings.ToLower(limitString(req.Username, 64))
	}
	ip := clientKey(req.Remote)

	tk, err := s.throttle.admit(ctx, ip, key)
	if err != nil {
		if errors.Is(err, ErrThrottled) {
			log.Warn("login refused: too many attempts", "account", account)
			return nil, ErrThrottled
		}
		return nil, s.stopped(err)
	}
	start := time.Now()
	sess, err := s.login(ctx, account, req.Secret, tk)
	switch {
	case err == nil:
		tk.done(true)
	case !tk.checked:
		// Shed by the unlock queue, or the client left, before any
		// secret was tried: nothing was learnt, nothing is counted.
		tk.end(unchecked)
	default:
		// In flight for its address until answered (failure delay
		// included).
		tk.fail()
		defer tk.release()
	}
	if err == nil {
		log.Info("login", "account", account, "duration", time.Since(start))
		if s.onLogin != nil {
			s.onLogin(ctx, account, sess.Keyring())
		}
		return sess, nil
	}
	switch {
	case errors.Is(err, ErrThrottled):
		log.Warn("login refused: unlock queue full", "account", account)
		return nil, ErrThrottled
	case ctx.Err() != nil:
		return nil, s.stopped(ctx.Err())
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		log.Info("login raced an account change", "account", account)
		return nil, err
	case errors.Is(err, ErrKeyMismatch):
		// The secret was right; the account's stored data is not. Say so
		// to the operator, and to the client only that it cannot log in
		// now.
		log.Error("login refused: account data tampered with", "account", account, "err", err)
		return nil, ErrKeyMismatch
	case !errors.Is(err, crypto.ErrBadPassword):
		log.Error("login", "account", account, "err", err)
	}
	log.Info("login failed", "account", account, "duration", time.Since(start))
	// Answer failureDelay after the work started, not after it ended: an
	// unknown account (burnt unlocks) and a wrong password (one argon2id
	// run per slot tried) then take the same time, as long as the work
	// fits in the delay.
	if err := sleepCtx(ctx, s.failureDelay-time.Since(start)); err != nil {
		return nil, s.stopped(err)
	}
	return nil, ErrBadCredentials
}

// stopped maps a context error: the service closing is ErrClosed.
func (s *Service) stopped(err error) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}

// login is Login after admission. Errors wrapping crypto.ErrBadPassword
// are wrong credentials; others are causes to log (and still answered as
// wrong credentials).
func (s *Service) login(ctx context.Context, account string, secret []byte, tk *ticket) (*Session, error) {
	if account == "" {
		if err := s.burn(ctx, secret, burnFor(secret, forLogin), tk); err != nil {
			return nil, err
		}
		return nil, crypto.ErrBadPassword
	}
	gen, done, err := s.beginLogin(account)
	if err != nil {
		return nil, err
	}
	defer done()
	acct, err := s.st.Account(ctx, account)
	if err != nil {
		if berr := s.burn(ctx, secret, burnFor(secret, forLogin), tk); berr != nil {
			return nil, berr
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, crypto.ErrBadPassword
		}
		return nil, err
	}
	tries, burns, code, isCode := plan(acct, secret, forLogin)
	defer code.Wipe()
	forms := secretForms(secret, code, isCode, forLogin)

	if s.cache != nil {
		kr, slot, ok, tried := s.cache.lookup(acct, forms)
		tk.checked = tk.checked || tried
		if ok {
			if err := checkPublicKey(kr, acct); err != nil {
				return nil, err
			}
			s.metrics.Unlock(true)
			return s.register(account, gen, slot, kr, nil)
		}
	}
	kr, slot, err := s.unlockSlots(ctx, acct, tries, burns, tk)
	if err != nil {
		return nil, err
	}
	if err := checkPublicKey(kr, acct); err != nil {
		return nil, err
	}
	var add func()
	if s.cache != nil {
		add = func() {
			if err := s.cache.add(account, slot, forms(slot.Kind), kr); err != nil {
				s.log.Warn("unlock cache", "account", account, "err", err)
			}
		}
	}
	return s.register(account, gen, slot, kr, add)
}

// checkPublicKey refuses a login whose account's stored public key is
// not its private key's (crypto.Keyring.CheckPublicKey): whoever can
// write the data directory swapped it, and mail delivered since was
// sealed to someone else. The keyring is wiped.
func checkPublicKey(kr *crypto.Keyring, acct store.Account) error {
	if err := kr.CheckPublicKey(acct.PublicKey); err != nil {
		kr.Wipe()
		return &Error{Kind: ErrKeyMismatch, Msg: fmt.Sprintf(
			"the stored public key of %s is not the key of its private key (%v): the data directory was changed "+
				"by someone other than sealmail; mail delivered since then may be sealed to another key. "+
				"Restore the account's public key from a backup or export it again from the private key", acct.Address, err)}
	}
	return nil
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
