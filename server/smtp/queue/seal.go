package queue

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/sealmail/sealmail/server/smtp/trace"
)

// Queued mail is sealed under keys derived (HKDF-SHA256) from the server
// key, which the server must hold to deliver it (SECURITY.md says so):
//
//   - A body is "SQB1", the key ID (4 bytes), a random 16-byte salt, then
//     records of at most bodyRecord plaintext bytes, each sealed with
//     AES-256-GCM under HKDF(server key, salt, "sealmail queue body v1")
//     with the record number as nonce and a flag in it on the last
//     record, so a body cut short or reordered does not open. One key per
//     body (the salt), so nonces never repeat.
//   - An entry's envelope (Meta) is "SQM1", the key ID, a random 12-byte
//     nonce and the AES-256-GCM sealed JSON under HKDF(server key,
//     "sealmail queue meta v1"), with the entry's ID as additional data,
//     so an envelope cannot be moved to another entry.

// KeySize is the size of the server key.
const KeySize = 32 // AES-256

// bodyRecord is the plaintext size of one sealed body record: what a
// delivery holds in memory of a message.
const bodyRecord = 64 << 10

const (
	bodySaltSize   = 16
	bodyHeaderSize = 4 + 4 + bodySaltSize
	gcmTag         = 16
)

var (
	bodyMagic = [4]byte{'S', 'Q', 'B', '1'}
	metaMagic = [4]byte{'S', 'Q', 'M', '1'}
)

// ErrWrongKey: queued mail was sealed under another server key (the key
// file was replaced or belongs to another installation).
var ErrWrongKey = errors.New("queue: sealed under another server key")

// sealer holds the queue's keys. It is immutable and safe for concurrent
// use.
type sealer struct {
	bodyKey []byte // HKDF input for body keys (the server key itself)
	meta    cipher.AEAD
	keyID   [4]byte
}

func newSealer(serverKey []byte) (*sealer, error) {
	if len(serverKey) != KeySize {
		return nil, fmt.Errorf("queue: server key is %d bytes, want %d", len(serverKey), KeySize)
	}
	mk, err := hkdf.Key(sha256.New, serverKey, nil, "sealmail queue meta v1", 32)
	if err != nil {
		return nil, fmt.Errorf("queue: derive key: %w", err)
	}
	defer clear(mk)
	meta, err := newGCM(mk)
	if err != nil {
		return nil, err
	}
	s := &sealer{bodyKey: append([]byte(nil), serverKey...), meta: meta}
	copy(s.keyID[:], trace.KeyID(serverKey, "queue"))
	return s, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("queue: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("queue: cipher: %w", err)
	}
	return aead, nil
}

// sealMeta seals an entry's envelope for entry id.
func (s *sealer) sealMeta(id string, plain []byte) []byte {
	out := make([]byte, 0, 8+12+len(plain)+gcmTag)
	out = append(out, metaMagic[:]...)
	out = append(out, s.keyID[:]...)
	var nonce [12]byte
	rand.Read(nonce[:]) // never fails (crypto/rand, Go 1.24+)
	out = append(out, nonce[:]...)
	return s.meta.Seal(out, nonce[:], plain, []byte(id))
}

// openMeta opens what sealMeta sealed for entry id.
func (s *sealer) openMeta(id string, b []byte) ([]byte, error) {
	if len(b) < 8+12+gcmTag || [4]byte(b[:4]) != metaMagic {
		return nil, fmt.Errorf("queue: entry %s: not a sealed envelope", id)
	}
	if [4]byte(b[4:8]) != s.keyID {
		return nil, fmt.Errorf("queue: entry %s: %w", id, ErrWrongKey)
	}
	plain, err := s.meta.Open(nil, b[8:20], b[20:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("queue: entry %s: envelope does not open: %w", id, err)
	}
	return plain, nil
}

// bodyAEAD derives the key of the body with this salt.
func (s *sealer) bodyAEAD(salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, s.bodyKey, salt, "sealmail queue body v1", 32)
	if err != nil {
		return nil, fmt.Errorf("queue: derive key: %w", err)
	}
	defer clear(k)
	return newGCM(k)
}

// sealedSize is the sealed size of a body of n plaintext bytes.
func sealedSize(n int64) int64 {
	records := n/bodyRecord + 1 // the last record may be empty
	return bodyHeaderSize + n + records*gcmTag
}

func bodyNonce(dst *[12]byte, rec uint64, last bool) []byte {
	clear(dst[:4])
	if last {
		dst[0] = 1
	}
	binary.BigEndian.PutUint64(dst[4:], rec)
	return dst[:]
}

// bodyWriter seals a body as it is written to w. Close writes the last
// record; it does not close w.
type bodyWriter struct {
	w    io.Writer
	aead cipher.AEAD
	buf  []byte // plaintext of the record being filled
	ct   []byte
	rec  uint64
	err  error
}

// newBodyWriter writes the body header to w and returns the writer of
// the plaintext.
func (s *sealer) newBodyWriter(w io.Writer) (*bodyWriter, error) {
	var hdr [bodyHeaderSize]byte
	copy(hdr[:4], bodyMagic[:])
	copy(hdr[4:8], s.keyID[:])
	rand.Read(hdr[8:])
	aead, err := s.bodyAEAD(hdr[8:])
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, err
	}
	return &bodyWriter{w: w, aead: aead, buf: make([]byte, 0, bodyRecord), ct: make([]byte, 0, bodyRecord+gcmTag)}, nil
}

func (b *bodyWriter) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), bodyRecord-len(b.buf))
		b.buf = append(b.buf, p[:k]...)
		p = p[k:]
		// A full record goes at once, so the last record is never a full
		// one and the sealed size follows from the plaintext size.
		if len(b.buf) == bodyRecord {
			if err := b.seal(false); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (b *bodyWriter) seal(last bool) error {
	var nonce [12]byte
	b.ct = b.aead.Seal(b.ct[:0], bodyNonce(&nonce, b.rec, last), b.buf, nil)
	clear(b.buf)
	b.buf = b.buf[:0]
	b.rec++
	if _, err := b.w.Write(b.ct); err != nil {
		b.err = err
		return err
	}
	return nil
}

// Close seals the last record (which may be empty).
func (b *bodyWriter) Close() error {
	if b.err != nil {
		return b.err
	}
	err := b.seal(true)
	b.err = errors.New("queue: body writer closed")
	return err
}

// bodyReader opens a sealed body as it is read. It fails on a body cut
// short (no last record), damaged or sealed under another key.
type bodyReader struct {
	r     io.Reader
	aead  cipher.AEAD
	ct    []byte
	plain []byte // opened, not yet returned
	pbuf  []byte
	rec   uint64
	done  bool
}

func (s *sealer) newBodyReader(r io.Reader) (*bodyReader, error) {
	var hdr [bodyHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("queue: body header: %w", err)
	}
	if [4]byte(hdr[:4]) != bodyMagic {
		return nil, errors.New("queue: not a sealed body")
	}
	if [4]byte(hdr[4:8]) != s.keyID {
		return nil, ErrWrongKey
	}
	aead, err := s.bodyAEAD(hdr[8:])
	if err != nil {
		return nil, err
	}
	return &bodyReader{r: r, aead: aead, ct: make([]byte, bodyRecord+gcmTag), pbuf: make([]byte, 0, bodyRecord)}, nil
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.plain) == 0 {
		if b.done {
			return 0, io.EOF
		}
		n, err := io.ReadFull(b.r, b.ct[:bodyRecord+gcmTag])
		last := false
		switch {
		case err == nil:
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			last = true
		default:
			return 0, fmt.Errorf("queue: read body: %w", err)
		}
		if n < gcmTag {
			return 0, errors.New("queue: body cut short")
		}
		// Only the last record is shorter than a full one (bodyWriter
		// seals full records at once), so the length tells which nonce
		// flag it must carry: a body cut at a record boundary fails.
		var nonce [12]byte
		plain, oerr := b.aead.Open(b.pbuf[:0], bodyNonce(&nonce, b.rec, last), b.ct[:n], nil)
		if oerr != nil {
			return 0, fmt.Errorf("queue: body record %d does not open (damaged or cut short): %w", b.rec, oerr)
		}
		b.rec++
		b.plain = plain
		if last {
			b.done = true
			// Nothing may follow the last record.
			var one [1]byte
			if n, _ := io.ReadFull(b.r, one[:]); n != 0 {
				return 0, errors.New("queue: data after the last body record")
			}
		}
	}
	n := copy(p, b.plain)
	b.plain = b.plain[n:]
	return n, nil
}

// wipe clears the buffers; the reader must not be used after.
func (b *bodyReader) wipe() {
	clear(b.pbuf[:cap(b.pbuf)])
	b.plain = nil
}
