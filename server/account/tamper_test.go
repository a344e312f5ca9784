package account

import (
	"context"
	"errors"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestLoginRefusesSwappedPublicKey is issue 9 item 13: someone who can
// write the data directory replaces an account's public key with
// another's, so that mail delivered afterwards is sealed to them. The
// account's own password is right, but the login is refused
// (ErrKeyMismatch) and the keyring wiped. The swap is made through the
// store: an account whose slots and wrapped private key are alice's and
// whose public key is bob's.
func TestLoginRefusesSwappedPublicKey(t *testing.T) {
	for _, cache := range []bool{false, true} {
		opt := Options{}
		if cache {
			opt.UnlockCache = 1 << 40
		}
		s, st := newService(t, opt)
		mustCreate(t, s, alice, alicePW)
		mustCreate(t, s, "bob@example.org", "bob's own long password")
		ctx := context.Background()
		a, err := st.Account(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Account(ctx, "bob@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if cache {
			// A cached entry must not skip the check either.
			mustLogin(t, s, "192.0.2.1:1", alice, alicePW)
		}
		forged := store.Account{
			Address: "victim@example.org", KeyFingerprint: b.KeyFingerprint, PublicKey: b.PublicKey,
			WrappedKey: a.WrappedKey, Slots: a.Slots,
		}
		if err := st.CreateAccount(ctx, forged, store.DefaultMailboxes); err != nil {
			t.Fatal(err)
		}
		if _, err := login(s, "192.0.2.1:1", "victim@example.org", alicePW); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("cache %v: login with a swapped public key: %v, want ErrKeyMismatch", cache, err)
		}
		// The untouched account still logs in.
		mustLogin(t, s, "192.0.2.1:1", alice, alicePW)
	}
}
