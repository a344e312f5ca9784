package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Bounds on the work one message can cause.
const (
	maxKeyPackets   = 64 // PKESK/SKESK packets before the encrypted data
	maxKeyAttempts  = 8  // private-key operations per message
	maxInnerPackets = 16 // compressed/signature packets before the literal data
)

// sessionKeyVersion1 is the format of a sealed session key's plaintext:
// version (1) || cipher algorithm id (1) || key.
const sessionKeyVersion1 = 1

// sessionKeyAD binds sealed session keys to their purpose.
var sessionKeyAD = []byte("message session key")

// boundSessionKeyAD is the associated data of a session key bound to ad
// (the message it opens, as the caller names it): sessionKeyAD alone for
// none, else sessionKeyAD || 0x00 || ad.
func boundSessionKeyAD(ad []byte) []byte {
	if ad == nil {
		return sessionKeyAD
	}
	b := make([]byte, 0, len(sessionKeyAD)+1+len(ad))
	b = append(b, sessionKeyAD...)
	b = append(b, 0)
	return append(b, ad...)
}

// Open is OpenFor with a session key bound to no message; callers that
// store session keys use OpenFor.
func (k *Keyring) Open(sealed io.Reader) (plain io.Reader, sealedSessionKey []byte, err error) {
	return k.OpenFor(sealed, nil)
}

// OpenFor decrypts a sealed message with the private key (public-key work)
// and returns the plaintext stream and the message's session key, already
// sealed under the index key so it can be stored as is, bound to ad: only
// OpenWithSessionKeyFor with the same ad opens it, so a session key stored
// for one message cannot be passed off as another's. ad names the message
// (sealmail: account, mailbox ID, UID).
//
// The plaintext is streamed: the integrity check (the MDC of SEIPDv1, the
// final tag of SEIPDv2) completes only when the reader reaches the end, and
// a tampered or truncated message makes that last Read fail with an error
// wrapping ErrIntegrity instead of io.EOF. Bytes returned before that are
// unauthenticated; a caller that must not act on partial plaintext reads to
// EOF first. Every other failure to open the message also wraps
// ErrIntegrity, except ErrWiped. The reader keeps working after Wipe.
func (k *Keyring) OpenFor(sealed io.Reader, ad []byte) (plain io.Reader, sealedSessionKey []byte, err error) {
	pr := packet.NewReader(sealed)
	eks, edp, err := readKeyPackets(pr)
	if err != nil {
		return nil, nil, err
	}
	cipher, key, err := k.decryptSessionKey(eks)
	if err != nil {
		return nil, nil, err
	}
	defer zero(key)
	if se, ok := edp.(*packet.SymmetricallyEncrypted); ok && se.Version == 2 {
		// v6 PKESKs carry no cipher id: SEIPDv2 names its own.
		cipher = se.Cipher
	}
	sk := make([]byte, 0, 2+len(key))
	sk = append(sk, sessionKeyVersion1, byte(cipher))
	sk = append(sk, key...)
	defer zero(sk)
	sealedSK, err := k.sealIndex(kindSessionKey, sk, boundSessionKeyAD(ad))
	if err != nil {
		return nil, nil, err
	}
	plain, err = openData(edp, cipher, key)
	if err != nil {
		return nil, nil, err
	}
	return plain, sealedSK, nil
}

// OpenWithSessionKey decrypts with a session key from Open: symmetric work
// only. The key packets of the message are skipped unread. Integrity is
// checked as for Open.
func (k *Keyring) OpenWithSessionKey(sealed io.Reader, sealedSessionKey []byte) (io.Reader, error) {
	return k.OpenWithSessionKeyFor(sealed, sealedSessionKey, nil)
}

// OpenWithSessionKeyFor decrypts with a session key from OpenFor bound to
// the same ad. A key bound to other ad fails with ErrIntegrity.
func (k *Keyring) OpenWithSessionKeyFor(sealed io.Reader, sealedSessionKey, ad []byte) (io.Reader, error) {
	sk, err := k.openIndex(kindSessionKey, sealedSessionKey, boundSessionKeyAD(ad))
	if err != nil {
		return nil, fmt.Errorf("crypto: session key: %w", err)
	}
	defer zero(sk)
	if len(sk) < 2 || sk[0] != sessionKeyVersion1 {
		return nil, fmt.Errorf("crypto: session key: %w: unknown format", ErrIntegrity)
	}
	cipher := packet.CipherFunction(sk[1])
	key := sk[2:]
	if !cipher.IsSupported() || len(key) != cipher.KeySize() {
		return nil, fmt.Errorf("crypto: session key: %w: bad cipher %d or key length %d", ErrIntegrity, cipher, len(key))
	}
	_, edp, err := readKeyPackets(packet.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	return openData(edp, cipher, key)
}

// readKeyPackets reads the key packets at the start of a message up to and
// including the header of its encrypted data packet.
func readKeyPackets(pr *packet.Reader) ([]*packet.EncryptedKey, packet.EncryptedDataPacket, error) {
	var eks []*packet.EncryptedKey
	for range maxKeyPackets {
		p, err := pr.Next()
		if err != nil {
			return nil, nil, integrityError("read message", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			eks = append(eks, p)
		case *packet.SymmetricKeyEncrypted, *packet.Padding:
			// A passphrase key packet is never ours; padding is ignored.
		case *packet.SymmetricallyEncrypted:
			if !p.IntegrityProtected {
				return nil, nil, fmt.Errorf("crypto: %w: message is not integrity protected", ErrIntegrity)
			}
			return eks, p, nil
		case *packet.AEADEncrypted:
			return eks, p, nil
		default:
			return nil, nil, fmt.Errorf("crypto: %w: not an encrypted message (packet %T)", ErrIntegrity, p)
		}
	}
	return nil, nil, fmt.Errorf("crypto: %w: more than %d key packets", ErrIntegrity, maxKeyPackets)
}

// decryptSessionKey finds a key packet addressed to one of our keys (or to
// the wildcard key ID) and decrypts it. The caller zeroes the key.
func (k *Keyring) decryptSessionKey(eks []*packet.EncryptedKey) (packet.CipherFunction, []byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.decrypters == nil {
		return 0, nil, ErrWiped
	}
	return decryptSessionKey(k.decrypters, k.fingerprint, eks)
}

// decryptSessionKey finds a key packet addressed to one of decrypters (or
// to the wildcard key ID) and decrypts it, with at most maxKeyAttempts
// private-key operations. fingerprint names the key for errors. The
// caller zeroes the key.
func decryptSessionKey(decrypters []*packet.PrivateKey, fingerprint string, eks []*packet.EncryptedKey) (packet.CipherFunction, []byte, error) {
	attempts := 0
	for _, ek := range eks {
		for _, priv := range decrypters {
			if !addressedTo(ek, priv) {
				continue
			}
			if attempts == maxKeyAttempts {
				return 0, nil, fmt.Errorf("crypto: %w: too many key packets to try", ErrIntegrity)
			}
			attempts++
			if err := ek.Decrypt(priv, nil); err != nil {
				continue
			}
			key := bytes.Clone(ek.Key)
			zero(ek.Key)
			return ek.CipherFunc, key, nil
		}
	}
	if attempts == 0 {
		return 0, nil, fmt.Errorf("crypto: %w: message is not sealed to key %s", ErrIntegrity, fingerprint)
	}
	return 0, nil, fmt.Errorf("crypto: %w: session key does not decrypt", ErrIntegrity)
}

// addressedTo reports whether ek names priv or is anonymous.
func addressedTo(ek *packet.EncryptedKey, priv *packet.PrivateKey) bool {
	if ek.Algo != priv.PubKeyAlgo {
		return false
	}
	if ek.Version == 6 {
		return ek.KeyVersion == 0 || bytes.Equal(ek.KeyFingerprint, priv.Fingerprint)
	}
	return ek.KeyId == 0 || ek.KeyId == priv.KeyId
}

// openData decrypts edp and returns a reader of its literal data. It does
// not keep key.
func openData(edp packet.EncryptedDataPacket, cipher packet.CipherFunction, key []byte) (io.Reader, error) {
	dec, err := decryptData(edp, cipher, key)
	if err != nil {
		return nil, integrityError("decrypt", err)
	}
	// A reader of its own: nothing after the encrypted packet can pass
	// for its contents.
	inner := packet.NewReader(dec)
	for range maxInnerPackets {
		p, err := inner.Next()
		if err != nil {
			return nil, integrityError("read decrypted message", err)
		}
		switch p := p.(type) {
		case *packet.Compressed:
			// Mail sealed by sealmail is never compressed, but GnuPG
			// compresses by default.
			if err := inner.Push(p.Body); err != nil {
				return nil, integrityError("decompress", err)
			}
		case *packet.OnePassSignature, *packet.Signature, *packet.Padding:
			// Signatures are not checked: sealing gives confidentiality,
			// not authenticity of the sender.
		case *packet.LiteralData:
			return &plainReader{body: p.Body, dec: dec}, nil
		default:
			return nil, fmt.Errorf("crypto: %w: unexpected packet %T in message", ErrIntegrity, p)
		}
	}
	return nil, fmt.Errorf("crypto: %w: too many packets before the literal data", ErrIntegrity)
}

// decryptData starts decrypting edp: SEIPDv1 with AES by seipd1Reader,
// everything else by go-crypto.
func decryptData(edp packet.EncryptedDataPacket, cipher packet.CipherFunction, key []byte) (io.ReadCloser, error) {
	if se, ok := edp.(*packet.SymmetricallyEncrypted); ok && se.Version == 1 {
		r, ok, err := newSEIPD1Reader(se, cipher, key)
		if ok {
			return r, err
		}
	}
	return edp.Decrypt(cipher, key)
}

// plainReader streams the literal data and turns the end of it into the
// integrity check of the encrypted packet.
type plainReader struct {
	body io.Reader     // literal data
	dec  io.ReadCloser // decrypted stream; Close checks integrity
	err  error         // sticky: io.EOF or the integrity failure
}

func (r *plainReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.body.Read(p)
	switch {
	case err == io.EOF:
		r.err = r.finish()
		return n, r.err
	case err != nil:
		r.err = integrityError("read", err)
		return n, r.err
	}
	return n, nil
}

// finish reads what follows the literal data (trailing signatures) and
// checks the MDC or the final AEAD tag.
func (r *plainReader) finish() error {
	if _, err := io.Copy(io.Discard, r.dec); err != nil {
		return integrityError("read", err)
	}
	if err := r.dec.Close(); err != nil {
		return integrityError("verify", err)
	}
	return io.EOF
}

// integrityError wraps a failure of parsing or decrypting as ErrIntegrity.
// A truncated stream (io.EOF, io.ErrUnexpectedEOF) is one too.
func integrityError(what string, err error) error {
	if errors.Is(err, ErrIntegrity) {
		return err
	}
	return fmt.Errorf("crypto: %s: %w: %w", what, ErrIntegrity, err)
}

// ResealSessionKey binds a sealed session key to another message: it opens
// it with from and seals it again with to (a copied message keeps its
// session key under its new name). The key never leaves the keyring.
func (k *Keyring) ResealSessionKey(sealedSessionKey, from, to []byte) ([]byte, error) {
	sk, err := k.openIndex(kindSessionKey, sealedSessionKey, boundSessionKeyAD(from))
	if err != nil {
		return nil, fmt.Errorf("crypto: session key: %w", err)
	}
	defer zero(sk)
	return k.sealIndex(kindSessionKey, sk, boundSessionKeyAD(to))
}
