package testutil

import (
	"context"
	"runtime"
	"sync"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Accounts is what SealFor needs of a store.
type Accounts interface {
	Account(ctx context.Context, address string) (store.Account, error)
}

// SealFor seals msg to the public key of the account address in st.
func SealFor(ctx context.Context, st Accounts, address string, msg []byte) ([]byte, error) {
	pk, err := PublicKey(ctx, st, address)
	if err != nil {
		return nil, err
	}
	return pk.SealBytes(msg)
}

// PublicKey returns the public key of the account address in st.
func PublicKey(ctx context.Context, st Accounts, address string) (*crypto.PublicKey, error) {
	acct, err := st.Account(ctx, address)
	if err != nil {
		return nil, err
	}
	return crypto.ParsePublicKey(acct.PublicKey)
}

// SealAll seals messages 0 … n-1, msg(i) each, to pk on every core and
// returns them in order: a benchmark's fixture of thousands of messages.
func SealAll(pk *crypto.PublicKey, n int, msg func(i int) []byte) ([][]byte, error) {
	out := make([][]byte, n)
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error // guarded by mu
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := pk.SealBytes(msg(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				out[i] = b
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, firstErr
}
