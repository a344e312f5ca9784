package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// DefaultAppendLimit is the APPEND size limit when Options.AppendLimit is 0.
const DefaultAppendLimit = 50 << 20 // 50 MiB, sealmail's default SMTP size limit

// maxAppendLimit is the largest APPENDLIMIT imapserver can advertise (uint32).
const maxAppendLimit = 1<<32 - 1

// Options configures a Server. Store and Accounts are required.
type Options struct {
	// Store holds accounts, mailboxes and sealed messages. Required; any
	// store.Store serves.
	Store Store
	// Accounts checks credentials and unlocks accounts (LOGIN,
	// AUTHENTICATE), with its throttle, unlock cache and failure delay.
	// Required; pass the *account.Service every protocol shares, so that
	// deleting an account or revoking a slot ends the sessions using it.
	Accounts Authenticator
	// TLSConfig enables STARTTLS. nil means no STARTTLS; authentication is
	// then only possible on listeners that are already TLS (Serve with a
	// tls.NewListener).
	TLSConfig *tls.Config
	// Logger receives operational logs. nil discards them.
	Logger *slog.Logger
	// AppendLimit is the largest message APPEND accepts, in bytes; set it to
	// the SMTP size limit. 0 means DefaultAppendLimit; values above
	// 4 GiB - 1 are clamped.
	AppendLimit int64
	// Workers bounds how many messages one session opens or searches in
	// parallel. 0 means GOMAXPROCS.
	Workers int
	// Trainer learns from messages moved into and out of Junk
	// (train.go). nil: no training.
	Trainer Trainer
}

// Server is sealmail's IMAP server. Its methods are safe for concurrent use.
type Server struct {
	st          Store              // immutable
	accounts    Authenticator      // immutable
	log         *slog.Logger       // immutable
	appendLimit uint32             // immutable
	workers     int                // immutable
	trainer     Trainer            // immutable; may be nil
	imap        *imapserver.Server // immutable
	reg         *registry          // immutable

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	nextCID atomic.Uint64

	mu       sync.Mutex
	sessions map[*session]struct{} // guarded by mu
	closed   bool                  // guarded by mu
	wg       sync.WaitGroup        // counts live sessions
}

// capabilities are what we implement. Advertising a capability whose session
// interface is missing makes imapserver panic, so each one here is backed by
// a method of *session (checked at compile time in session.go).
var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIMAP4rev2:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapSearchRes:        {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapMove:             {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus:      {},
	imap.CapUnauthenticate:   {},
}

// New returns a Server. It does not listen; call Serve.
func New(opt Options) (*Server, error) {
	if opt.Store == nil {
		return nil, errors.New("imap: Options.Store is required")
	}
	if opt.Accounts == nil {
		return nil, errors.New("imap: Options.Accounts is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("proto", "imap")
	limit := opt.AppendLimit
	switch {
	case limit <= 0:
		limit = DefaultAppendLimit
	case limit > maxAppendLimit:
		limit = maxAppendLimit
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		st:          opt.Store,
		accounts:    opt.Accounts,
		log:         log,
		appendLimit: uint32(limit),
		workers:     workers,
		trainer:     opt.Trainer,
		reg:         newRegistry(),
		ctx:         ctx,
		cancel:      cancel,
		sessions:    make(map[*session]struct{}),
	}
	if opt.TLSConfig == nil {
		log.Warn("STARTTLS disabled: clients can only authenticate on implicit-TLS listeners")
	}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities,
		Logger:     libLogger{log},
		TLSConfig:  opt.TLSConfig,
	})
	return s, nil
}

// Serve accepts connections on ln until Shutdown. Pass a tls.NewListener for
// implicit TLS (imaps); a plain listener offers STARTTLS if configured. It
// returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return nil
	}
	err := s.imap.Serve(ln)
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("imap: serve: %w", err)
	}
	return nil
}

// Shutdown closes the listeners and every connection, wipes every session's
// keyring and waits for the sessions to end or ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	live := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	s.mu.Unlock()

	s.cancel()
	err := s.imap.Close()
	for _, sess := range live {
		sess.wipeKeys()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("imap: shutdown: %w", ctx.Err())
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("closing listeners", "err", err)
	}
	return nil
}

// Delivered tells the server that messages were committed to the store by
// someone else (SMTP), so that sessions with those mailboxes selected, IDLE
// included, learn of them. Wire it as the SMTP server's OnDeliver.
func (s *Server) Delivered(ds []store.Delivered) {
	seen := make(map[stateKey]bool, len(ds))
	for _, d := range ds {
		k := stateKey{d.Account, d.MailboxID}
		if seen[k] {
			continue
		}
		seen[k] = true
		s.syncMailbox(d.Account, d.MailboxID)
	}
}

// syncMailbox announces new messages of one mailbox to the sessions that
// have it selected.
func (s *Server) syncMailbox(account string, mailbox uint64) {
	st := s.reg.lookup(account, mailbox)
	if st == nil {
		return
	}
	defer s.reg.release(st)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := st.syncNew(ctx, s.st, s.log); err != nil {
		s.log.Warn("announcing new messages", "account", account, "err", err)
	}
}

func (s *Server) addSession(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	_, ok := s.sessions[sess]
	delete(s.sessions, sess)
	s.mu.Unlock()
	if ok {
		s.wg.Done()
	}
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	remote := ""
	if nc := c.NetConn(); nc != nil && nc.RemoteAddr() != nil {
		remote = nc.RemoteAddr().String()
	}
	cid := s.nextCID.Add(1)
	sess := &session{
		srv:    s,
		conn:   c,
		remote: remote,
		log:    s.log.With("cid", cid, "remote", remote),
	}
	if !s.addSession(sess) {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	return sess, nil, nil
}

// libLogger routes imapserver's own messages to slog.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, args ...any) {
	msg := "imapserver: " + fmt.Sprintf(format, args...)
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			// A connection this package closed on purpose (BYE after a
			// deletion, Shutdown): nothing for an operator to act on.
			l.log.Debug(msg)
			return
		}
	}
	l.log.Warn(msg)
}
