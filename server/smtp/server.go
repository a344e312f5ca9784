package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sealmail/sealmail/server/connset"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/policy"
)

// Server is the inbound MX: it accepts mail for local accounts only, seals
// each copy to its recipient's public key and commits all copies in one
// durable transaction before answering 250.
type Server struct {
	opt       Options                              // immutable; normalised by New
	lim       Limits                               // immutable; defaults filled in
	log       *slog.Logger                         // immutable
	rcpts     *policy.Recipients                   // immutable
	keys      *keyCache                            // safe for concurrent use
	budget    *budget                              // safe for concurrent use
	sealers   chan struct{}                        // semaphore: sealing goroutines server-wide
	notify    *notifier                            // may be nil (no OnDeliver)
	rates     *clientTable                         // per-client delivery rates; safe for concurrent use
	probes    *clientTable                         // per-client unknown recipients; safe for concurrent use
	spoolDir  string                               // immutable
	ownSpool  bool                                 // immutable; spoolDir is ours to remove
	bufs      sync.Pool                            // of *bytes.Buffer, message and sealed copies
	cidPre    string                               // immutable; random, distinguishes server runs in logs
	cidSeq    atomic.Uint64                        // connection counter
	sleep     func(context.Context, time.Duration) // tarpit; replaced by tests
	rateGrace time.Duration                        // dataRateGrace; replaced by tests
	sub       *SubmissionOptions                   // immutable; nil for the MX
	queueSt   QueueStore                           // immutable; nil for the MX

	conns connset.Set[*conn]
}

// New validates opt and returns a server ready to Serve.
func New(opt Options) (*Server, error) {
	if opt.Store == nil {
		return nil, errors.New("smtp: Options.Store is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proto := protoName
	if opt.Submission != nil {
		proto = protoSubmission
	}
	log = log.With(keyProto, proto)
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
	var queueSt QueueStore
	if sub := opt.Submission; sub != nil {
		if sub.Accounts == nil || sub.Queue == nil {
			return nil, errors.New("smtp: SubmissionOptions.Accounts and Queue are required")
		}
		if opt.Inbound != nil {
			return nil, errors.New("smtp: Inbound checks are the MX's; a submission server's clients are authenticated")
		}
		var ok bool
		if queueSt, ok = opt.Store.(QueueStore); !ok {
			return nil, errors.New("smtp: a submission server's Store must implement QueueStore")
		}
	}
	var pre [3]byte
	if _, err := rand.Read(pre[:]); err != nil {
		return nil, fmt.Errorf("smtp: random: %w", err)
	}
	spoolDir, ownSpool := opt.SpoolDir, false
	if spoolDir == "" {
		if spoolDir, err = os.MkdirTemp("", "sealmail-spool-"); err != nil {
			return nil, fmt.Errorf("smtp: spool directory: %w", err)
		}
		ownSpool = true
	}
	if err := prepareSpoolDir(spoolDir); err != nil {
		return nil, err
	}

	s := &Server{
		opt:       opt,
		lim:       lim,
		log:       log,
		rcpts:     rcpts,
		keys:      newKeyCache(opt.KeyCacheEntries),
		budget:    newBudget(lim.InFlightBytes),
		sealers:   make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0))),
		rates:     newClientTable(clientTableSize),
		probes:    newClientTable(clientTableSize),
		spoolDir:  spoolDir,
		ownSpool:  ownSpool,
		cidPre:    hex.EncodeToString(pre[:]),
		sleep:     sleepCtx,
		rateGrace: dataRateGrace,
		sub:       opt.Submission,
		queueSt:   queueSt,
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	if h := opt.hooks; h != nil {
		s.sleep, s.rateGrace = h.sleep, h.rateGrace
	}
	if opt.OnDeliver != nil {
		s.notify = newNotifier(opt.OnDeliver, log)
	}
	if len(opt.Domains) == 0 {
		log.Warn("no local domains configured: every recipient will be refused")
	}
	if opt.TLSConfig == nil {
		if opt.Submission != nil {
			log.Warn("no TLS configuration: STARTTLS is not offered, so clients cannot authenticate unless the listener is implicit TLS")
		} else {
			log.Warn("no TLS configuration: STARTTLS is not offered, mail arrives in the clear")
		}
	}
	return s, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Serve accepts connections on ln until Shutdown, and returns nil after
// Shutdown. ln is closed when Serve returns. Temporary accept errors (out
// of descriptors) are retried with a growing pause, as net/http does.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.conns.Serve(ln, s.log, s.admit); err != nil {
		return fmt.Errorf("smtp: serve: %w", err)
	}
	return nil
}

// admit starts a connection's goroutine, or closes the connection when
// the server is shutting down. Connection caps are the listener's
// (server/listener, with Refuse).
func (s *Server) admit(nc net.Conn) {
	c := s.newConn(nc, clientKey(nc.RemoteAddr()))
	if !s.conns.Add(c) {
		nc.Close()
		return
	}
	go c.serve()
}

// Refuse tells a client over a connection limit to come back later (RFC
// 5321 §3.8: 421 instead of the greeting) on c, which the caller closes.
// It is the Refuse hook for server/listener.
func (s *Server) Refuse(c net.Conn) {
	c.Write(appendReply(nil, &Reply{replyConnLimit.Code, replyConnLimit.Enhanced, s.opt.Hostname + " " + replyConnLimit.Text}))
}

// connCount returns the number of open connections.
func (s *Server) connCount() int { return s.conns.Len() }

// Shutdown stops accepting connections, closes idle ones at once (with
// 421 4.3.2) and the others as soon as their transaction in flight has
// its reply, and waits for all of them until ctx is done; then it closes
// whatever is left and returns ctx's error. Deliveries not yet announced
// to OnDeliver are dropped.
func (s *Server) Shutdown(ctx context.Context) error {
	// Whoever is left when ctx ends is cut off; their goroutines end as
	// soon as their next read or write fails.
	err := s.conns.Shutdown(ctx, (*conn).drain, (*conn).abort)
	if err != nil {
		err = fmt.Errorf("smtp: shutdown: %w", err)
	}
	if s.notify != nil {
		s.notify.stop()
	}
	if s.ownSpool {
		os.RemoveAll(s.spoolDir)
	}
	return err
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

// maxPooledBuf keeps one huge buffer from pinning its memory forever.
const maxPooledBuf = 4 << 20

func (s *Server) putBuf(b *bytes.Buffer) {
	// Messages are plaintext: do not leave them in pooled memory, nor in
	// memory the pool drops.
	b.Reset()
	clear(b.Bytes()[:b.Cap()])
	if b.Cap() > maxPooledBuf {
		return
	}
	s.bufs.Put(b)
}
