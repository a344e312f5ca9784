package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/policy"
)

// Server is the inbound MX: it accepts mail for local accounts only, seals
// each copy to its recipient's public key and commits all copies in one
// durable transaction before answering 250.
type Server struct {
	opt    Options            // immutable; normalised by New
	lim    Limits             // immutable; defaults filled in
	log    *slog.Logger       // immutable
	rcpts  *policy.Recipients // immutable
	keys   *keyCache          // safe for concurrent use
	lib    *gosmtp.Server     // immutable after New
	conns  *connTracker       // safe for concurrent use
	bufs   sync.Pool          // of *bytes.Buffer, message and sealed copies
	cidPre string             // immutable; random, distinguishes server runs in logs
	cidSeq atomic.Uint64      // connection counter
	state  atomic.Int32       // serverRunning or serverClosing
	lnMu   sync.Mutex         // guards lns
	lns    []net.Listener     // guarded by lnMu; listeners Serve was given
	closed chan struct{}      // closed by Shutdown
	once   sync.Once          // closes closed
}

const (
	serverRunning int32 = iota
	serverClosing
)

// libLineLimit bounds every line go-smtp reads (commands, and message
// lines before our own scanner sees them).
const libLineLimit = 64 << 10

// New validates opt and returns a server ready to Serve.
func New(opt Options) (*Server, error) {
	if opt.Store == nil {
		return nil, errors.New("smtp: Options.Store is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(keyProto, protoName)
	if opt.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || !validDomain(h) {
			h = "localhost"
		}
		opt.Hostname = h
	}
	// The greeting and Received fields carry the A-label form, which
	// every client can read (RFC 6531 §3.7.1).
	hostname, err := policy.NormalizeDomain(opt.Hostname)
	if err != nil {
		return nil, fmt.Errorf("smtp: Hostname: %w", err)
	}
	opt.Hostname = hostname
	if err := opt.Limits.Validate(); err != nil {
		return nil, err
	}
	lim := opt.Limits.withDefaults()
	if opt.KeyCacheEntries <= 0 {
		opt.KeyCacheEntries = DefaultKeyCacheEntries
	}
	rcpts, err := policy.NewRecipients(policy.RecipientOptions{
		Domains:    opt.Domains,
		Aliases:    opt.Aliases,
		Postmaster: opt.Postmaster,
	})
	if err != nil {
		return nil, err // policy's errors say what is wrong
	}
	var pre [3]byte
	if _, err := rand.Read(pre[:]); err != nil {
		return nil, fmt.Errorf("smtp: random: %w", err)
	}

	s := &Server{
		opt:    opt,
		lim:    lim,
		log:    log,
		rcpts:  rcpts,
		keys:   newKeyCache(opt.KeyCacheEntries),
		conns:  newConnTracker(),
		cidPre: hex.EncodeToString(pre[:]),
		closed: make(chan struct{}),
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }

	lib := gosmtp.NewServer(backend{s})
	lib.Domain = opt.Hostname
	lib.TLSConfig = opt.TLSConfig
	lib.MaxMessageBytes = lim.MessageBytes
	lib.MaxRecipients = lim.Recipients
	// go-smtp applies its line limit to whatever it has buffered, BDAT
	// chunk bytes included, and closes the connection when it trips; our
	// scanner enforces Limits.LineLength on message lines with a proper
	// reply, so go-smtp gets a looser, fixed bound.
	lib.MaxLineLength = max(lim.LineLength, libLineLimit)
	lib.ReadTimeout = lim.CommandTimeout
	lib.WriteTimeout = lim.CommandTimeout
	lib.EnableSMTPUTF8 = true
	lib.ErrorLog = libLogger{log}
	// No AUTH (sessions do not implement AuthSession), no BINARYMIME
	// (binary bodies would defeat the bare CR/LF rule), no DSN, no
	// REQUIRETLS: this listener only delivers locally.
	s.lib = lib

	if len(opt.Domains) == 0 {
		log.Warn("no local domains configured: every recipient will be refused")
	}
	if opt.TLSConfig == nil {
		log.Warn("no TLS configuration: STARTTLS is not offered, mail arrives in the clear")
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown, and returns nil after
// Shutdown. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	if s.state.Load() != serverRunning {
		s.lnMu.Unlock()
		ln.Close()
		return nil
	}
	s.lns = append(s.lns, ln)
	s.lnMu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String())
	err := s.lib.Serve(&trackListener{Listener: ln, t: s.conns})
	select {
	case <-s.closed:
		return nil
	default:
	}
	if err != nil {
		return fmt.Errorf("smtp: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, closes idle ones at once and the
// others as soon as their transaction in flight has its reply, and waits
// for all of them until ctx is done; then it closes whatever is left and
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lnMu.Lock()
	s.state.Store(serverClosing)
	lns := s.lns
	s.lns = nil
	s.lnMu.Unlock()
	s.once.Do(func() { close(s.closed) })
	// go-smtp closes the listeners it knows; closing them here as well
	// covers a Serve that raced with Shutdown.
	for _, ln := range lns {
		ln.Close()
	}

	done := make(chan error, 1)
	go func() { done <- s.lib.Shutdown(ctx) }()
	s.conns.drain()
	err := <-done
	// Listeners closed twice (by go-smtp and above) are not a failure.
	if errors.Is(err, gosmtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		// The wait ended (ctx): cut off whoever is left. go-smtp's Close
		// does nothing once Shutdown has begun, so close them here.
		s.conns.closeAll()
		return fmt.Errorf("smtp: shutdown: %w", err)
	}
	return nil
}

// newCID returns a connection id for logs.
func (s *Server) newCID() string {
	return fmt.Sprintf("%s%x", s.cidPre, s.cidSeq.Add(1))
}

func (s *Server) getBuf() *bytes.Buffer {
	b := s.bufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// maxPooledBuf keeps one huge message from pinning its buffer forever.
const maxPooledBuf = 4 << 20

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	// Messages are plaintext: do not leave them in pooled memory.
	b.Reset()
	clear(b.Bytes()[:b.Cap()])
	s.bufs.Put(b)
}

// backend makes sessions for go-smtp.
type backend struct{ s *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	if b.s.state.Load() != serverRunning {
		return nil, errShutdown
	}
	return newSession(b.s, c), nil
}
