package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxPublicKey bounds what ParsePublicKey parses: an RSA-4096 transferable
// public key with a few user IDs is a few KiB.
const maxPublicKey = 1 << 20

// aeadChunkSize is the SEIPDv2 chunk size used when sealing to v6 keys:
// 2^14 bytes (chunk size octet 8). go-crypto's default, 256 KiB, makes
// every seal and every open allocate over 256 KB, even for a 2 KB message,
// while larger chunks do not measurably speed up GCM (BenchmarkSeal).
const aeadChunkSize = 1 << 14

// sealWriteChunk is the largest piece sealWriter hands to go-crypto at once.
const sealWriteChunk = 1 << 15

// PublicKey is a parsed recipient key, immutable and safe for concurrent
// use, so that callers can cache one per account.
type PublicKey struct {
	entity      *openpgp.Entity   // immutable
	encKey      *packet.PublicKey // immutable; the key PKESKs are made for
	fingerprint string            // immutable
	aead        bool              // immutable; seal with SEIPDv2 (v6 keys)
}

// ParsePublicKey parses one binary transferable public key (RFC 9580 §10.1)
// with a valid self-signed encryption-capable key.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) == 0 || len(b) > maxPublicKey {
		return nil, fmt.Errorf("crypto: public key: bad length %d", len(b))
	}
	pr := packet.NewReader(bytes.NewReader(b))
	e, err := openpgp.ReadEntity(pr)
	if err != nil {
		return nil, fmt.Errorf("crypto: public key: %w", err)
	}
	if _, err := pr.Next(); err != io.EOF {
		return nil, fmt.Errorf("crypto: public key: trailing data after the first key")
	}
	if e.PrivateKey != nil {
		return nil, fmt.Errorf("crypto: public key: holds secret key material")
	}
	// Evaluate validity at the key's newest self-signature if that is in
	// the future: a key made on a host whose clock runs ahead must still
	// receive mail.
	now := time.Now()
	if sig, _ := e.PrimarySelfSignature(); sig != nil && sig.CreationTime.After(now) {
		now = sig.CreationTime
	}
	for _, sk := range e.Subkeys {
		if sk.Sig != nil && sk.Sig.CreationTime.After(now) {
			now = sk.Sig.CreationTime
		}
	}
	k, ok := e.EncryptionKey(now)
	if !ok {
		return nil, fmt.Errorf("crypto: public key: no valid encryption key")
	}
	return &PublicKey{
		entity:      e,
		encKey:      k.PublicKey,
		fingerprint: hex.EncodeToString(e.PrimaryKey.Fingerprint),
		aead:        e.PrimaryKey.Version == 6,
	}, nil
}

// Fingerprint returns the primary key's fingerprint, lower-case hex.
func (p *PublicKey) Fingerprint() string { return p.fingerprint }

// Armored returns the key as an ASCII-armored public key block.
func (p *PublicKey) Armored() ([]byte, error) {
	var out bytes.Buffer
	aw, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	if err := p.entity.Serialize(aw); err != nil {
		return nil, fmt.Errorf("crypto: serialize public key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("crypto: armor: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Seal returns a writer that seals what is written to it as one binary
// OpenPGP message to p (RFC 9580 §10.3): one PKESK, then an encrypted and
// integrity-protected literal data packet, uncompressed. Close finishes
// the message; it does not close w. For v4 keys the message is SEIPDv1
// with AES-256 (what GnuPG 2.2 reads); for v6 keys SEIPDv2 with AES-256-GCM.
func (p *PublicKey) Seal(w io.Writer) (io.WriteCloser, error) { return p.SealWith(w) }

// SealWith is Seal for p and, as further recipients, every key of also
// (an organisation's escrow key): each gets a PKESK of its own for the
// same session key, after p's. The message stays one message, which any
// of the keys opens, and goes wherever it goes. Its format follows p:
// with SEIPDv2 every PKESK is v6, whatever the version of the key it is
// for.
func (p *PublicKey) SealWith(w io.Writer, also ...*PublicKey) (io.WriteCloser, error) {
	cfg := &packet.Config{
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	suite := packet.CipherSuite{Cipher: packet.CipherAES256, Mode: packet.AEADModeGCM}
	if p.aead {
		cfg.AEADConfig = &packet.AEADConfig{DefaultMode: packet.AEADModeGCM, ChunkSize: aeadChunkSize}
	}
	sessionKey := make([]byte, packet.CipherAES256.KeySize())
	defer zero(sessionKey)
	if _, err := rand.Read(sessionKey); err != nil {
		return nil, fmt.Errorf("crypto: random session key: %w", err)
	}
	for _, k := range append([]*PublicKey{p}, also...) {
		if err := packet.SerializeEncryptedKeyAEAD(w, k.encKey, packet.CipherAES256, p.aead, sessionKey, cfg); err != nil {
			return nil, fmt.Errorf("crypto: seal: key packet for %s: %w", k.fingerprint, err)
		}
	}
	enc, err := packet.SerializeSymmetricallyEncrypted(w, packet.CipherAES256, p.aead, suite, sessionKey, cfg)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: %w", err)
	}
	lit, err := packet.SerializeLiteral(enc, true, "", 0)
	if err != nil {
		return nil, fmt.Errorf("crypto: seal: literal packet: %w", err)
	}
	return &sealWriter{lit: lit}, nil
}

// SealBytes seals msg, held whole in memory, to p and the keys of also
// (as SealWith does) and returns the sealed message.
func (p *PublicKey) SealBytes(msg []byte, also ...*PublicKey) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(msg) + 1024) // the key packets and framing
	w, err := p.SealWith(&b, also...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// sealWriter writes the literal packet. Closing it closes, in go-crypto,
// the literal packet, then the encrypted packet (writing the MDC or the
// final AEAD tag), but not the caller's writer. A second Close is a no-op.
type sealWriter struct {
	lit    io.WriteCloser
	closed bool
}

// Write passes b on in pieces of at most sealWriteChunk bytes: go-crypto's
// partial-length writers flush one power-of-two piece per Write and buffer
// the rest, so one large Write would hold the whole message in memory
// twice over.
func (s *sealWriter) Write(b []byte) (int, error) {
	if s.closed {
		return 0, fmt.Errorf("crypto: seal: write after close")
	}
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), sealWriteChunk)]
		n, err := s.lit.Write(piece)
		written += n
		if err != nil {
			return written, fmt.Errorf("crypto: seal: %w", err)
		}
		b = b[len(piece):]
	}
	return written, nil
}

func (s *sealWriter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.lit.Close(); err != nil {
		return fmt.Errorf("crypto: seal: finish: %w", err)
	}
	return nil
}
