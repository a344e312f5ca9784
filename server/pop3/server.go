package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/sealmail/sealmail/server/connset"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Store is what the POP3 server needs of the store: the account's INBOX,
// its messages (through mailbox.Store), and the two changes a session
// makes at QUIT. Logins go through the account service. Every
// store.Store satisfies it.
type Store interface {
	mailbox.Store
	Mailbox(ctx context.Context, address, name string) (store.Mailbox, error)
	StoreFlags(ctx context.Context, address string, mailbox uint64, u store.FlagUpdate) (store.FlagResult, error)
	// Expunge is the deletion decision IMAP's EXPUNGE takes too: a
	// message under retention goes to the vault, not away.
	Expunge(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, error)
}

var _ Store = store.Store(nil)

// Authenticator checks credentials and unlocks accounts.
// *account.Service implements it: the throttle, the unlock cache and the
// fixed failure delay are shared by every protocol there.
type Authenticator interface {
	// Login returns an unlocked session, or account.ErrBadCredentials
	// (also for unknown accounts, after the failure delay),
	// account.ErrThrottled, account.ErrUnavailable or account.ErrClosed.
	Login(ctx context.Context, req account.LoginRequest) (*account.Session, error)
}

var _ Authenticator = (*account.Service)(nil)

// Changes is told what a POP3 session changed in the store, so that the
// other access protocols' sessions see it at once. *imap.Server
// implements it.
type Changes interface {
	// ExpungedAt: messages were removed from a mailbox, as the store's
	// Expunge gave them, with the removal's mod-sequence. IMAP sessions
	// that cannot announce the removal at once may let their QRESYNC
	// clients keep a mod-sequence up to the one before it (RFC 7162
	// §3.2).
	ExpungedAt(account string, mailbox uint64, res store.ExpungeResult)
	// FlagsChanged: messages' flags changed (their new flags and modseq).
	FlagsChanged(account string, mailbox uint64, changed []store.Message)
}

// Expiry is the server's retention, for the EXPIRE capability (RFC 2449
// §6.7). server/retention's Service implements it.
type Expiry interface {
	// ExpireDays returns the fewest days the server keeps a message of
	// account (of any account if account is "") before it may delete it
	// on its own; ok false: it never does.
	ExpireDays(account string) (days int, ok bool)
}

// Options configures a Server. Store and Accounts are required; every
// other zero value is safe and documented.
type Options struct {
	// Store holds the sealed mail. Required; any store.Store serves.
	Store Store
	// Accounts checks credentials and unlocks accounts. Required; pass
	// the *account.Service every protocol shares, so that deleting an
	// account or revoking a slot ends the sessions using it.
	Accounts Authenticator
	// Mailboxes reads sealed mailboxes with a server-wide bound on
	// decrypt workers and memory. nil means a mailbox.Service of this
	// server's own over Store; pass IMAP's to share the bounds.
	Mailboxes *mailbox.Service
	// TLSConfig enables STLS (RFC 2595). nil means no STLS: logins are
	// then possible only on implicit-TLS listeners (Serve with a
	// tls.NewListener).
	TLSConfig *tls.Config
	// Changes is told of deletions and flag changes made at QUIT. nil
	// tells no one (other protocols' sessions see them at their next
	// listing).
	Changes Changes
	// Expiry says how long the server keeps mail before it may delete
	// it on its own (a retention sweeper), for CAPA's EXPIRE. nil means
	// it never does: EXPIRE NEVER.
	Expiry Expiry
	// Logger receives operational logs. nil discards them.
	Logger *slog.Logger
	// Limits bound every connection; the zero value means the defaults.
	Limits Limits
}

// Server is sealmail's POP3 server. Its methods are safe for concurrent
// use.
type Server struct {
	st       Store            // immutable
	accounts Authenticator    // immutable
	mbx      *mailbox.Service // immutable
	tls      *tls.Config      // immutable; may be nil
	changes  Changes          // immutable; may be nil
	expiry   Expiry           // immutable; may be nil
	log      *slog.Logger     // immutable
	lim      Limits           // immutable
	ctx      context.Context  // cancelled by Shutdown
	cancel   context.CancelFunc
	nextID   atomic.Uint64
	sessions connset.Set[*session]
}

// New returns a Server. It does not listen; call Serve.
func New(opt Options) (*Server, error) {
	if opt.Store == nil {
		return nil, errors.New("pop3: Options.Store is required")
	}
	if opt.Accounts == nil {
		return nil, errors.New("pop3: Options.Accounts is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("proto", "pop3")
	mbx := opt.Mailboxes
	if mbx == nil {
		var err error
		if mbx, err = mailbox.New(mailbox.Options{Store: opt.Store, Logger: log}); err != nil {
			return nil, fmt.Errorf("pop3: %w", err)
		}
	}
	if opt.TLSConfig == nil {
		log.Warn("STLS disabled: clients can only log in on implicit-TLS listeners")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		st: opt.Store, accounts: opt.Accounts, mbx: mbx, tls: opt.TLSConfig,
		changes: opt.Changes, expiry: opt.Expiry, log: log, lim: opt.Limits.withDefaults(),
		ctx: ctx, cancel: cancel,
	}, nil
}

// Serve accepts connections on ln until Shutdown. Pass a TLS listener for
// implicit TLS (pop3s, RFC 8314); a plain one offers STLS if configured.
// It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("listening", "addr", ln.Addr().String())
	if err := s.sessions.Serve(ln, s.log, s.start); err != nil {
		return fmt.Errorf("pop3: accept: %w", err)
	}
	return nil
}

// start serves nc in a goroutine of its own, unless the server is
// closing.
func (s *Server) start(nc net.Conn) {
	id := s.nextID.Add(1)
	_, isTLS := nc.(*tls.Conn)
	sess := &session{
		srv:   s,
		c:     newConn(nc, &s.lim),
		log:   s.log.With("cid", id, "remote", nc.RemoteAddr().String()),
		tls:   isTLS,
		start: time.Now(),
	}
	if !s.sessions.Add(sess) {
		nc.Close()
		return
	}
	go sess.serve()
}

// Shutdown stops accepting, ends every session as soon as its command is
// done (the client reads -ERR [SYS/TEMP]; nothing it marked deleted is
// removed, as after a dropped connection), wipes every session's keys,
// and waits for the connections to end or ctx to expire, when it closes
// them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	if err := s.sessions.Shutdown(ctx, (*session).interrupt, (*session).closeConn); err != nil {
		return fmt.Errorf("pop3: shutdown: %w", err)
	}
	return nil
}

// Refuse tells a client over a connection limit to come back later, as
// its greeting (RFC 2449 §8.1 and RFC 3206 SYS/TEMP), on c, which the
// caller closes. It is the Refuse hook for server/listener on plaintext
// listeners; implicit-TLS clients are closed without a word.
func (s *Server) Refuse(c net.Conn) {
	io.WriteString(c, "-ERR [SYS/TEMP] Too many connections, try again later\r\n")
}

// Expunged tells the server that messages were removed from a mailbox by
// someone else (an IMAP EXPUNGE or MOVE, another POP3 session): the POP3
// sessions that serve it stop offering them (RFC 1939 message numbers
// stay; LIST and STAT leave the messages out, RETR answers -ERR). Wire
// it as IMAP's change hook.
func (s *Server) Expunged(account string, mailbox uint64, uids []uint32) {
	s.expunged(account, mailbox, uids, nil)
}

func (s *Server) expunged(account string, mailbox uint64, uids []uint32, origin *session) {
	if len(uids) == 0 {
		return
	}
	s.sessions.Each(func(sess *session) {
		if sess != origin {
			sess.removed(account, mailbox, uids)
		}
	})
}
