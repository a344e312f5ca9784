package smtp

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// keyCache keeps parsed public keys, least recently used out first. The
// key is account address and fingerprint, so a rotated key is parsed
// afresh and the old entry ages out.
type keyCache struct {
	max int // immutable

	mu    sync.Mutex
	order *list.List               // guarded by mu; front is most recent; values are *keyEntry
	byKey map[string]*list.Element // guarded by mu
}

type keyEntry struct {
	key string
	pub *crypto.PublicKey
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// get returns the parsed public key of a, parsing it on a miss. Parsing
// runs outside the lock.
func (c *keyCache) get(a store.PublicAccount) (*crypto.PublicKey, error) {
	k := a.Address + "\x00" + a.KeyFingerprint
	c.mu.Lock()
	if e, ok := c.byKey[k]; ok {
		c.order.MoveToFront(e)
		pub := e.Value.(*keyEntry).pub
		c.mu.Unlock()
		return pub, nil
	}
	c.mu.Unlock()

	pub, err := crypto.ParsePublicKey(a.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("smtp: public key of %s: %w", a.Address, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok { // parsed concurrently
		c.order.MoveToFront(e)
		return e.Value.(*keyEntry).pub, nil
	}
	c.byKey[k] = c.order.PushFront(&keyEntry{key: k, pub: pub})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byKey, old.Value.(*keyEntry).key)
	}
	return pub, nil
}

// len returns the number of cached keys.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
