package account

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Bounds of the unlock cache.
const (
	// cachePerAccount entries per account: one per device secret (the
	// password, a few app passwords); the least recently used goes first.
	cachePerAccount = 8
	// cacheMaxEntries bounds the whole cache (about 200 bytes each).
	cacheMaxEntries = 100000
)

// unlockCache keeps, per account, the master secret wrapped under a fast
// keyed hash of each secret that recently unlocked it
// (crypto.CachedSecret), in memory only. An entry is tied to the slot the
// secret opened: it serves a login only while that slot still exists, so
// a slot removed by another process or node is noticed at the next login.
type unlockCache struct {
	ttl  time.Duration            // immutable
	now  func() time.Time         // immutable
	mu   sync.Mutex               // after Service.mu in lock order
	m    map[string][]*cacheEntry // guarded by mu; most recently used last
	n    int                      // guarded by mu; entries in m
	stop chan struct{}            // closed by close
	done chan struct{}            // closed when the janitor has stopped
}

type cacheEntry struct {
	slot   uint32               // immutable
	kind   store.SlotKind       // immutable
	secret *crypto.CachedSecret // immutable pointer; wiped when dropped
	used   time.Time            // guarded by unlockCache.mu
}

func newUnlockCache(ttl time.Duration, now func() time.Time) *unlockCache {
	c := &unlockCache{ttl: ttl, now: now, m: make(map[string][]*cacheEntry),
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.janitor()
	return c
}

// janitor wipes entries idle longer than ttl, checking a few times per
// ttl (at most once a second, at least once a minute).
func (c *unlockCache) janitor() {
	defer close(c.done)
	every := min(max(c.ttl/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.expire()
		}
	}
}

func (c *unlockCache) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for acct, es := range c.m {
		kept := es[:0]
		for _, e := range es {
			if now.Sub(e.used) >= c.ttl {
				e.secret.Wipe()
				c.n--
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) == 0 {
			delete(c.m, acct)
		} else {
			clear(es[len(kept):])
			c.m[acct] = kept
		}
	}
}

// lookup tries secret against the account's fresh entries whose slot is
// still among slots. secretFor gives the form of the secret an entry of a
// kind was made from (nil: skip). Every fresh entry is tried, hit or not,
// so the work does not depend on which one matches. Entries that turn out
// stale are dropped. tried reports whether secret was tried against any
// entry (a miss then tells the caller something about the secret).
func (c *unlockCache) lookup(acct store.Account, secretFor func(store.SlotKind) []byte) (keys *crypto.Keyring, slot store.Slot, ok, tried bool) {
	c.mu.Lock()
	now := c.now()
	var candidates []*cacheEntry
	for _, e := range c.m[acct.Address] {
		if now.Sub(e.used) < c.ttl {
			candidates = append(candidates, e)
		}
	}
	c.mu.Unlock()

	var (
		hit   *crypto.Keyring
		used  *cacheEntry
		stale []*cacheEntry
	)
	for _, e := range candidates {
		i := slices.IndexFunc(acct.Slots, func(s store.Slot) bool { return s.ID == e.slot && s.Kind == e.kind })
		secret := secretFor(e.kind)
		if i < 0 || secret == nil {
			if i < 0 {
				stale = append(stale, e)
			}
			continue
		}
		tried = true
		kr, err := e.secret.Unlock(secret, acct.WrappedKey)
		switch {
		case err == nil && hit == nil:
			hit, slot, used = kr, acct.Slots[i], e
		case err == nil:
			kr.Wipe()
		case !errors.Is(err, crypto.ErrBadPassword):
			stale = append(stale, e) // wiped, or M no longer opens the key
		}
	}
	if used == nil && len(stale) == 0 {
		return nil, store.Slot{}, false, tried
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.m[acct.Address]
	for _, e := range stale {
		if i := slices.Index(es, e); i >= 0 {
			es = slices.Delete(es, i, i+1)
			e.secret.Wipe()
			c.n--
		}
	}
	if used != nil {
		if i := slices.Index(es, used); i >= 0 {
			used.used = now
			es = append(slices.Delete(es, i, i+1), used)
		}
	}
	c.set(acct.Address, es)
	return hit, slot, hit != nil, tried
}

// add caches keys under secret for account's slot, replacing an entry for
// the same slot. Called under Service.mu (see Service.register).
func (c *unlockCache) add(account string, slot store.Slot, secret []byte, keys *crypto.Keyring) error {
	cs, err := keys.Cache(secret)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	es := c.m[account]
	if i := slices.IndexFunc(es, func(e *cacheEntry) bool { return e.slot == slot.ID }); i >= 0 {
		es[i].secret.Wipe()
		es = slices.Delete(es, i, i+1)
		c.n--
	}
	if len(es) >= cachePerAccount {
		es[0].secret.Wipe()
		es = slices.Delete(es, 0, 1)
		c.n--
	}
	if c.n >= cacheMaxEntries {
		c.evictOneLocked(account)
	}
	es = append(es, &cacheEntry{slot: slot.ID, kind: slot.Kind, secret: cs, used: c.now()})
	c.n++
	c.set(account, es)
	return nil
}

// evictOneLocked drops the least recently used entry of some other
// account (map order picks which: any idle entry will do under pressure).
func (c *unlockCache) evictOneLocked(except string) {
	for acct, es := range c.m {
		if acct == except || len(es) == 0 {
			continue
		}
		es[0].secret.Wipe()
		c.n--
		c.set(acct, slices.Delete(es, 0, 1))
		return
	}
}

func (c *unlockCache) set(account string, es []*cacheEntry) {
	if len(es) == 0 {
		delete(c.m, account)
		return
	}
	c.m[account] = es
}

// forget wipes every entry of account.
func (c *unlockCache) forget(account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m[account] {
		e.secret.Wipe()
		c.n--
	}
	delete(c.m, account)
}

// len is the number of entries, for tests.
func (c *unlockCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// close stops the janitor and wipes everything.
func (c *unlockCache) close() {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, es := range c.m {
		for _, e := range es {
			e.secret.Wipe()
		}
	}
	c.m = make(map[string][]*cacheEntry)
	c.n = 0
}
