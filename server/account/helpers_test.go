package account

import (
	"context"
	"errors"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const (
	alice   = "alice@example.org"
	alicePW = "correct horse battery staple"
	newPW   = "a new and even longer password"
)

// newService returns a Service over a badger store in a temporary
// directory, with cheap argon2id and no failure delay unless opt says
// otherwise.
func newService(t testing.TB, opt Options) (*Service, *badgerstore.DB) {
	t.Helper()
	st, err := badgerstore.Open(t.TempDir(), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opt.Store = st
	if opt.Domains == nil {
		opt.Domains = []string{"example.org"}
	}
	if opt.KDF == (crypto.KDFParams{}) {
		opt.KDF = crypto.TestKDF()
	}
	if opt.FailureDelay == 0 {
		opt.FailureDelay = -1
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		st.Close()
	})
	return s, st
}

// mustCreate creates addr with password pw.
func mustCreate(t testing.TB, s *Service, addr, pw string) Info {
	t.Helper()
	info, err := s.Create(context.Background(), addr, []byte(pw))
	if err != nil {
		t.Fatalf("Create %s: %v", addr, err)
	}
	return info
}

// login logs in from remote.
func login(s *Service, remote, user, secret string) (*Session, error) {
	return s.Login(context.Background(), LoginRequest{Remote: remote, Username: user, Secret: []byte(secret)})
}

func mustLogin(t testing.TB, s *Service, remote, user, secret string) *Session {
	t.Helper()
	sess, err := login(s, remote, user, secret)
	if err != nil {
		t.Fatalf("Login %s from %s: %v", user, remote, err)
	}
	t.Cleanup(sess.Close)
	return sess
}

// wiped reports whether a keyring has been wiped.
func wiped(kr *crypto.Keyring) bool {
	_, err := kr.SealIndex([]byte("x"), nil)
	return errors.Is(err, crypto.ErrWiped)
}

// ended reports whether a session has ended, and why.
func ended(sess *Session) (bool, error) {
	select {
	case <-sess.Context().Done():
		return true, context.Cause(sess.Context())
	default:
		return false, nil
	}
}
