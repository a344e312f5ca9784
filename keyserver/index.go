package keyserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// indexTTL is how stale the hash index may get. It only maps hashes to
// addresses; whether a key is published is read from the store on every
// request, so staleness can only delay a new account being found by
// clients that do not send "l".
const indexTTL = time.Minute

// hashIndex maps "domain/hash" to a canonical address, for WKD requests
// without the "l" parameter.
type hashIndex struct {
	lister AccountLister // immutable
	ttl    time.Duration // immutable

	mu    sync.Mutex
	built time.Time         // guarded by mu
	m     map[string]string // guarded by mu
}

// lookup returns the address whose local part hashes to hash in domain, or
// "" if there is none. At most one rebuild runs at a time; others wait for
// it.
func (x *hashIndex) lookup(ctx context.Context, domain, hash string) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil || time.Since(x.built) > x.ttl {
		if err := x.rebuildLocked(ctx); err != nil {
			return "", err
		}
	}
	return x.m[domain+"/"+hash], nil
}

func (x *hashIndex) rebuildLocked(ctx context.Context) error {
	accts, err := x.lister.PublicAccounts(ctx)
	if err != nil {
		return fmt.Errorf("keyserver: list accounts: %w", err)
	}
	m := make(map[string]string, len(accts))
	for _, a := range accts {
		if !a.PublishWKD {
			continue
		}
		at := strings.LastIndexByte(a.Address, '@')
		if at <= 0 {
			continue
		}
		m[a.Address[at+1:]+"/"+WKDHash(a.Address[:at])] = a.Address
	}
	x.m, x.built = m, time.Now()
	return nil
}
