package crypto

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// Escrow. An organisation that must keep mail producible after the person
// it was for has gone (a regulator's request, an employee who left) can
// have mail of some classes sealed to an escrow key as well as to the
// recipient's (PublicKey.SealWith). The key pair is made once
// (NewEscrowKey): the server keeps the public half; the private half is
// handed to the officer, armored and protected by a passphrase, and never
// reaches the server. The officer opens escrowed mail with it
// (UnlockEscrowKey, EscrowKey.Open), on the machine where the export runs,
// or with GnuPG: it is a standard OpenPGP key (v4, Ed25519 with an X25519
// encryption subkey), and escrowed messages are standard OpenPGP messages
// with one more recipient.

// MinEscrowPassphrase is the shortest passphrase NewEscrowKey accepts, in
// characters. The file it protects opens all escrowed mail, and OpenPGP's
// iterated-SHA-256 protection (the one GnuPG 2.2 reads) is fast to guess
// against, so the passphrase itself must be strong.
const MinEscrowPassphrase = 16

// maxEscrowKeyFile bounds what UnlockEscrowKey parses: an armored Ed25519
// key is about 1 KiB.
const maxEscrowKeyFile = 64 << 10

// EscrowKeyPair is a new escrow key.
type EscrowKeyPair struct {
	PublicKey   []byte // binary transferable public key, for the server
	Fingerprint string // hex, lower case
	// Private is the armored secret key, protected by the passphrase
	// (OpenPGP S2K: iterated and salted SHA-256, AES-256), for the
	// officer. Wipe it once written.
	Private []byte
}

// NewEscrowKey makes an escrow key pair whose user ID is uid (e.g.
// "sealmail escrow <escrow@example.org>") and whose secret key is
// protected by passphrase (at least MinEscrowPassphrase characters).
func NewEscrowKey(uid string, passphrase []byte) (*EscrowKeyPair, error) {
	if n := utf8.RuneCount(passphrase); n < MinEscrowPassphrase {
		return nil, fmt.Errorf("crypto: escrow passphrase of %d characters; it protects every escrowed message: use at least %d", n, MinEscrowPassphrase)
	}
	name, email, ok := splitUID(uid)
	if !ok {
		return nil, fmt.Errorf("crypto: escrow user ID %q: want NAME <ADDRESS>", uid)
	}
	cfg, err := keyConfig(KeyEd25519)
	if err != nil {
		return nil, err
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("crypto: generate escrow key: %w", err)
	}
	defer wipeEntity(e)
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("crypto: serialize escrow public key: %w", err)
	}
	if err := e.EncryptPrivateKeys(passphrase, &packet.Config{
		DefaultCipher: packet.CipherAES256,
		S2KConfig:     &s2k.Config{S2KMode: s2k.IteratedSaltedS2K, Hash: crypto.SHA256, S2KCount: 65011712},
	}); err != nil {
		return nil, fmt.Errorf("crypto: protect escrow key: %w", err)
	}
	var out bytes.Buffer
	aw, err := armor.Encode(&out, openpgp.PrivateKeyType, map[string]string{"Comment": "sealmail escrow key: keep it offline"})
	if err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		return nil, fmt.Errorf("crypto: serialize escrow key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	out.WriteByte('\n')
	return &EscrowKeyPair{
		PublicKey:   pub.Bytes(),
		Fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		Private:     out.Bytes(),
	}, nil
}

// splitUID splits "NAME <ADDRESS>".
func splitUID(uid string) (name, email string, ok bool) {
	i := strings.LastIndexByte(uid, '<')
	if i < 1 || !strings.HasSuffix(uid, ">") {
		return "", "", false
	}
	name, email = strings.TrimSpace(uid[:i]), uid[i+1:len(uid)-1]
	if name == "" || checkAddress(email) != nil {
		return "", "", false
	}
	return name, email, true
}

// EscrowKey is an unlocked escrow secret key. It opens messages sealed to
// it and hands out no key material. It is safe for concurrent use until
// Wipe.
type EscrowKey struct {
	fingerprint string // immutable

	mu         sync.Mutex
	entity     *openpgp.Entity      // guarded by mu
	decrypters []*packet.PrivateKey // guarded by mu
}

// UnlockEscrowKey reads an armored escrow secret key (what NewEscrowKey
// made) and unlocks it with passphrase. A wrong passphrase is
// ErrBadPassword.
func UnlockEscrowKey(armored, passphrase []byte) (*EscrowKey, error) {
	if len(armored) == 0 || len(armored) > maxEscrowKeyFile {
		return nil, fmt.Errorf("crypto: escrow key: not an armored secret key (%d bytes)", len(armored))
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("crypto: escrow key: %w", err)
	}
	if len(el) != 1 || el[0].PrivateKey == nil {
		return nil, fmt.Errorf("crypto: escrow key: want one secret key, found %d keys", len(el))
	}
	e := el[0]
	if err := e.DecryptPrivateKeys(passphrase); err != nil {
		wipeEntity(e)
		return nil, fmt.Errorf("crypto: escrow key: %w", ErrBadPassword)
	}
	k := &EscrowKey{fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint), entity: e}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && !sk.PrivateKey.Encrypted && sk.PrivateKey.PubKeyAlgo.CanEncrypt() {
			k.decrypters = append(k.decrypters, sk.PrivateKey)
		}
	}
	if len(k.decrypters) == 0 {
		k.Wipe()
		return nil, fmt.Errorf("crypto: escrow key %s has no encryption key", k.fingerprint)
	}
	return k, nil
}

// Fingerprint returns the key's fingerprint, lower-case hex.
func (k *EscrowKey) Fingerprint() string { return k.fingerprint }

// Open decrypts a message sealed to the escrow key, with the same
// integrity rules as Keyring.Open: read to EOF before acting on the
// plaintext. Every failure wraps ErrIntegrity, except ErrWiped.
func (k *EscrowKey) Open(sealed io.Reader) (io.Reader, error) {
	eks, edp, err := readKeyPackets(packet.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if k.entity == nil {
		k.mu.Unlock()
		return nil, ErrWiped
	}
	cipher, key, err := decryptSessionKey(k.decrypters, k.fingerprint, eks)
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer zero(key)
	if se, ok := edp.(*packet.SymmetricallyEncrypted); ok && se.Version == 2 {
		cipher = se.Cipher // v6 PKESKs carry no cipher id
	}
	return openData(edp, cipher, key)
}

// Wipe zeroes the secret key material and makes Open fail with ErrWiped.
// It is idempotent; best effort, as Keyring.Wipe.
func (k *EscrowKey) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	wipeEntity(k.entity)
	k.entity, k.decrypters = nil, nil
}

// SealedTo reports whether the message read from sealed has a key packet
// for p's encryption key: whether p's secret key can open it. It reads
// only the key packets at the start of the message.
func (p *PublicKey) SealedTo(sealed io.Reader) (bool, error) {
	eks, _, err := readKeyPackets(packet.NewReader(sealed))
	if err != nil {
		return false, err
	}
	for _, ek := range eks {
		if ek.Algo != p.encKey.PubKeyAlgo {
			continue
		}
		if ek.Version == 6 {
			if bytes.Equal(ek.KeyFingerprint, p.encKey.Fingerprint) {
				return true, nil
			}
			continue
		}
		if ek.KeyId == p.encKey.KeyId {
			return true, nil
		}
	}
	return false, nil
}
