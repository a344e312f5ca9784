package account

import (
	"context"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/crypto"
)

// TestOnLogin: the hook sees each successful login, with a keyring that
// works while it runs, and no failed one.
func TestOnLogin(t *testing.T) {
	var (
		mu     sync.Mutex
		seen   []string
		usable []bool
	)
	s, _ := newService(t, Options{OnLogin: func(ctx context.Context, account string, keys *crypto.Keyring) {
		_, err := keys.SealIndex([]byte("x"), nil)
		mu.Lock()
		seen, usable = append(seen, account), append(usable, err == nil)
		mu.Unlock()
	}})
	mustCreate(t, s, "alice@example.org", "correct horse battery")
	if _, err := login(s, "192.0.2.1:1", "alice@example.org", "wrong password!"); err == nil {
		t.Fatal("wrong password logged in")
	}
	sess := mustLogin(t, s, "192.0.2.1:1", "Alice@Example.org", "correct horse battery")
	sess.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "alice@example.org" || !usable[0] {
		t.Errorf("OnLogin saw %v (keyring usable %v), want one call for alice@example.org", seen, usable)
	}
}
