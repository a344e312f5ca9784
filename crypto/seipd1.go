package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// SEIPDv1 decryption (RFC 9580 §5.13.1) with the standard library's AES
// and SHA-1, for the ciphers sealmail seals with. go-crypto's decrypter
// feeds its OpenPGP CFB one byte at a time, which made it the largest
// single cost of reading mail (bodies, SEARCH TEXT, first fetches); this
// one decrypts a whole buffer of blocks per call and XORs it in one pass.
// Everything else about opening a message (key packets, packet framing,
// the literal data packet inside) stays go-crypto's.
//
// The format: the packet's contents after its version octet are
// AES-CFB ciphertext, with an all-zero IV and no resynchronisation, of
//
//	prefix (block size + 2 octets) || packets || MDC packet (0xD3 0x14, SHA-1)
//
// where the SHA-1 covers everything before it: prefix, packets and the
// MDC packet's two header octets. Like go-crypto, the reader does not act
// on the prefix's repeated octets (the "quick check", an oracle RFC 9580
// §5.13.1 warns about); integrity is the MDC alone, checked when the
// stream ends.

const (
	mdcLen      = 2 + sha1.Size // MDC packet: tag, length, SHA-1
	mdcTag      = 0xD3          // new-format header of packet type 19
	seipd1Chunk = 16 << 10      // ciphertext decrypted per fill
)

// errMDC: the modification detection code does not verify.
var errMDC = errors.New("MDC does not verify")

// seipd1Reader decrypts the contents of a SEIPDv1 packet and returns the
// plaintext between the prefix and the MDC packet. The last Read returns
// io.EOF only if the MDC verifies; otherwise an error wrapping
// ErrIntegrity.
type seipd1Reader struct {
	src   io.Reader // ciphertext, after the version octet
	block cipher.Block
	h     hash.Hash

	bufs *seipd1Buffers      // nil once released
	reg  [aes.BlockSize]byte // CFB register: the last full ciphertext block
	ct   []byte              // ciphertext not yet decrypted (less than a block after a fill)
	buf  []byte              // plaintext; buf[lo:hi] is decrypted, not yet returned
	lo   int
	hi   int
	skip int   // prefix octets still to hash and drop
	eof  bool  // src ended and everything was decrypted
	err  error // sticky: io.EOF or the failure
}

// newSEIPD1Reader returns a reader of se's plaintext for an AES cipher,
// or ok false for a cipher it does not handle (go-crypto's then does).
// se must be a SEIPDv1 packet whose contents were not read yet.
func newSEIPD1Reader(se *packet.SymmetricallyEncrypted, c packet.CipherFunction, key []byte) (r *seipd1Reader, ok bool, err error) {
	switch c {
	case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
	default:
		return nil, false, nil
	}
	if len(key) != c.KeySize() {
		return nil, true, fmt.Errorf("crypto: %w: key length %d for cipher %d", ErrIntegrity, len(key), c)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, true, fmt.Errorf("crypto: aes: %w", err)
	}
	b := seipd1Pool.Get().(*seipd1Buffers)
	return &seipd1Reader{
		src:   se.Contents,
		block: block,
		h:     sha1.New(),
		bufs:  b,
		ct:    b.ct[:0],
		buf:   b.plain[:],
		skip:  aes.BlockSize + 2,
	}, true, nil
}

// seipd1Buffers are a reader's buffers, reused: allocating them for
// every message cost more than decrypting a small one. The plaintext
// buffer is wiped before it goes back to the pool.
type seipd1Buffers struct {
	ct    [seipd1Chunk]byte
	plain [seipd1Chunk + 2*mdcLen]byte
}

var seipd1Pool = sync.Pool{New: func() any { return new(seipd1Buffers) }}

// release wipes the plaintext buffer and returns the buffers to the pool
// once the stream has ended. A reader given up before its end leaves
// them to the garbage collector.
func (r *seipd1Reader) release() {
	if r.bufs == nil {
		return
	}
	clear(r.bufs.plain[:])
	seipd1Pool.Put(r.bufs)
	r.bufs, r.ct, r.buf = nil, nil, nil
}

func (r *seipd1Reader) Read(p []byte) (int, error) {
	for r.err == nil {
		// The last mdcLen decrypted octets may be the MDC packet: they
		// are held back until more follow or the stream ends.
		avail := r.hi - r.lo - mdcLen
		if avail > 0 && r.skip > 0 {
			n := min(avail, r.skip)
			r.h.Write(r.buf[r.lo : r.lo+n])
			r.lo += n
			r.skip -= n
			continue
		}
		if avail > 0 {
			if len(p) == 0 {
				return 0, nil
			}
			n := copy(p, r.buf[r.lo:r.lo+avail])
			r.h.Write(p[:n])
			r.lo += n
			return n, nil
		}
		if r.eof {
			r.err = r.verify()
			break
		}
		r.err = r.fill()
	}
	r.release()
	if r.err == io.EOF {
		return 0, io.EOF
	}
	return 0, r.err
}

// fill reads more ciphertext and decrypts every whole block of it, or,
// at the end of the stream, what is left.
func (r *seipd1Reader) fill() error {
	// Keep the held-back octets at the start of buf.
	r.hi = copy(r.buf, r.buf[r.lo:r.hi])
	r.lo = 0
	n, err := r.src.Read(r.ct[len(r.ct):cap(r.ct)])
	r.ct = r.ct[:len(r.ct)+n]
	switch {
	case err == io.EOF:
		r.eof = true
	case err != nil:
		return fmt.Errorf("crypto: %w: read: %w", ErrIntegrity, err)
	}
	const bs = aes.BlockSize
	whole := len(r.ct) / bs * bs
	if whole > 0 {
		// P[i] = C[i] XOR E(C[i-1]), with C[-1] the register: the block
		// encryptions are independent, then one XOR over the lot.
		out := r.buf[r.hi : r.hi+whole]
		r.block.Encrypt(out[:bs], r.reg[:])
		for i := bs; i < whole; i += bs {
			r.block.Encrypt(out[i:i+bs], r.ct[i-bs:i])
		}
		subtle.XORBytes(out, out, r.ct[:whole])
		copy(r.reg[:], r.ct[whole-bs:whole])
		r.hi += whole
		r.ct = r.ct[:copy(r.ct, r.ct[whole:])]
	}
	if r.eof && len(r.ct) > 0 {
		// The last, partial block.
		var ks [bs]byte
		r.block.Encrypt(ks[:], r.reg[:])
		r.hi += subtle.XORBytes(r.buf[r.hi:], r.ct, ks[:])
		r.ct = r.ct[:0]
	}
	return nil
}

// verify checks the MDC packet, which the held-back octets are once the
// stream has ended: io.EOF if it verifies.
func (r *seipd1Reader) verify() error {
	if r.skip > 0 || r.hi-r.lo != mdcLen {
		return fmt.Errorf("crypto: %w: %w (truncated)", ErrIntegrity, errMDC)
	}
	mdc := r.buf[r.lo:r.hi]
	r.h.Write(mdc[:2])
	sum := r.h.Sum(nil)
	ok := subtle.ConstantTimeCompare(sum, mdc[2:]) == 1 && mdc[0] == mdcTag && mdc[1] == sha1.Size
	if !ok {
		return fmt.Errorf("crypto: %w: %w", ErrIntegrity, errMDC)
	}
	return io.EOF
}

// Close reads to the end if the caller stopped early and reports whether
// the MDC verified: nil if so.
func (r *seipd1Reader) Close() error {
	if r.err == nil {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
	if r.err == io.EOF {
		return nil
	}
	return r.err
}
