package account

import "errors"

// Metrics hears what the service does, for monitoring (cmd/sealmail
// exports it to Prometheus). Its methods are called synchronously from
// logins and changes: they must be cheap, must not block and must be safe
// for concurrent use. They receive no address, secret or anything a
// client chose.
type Metrics interface {
	// Login is called once for every Login, with its outcome.
	Login(result LoginResult)
	// Unlock is called for every account unlocked, by a login or a
	// change: from the unlock cache (cached), or by argon2id.
	Unlock(cached bool)
}

// LoginResult is the outcome of one Login.
type LoginResult uint8

const (
	LoginOK          LoginResult = iota // a session began
	LoginFailed                         // wrong credentials or unknown account (ErrBadCredentials)
	LoginThrottled                      // refused before any work (ErrThrottled)
	LoginUnavailable                    // raced a change, the service stopped, or the client left
)

func (r LoginResult) String() string {
	switch r {
	case LoginOK:
		return "ok"
	case LoginFailed:
		return "failed"
	case LoginThrottled:
		return "throttled"
	}
	return "unavailable"
}

// loginResult classifies Login's error.
func loginResult(err error) LoginResult {
	switch {
	case err == nil:
		return LoginOK
	case errors.Is(err, ErrBadCredentials):
		return LoginFailed
	case errors.Is(err, ErrThrottled):
		return LoginThrottled
	}
	return LoginUnavailable
}

// SessionCount returns the number of live sessions of all accounts:
// logged-in protocol sessions, each holding an unlocked keyring.
func (s *Service) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.accts {
		n += len(st.sessions)
	}
	return n
}

// Derivations returns how many argon2id runs logins and changes have made
// since the service started, burnt ones (for unknown accounts and wrong
// secrets) included: the CPU and memory that passwords cost.
func (s *Service) Derivations() uint64 { return s.derivations.Load() }

// noMetrics is Metrics when Options.Metrics is nil.
type noMetrics struct{}

func (noMetrics) Login(LoginResult) {}
func (noMetrics) Unlock(bool)       {}
