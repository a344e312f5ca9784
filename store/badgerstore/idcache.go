package badgerstore

import "sync"

// idCache maps addresses to account IDs for read transactions, so that a
// read need not look up the account record (which sits deep in badger's
// LSM tree: it is written once) before every other key it reads. An
// address keeps its ID for as long as its record exists; only a deleted
// account's mapping goes stale, and the writer drops it after the
// deleting commit (commitLog.accounts) and counts the drop in gen. A
// reader puts what it read only if gen is the same as before its
// transaction began: a reader whose snapshot predates a deletion cannot
// bring the deleted account's mapping back. Mappings are in the clear on
// disk already (the a and w rows).
type idCache struct {
	mu  sync.Mutex
	gen uint64
	ids map[string]uint64
	max int
}

// maxIDs bounds the cache; when full it starts over.
const maxIDs = 16384

func newIDCache() *idCache { return &idCache{ids: make(map[string]uint64), max: maxIDs} }

// generation returns the drop count, to be read before a read
// transaction begins and passed to put.
func (c *idCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *idCache) get(address string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.ids[address]
	return id, ok
}

// put records address's ID as read in a transaction that began at
// generation gen.
func (c *idCache) put(address string, id, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.ids) >= c.max {
		clear(c.ids)
	}
	c.ids[address] = id
}

// drop forgets the addresses of accounts whose records a commit deleted.
func (c *idCache) drop(addresses []string) {
	if len(addresses) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, a := range addresses {
		delete(c.ids, a)
	}
}
