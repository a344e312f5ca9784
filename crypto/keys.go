package crypto

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Wrapped-key format, version 1:
//
//	version (1) || GCM nonce (12) || GCM(HKDF(M, infoWrapKey), nonce, key, ad)
//
// where key is the unencrypted transferable secret key (RFC 9580 §10.2) and
// ad is the version byte followed by infoWrapKey.
const (
	wrapVersion1 = 1
	// maxWrappedKey bounds what Unlock will try to parse: an RSA-4096
	// secret key with its signatures is under 3 KiB.
	maxWrappedKey = 64 << 10
)

// keyConfig returns the go-crypto configuration that generates t. The
// algorithm is always set explicitly (go-crypto defaults to RSA-2048).
func keyConfig(t KeyType) (*packet.Config, error) {
	cfg := &packet.Config{
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	switch t {
	case KeyEd25519:
		// The legacy EdDSA/ECDH-Curve25519 encodings (RFC 4880bis), which
		// GnuPG 2.2 and Thunderbird read, not the RFC 9580 Ed25519 and
		// X25519 algorithm ids, which they do not.
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
		cfg.DefaultHash = crypto.SHA512
	case KeyRSA3072:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 3072
	case KeyRSA4096:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 4096
	case KeyV6Ed25519:
		cfg.V6Keys = true
		cfg.Algorithm = packet.PubKeyAlgoEd25519
		cfg.DefaultHash = crypto.SHA512
		// Advertise SEIPDv2 with GCM first: it is what Seal uses for v6.
		cfg.AEADConfig = &packet.AEADConfig{DefaultMode: packet.AEADModeGCM}
	default:
		return nil, fmt.Errorf("crypto: unknown key type %d", int(t))
	}
	return cfg, nil
}

// checkAddress accepts a plain mail address usable as an OpenPGP user ID:
// one '@' with non-empty parts, no spaces, controls or "()<>".
func checkAddress(addr string) error {
	if addr == "" || len(addr) > 254 || !utf8.ValidString(addr) {
		return fmt.Errorf("crypto: invalid address %q", addr)
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.Count(addr, "@") != 1 {
		return fmt.Errorf("crypto: invalid address %q", addr)
	}
	for _, r := range addr {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("()<>\"", r) {
			return fmt.Errorf("crypto: invalid address %q", addr)
		}
	}
	return nil
}

// NewAccount makes a new account's secrets: a fresh master secret M, an
// OpenPGP key of opt.KeyType whose only user ID is "<address>", the private
// key wrapped under HKDF(M), and one slot that password opens. M itself is
// wiped before NewAccount returns.
func NewAccount(address string, password []byte, opt AccountOptions) (*AccountSecrets, error) {
	if err := checkAddress(address); err != nil {
		return nil, err
	}
	kdf := opt.KDF.orDefault()
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	cfg, err := keyConfig(opt.KeyType)
	if err != nil {
		return nil, err
	}
	e, err := openpgp.NewEntity("", "", address, cfg)
	if err != nil {
		return nil, fmt.Errorf("crypto: generate %s key: %w", opt.KeyType, err)
	}
	defer wipeEntity(e)

	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("crypto: serialize public key: %w", err)
	}

	master := make([]byte, masterLen)
	defer zero(master)
	if _, err := rand.Read(master); err != nil {
		return nil, fmt.Errorf("crypto: random master secret: %w", err)
	}
	wrapped, err := wrapEntity(master, e)
	if err != nil {
		return nil, err
	}
	slot, err := newSlot(master, password, kdf)
	if err != nil {
		return nil, err
	}
	return &AccountSecrets{
		PublicKey:   pub.Bytes(),
		Fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		WrappedKey:  wrapped,
		Slot:        slot,
	}, nil
}

// wrapEntity seals e's unencrypted secret key under HKDF(master).
func wrapEntity(master []byte, e *openpgp.Entity) ([]byte, error) {
	var sec bytes.Buffer
	if err := e.SerializePrivateWithoutSigning(&sec, nil); err != nil {
		return nil, fmt.Errorf("crypto: serialize private key: %w", err)
	}
	defer zero(sec.Bytes())
	k, err := deriveKey(master, infoWrapKey)
	if err != nil {
		return nil, err
	}
	defer zero(k)
	return sealGCM([]byte{wrapVersion1}, k, sec.Bytes(), wrapAD())
}

func wrapAD() []byte { return append([]byte{wrapVersion1}, infoWrapKey...) }

// unwrapEntity opens a wrapped key with HKDF(master) and parses it. The
// entity's secret keys are unencrypted; the caller owns and wipes them.
func unwrapEntity(master, wrapped []byte) (*openpgp.Entity, error) {
	if len(wrapped) == 0 || len(wrapped) > maxWrappedKey {
		return nil, fmt.Errorf("crypto: wrapped key: %w: bad length %d", ErrIntegrity, len(wrapped))
	}
	if wrapped[0] != wrapVersion1 {
		return nil, fmt.Errorf("crypto: wrapped key: unknown version %d", wrapped[0])
	}
	k, err := deriveKey(master, infoWrapKey)
	if err != nil {
		return nil, err
	}
	defer zero(k)
	sec, err := openGCM(k, wrapped[1:], wrapAD())
	if err != nil {
		return nil, fmt.Errorf("crypto: wrapped key: %w", err)
	}
	defer zero(sec)
	e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(sec)))
	if err != nil {
		return nil, fmt.Errorf("crypto: wrapped key: parse: %w", err)
	}
	if e.PrivateKey == nil || e.PrivateKey.Encrypted {
		wipeEntity(e)
		return nil, fmt.Errorf("crypto: wrapped key holds no usable secret key")
	}
	return e, nil
}
