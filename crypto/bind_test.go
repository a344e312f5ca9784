package crypto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func sealBytes(t *testing.T, p *PublicKey, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := p.Seal(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSessionKeyBinding: a session key sealed for one message (ad) opens
// that message only with the same ad; ResealSessionKey moves it to
// another ad without exposing it.
func TestSessionKeyBinding(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		a := testAccount(t, kt)
		msg := []byte("Subject: bound\r\n\r\nbody\r\n")
		sealed := sealBytes(t, a.pub, msg)
		adA, adB := []byte("acct\x00mbox 1\x00uid 7"), []byte("acct\x00mbox 1\x00uid 8")
		plain, sk, err := a.kr.OpenFor(bytes.NewReader(sealed), adA)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, plain)
		if _, err := a.kr.OpenWithSessionKeyFor(bytes.NewReader(sealed), sk, adB); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: key bound to A opened as B: %v", kt, err)
		}
		if _, err := a.kr.OpenWithSessionKey(bytes.NewReader(sealed), sk); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: bound key opened unbound: %v", kt, err)
		}
		r, err := a.kr.OpenWithSessionKeyFor(bytes.NewReader(sealed), sk, adA)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s: %q %v", kt, got, err)
		}
		skB, err := a.kr.ResealSessionKey(sk, adA, adB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.kr.OpenWithSessionKeyFor(bytes.NewReader(sealed), skB, adB); err != nil {
			t.Errorf("%s: resealed key: %v", kt, err)
		}
		if _, err := a.kr.ResealSessionKey(sk, adB, adA); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: reseal from the wrong ad: %v", kt, err)
		}
	}
}

// TestCheckPublicKey: the account's own public key passes; another
// account's (a swap in the data directory) is ErrKeyMismatch.
func TestCheckPublicKey(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	if err := a.kr.CheckPublicKey(a.sec.PublicKey); err != nil {
		t.Fatalf("own key: %v", err)
	}
	other, err := NewAccount("mallory@example.org", []byte("mallory password"), AccountOptions{KDF: TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.kr.CheckPublicKey(other.PublicKey); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("other account's key: %v", err)
	}
	if err := a.kr.CheckPublicKey([]byte("garbage")); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("garbage: %v", err)
	}
}
