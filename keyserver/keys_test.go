package keyserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/store"
)

// The internal tests build keys with go-crypto directly, so that they can
// make keys sealmail never makes (several user IDs, third-party
// certifications). keyserver_test.go runs the real store and crypto.

var keyConfig = &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}

// newEntity makes an Ed25519 key whose user IDs are the given addresses,
// the first one primary.
func newEntity(t testing.TB, addrs ...string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("", "", addrs[0], keyConfig)
	if err != nil {
		t.Fatalf("NewEntity: %v", err)
	}
	for _, a := range addrs[1:] {
		if err := e.AddUserId("Someone", "", a, keyConfig); err != nil {
			t.Fatalf("AddUserId: %v", err)
		}
	}
	return e
}

func publicBytes(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatalf("Serialize: %v", err)
	}
	return b.Bytes()
}

// packets lists the packets of a binary key.
func packets(t testing.TB, b []byte) []packet.Packet {
	t.Helper()
	var out []packet.Packet
	r := packet.NewReader(bytes.NewReader(b))
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		out = append(out, p)
	}
	return out
}

// mapKeys is an in-memory KeyLookup with a switchable failure.
type mapKeys struct {
	accts map[string]store.PublicAccount
	fail  atomic.Bool
	calls atomic.Int64
}

func (m *mapKeys) PublicAccount(_ context.Context, addr string) (store.PublicAccount, error) {
	m.calls.Add(1)
	if m.fail.Load() {
		return store.PublicAccount{}, errors.New("disk on fire at /var/secret/path")
	}
	a, ok := m.accts[addr]
	if !ok {
		return store.PublicAccount{}, fmt.Errorf("lookup %s: %w", addr, store.ErrNotFound)
	}
	return a, nil
}

// listKeys adds AccountLister.
type listKeys struct{ *mapKeys }

func (l listKeys) PublicAccounts(context.Context) ([]store.PublicAccount, error) {
	var out []store.PublicAccount
	for _, a := range l.accts {
		out = append(out, a)
	}
	return out, nil
}

func TestExportKeyKeepsOnlyTheAddress(t *testing.T) {
	e := newEntity(t, "alice@example.org", "alice.private@elsewhere.net", "Alice@Example.org.uk")
	certifier := newEntity(t, "ca@example.net")
	for name, id := range e.Identities {
		if id.UserId.Email == "alice@example.org" {
			if err := e.SignIdentity(name, certifier, keyConfig); err != nil {
				t.Fatalf("SignIdentity: %v", err)
			}
		}
	}
	pub := publicBytes(t, e)
	var sigsBefore int
	for _, id := range e.Identities {
		if id.UserId.Email == "alice@example.org" {
			sigsBefore = len(id.Signatures)
		}
	}
	if sigsBefore != 2 {
		t.Fatalf("test key has %d signatures on the UID, want self + third party", sigsBefore)
	}

	out, err := exportKey(pub, "alice@example.org")
	if err != nil {
		t.Fatalf("exportKey: %v", err)
	}
	var uids []string
	var uidSigs int
	inUID := false
	for _, p := range packets(t, out) {
		switch p := p.(type) {
		case *packet.UserId:
			uids = append(uids, p.Email)
			inUID = true
		case *packet.PublicKey:
			inUID = false
		case *packet.Signature:
			if inUID {
				uidSigs++
				if p.IssuerKeyId == nil || *p.IssuerKeyId != e.PrimaryKey.KeyId {
					t.Errorf("exported a third-party certification")
				}
			}
		case *packet.PrivateKey:
			t.Fatalf("exported a private key packet")
		}
	}
	if len(uids) != 1 || uids[0] != "alice@example.org" || uidSigs != 1 {
		t.Fatalf("exported UIDs %q with %d signatures, want only alice@example.org with its self-signature", uids, uidSigs)
	}
	// The result is a valid key that still encrypts.
	got, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(out)))
	if err != nil {
		t.Fatalf("re-read exported key: %v", err)
	}
	if got.PrimaryKey.Fingerprint == nil || !bytes.Equal(got.PrimaryKey.Fingerprint, e.PrimaryKey.Fingerprint) {
		t.Fatalf("fingerprint changed")
	}
	if _, ok := got.EncryptionKey(e.PrimaryKey.CreationTime.AddDate(0, 0, 1)); !ok {
		t.Fatalf("exported key has no encryption subkey")
	}

	// User IDs match case-insensitively, and only the matching one goes.
	out, err = exportKey(pub, "alice@example.org.uk")
	if err != nil {
		t.Fatalf("exportKey(alice@example.org.uk): %v", err)
	}
	uids = nil
	for _, p := range packets(t, out) {
		if u, ok := p.(*packet.UserId); ok {
			uids = append(uids, u.Email)
		}
	}
	if len(uids) != 1 || uids[0] != "Alice@Example.org.uk" {
		t.Fatalf("exported UIDs %q, want only Alice@Example.org.uk", uids)
	}

	for _, addr := range []string{"bob@example.org", "alice@example.or", "alice", "alice.private@elsewhere.net.example.org"} {
		if _, err := exportKey(pub, addr); !errors.Is(err, errNoIdentity) {
			t.Errorf("exportKey for %s: %v, want errNoIdentity", addr, err)
		}
	}
}

func TestExportKeyNeverPrivate(t *testing.T) {
	e := newEntity(t, "alice@example.org")
	var priv bytes.Buffer
	if err := e.SerializePrivate(&priv, keyConfig); err != nil {
		t.Fatal(err)
	}
	out, err := exportKey(priv.Bytes(), "alice@example.org")
	if err != nil {
		t.Fatalf("exportKey: %v", err)
	}
	for _, p := range packets(t, out) {
		if _, ok := p.(*packet.PrivateKey); ok {
			t.Fatalf("secret key material exported")
		}
	}
}

func TestExportKeyBadInput(t *testing.T) {
	pub := publicBytes(t, newEntity(t, "alice@example.org"))
	for name, in := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
		"truncated": pub[:len(pub)/2],
		"huge":      make([]byte, maxKeyBytes+1),
	} {
		if _, err := exportKey(in, "alice@example.org"); err == nil {
			t.Errorf("%s: exportKey succeeded", name)
		}
	}
}
