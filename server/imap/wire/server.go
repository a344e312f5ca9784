package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/sealmail/sealmail/server/connset"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
)

// Options configures a Server. Only NewSession is required; every other
// zero value is safe.
type Options struct {
	// NewSession makes the Session of each connection. Required.
	NewSession NewSessionFunc
	// TLSConfig enables STARTTLS on connections that are not TLS already.
	// nil means no STARTTLS.
	TLSConfig *tls.Config
	// InsecureAuth allows LOGIN and AUTHENTICATE on connections without
	// TLS. For tests only: false (the default) advertises LOGINDISABLED
	// until TLS is up, as RFC 9051 §6.2.3 recommends.
	InsecureAuth bool
	// Caps are the optional extensions to advertise, beyond what every
	// connection offers (IMAP4rev1, IMAP4rev2 and the extensions it
	// includes, LITERAL+, ID, UNAUTHENTICATE, APPENDLIMIT). Allowed:
	// CONDSTORE, QRESYNC, QUOTA, QUOTA=RES-STORAGE, QUOTA=RES-MESSAGE,
	// SORT, SORT=DISPLAY, ESORT, THREAD=REFERENCES, THREAD=ORDEREDSUBJECT,
	// CONTEXT=SEARCH, CONTEXT=SORT, MULTIAPPEND, CATENATE, NOTIFY,
	// COMPRESS=DEFLATE, WITHIN, SAVEDATE, OBJECTID, PREVIEW,
	// CREATE-SPECIAL-USE, UTF8=ACCEPT. Their syntax is parsed only when
	// advertised. One whose Session interface (SessionQResync,
	// SessionQuota, SessionSort, SessionThread, SessionNotify,
	// SessionSearchContext) a connection's Session lacks is not advertised
	// on it, and that is logged.
	Caps []imap.Cap
	// Limits bound every connection; the zero value means the defaults.
	Limits Limits
	// ServerID is the answer to ID (RFC 2971); nil answers ID NIL.
	ServerID *imap.IDData
	// Greeting is the text of the greeting; "" means "sealmail ready".
	Greeting string
	// Logger receives the connections' logs (with proto, cid, remote).
	// nil discards them.
	Logger *slog.Logger
	// Metrics hears every command that ran, for monitoring. nil: nobody.
	Metrics Metrics
}

// optionalCaps are the Options.Caps this package knows how to parse, with
// the Session interface each needs (nil: none).
var optionalCaps = map[imap.Cap]func(Session) bool{
	imap.CapCondStore:        nil,
	imap.CapQResync:          func(s Session) bool { _, ok := s.(SessionQResync); return ok },
	imap.CapQuota:            func(s Session) bool { _, ok := s.(SessionQuota); return ok },
	"QUOTA=RES-STORAGE":      func(s Session) bool { _, ok := s.(SessionQuota); return ok },
	"QUOTA=RES-MESSAGE":      func(s Session) bool { _, ok := s.(SessionQuota); return ok },
	imap.CapSort:             isSorter,
	imap.CapSortDisplay:      isSorter,
	imap.CapESort:            isSorter,
	"THREAD=REFERENCES":      func(s Session) bool { return hasThread(s, imap.ThreadReferences) },
	"THREAD=ORDEREDSUBJECT":  func(s Session) bool { return hasThread(s, imap.ThreadOrderedSubject) },
	"CONTEXT=SEARCH":         isSearchContext,
	"CONTEXT=SORT":           func(s Session) bool { return isSearchContext(s) && isSorter(s) },
	imap.CapMultiAppend:      nil,
	imap.CapCatenate:         nil,
	imap.CapNotify:           func(s Session) bool { _, ok := s.(SessionNotify); return ok },
	"COMPRESS=DEFLATE":       nil,
	imap.CapWithin:           nil,
	imap.CapSaveDate:         nil,
	imap.CapObjectID:         nil,
	imap.CapPreview:          nil,
	imap.CapCreateSpecialUse: nil,
	imap.CapUTF8Accept:       nil,
}

func isSorter(s Session) bool        { _, ok := s.(SessionSort); return ok }
func isSearchContext(s Session) bool { _, ok := s.(SessionSearchContext); return ok }
func hasThread(s Session, a imap.ThreadAlgorithm) bool {
	t, ok := s.(SessionThread)
	if !ok {
		return false
	}
	for _, x := range t.ThreadAlgorithms() {
		if x == a {
			return true
		}
	}
	return false
}

// baseCaps are advertised once authenticated on every connection (the
// IMAP4rev2 set, RFC 9051 §7.2.2, and what this package does itself).
var baseCaps = []imap.Cap{
	imap.CapIMAP4rev1, imap.CapIMAP4rev2,
	imap.CapLiteralPlus, imap.CapEnable, imap.CapIdle, imap.CapNamespace,
	imap.CapUnselect, imap.CapUIDPlus, imap.CapESearch, imap.CapSearchRes,
	imap.CapListExtended, imap.CapListStatus, imap.CapMove, imap.CapStatusSize,
	imap.CapChildren, imap.CapBinary, imap.CapSpecialUse, imap.CapUnauthenticate,
	imap.CapID,
}

// Server serves IMAP connections with the Sessions of Options.NewSession.
// Its methods are safe for concurrent use.
type Server struct {
	opt    Options         // immutable
	lim    Limits          // immutable; with defaults
	caps   []imap.Cap      // immutable; Options.Caps, validated: fewer than 64 (capSet's bits), as optionalCaps
	log    *slog.Logger    // immutable
	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	nextID atomic.Uint64
	conns  connset.Set[*Conn]

	// writeBufs are the connections' write buffers, held only while a
	// response is written.
	writeBufs sync.Pool
	// readBufs are the connections' read buffers, held only while a
	// command is read.
	readBufs sync.Pool

	capMu   sync.Mutex
	capSets map[uint64]imap.CapSet // guarded by capMu; see capSet

	// interruptHook, if not nil, is called by a connection's
	// interruptReads (Disconnect, Shutdown) just before it waits for
	// Conn.waitMu: tests force the interleaving with a read that has
	// computed its deadline and not yet set it.
	interruptHook func()
}

// capSet returns the shared, read-only set of what is advertised once
// authenticated with the Options.Caps whose bits are set in have (bit i:
// caps[i]).
func (s *Server) capSet(have uint64) imap.CapSet {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if set, ok := s.capSets[have]; ok {
		return set
	}
	set := imap.CapSet{}
	for _, cp := range baseCaps {
		set[cp] = struct{}{}
	}
	for i, cp := range s.caps {
		if have&(1<<i) != 0 {
			set[cp] = struct{}{}
		}
	}
	if s.capSets == nil {
		s.capSets = map[uint64]imap.CapSet{}
	}
	s.capSets[have] = set
	return set
}

// New returns a Server. It fails on a missing NewSession or an unknown
// capability in Options.Caps.
func New(opt Options) (*Server, error) {
	if opt.NewSession == nil {
		return nil, errors.New("imap wire: Options.NewSession is required")
	}
	seen := map[imap.Cap]bool{}
	var caps []imap.Cap
	for _, c := range opt.Caps {
		if _, ok := optionalCaps[c]; !ok {
			return nil, fmt.Errorf("imap wire: capability %q is not supported", c)
		}
		if !seen[c] {
			seen[c] = true
			caps = append(caps, c)
		}
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		writeBufs: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }},
		readBufs:  sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }},
		opt:       opt,
		lim:       opt.Limits.withDefaults(),
		caps:      caps,
		log:       log.With("proto", "imap"),
		ctx:       ctx,
		cancel:    cancel,
	}, nil
}

// Serve accepts connections on ln until Shutdown; pass a tls.NewListener
// for implicit TLS (IMAPS). Temporary accept errors are retried with
// backoff. It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.conns.Serve(ln, s.log, func(nc net.Conn) { go s.ServeConn(nc) }); err != nil {
		return fmt.Errorf("imap wire: accept: %w", err)
	}
	return nil
}

// ServeConn serves one connection until it ends; it closes nc. A
// *tls.Conn is served as implicit TLS (its handshake is bounded by
// Limits.PreAuth.ReadTimeout).
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	if !s.conns.Add(c) {
		nc.Close()
		return
	}
	defer s.conns.Remove(c)
	c.serve()
}

// Shutdown stops the listeners, tells every connection "* BYE" as soon as
// no command is running (cancelling the running ones' contexts) and waits
// for them to end, or for ctx; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	err := s.conns.Shutdown(ctx, (*Conn).interrupt, func(c *Conn) { c.nc().Close() })
	if err != nil {
		return fmt.Errorf("imap wire: shutdown: %w", err)
	}
	return nil
}
