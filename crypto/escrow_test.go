package crypto

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const escrowPass = "a long escrow passphrase, kept in the safe"

var (
	escrowOnce sync.Once
	escrowPair *EscrowKeyPair
	escrowErr  error
)

func testEscrow(t testing.TB) (*EscrowKeyPair, *PublicKey) {
	t.Helper()
	escrowOnce.Do(func() {
		escrowPair, escrowErr = NewEscrowKey("sealmail escrow <escrow@example.org>", []byte(escrowPass))
	})
	if escrowErr != nil {
		t.Fatal(escrowErr)
	}
	pub, err := ParsePublicKey(escrowPair.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return escrowPair, pub
}

func sealAlso(t testing.TB, pub *PublicKey, msg []byte, also ...*PublicKey) []byte {
	t.Helper()
	sealed, err := pub.SealBytes(msg, also...)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func readAll(t *testing.T, r io.Reader, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewEscrowKey(t *testing.T) {
	pair, pub := testEscrow(t)
	if pub.Fingerprint() != pair.Fingerprint {
		t.Errorf("fingerprint %s, public key says %s", pair.Fingerprint, pub.Fingerprint())
	}
	if !bytes.HasPrefix(pair.Private, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		t.Fatalf("private half starts %q", pair.Private[:40])
	}
	// Every secret key in the file is protected.
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pair.Private))
	if err != nil || len(el) != 1 {
		t.Fatalf("read: %d keys, %v", len(el), err)
	}
	keys := []*packet.PrivateKey{el[0].PrivateKey}
	for _, sk := range el[0].Subkeys {
		keys = append(keys, sk.PrivateKey)
	}
	for _, k := range keys {
		if k == nil || !k.Encrypted {
			t.Fatal("an escrow secret key is not protected")
		}
	}
	if !strings.Contains(string(pair.PublicKey), "escrow@example.org") {
		t.Error("user ID missing")
	}
	if _, err := UnlockEscrowKey(pair.Private, []byte("not the passphrase at all")); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong passphrase: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"public key": pair.PublicKey,
		"garbage":    []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n"),
		"huge":       bytes.Repeat([]byte("a"), maxEscrowKeyFile+1),
	} {
		if _, err := UnlockEscrowKey(bad, []byte(escrowPass)); err == nil {
			t.Errorf("%s unlocked", name)
		}
	}
	if _, err := NewEscrowKey("sealmail escrow <escrow@example.org>", []byte("fifteen chars!!")); err == nil {
		t.Error("short passphrase accepted")
	}
	for _, uid := range []string{"", "escrow@example.org", "<escrow@example.org>", "x <not an address>"} {
		if _, err := NewEscrowKey(uid, []byte(escrowPass)); err == nil {
			t.Errorf("user ID %q accepted", uid)
		}
	}
}

// TestEscrowSeal: a message sealed to an account and the escrow key opens
// with either, for every account key type; SealedTo tells which messages
// the escrow key opens.
func TestEscrowSeal(t *testing.T) {
	pair, epub := testEscrow(t)
	ek, err := UnlockEscrowKey(pair.Private, []byte(escrowPass))
	if err != nil {
		t.Fatal(err)
	}
	defer ek.Wipe()
	if ek.Fingerprint() != pair.Fingerprint {
		t.Errorf("unlocked %s, made %s", ek.Fingerprint(), pair.Fingerprint)
	}
	msg := []byte("Subject: producible\r\n\r\nkept for the regulator\r\n")
	for _, kt := range []KeyType{KeyEd25519, KeyRSA3072, KeyV6Ed25519} {
		t.Run(kt.String(), func(t *testing.T) {
			a := testAccount(t, kt)
			both := sealAlso(t, a.pub, msg, epub)
			plain, _, err := a.kr.Open(bytes.NewReader(both))
			if got := readAll(t, plain, err); !bytes.Equal(got, msg) {
				t.Fatalf("account opened %q", got)
			}
			er, err := ek.Open(bytes.NewReader(both))
			if got := readAll(t, er, err); !bytes.Equal(got, msg) {
				t.Fatalf("escrow opened %q", got)
			}
			for _, c := range []struct {
				who  *PublicKey
				blob []byte
				want bool
			}{{epub, both, true}, {a.pub, both, true}} {
				if ok, err := c.who.SealedTo(bytes.NewReader(c.blob)); err != nil || ok != c.want {
					t.Errorf("SealedTo = %v, %v; want %v", ok, err, c.want)
				}
			}
			only := sealAlso(t, a.pub, msg)
			if ok, err := epub.SealedTo(bytes.NewReader(only)); err != nil || ok {
				t.Errorf("SealedTo a message without escrow = %v, %v", ok, err)
			}
			if _, err := ek.Open(bytes.NewReader(only)); !errors.Is(err, ErrIntegrity) {
				t.Errorf("escrow opened a message not sealed to it: %v", err)
			}
			// Tampering is caught through the escrow path too.
			bad := bytes.Clone(both)
			bad[len(bad)-10] ^= 1
			if r, err := ek.Open(bytes.NewReader(bad)); err == nil {
				if _, err := io.ReadAll(r); !errors.Is(err, ErrIntegrity) {
					t.Errorf("tampered message read to the end: %v", err)
				}
			}
		})
	}
	if _, err := epub.SealedTo(strings.NewReader("not a message")); err == nil {
		t.Error("SealedTo garbage: no error")
	}
	ek.Wipe()
	a := testAccount(t, KeyEd25519)
	if _, err := ek.Open(bytes.NewReader(sealAlso(t, a.pub, msg, epub))); !errors.Is(err, ErrWiped) {
		t.Errorf("after Wipe: %v", err)
	}
}

// TestEscrowGnuPG: the escrow key is a standard OpenPGP key: GnuPG imports
// it with the passphrase and decrypts escrowed mail with it.
func TestEscrowGnuPG(t *testing.T) {
	g := newGnuPG(t)
	pair, epub := testEscrow(t)
	keyFile := filepath.Join(g.home, "escrow.asc")
	writeTestFile(t, keyFile, pair.Private)
	g.run(nil, "--passphrase", escrowPass, "--import", keyFile)
	a := testAccount(t, KeyEd25519)
	msg := []byte("Subject: for the auditor\r\n\r\nopened with gpg\r\n")
	msgFile := filepath.Join(g.home, "msg.gpg")
	writeTestFile(t, msgFile, sealAlso(t, a.pub, msg, epub))
	out := g.run(nil, "--passphrase", escrowPass, "--decrypt", msgFile)
	if !bytes.Equal(out, msg) {
		t.Fatalf("gpg decrypted %q", out)
	}
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
