package imap

import (
	"context"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Compile-time checks: every advertised capability has its interface.
var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
)

// session is one IMAP connection. imapserver calls its methods one command
// at a time, except that Idle runs beside the reader of DONE and Shutdown
// may wipe the keys at any time; mu guards what those can touch.
type session struct {
	srv    *Server          // immutable
	conn   *imapserver.Conn // immutable
	remote string           // immutable
	log    *slog.Logger     // immutable base logger (cid, remote)

	mu      sync.Mutex
	account string       // guarded by mu; "" before login
	keys    keyring      // guarded by mu; nil before login and after wipe
	alog    *slog.Logger // guarded by mu; log with account
	sel     *selected    // guarded by mu
	closed  bool         // guarded by mu
}

// selected is the session's view of its selected mailbox.
type selected struct {
	st        *mailboxState              // immutable
	tracker   *imapserver.SessionTracker // immutable; use only under st.mu
	readOnly  bool                       // immutable
	searchRes imap.UIDSet                // last SEARCH RETURN (SAVE) result
}

// state returns what a command of the authenticated state needs.
func (s *session) state() (account string, keys keyring, log *slog.Logger, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil || s.account == "" {
		return "", nil, s.log, errUnavailable
	}
	return s.account, s.keys, s.alog, nil
}

// selectedState returns the selected mailbox as well.
func (s *session) selectedState() (account string, keys keyring, sel *selected, log *slog.Logger, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil || s.account == "" {
		return "", nil, nil, s.log, errUnavailable
	}
	if s.sel == nil {
		return "", nil, nil, s.alog, errNoSelected
	}
	return s.account, s.keys, s.sel, s.alog.With("mailbox", s.sel.st.currentName()), nil
}

// ctx is the context of one command: cancelled on Shutdown.
func (s *session) ctx() context.Context { return s.srv.ctx }

// Close implements imapserver.Session: it ends the session and wipes keys.
func (s *session) Close() error {
	s.unselect()
	s.wipeKeys()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.srv.removeSession(s)
	return nil
}

// wipeKeys drops the keyring; later commands fail until a new login.
func (s *session) wipeKeys() {
	s.mu.Lock()
	keys := s.keys
	s.keys = nil
	s.mu.Unlock()
	if keys != nil {
		keys.Wipe()
	}
}

// Unauthenticate implements imapserver.SessionUnauthenticate.
func (s *session) Unauthenticate() error {
	s.unselect()
	s.wipeKeys()
	s.mu.Lock()
	s.account = ""
	s.alog = nil
	s.mu.Unlock()
	return nil
}

// Namespace implements imapserver.SessionNamespace: one personal namespace.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	}, nil
}

// AppendLimit implements imapserver.SessionAppendLimit.
func (s *session) AppendLimit() uint32 { return s.srv.appendLimit }

// Poll implements imapserver.Session.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	sel := s.sel
	s.mu.Unlock()
	if sel == nil {
		return nil
	}
	return sel.tracker.Poll(w, allowExpunge)
}

// Idle implements imapserver.Session. In the authenticated state it only
// waits for DONE (RFC 9051 allows IDLE there).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	sel := s.sel
	s.mu.Unlock()
	if sel == nil {
		select {
		case <-stop:
		case <-s.srv.ctx.Done():
		}
		return nil
	}
	return sel.tracker.Idle(w, stop)
}

// Unselect implements imapserver.Session.
func (s *session) Unselect() error {
	s.unselect()
	return nil
}

func (s *session) unselect() {
	s.mu.Lock()
	sel := s.sel
	s.sel = nil
	s.mu.Unlock()
	if sel == nil {
		return
	}
	sel.st.mu.Lock()
	sel.tracker.Close()
	sel.st.mu.Unlock()
	s.srv.reg.release(sel.st)
}
