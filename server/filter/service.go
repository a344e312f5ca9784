package filter

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Store is what the filter needs from storage.
type Store interface {
	// FilterModel returns owner's model ("" the organisation's), or an
	// error wrapping store.ErrNotFound.
	FilterModel(ctx context.Context, owner string) (store.FilterModel, error)
	// PutFilterModel stores owner's model if its generation is still
	// gen, else fails with store.ErrConflict.
	PutFilterModel(ctx context.Context, owner string, m store.FilterModel, gen uint64) (uint64, error)
}

var _ Store = store.Store(nil)

// Keyring is what the filter needs of an unlocked account: sealing
// under its index key (crypto.Keyring).
type Keyring interface {
	SealIndex(plain, ad []byte) ([]byte, error)
	OpenIndex(sealed, ad []byte) ([]byte, error)
}

var _ Keyring = (*crypto.Keyring)(nil)

// Defaults of Options.
const (
	DefaultMaxUsers   = 100_000
	DefaultCacheBytes = 64 << 20
	// modelTTL is how long a decrypted model is used before it is read
	// again (another node may have trained it).
	modelTTL = 5 * time.Minute
	// conflictRetries bounds the retries of a training write that met
	// another one.
	conflictRetries = 5
)

// Options configures New. Store is required; the zero value of every
// other field is safe.
type Options struct {
	Store  Store
	Logger *slog.Logger // nil: discard
	// MaxUsers bounds the accounts whose filter key is held in memory
	// (least recently used go first; they get it back at their next
	// login). 0: DefaultMaxUsers.
	MaxUsers int
	// CacheBytes bounds the decrypted models kept in memory. 0:
	// DefaultCacheBytes.
	CacheBytes int64
	// ShareTraining makes each user's training also train the
	// organisation's model (which a thief of the data directory can
	// test guessed words against; see SECURITY.md). false: users train
	// their own model only.
	ShareTraining bool
}

// Service is the spam classifier: the organisation's model and each
// account's own. Its methods are safe for concurrent use.
type Service struct {
	st    Store        // immutable
	log   *slog.Logger // immutable
	share bool         // immutable

	locks sync.Map // owner → *sync.Mutex: one training write at a time per model, in this process

	mu       sync.Mutex
	users    map[string]*list.Element // guarded by mu; account → *userKeys, in userLRU
	userLRU  *list.List               // guarded by mu; front: most recent
	maxUsers int                      // immutable
	models   map[string]*list.Element // guarded by mu; owner → *cached, in modelLRU
	modelLRU *list.List               // guarded by mu
	cached   int64                    // guarded by mu; bytes of cached models
	maxBytes int64                    // immutable
	org      *keys                    // guarded by mu; nil until the organisation's model exists
}

type userKeys struct {
	account string
	k       *keys
	sealed  []byte // the sealed F they came from: another one means another account
}

type cached struct {
	owner  string
	m      *model
	gen    uint64
	loaded time.Time
	size   int64
}

// New returns the filter service.
func New(opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("filter: Options.Store is required")
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxUsers <= 0 {
		opt.MaxUsers = DefaultMaxUsers
	}
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = DefaultCacheBytes
	}
	return &Service{
		st: opt.Store, log: log, share: opt.ShareTraining,
		users: make(map[string]*list.Element), userLRU: list.New(), maxUsers: opt.MaxUsers,
		models: make(map[string]*list.Element), modelLRU: list.New(), maxBytes: opt.CacheBytes,
	}, nil
}

// keyAD binds an account's sealed filter key to the account.
func keyAD(account string) []byte { return []byte("sealmail filter key v1\x00" + account) }

// Unlocked is told of each login with the session's keyring: it opens
// (or, the first time, creates) the account's filter key, sealed under
// the account's index key, and keeps the keys derived from it in memory
// so that deliveries can use the account's model. It keeps nothing of
// kr.
func (s *Service) Unlocked(ctx context.Context, account string, kr Keyring) error {
	_, err := s.unlock(ctx, account, kr)
	return err
}

// unlock returns the account's keys, opening or creating its filter
// key with kr. Keys in memory are reused while the stored sealed key is
// the one they came from (an account deleted and created again under
// the same address has another).
func (s *Service) unlock(ctx context.Context, account string, kr Keyring) (*keys, error) {
	for range conflictRetries {
		m, err := s.st.FilterModel(ctx, account)
		if err == nil {
			if k := s.userKeysFor(account, m.Key); k != nil {
				return k, nil
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			f := newKey()
			k, err := deriveKeys(f)
			if err != nil {
				clear(f)
				return nil, err
			}
			sealed, err := kr.SealIndex(f, keyAD(account))
			clear(f)
			if err != nil {
				return nil, fmt.Errorf("filter: seal key of %s: %w", account, err)
			}
			_, err = s.st.PutFilterModel(ctx, account, store.FilterModel{Key: sealed, Data: (&model{}).seal(k, account)}, 0)
			if errors.Is(err, store.ErrConflict) {
				continue // another session created it first: open theirs
			}
			if err != nil {
				return nil, fmt.Errorf("filter: create model of %s: %w", account, err)
			}
			s.rememberUser(account, k, sealed)
			return k, nil
		}
		if err != nil {
			return nil, fmt.Errorf("filter: model of %s: %w", account, err)
		}
		f, err := kr.OpenIndex(m.Key, keyAD(account))
		if err != nil {
			return nil, fmt.Errorf("filter: open key of %s: %w", account, err)
		}
		k, err := deriveKeys(f)
		clear(f)
		if err != nil {
			return nil, err
		}
		s.rememberUser(account, k, m.Key)
		return k, nil
	}
	return nil, fmt.Errorf("filter: model of %s: %w", account, store.ErrConflict)
}

// userKeysFor returns the account's keys in memory if they came from
// sealed.
func (s *Service) userKeysFor(account string, sealed []byte) *keys {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.users[account]; ok {
		if uk := el.Value.(*userKeys); bytes.Equal(uk.sealed, sealed) {
			s.userLRU.MoveToFront(el)
			return uk.k
		}
	}
	return nil
}

func (s *Service) userKeys(account string) *keys {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.users[account]; ok {
		s.userLRU.MoveToFront(el)
		return el.Value.(*userKeys).k
	}
	return nil
}

func (s *Service) rememberUser(account string, k *keys, sealed []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropModelLocked(account) // it may be another account's, of the same address
	if el, ok := s.users[account]; ok {
		uk := el.Value.(*userKeys)
		uk.k, uk.sealed = k, bytes.Clone(sealed)
		s.userLRU.MoveToFront(el)
		return
	}
	s.users[account] = s.userLRU.PushFront(&userKeys{account: account, k: k, sealed: bytes.Clone(sealed)})
	for s.userLRU.Len() > s.maxUsers {
		old := s.userLRU.Back()
		s.forgetLocked(old.Value.(*userKeys).account)
	}
}

// Forget drops what the service holds of an account (its key and
// model); the next login brings them back.
func (s *Service) Forget(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(account)
}

func (s *Service) forgetLocked(account string) {
	if el, ok := s.users[account]; ok {
		clear(el.Value.(*userKeys).k.tok)
		s.userLRU.Remove(el)
		delete(s.users, account)
	}
	s.dropModelLocked(account)
}

func (s *Service) dropModelLocked(owner string) {
	if el, ok := s.models[owner]; ok {
		s.cached -= el.Value.(*cached).size
		s.modelLRU.Remove(el)
		delete(s.models, owner)
	}
}

// orgKeys returns the organisation model's keys, reading its key from
// the store the first time; nil if there is no organisation model yet.
func (s *Service) orgKeys(ctx context.Context) (*keys, error) {
	s.mu.Lock()
	k := s.org
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	m, err := s.st.FilterModel(ctx, "")
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filter: organisation model: %w", err)
	}
	k, err = deriveKeys(m.Key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.org = k
	s.mu.Unlock()
	return k, nil
}

// load returns owner's decrypted model and its generation, from the
// cache while it is fresh.
func (s *Service) load(ctx context.Context, owner string, k *keys) (*model, uint64, error) {
	s.mu.Lock()
	if el, ok := s.models[owner]; ok {
		c := el.Value.(*cached)
		if time.Since(c.loaded) < modelTTL {
			s.modelLRU.MoveToFront(el)
			s.mu.Unlock()
			return c.m, c.gen, nil
		}
		s.dropModelLocked(owner)
	}
	s.mu.Unlock()
	sm, err := s.st.FilterModel(ctx, owner)
	if err != nil {
		return nil, 0, err
	}
	m, err := openModel(k, owner, sm.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("filter: model of %q: %w", owner, err)
	}
	s.cache(owner, m, sm.Gen)
	return m, sm.Gen, nil
}

func (s *Service) cache(owner string, m *model, gen uint64) {
	size := int64(len(m.toks))*entryLen + int64(len(m.trained))*trainedLen + 256
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropModelLocked(owner)
	if size > s.maxBytes/4 {
		return // too big to be worth crowding out the others
	}
	s.models[owner] = s.modelLRU.PushFront(&cached{owner: owner, m: m, gen: gen, loaded: time.Now(), size: size})
	s.cached += size
	for s.cached > s.maxBytes {
		s.dropModelLocked(s.modelLRU.Back().Value.(*cached).owner)
	}
}

// Classify scores a message for each account: the organisation's model
// and the account's own, when the account's key is in memory (it logged
// in since the server started). A nil score means the models have not
// seen both spam and ham yet. It reads at most the first MiB of msg.
func (s *Service) Classify(ctx context.Context, msg io.Reader, accounts []string) ([]*policy.SpamScore, error) {
	toks := tokenize(msg)
	org, err := s.orgKeys(ctx)
	if err != nil {
		return nil, err
	}
	base := counts{tok: make([]tokenCount, len(toks))}
	for i, t := range toks {
		base.tok[i].class = t.class
	}
	if org != nil {
		m, _, err := s.load(ctx, "", org)
		if err != nil {
			return nil, err
		}
		base.spam, base.ham = m.spam, m.ham
		th := org.hasher()
		for i, t := range toks {
			tc := &base.tok[i]
			tc.spam, tc.ham, tc.known = m.lookup(th.hash(t))
		}
	}
	out := make([]*policy.SpamScore, len(accounts))
	for i, a := range accounts {
		c := base
		if k := s.userKeys(a); k != nil {
			m, _, err := s.load(ctx, a, k)
			switch {
			case errors.Is(err, store.ErrNotFound), errors.Is(err, errCorruptModel):
				s.Forget(a) // the account is gone, or another took its address: its next login tells
			case err != nil:
				s.log.Warn("filter: personal model unreadable; scoring with the organisation's", "account", a, "err", err)
			default:
				c = counts{spam: base.spam + m.spam, ham: base.ham + m.ham, tok: make([]tokenCount, len(toks))}
				th := k.hasher()
				for j, t := range toks {
					us, uh, ok := m.lookup(th.hash(t))
					b := base.tok[j]
					c.tok[j] = tokenCount{class: b.class, spam: b.spam + us, ham: b.ham + uh, known: b.known || ok}
				}
			}
		}
		if sc, ok := score(&c); ok {
			out[i] = &sc
		}
	}
	return out, nil
}

// LearnResult says what a training did.
type LearnResult struct {
	Messages  int // messages read
	Unchanged int // trained before with the same verdict
}

// Learn trains account's model (and, with ShareTraining, the
// organisation's) with msgs as spam or ham. kr is the account's
// unlocked keyring: only an unlocked session (or the owner at the
// command line) can train. Each message is read up to its first MiB.
func (s *Service) Learn(ctx context.Context, account string, kr Keyring, spam bool, msgs iter.Seq2[io.Reader, error]) (LearnResult, error) {
	k, err := s.unlock(ctx, account, kr)
	if err != nil {
		return LearnResult{}, err
	}
	var org *keys
	if s.share {
		var err error
		if org, err = s.ensureOrg(ctx); err != nil {
			return LearnResult{}, err
		}
	}
	var ups, orgUps []update
	var res LearnResult
	for r, err := range msgs {
		if err != nil {
			return res, err
		}
		toks, digest := tokenizeDigest(r)
		res.Messages++
		ups = append(ups, k.updateOf(toks, digest, spam))
		if org != nil {
			orgUps = append(orgUps, org.updateOf(toks, digest, spam))
		}
	}
	n, err := s.write(ctx, account, k, ups, maxUserTokens)
	res.Unchanged = len(ups) - n
	if err != nil {
		return res, err
	}
	if org != nil {
		if _, err := s.write(ctx, "", org, orgUps, maxOrgTokens); err != nil {
			return res, err
		}
	}
	return res, nil
}

// LearnOrg trains the organisation's model with msgs as spam or ham.
func (s *Service) LearnOrg(ctx context.Context, spam bool, msgs iter.Seq2[io.Reader, error]) (LearnResult, error) {
	org, err := s.ensureOrg(ctx)
	if err != nil {
		return LearnResult{}, err
	}
	var ups []update
	var res LearnResult
	for r, err := range msgs {
		if err != nil {
			return res, err
		}
		toks, digest := tokenizeDigest(r)
		res.Messages++
		ups = append(ups, org.updateOf(toks, digest, spam))
	}
	n, err := s.write(ctx, "", org, ups, maxOrgTokens)
	res.Unchanged = len(ups) - n
	return res, err
}

// ensureOrg returns the organisation model's keys, creating the model
// (and its key, kept in the clear beside it: there is no secret that
// could protect it and still let deliveries read it) the first time.
func (s *Service) ensureOrg(ctx context.Context) (*keys, error) {
	for range conflictRetries {
		k, err := s.orgKeys(ctx)
		if err != nil || k != nil {
			return k, err
		}
		f := newKey()
		if k, err = deriveKeys(f); err != nil {
			return nil, err
		}
		_, err = s.st.PutFilterModel(ctx, "", store.FilterModel{Key: f, Data: (&model{}).seal(k, "")}, 0)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("filter: create the organisation model: %w", err)
		}
	}
	return s.orgKeys(ctx)
}

// write applies ups to owner's model, retrying when another writer got
// there first, and returns how many updates changed it.
func (s *Service) write(ctx context.Context, owner string, k *keys, ups []update, maxTokens int) (int, error) {
	if len(ups) == 0 {
		return 0, nil
	}
	mu, _ := s.locks.LoadOrStore(owner, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	for range conflictRetries {
		sm, err := s.st.FilterModel(ctx, owner)
		if err != nil {
			return 0, fmt.Errorf("filter: model of %q: %w", owner, err)
		}
		m, err := openModel(k, owner, sm.Data)
		if err != nil {
			return 0, fmt.Errorf("filter: model of %q: %w", owner, err)
		}
		n, changed := m.apply(ups, maxTokens)
		gen, err := s.st.PutFilterModel(ctx, owner, store.FilterModel{Key: sm.Key, Data: n.seal(k, owner)}, sm.Gen)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("filter: store model of %q: %w", owner, err)
		}
		s.cache(owner, n, gen)
		return changed, nil
	}
	return 0, fmt.Errorf("filter: model of %q: %w", owner, store.ErrConflict)
}

// updateOf is the update that trains a message's tokens.
func (k *keys) updateOf(toks []token, digest []byte, spam bool) update {
	u := update{msg: k.hashMessage(digest), spam: spam, tokens: make([]hash, len(toks))}
	th := k.hasher()
	for i, t := range toks {
		u.tokens[i] = th.hash(t)
	}
	return u
}

// tokenizeDigest tokenizes a message and returns, with its tokens, the
// SHA-256 of the bytes read (the message's identity for unlearning).
func tokenizeDigest(r io.Reader) ([]token, []byte) {
	h := sha256.New()
	lr := io.LimitReader(r, maxScanBytes)
	toks := tokenize(io.TeeReader(lr, h))
	// Hash what tokenize left unread of the first MiB too, so that the
	// identity covers the same bytes whatever the parser stopped at.
	io.Copy(h, lr)
	return toks, h.Sum(nil)
}
