package imap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/store"
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

	mu        sync.Mutex
	account   string           // guarded by mu; "" before login
	keys      keyring          // guarded by mu; nil before login and after wipe
	login     *account.Session // guarded by mu; holds keys; nil before login
	stopWatch func() bool      // guarded by mu; stops watching login's end
	alog      *slog.Logger     // guarded by mu; log with account
	sel       *selected        // guarded by mu
	closed    bool             // guarded by mu
	byeOnce   sync.Once        // guards the BYE of byeGone and of loginEnded
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

// selectedState returns the selected mailbox as well. If it was deleted,
// the client is told with BYE and the command fails (see byeGone).
func (s *session) selectedState() (account string, keys keyring, sel *selected, log *slog.Logger, err error) {
	s.mu.Lock()
	if s.keys == nil || s.account == "" {
		s.mu.Unlock()
		return "", nil, nil, s.log, errUnavailable
	}
	if s.sel == nil {
		s.mu.Unlock()
		return "", nil, nil, s.alog, errNoSelected
	}
	account, keys, sel = s.account, s.keys, s.sel
	log = s.alog.With("mailbox", sel.st.currentName())
	s.mu.Unlock()
	if sel.st.isGone() {
		return "", nil, nil, log, s.byeGone(log)
	}
	return account, keys, sel, log, nil
}

// byeMailboxGone is the untagged BYE sent to a session whose selected
// mailbox was deleted by another session, in Dovecot's words.
const byeMailboxGone = "Selected mailbox was deleted, have to disconnect"

// errMailboxGone ends a command after byeGone. The connection is closed
// by then, so the client never reads it.
var errMailboxGone = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeNonExistent,
	Text: "Selected mailbox was deleted",
}

// errByeSent ends Poll and Idle after byeGone. It wraps net.ErrClosed,
// which imapserver takes as a connection closed on purpose (nothing to
// log).
var errByeSent = fmt.Errorf("imap: BYE sent: %w", net.ErrClosed)

// byeGone tells the client that its selected mailbox was deleted under it
// and closes the connection, as Dovecot does: its sequence numbers and
// UIDs name nothing any more, and IMAP has no way to close a selected
// mailbox from the server side (RFC 2180 §3.3). It returns errMailboxGone.
func (s *session) byeGone(log *slog.Logger) error {
	s.byeOnce.Do(func() {
		log.Info("selected mailbox was deleted; disconnecting")
		if err := s.conn.Bye(byeMailboxGone); err != nil {
			log.Debug("BYE not sent", "err", err)
		}
	})
	return errMailboxGone
}

// selectedGone reports whether the selected mailbox no longer exists. A
// deletion by this process is known already; one by another process (a
// CLI, another node of a shared store) shows as ErrNotFound from the
// store, so the store is asked.
func (s *session) selectedGone(sel *selected) bool {
	if sel.st.isGone() {
		return true
	}
	_, err := s.srv.st.MailboxByID(s.ctx(), sel.st.key.account, sel.st.key.id)
	if errors.Is(err, store.ErrNotFound) {
		sel.st.markGone()
		return true
	}
	return false
}

// selectedErr maps the failure of a store call on the selected mailbox:
// if the mailbox is gone the client is told with BYE (byeGone), else as
// protoErr says.
func (s *session) selectedErr(sel *selected, log *slog.Logger, op string, err error, attrs ...any) error {
	if errors.Is(err, store.ErrNotFound) && s.selectedGone(sel) {
		return s.byeGone(log)
	}
	return protoErr(log, op, err, attrs...)
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

// wipeKeys ends the login and wipes its keyring; later commands fail
// until a new login.
func (s *session) wipeKeys() {
	s.mu.Lock()
	keys, login, stop := s.keys, s.login, s.stopWatch
	s.keys, s.login, s.stopWatch = nil, nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if login != nil {
		login.Close()
	}
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

// Poll implements imapserver.Session. It runs after every successful
// command; a selected mailbox deleted meanwhile ends the session with BYE
// (byeGone) instead of the command's tagged OK.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	sel, log := s.sel, s.alog
	s.mu.Unlock()
	if sel == nil {
		return nil
	}
	if sel.st.isGone() {
		s.byeGone(log.With("mailbox", sel.st.currentName()))
		return errByeSent
	}
	return sel.tracker.Poll(w, allowExpunge)
}

// Idle implements imapserver.Session. In the authenticated state it only
// waits for DONE (RFC 9051 allows IDLE there). In the selected state it
// also ends, with BYE, when the mailbox is deleted.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	sel, log := s.sel, s.alog
	s.mu.Unlock()
	if sel == nil {
		select {
		case <-stop:
		case <-s.srv.ctx.Done():
		}
		return nil
	}
	end := make(chan struct{})
	go func() {
		// Ends with stop at the latest: imapserver closes it once the
		// client's DONE (or the connection's end) is read.
		select {
		case <-stop:
		case <-sel.st.gone:
		}
		close(end)
	}()
	err := sel.tracker.Idle(w, end)
	if sel.st.isGone() {
		s.byeGone(log.With("mailbox", sel.st.currentName()))
		return errByeSent
	}
	return err
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
