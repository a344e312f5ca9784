package account

import (
	"context"
	"sync"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Session is one successful login: the account's unlocked keyring, held
// for a protocol session (IMAP, POP3, submission). It lives until the
// protocol closes it (logout, disconnect) or the service ends it: when the
// account is deleted, when the slot it unlocked is revoked or replaced by
// a password change, and at Close. Ending it wipes the keyring and
// cancels Context, whose cause (context.Cause) says why.
type Session struct {
	svc     *Service        // immutable
	account string          // immutable
	slot    uint32          // immutable
	kind    store.SlotKind  // immutable
	keys    *crypto.Keyring // immutable pointer; wiped when the session ends
	ctx     context.Context // immutable
	cancel  context.CancelCauseFunc

	once sync.Once
}

// Account is the canonical address the session is logged in to.
func (s *Session) Account() string { return s.account }

// Slot is the ID of the unlock slot the login opened.
func (s *Session) Slot() uint32 { return s.slot }

// SlotKind is the kind of secret the login presented.
func (s *Session) SlotKind() store.SlotKind { return s.kind }

// Keyring is the unlocked account. It is wiped when the session ends;
// later calls on it fail with crypto.ErrWiped.
func (s *Session) Keyring() *crypto.Keyring { return s.keys }

// Context is done when the session ends. If the service ended it,
// context.Cause is ErrAccountDeleted, ErrSlotRemoved or ErrClosed; after
// Close it is context.Canceled. Protocols use context.AfterFunc on it to
// drop the connection.
func (s *Session) Context() context.Context { return s.ctx }

// Close ends the session: it wipes the keyring and unregisters it. It is
// idempotent and safe to call after the service ended the session.
func (s *Session) Close() { s.end(context.Canceled) }

// end wipes, unregisters and cancels, once.
func (s *Session) end(cause error) {
	s.once.Do(func() {
		s.keys.Wipe()
		s.svc.unregister(s)
		s.cancel(cause)
	})
}

// acctState is what the service tracks of one account in memory: its live
// sessions and a generation that every change of the account's slots
// increments, so that a login which read the account before the change
// cannot register a session after it. It exists while the account has
// sessions or logins in flight.
type acctState struct {
	gen      uint64                // guarded by Service.mu
	pending  int                   // guarded by Service.mu; logins in flight
	sessions map[*Session]struct{} // guarded by Service.mu
}

// beginLogin notes a login in flight on account and returns the
// generation it must still see when it registers. done must be called.
func (s *Service) beginLogin(account string) (gen uint64, done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, nil, ErrClosed
	}
	st := s.accts[account]
	if st == nil {
		st = &acctState{sessions: make(map[*Session]struct{})}
		s.accts[account] = st
	}
	st.pending++
	return st.gen, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		st.pending--
		s.dropIdleLocked(account, st)
	}, nil
}

// dropIdleLocked forgets an account's state once nothing refers to it.
func (s *Service) dropIdleLocked(account string, st *acctState) {
	if st.pending == 0 && len(st.sessions) == 0 && s.accts[account] == st {
		delete(s.accts, account)
	}
}

// register makes a live session of keys if the account has not changed
// since gen, and then lets add (may be nil) run under the same lock, so
// that a change cannot slip between the check and add (the unlock cache
// adds its entry there). Otherwise it wipes keys and fails with
// ErrUnavailable. Lock order: Service.mu, then the cache's.
func (s *Service) register(account string, gen uint64, slot store.Slot, keys *crypto.Keyring, add func()) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.accts[account]
	if s.closed || st == nil || st.gen != gen {
		keys.Wipe()
		if s.closed {
			return nil, ErrClosed
		}
		return nil, ErrUnavailable
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sess := &Session{
		svc: s, account: account, slot: slot.ID, kind: slot.Kind,
		keys: keys, ctx: ctx, cancel: cancel,
	}
	st.sessions[sess] = struct{}{}
	if add != nil {
		add()
	}
	return sess, nil
}

func (s *Service) unregister(sess *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.accts[sess.account]
	if st == nil {
		return
	}
	delete(st.sessions, sess)
	s.dropIdleLocked(sess.account, st)
}

// changed records a change of account's slots: logins in flight may not
// register, the unlock cache forgets the account, and the sessions for
// which end returns true end with cause. It returns how many ended.
func (s *Service) changed(account string, end func(*Session) bool, cause error) int {
	s.mu.Lock()
	var ended []*Session
	if st := s.accts[account]; st != nil {
		st.gen++
		for sess := range st.sessions {
			if end(sess) {
				ended = append(ended, sess)
			}
		}
	}
	if s.cache != nil {
		s.cache.forget(account)
	}
	s.mu.Unlock()
	for _, sess := range ended {
		sess.end(cause)
	}
	return len(ended)
}

// Sessions returns the number of live sessions of account.
func (s *Service) Sessions(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.accts[account]; st != nil {
		return len(st.sessions)
	}
	return 0
}
