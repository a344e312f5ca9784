package account

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Store is the part of store.Store that the account service needs.
type Store interface {
	// CreateAccount creates a with its slots and mailboxes in one
	// transaction; store.ErrExists if the address is taken.
	CreateAccount(ctx context.Context, a store.Account, mailboxes []store.MailboxSpec) error
	// Account returns one account with its slots, or store.ErrNotFound.
	Account(ctx context.Context, address string) (store.Account, error)
	// Accounts lists all accounts ordered by address.
	Accounts(ctx context.Context) ([]store.Account, error)
	// AddSlot adds an unlock slot and returns its never-reused ID.
	AddSlot(ctx context.Context, address string, s store.Slot) (uint32, error)
	// RemoveSlot destroys one slot; store.ErrNotFound if it does not
	// exist.
	RemoveSlot(ctx context.Context, address string, id uint32) error
	// SetPublishWKD sets whether the key is published in the WKD.
	SetPublishWKD(ctx context.Context, address string, publish bool) error
	// SetAutocrypt sets whether outgoing mail carries an Autocrypt header.
	SetAutocrypt(ctx context.Context, address string, on bool) error
	// SetQuota sets the quota setting (store.Account.QuotaBytes).
	SetQuota(ctx context.Context, address string, setting int64) error
	// DeleteAccount crypto-shreds the account: slots and wrapped key go
	// in a first durable transaction, the rest after.
	DeleteAccount(ctx context.Context, address string) (store.DeleteReport, error)
}

var _ Store = (store.Store)(nil)

// DeleteGuard decides whether an account may be destroyed. Legal holds
// implement it: a held account cannot be crypto-shredded.
type DeleteGuard interface {
	// MayDelete returns nil to allow deleting address, or an error whose
	// text says why not; Delete then fails with ErrRefused and that text.
	MayDelete(ctx context.Context, address string) error
}

// Auditor records changes to accounts, for the audit log.
type Auditor interface {
	// Record is called once a change is durable, with the service's
	// context. An error is logged and returned to the caller of the
	// operation (which has happened): an unaudited change is an operator
	// problem, not a silent one.
	Record(ctx context.Context, e Event) error
}

// Op is what changed. Persisted by auditors: values only grow.
type Op string

const (
	OpCreated          Op = "account.created"
	OpDeleted          Op = "account.deleted"
	OpPasswordChanged  Op = "account.password-changed"
	OpSlotAdded        Op = "account.slot-added" // a recovery code or app password
	OpSlotRevoked      Op = "account.slot-revoked"
	OpWKDChanged       Op = "account.wkd-changed"
	OpSecretExported   Op = "account.secret-key-exported"
	OpQuotaChanged     Op = "account.quota-changed"
	OpAutocryptChanged Op = "account.autocrypt-changed"
)

// Event is one audited change. It names the account and slot, never a
// secret.
type Event struct {
	Time    time.Time
	Op      Op
	Account string
	Slot    uint32         // the slot added or revoked; 0 if none
	Kind    store.SlotKind // its kind; 0 if none
	Label   string         // its label
	Publish bool           // for OpWKDChanged and OpAutocryptChanged: the new setting
	Quota   int64          // for OpQuotaChanged: the new setting (store.Account.QuotaBytes)
}

// Defaults for zero Options fields.
const (
	// DefaultFailureDelay is how long after its work started a failed
	// login is answered. It must exceed the slowest failing unlock (at
	// most maxLoginDerivations argon2id runs, ~100–120 ms each with
	// crypto.DefaultKDF() on the reference 2-core machine), or the
	// answer's timing tells how much work was done, and so whether the
	// account exists.
	DefaultFailureDelay = time.Second
	// MaxSlots bounds an account's unlock slots (passwords, recovery
	// codes, app passwords). A login never runs argon2id on more than
	// maxLoginDerivations of them (codes name their slot), so the bound
	// is about storage and listing, not the failure delay.
	MaxSlots = 32
	// maxLabelBytes bounds a slot label.
	maxLabelBytes = 64
)

// Options configures a Service. Only Store is required; every other zero
// value is safe.
type Options struct {
	// Store holds the accounts. Required.
	Store Store
	// Domains are the canonical domains accounts may be created in. nil
	// refuses every Create.
	Domains []string
	// KeyType is the OpenPGP key new accounts get; zero is
	// crypto.KeyEd25519.
	KeyType crypto.KeyType
	// KDF is the argon2id cost of new slots and of the burnt unlock of an
	// unknown account; zero means crypto.DefaultKDF().
	KDF crypto.KDFParams
	// Logger receives operational logs. nil discards them.
	Logger *slog.Logger
	// UnlockCache is how long an unlocked account's master secret stays
	// cached, wrapped under a fast keyed hash of the password, after its
	// last use, so that a client's reconnects skip argon2id. 0 disables
	// the cache (sealmail's configuration defaults to 15 minutes).
	UnlockCache time.Duration
	// FailureDelay is how long after its work started a failed login is
	// answered. 0 means DefaultFailureDelay; negative means no delay
	// (tests only).
	FailureDelay time.Duration
	// MaxUnlocks bounds concurrent argon2id runs (each takes the KDF's
	// memory, 64 MiB by default). 0 means GOMAXPROCS.
	MaxUnlocks int
	// DeleteGuard may refuse to delete an account. nil allows every
	// delete.
	DeleteGuard DeleteGuard
	// Auditor records every change. nil records nothing.
	Auditor Auditor
	// OnLogin is called after each successful Login with the session's
	// keyring, before Login returns (server/filter opens the account's
	// filter key with it). It must not keep keys. nil: nothing is
	// called.
	OnLogin func(ctx context.Context, account string, keys *crypto.Keyring)
	// Metrics hears logins and unlocks, for monitoring. nil: nobody.
	Metrics Metrics
	// Clock is the time the login throttle and the unlock cache go by.
	// nil means time.Now. Tests stop it, so that a slow machine cannot
	// spread a burst of attempts over time and earn it more admissions
	// than the burst itself would get.
	Clock func() time.Time
}

// Service is the one place that creates, unlocks, re-keys and destroys
// accounts. Its methods are safe for concurrent use.
type Service struct {
	st           Store                                          // immutable
	domains      []string                                       // immutable
	keyType      crypto.KeyType                                 // immutable
	kdf          crypto.KDFParams                               // immutable
	log          *slog.Logger                                   // immutable
	failureDelay time.Duration                                  // immutable
	guard        DeleteGuard                                    // immutable; may be nil
	auditor      Auditor                                        // immutable; may be nil
	onLogin      func(context.Context, string, *crypto.Keyring) // immutable; may be nil
	metrics      Metrics                                        // immutable; never nil
	throttle     *throttle                                      // immutable
	gate         *gate                                          // immutable
	cache        *unlockCache                                   // immutable; nil when disabled
	locks        keyedMutex                                     // serialises changes per account

	// derivations counts argon2id runs of logins and changes (burnt ones
	// included), for tests and benchmarks.
	derivations atomic.Uint64

	// ctx ends with Close; logins in progress stop waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	accts  map[string]*acctState // guarded by mu; accounts with sessions or logins in flight
	closed bool                  // guarded by mu
}

// New returns a Service. Call Close when done.
func New(opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("account: Options.Store is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kdf := opt.KDF
	if kdf == (crypto.KDFParams{}) {
		kdf = crypto.DefaultKDF()
	}
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	delay := opt.FailureDelay
	switch {
	case delay == 0:
		delay = DefaultFailureDelay
	case delay < 0:
		delay = 0
	}
	unlocks := opt.MaxUnlocks
	if unlocks <= 0 {
		unlocks = runtime.GOMAXPROCS(0)
	}
	clock := opt.Clock
	if clock == nil {
		clock = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		st:           opt.Store,
		domains:      append([]string(nil), opt.Domains...),
		keyType:      opt.KeyType,
		kdf:          kdf,
		log:          log,
		failureDelay: delay,
		guard:        opt.DeleteGuard,
		auditor:      opt.Auditor,
		onLogin:      opt.OnLogin,
		metrics:      opt.Metrics,
		throttle:     newThrottle(defaultLimits, clock),
		gate:         newGate(unlocks, gateQueuePerUnlock*unlocks),
		ctx:          ctx,
		cancel:       cancel,
		accts:        make(map[string]*acctState),
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if opt.UnlockCache > 0 {
		s.cache = newUnlockCache(opt.UnlockCache, clock)
	}
	return s, nil
}

// Close ends every session (wiping its keys), wipes the unlock cache and
// makes logins fail. It is idempotent.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	var ended []*Session
	for _, st := range s.accts {
		st.gen++
		for sess := range st.sessions {
			ended = append(ended, sess)
		}
	}
	s.mu.Unlock()
	s.cancel()
	for _, sess := range ended {
		sess.end(ErrClosed)
	}
	if s.cache != nil {
		s.cache.close()
	}
}

// audit records e with the auditor, if any.
func (s *Service) audit(ctx context.Context, e Event) error {
	if s.auditor == nil {
		return nil
	}
	e.Time = time.Now().UTC()
	if err := s.auditor.Record(ctx, e); err != nil {
		s.log.Error("audit record failed: "+string(e.Op), "account", e.Account, "err", err)
		return errorf(err, "%s for %s happened but could not be audited; the server log has the cause", e.Op, e.Account)
	}
	return nil
}

// keyedMutex is one mutex per key, created on demand and dropped when
// unused.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry // guarded by mu
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int // guarded by keyedMutex.mu
}

// lock locks key and returns its unlock function.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
