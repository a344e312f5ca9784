package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// DefaultAppendLimit is the APPEND size limit when Options.AppendLimit is 0.
const DefaultAppendLimit = wire.DefaultAppendLimit

// Defaults of the per-account mailbox limits (issue 9 item 17).
const (
	// DefaultMaxMailboxes bounds the mailboxes of one account.
	DefaultMaxMailboxes = 1000
	// DefaultMaxDepth bounds the levels of a mailbox name ("a/b/c" has 3).
	DefaultMaxDepth = 16
)

// Options configures a Server. Store and Accounts are required; every
// other zero value is safe and documented.
type Options struct {
	// Store holds accounts, mailboxes and sealed messages. Required; any
	// store.Store serves.
	Store Store
	// Accounts checks credentials and unlocks accounts (LOGIN,
	// AUTHENTICATE), with its throttle, unlock cache and failure delay.
	// Required; pass the *account.Service every protocol shares, so that
	// deleting an account or revoking a slot ends the sessions using it.
	Accounts Authenticator
	// Mailboxes reads sealed mailboxes (summaries, bodies, search) with a
	// server-wide bound on decrypt workers and memory. nil means a
	// mailbox.Service of this server's own over Store, with Workers;
	// pass one to share those bounds with POP3.
	Mailboxes *mailbox.Service
	// TLSConfig enables STARTTLS. nil means no STARTTLS; authentication is
	// then only possible on listeners that are already TLS (Serve with a
	// tls.NewListener).
	TLSConfig *tls.Config
	// Logger receives operational logs. nil discards them.
	Logger *slog.Logger
	// AppendLimit is the largest message APPEND accepts, in bytes; set it
	// to the SMTP size limit. 0 means DefaultAppendLimit.
	AppendLimit int64
	// Workers bounds how many messages are opened, parsed or searched at
	// once, over all sessions (when Mailboxes is nil). 0 means GOMAXPROCS.
	Workers int
	// MaxMailboxes bounds the mailboxes of one account; CREATE and RENAME
	// beyond it get NO [LIMIT]. 0 means DefaultMaxMailboxes.
	MaxMailboxes int
	// MaxDepth bounds the hierarchy levels of a mailbox name. 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// MaxAppends bounds the APPEND commands in progress at once for one
	// account; one more waits up to 15 s for a slot, then gets
	// NO [LIMIT]. 0 means DefaultMaxAppends.
	MaxAppends int
	// Search bounds the cost of one SEARCH; the zero value means the
	// defaults of SearchLimits.
	Search SearchLimits
	// Wire bounds the protocol layer (line and command sizes, timeouts);
	// the zero value means its defaults. Its AppendLimit is AppendLimit.
	Wire wire.Limits
	// Trainer learns from messages moved into and out of Junk
	// (train.go). nil: no training.
	Trainer Trainer
	// HideVersion leaves the version out of the answer to ID (RFC
	// 2971), which then names the software only. false: ID gives
	// "sealmail" and the binary's module version, when the build
	// recorded one.
	HideVersion bool
	// Metrics hears every command that ran: its name, the status of its
	// tagged response and its duration, never an argument (see
	// wire.Metrics). nil: nobody.
	Metrics wire.Metrics
	// OnExpunge is told of the messages this server's sessions removed
	// (EXPUNGE, MOVE, RENAME of INBOX), after the store removed them, so
	// that other protocols' sessions stop offering them; wire POP3's
	// Server.Expunged. nil: no one is told.
	OnExpunge func(account string, mailbox uint64, uids []uint32)
}

// SearchLimits bound the work of one SEARCH (issue 9 item 8). Each zero
// field means its default.
type SearchLimits struct {
	// MaxPatterns bounds the TEXT, BODY, HEADER and address keys of one
	// command. Default 64.
	MaxPatterns int
	// MaxWork bounds patterns × plaintext bytes scanned by one command
	// (TEXT and BODY decrypt and scan messages). Default 16 GiB: a 1 GiB
	// mailbox with 16 patterns.
	MaxWork int64
	// Timeout bounds one command's time. Default 2 minutes.
	Timeout time.Duration
}

func (l SearchLimits) withDefaults() SearchLimits {
	if l.MaxPatterns <= 0 {
		l.MaxPatterns = 64
	}
	if l.MaxWork <= 0 {
		l.MaxWork = 16 << 30
	}
	if l.Timeout <= 0 {
		l.Timeout = 2 * time.Minute
	}
	return l
}

// Server is sealmail's IMAP server. Its methods are safe for concurrent use.
type Server struct {
	st           Store            // immutable
	accounts     Authenticator    // immutable
	mbx          *mailbox.Service // immutable
	log          *slog.Logger     // immutable
	appendLimit  int64            // immutable
	maxMailboxes int              // immutable
	maxDepth     int              // immutable
	search       SearchLimits     // immutable
	wire         *wire.Server     // immutable
	reg          *registry        // immutable
	recent       *recentTracker   // immutable
	notify       *notifier        // immutable
	events       *notifyHub       // immutable: NOTIFY's change feed
	trainer      Trainer          // immutable; may be nil
	appends      appendGate
	// addedSem bounds the summaries of APPENDed messages being stored in
	// the background (added); addedWG waits for them at Shutdown.
	addedSem chan struct{}
	addedWG  sync.WaitGroup
	// addedHook, if not nil, is called as a background summary begins,
	// and wipeHook as a login's keyring is about to be wiped (tests; set
	// before use).
	addedHook, wipeHook func()
	ctx                 context.Context // cancelled by Shutdown
	cancel              context.CancelFunc

	// onExpunge is Options.OnExpunge: immutable; may be nil.
	onExpunge func(account string, mailbox uint64, uids []uint32)

	mu       sync.Mutex
	sessions map[*session]struct{} // guarded by mu
	closed   bool                  // guarded by mu
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
	limit := opt.AppendLimit
	if limit <= 0 {
		limit = DefaultAppendLimit
	}
	mbx := opt.Mailboxes
	if mbx == nil {
		var err error
		mbx, err = mailbox.New(mailbox.Options{Store: opt.Store, Logger: log.With("proto", "imap"), Workers: opt.Workers})
		if err != nil {
			return nil, fmt.Errorf("imap: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		st:           opt.Store,
		accounts:     opt.Accounts,
		mbx:          mbx,
		log:          log.With("proto", "imap"),
		appendLimit:  limit,
		maxMailboxes: opt.MaxMailboxes,
		maxDepth:     opt.MaxDepth,
		search:       opt.Search.withDefaults(),
		trainer:      opt.Trainer,
		onExpunge:    opt.OnExpunge,
		reg:          newRegistry(),
		recent:       newRecentTracker(),
		events:       newNotifyHub(),
		ctx:          ctx,
		cancel:       cancel,
		sessions:     make(map[*session]struct{}),
		addedSem:     make(chan struct{}, maxAddedInFlight),
	}
	if s.maxMailboxes <= 0 {
		s.maxMailboxes = DefaultMaxMailboxes
	}
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultMaxDepth
	}
	s.appends.max, s.appends.wait = opt.MaxAppends, appendWait
	if s.appends.max <= 0 {
		s.appends.max = DefaultMaxAppends
	}
	s.notify = newNotifier(s)
	lim := opt.Wire
	lim.AppendLimit = limit
	ws, err := wire.New(wire.Options{
		NewSession: s.newSession,
		TLSConfig:  opt.TLSConfig,
		Caps:       slices.Concat([]imap.Cap{imap.CapCreateSpecialUse, imap.CapMultiAppend, imap.CapPreview}, sortCaps, contextCaps, catenateCaps, condstoreCaps, qresyncCaps, objectIDCaps, compressCaps, withinCaps, quotaCaps, notifyCaps),
		Limits:     lim,
		ServerID:   serverID(opt.HideVersion, buildVersion()),
		Logger:     log,
		Metrics:    opt.Metrics,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("imap: %w", err)
	}
	s.wire = ws
	if opt.TLSConfig == nil {
		log.Warn("STARTTLS disabled: clients can only authenticate on implicit-TLS listeners", "proto", "imap")
	}
	go s.notify.run()
	return s, nil
}

// Serve accepts connections on ln until Shutdown. Pass a tls.NewListener for
// implicit TLS (imaps); a plain listener offers STARTTLS if configured. It
// returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.wire.Serve(ln); err != nil {
		return fmt.Errorf("imap: serve: %w", err)
	}
	return nil
}

// Shutdown closes the listeners, tells every connection BYE (as soon as
// its command ends), wipes every session's keyring and waits for the
// connections to end or ctx to expire.
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
	for _, sess := range live {
		sess.wipeKeys()
	}
	err := s.wire.Shutdown(ctx)
	s.notify.stop()
	s.addedWG.Wait() // their context is cancelled: they end at once
	if err != nil {
		return fmt.Errorf("imap: shutdown: %w", err)
	}
	return nil
}

// Delivered tells the server that messages were committed to the store by
// someone else (SMTP), so that sessions with those mailboxes selected, IDLE
// included, learn of them. Wire it as the SMTP server's OnDeliver. It
// does not wait for the sessions: they are told in the background.
func (s *Server) Delivered(ds []store.Delivered) {
	for _, d := range ds {
		k := stateKey{d.Account, d.MailboxID}
		s.recent.noteNew(k, d.UID)
		s.notify.mark(k)
	}
}

// syncMailbox announces new messages of one mailbox to the sessions that
// have it selected, now (after this process's own APPEND, COPY, MOVE).
func (s *Server) syncMailbox(ctx context.Context, account string, id uint64) {
	s.events.publish(change{kind: changeNew, account: account, mailbox: id})
	st := s.reg.lookup(account, id)
	if st == nil {
		return
	}
	defer s.reg.release(st)
	if err := st.sync(ctx, s.st); err != nil {
		s.log.Warn("announcing new messages", "account", account, "mailbox", st.currentName(), "err", err)
	}
}

func (s *Server) addSession(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess] = struct{}{}
	return true
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// newSession is the wire layer's NewSession.
func (s *Server) newSession(c *wire.Conn) (wire.Session, error) {
	sess := &session{
		srv:     s,
		conn:    c,
		log:     c.Logger(),
		updates: make(chan struct{}, 1),
	}
	if !s.addSession(sess) {
		return nil, errors.New("imap: server shutting down")
	}
	return sess, nil
}

// notifier announces deliveries to the sessions in the background, so
// that SMTP's 250 never waits for IMAP: mark records a mailbox as
// changed, run syncs each changed mailbox once however often it was
// marked meanwhile.
type notifier struct {
	srv  *Server
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	pending map[stateKey]struct{} // guarded by mu
	marked  uint64                // guarded by mu: marks so far
	handled uint64                // guarded by mu: marks whose sync is done
	idle    *sync.Cond            // on mu: handled changed
}

func newNotifier(s *Server) *notifier {
	n := &notifier{srv: s, wake: make(chan struct{}, 1), done: make(chan struct{}), pending: map[stateKey]struct{}{}}
	n.idle = sync.NewCond(&n.mu)
	return n
}

func (n *notifier) mark(k stateKey) {
	n.mu.Lock()
	n.pending[k] = struct{}{}
	n.marked++
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.wake:
		case <-n.srv.ctx.Done():
			return
		}
		n.mu.Lock()
		keys := make([]stateKey, 0, len(n.pending))
		for k := range n.pending {
			keys = append(keys, k)
		}
		clear(n.pending)
		upTo := n.marked
		n.mu.Unlock()
		for _, k := range keys {
			ctx, cancel := context.WithTimeout(n.srv.ctx, 30*time.Second)
			n.srv.syncMailbox(ctx, k.account, k.id)
			cancel()
		}
		n.mu.Lock()
		n.handled = upTo
		n.idle.Broadcast()
		n.mu.Unlock()
	}
}

func (n *notifier) stop() {
	<-n.done
	n.mu.Lock()
	n.handled = n.marked
	n.idle.Broadcast()
	n.mu.Unlock()
}

// wait returns once every delivery marked before the call is announced
// (tests use it to make the background announcement deterministic).
func (n *notifier) wait() {
	n.mu.Lock()
	defer n.mu.Unlock()
	target := n.marked
	for n.handled < target {
		n.idle.Wait()
	}
}

// serverID is the answer to ID: the name, and version unless hidden or
// unknown ("").
func serverID(hideVersion bool, version string) *imap.IDData {
	id := &imap.IDData{Name: "sealmail"}
	if !hideVersion {
		id.Version = version
	}
	return id
}

// buildVersion is the binary's module version, "" when the build did not
// record one (a build from a source tree records "(devel)").
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}
