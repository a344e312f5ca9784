package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"sync"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Store is what reading a mailbox needs of the store. Every store.Store
// satisfies it.
type Store interface {
	Messages(ctx context.Context, address string, mailbox uint64, opt store.ListOptions) ([]store.Message, error)
	Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error)
	Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error)
	OpenBlob(ctx context.Context, address string, mailbox uint64, uid uint32) (io.ReadCloser, int64, error)
	SetSummaries(ctx context.Context, address string, mailbox uint64, us []store.SummaryUpdate) error
}

var _ Store = store.Store(nil)

// Keyring is what reading needs of an unlocked account
// (*crypto.Keyring).
type Keyring interface {
	OpenFor(sealed io.Reader, ad []byte) (plain io.Reader, sealedSessionKey []byte, err error)
	OpenWithSessionKeyFor(sealed io.Reader, sealedSessionKey, ad []byte) (io.Reader, error)
	ResealSessionKey(sealedSessionKey, from, to []byte) ([]byte, error)
	SealIndex(plain, ad []byte) ([]byte, error)
	OpenIndex(sealed, ad []byte) ([]byte, error)
}

var _ Keyring = (*crypto.Keyring)(nil)

// Defaults of Options.
const (
	// DefaultMemoryBudget bounds the plaintext held to verify messages
	// before any byte of them is released, server-wide.
	DefaultMemoryBudget = 256 << 20
	// DefaultInMemoryMax is the largest message verified in memory;
	// larger ones are decrypted twice (verify, then stream).
	DefaultInMemoryMax = 1 << 20
	// DefaultMaxMessageBytes bounds a message's plaintext: a compressed
	// message (GnuPG compresses) cannot expand beyond it.
	DefaultMaxMessageBytes = 256 << 20
)

// Options configures a Service. Store is required; every other zero
// value means its default.
type Options struct {
	Store Store
	// Logger receives what cannot be told to a client (unreadable
	// messages, integrity failures). nil discards.
	Logger *slog.Logger
	// Workers bounds the goroutines that decrypt, parse or scan messages
	// at once, over every session of the server. 0 means GOMAXPROCS.
	Workers int
	// MemoryBudget bounds the plaintext held at once, over every session,
	// to verify messages before their bytes are released. 0 means
	// DefaultMemoryBudget.
	MemoryBudget int64
	// InMemoryMax is the largest message verified in memory (when the
	// budget has room); larger ones are read twice. 0 means
	// DefaultInMemoryMax.
	InMemoryMax int64
	// MaxMessageBytes bounds one message's plaintext. 0 means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64
}

// Service reads sealed mailboxes for the sessions of one server (IMAP,
// POP3, export). It bounds the work and memory they use together. Its
// methods are safe for concurrent use.
type Service struct {
	st          Store        // immutable
	log         *slog.Logger // immutable
	workers     chan struct{}
	budget      *budget // immutable
	inMemoryMax int64   // immutable
	maxMessage  int64   // immutable
}

// New returns a Service.
func New(opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("mailbox: Options.Store is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := opt.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	mb := opt.MemoryBudget
	if mb <= 0 {
		mb = DefaultMemoryBudget
	}
	im := opt.InMemoryMax
	if im <= 0 {
		im = DefaultInMemoryMax
	}
	mm := opt.MaxMessageBytes
	if mm <= 0 {
		mm = DefaultMaxMessageBytes
	}
	return &Service{
		st: opt.Store, log: log, workers: make(chan struct{}, w),
		budget: newBudget(mb), inMemoryMax: min(im, mb), maxMessage: mm,
	}, nil
}

// Workers returns the bound on concurrent work (Options.Workers).
func (s *Service) Workers() int { return cap(s.workers) }

// Busy returns how many workers are at work now.
func (s *Service) Busy() int { return len(s.workers) }

// work runs f on one of the server's worker slots, waiting for one.
func (s *Service) work(ctx context.Context, f func()) error {
	select {
	case s.workers <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.workers }()
	f()
	return nil
}

// Reader reads the mailboxes of one account with its unlocked keyring,
// for one session.
type Reader struct {
	svc     *Service
	account string
	keys    Keyring
	log     *slog.Logger
}

// Reader returns a reader of account's mailboxes. log carries the
// session's attributes, the account included (nil: the service's logger
// with the account).
func (s *Service) Reader(account string, keys Keyring, log *slog.Logger) *Reader {
	if log == nil {
		log = s.log.With("account", account)
	}
	return &Reader{svc: s, account: account, keys: keys, log: log}
}

// Account returns the reader's account.
func (r *Reader) Account() string { return r.account }

// MessageAD is the associated data that binds a message's sealed session
// key to the message: account, mailbox ID (never reused) and UID. A data
// directory writer who moves session keys or summaries between messages
// makes them fail to open; they are then rebuilt from the message.
func MessageAD(account string, mailbox uint64, uid uint32) []byte {
	b := make([]byte, 0, 24+len(account)+12)
	b = append(b, "sealmail message v2\x00"...)
	b = append(b, account...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, mailbox)
	return binary.BigEndian.AppendUint32(b, uid)
}

// summaryAD is the associated data of a message's sealed summary.
func summaryAD(account string, mailbox uint64, uid uint32) []byte {
	return append([]byte("summary\x00"), MessageAD(account, mailbox, uid)...)
}

// budget is a counting bound on bytes held.
type budget struct {
	mu    sync.Mutex
	total int64
	used  int64 // guarded by mu
	wake  chan struct{}
}

func newBudget(total int64) *budget {
	return &budget{total: total, wake: make(chan struct{})}
}

// tryAcquire takes n bytes if they fit now.
func (b *budget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.total-b.used {
		return false
	}
	b.used += n
	return true
}

// acquire takes n bytes (at most the whole budget), waiting for room.
// It returns what it took, to be released.
func (b *budget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.total)
	for {
		b.mu.Lock()
		if n <= b.total-b.used {
			b.used += n
			b.mu.Unlock()
			return n, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// wipe zeroes b (best effort: Go may have copied it).
func wipe(b []byte) { clear(b) }

// Run runs f on one of the server's worker slots, waiting for one; it
// returns ctx's error, without running f, if ctx ends first.
func (r *Reader) Run(ctx context.Context, f func()) error { return r.svc.work(ctx, f) }
