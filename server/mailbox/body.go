package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// ErrIntegrity is returned for a message whose integrity check fails: it
// was changed or truncated at rest. None of its bytes is released.
var ErrIntegrity = errors.New("mailbox: message fails its integrity check")

// Body is a message's plaintext, verified: its integrity check (the MDC
// of SEIPDv1, the final tag of SEIPDv2) passed before Body was returned,
// so no byte of a tampered message reaches a client. Small messages are
// held in memory (within the server's budget); larger ones were read to
// their end once to verify and are decrypted again, from the same sealed
// bytes, for each range read. Close releases it.
type Body struct {
	r     *Reader
	size  int64
	plain []byte // in memory; nil when streamed
	held  int64  // budget held for plain
	src   *sealedSource
	sk    []byte // session key the stream opens with (nil: private key)
	ad    []byte
	open  []io.Closer // sealed readers of streamed ranges, closed by Close
}

// Size returns the plaintext size.
func (b *Body) Size() int64 { return b.size }

// Bytes returns the plaintext held in memory, or nil for a streamed body.
// It is valid until Close.
func (b *Body) Bytes() []byte { return b.plain }

// Range returns a reader of the plaintext bytes [off, off+n), clipped to
// the message. For a streamed body it decrypts again, from sealed bytes
// checked against those that were verified (sealedSource), and fails
// rather than give bytes that differ.
func (b *Body) Range(ctx context.Context, off, n int64) (io.Reader, error) {
	off = min(max(off, 0), b.size)
	n = min(max(n, 0), b.size-off)
	if b.plain != nil {
		return bytes.NewReader(b.plain[off : off+n]), nil
	}
	sealed, err := b.src.open(ctx)
	if err != nil {
		return nil, err
	}
	b.open = append(b.open, sealed)
	plain, err := b.r.decrypt(sealed, b.sk, b.ad)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, plain, off); err != nil {
		return nil, fmt.Errorf("mailbox: seek: %w", err)
	}
	return io.LimitReader(plain, n), nil
}

// Close wipes and releases the plaintext.
func (b *Body) Close() {
	if b.plain != nil {
		wipe(b.plain)
		b.plain = nil
		b.r.svc.budget.release(b.held)
		b.held = 0
	}
	for _, c := range b.open {
		c.Close()
	}
	b.open = nil
}

// Open returns the verified plaintext of message m of mailbox, whose
// summary gives size. It decrypts with the stored session key (bound to
// the message) or, if that does not open, with the private key. An
// integrity failure is ErrIntegrity, logged with its cause here; the
// message was changed at rest. The caller holds a worker slot if it
// wants the work bounded (Prefetch and Scan do).
func (r *Reader) Open(ctx context.Context, mailbox uint64, m *store.Message, size int64) (*Body, error) {
	return r.open(ctx, mailbox, m, size, false, nil)
}

// open is Open; with memOnly it fails with errNoRoom rather than stream,
// and pre, if not nil, is the sealed message read ahead (ReadSealed).
func (r *Reader) open(ctx context.Context, mailbox uint64, m *store.Message, size int64, memOnly bool, pre []byte) (*Body, error) {
	inMemory := size <= r.svc.inMemoryMax && r.svc.budget.tryAcquire(size)
	if !inMemory && memOnly {
		return nil, errNoRoom
	}
	src, err := r.sealed(ctx, mailbox, m, pre)
	if err != nil {
		if inMemory {
			r.svc.budget.release(size)
		}
		return nil, err
	}
	ad := MessageAD(r.account, mailbox, m.UID)
	b := &Body{r: r, size: size, src: src, ad: ad, sk: m.SessionKey}
	sealed, err := src.open(ctx)
	if err != nil {
		if inMemory {
			r.svc.budget.release(size)
		}
		return nil, err
	}
	defer sealed.Close()
	plain, err := r.decrypt(sealed, b.sk, ad)
	if err != nil && b.sk != nil {
		// A session key that does not open (an older format, or moved
		// from another message): the private key still does. The
		// sealed bytes are read again from the start.
		b.sk = nil
		sealed.Close()
		if sealed, err = src.open(ctx); err == nil {
			defer sealed.Close()
			plain, err = r.decrypt(sealed, nil, ad)
		}
	}
	if err != nil {
		if inMemory {
			r.svc.budget.release(size)
		}
		return nil, r.integrity(mailbox, m.UID, err)
	}
	if inMemory {
		b.held = size
		buf := make([]byte, size)
		_, err := io.ReadFull(plain, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			err = fmt.Errorf("%w: plaintext shorter than its summary says", crypto.ErrIntegrity)
		}
		if err == nil {
			err = expectEOF(plain)
		}
		if err != nil {
			wipe(buf)
			r.svc.budget.release(b.held)
			return nil, r.integrity(mailbox, m.UID, err)
		}
		b.plain = buf
		b.src = nil
		return b, nil
	}
	// Too large, or no room: verify by reading to the end, then stream.
	n, err := io.Copy(io.Discard, plain)
	if err == nil && n != size {
		err = fmt.Errorf("%w: plaintext is %d bytes, its summary says %d", crypto.ErrIntegrity, n, size)
	}
	if err != nil {
		return nil, r.integrity(mailbox, m.UID, err)
	}
	return b, nil
}

// errNoRoom: a prefetch that would not fit in memory.
var errNoRoom = errors.New("mailbox: no room in the memory budget")

// expectEOF reads what is left of a plaintext that should be at its end:
// the read that finds EOF is the one that checks integrity.
func expectEOF(r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return fmt.Errorf("%w: plaintext longer than its summary says", crypto.ErrIntegrity)
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// integrity logs a failure to open or verify a message and maps it.
func (r *Reader) integrity(mailbox uint64, uid uint32, err error) error {
	if errors.Is(err, crypto.ErrIntegrity) {
		r.log.Error("message fails its integrity check; none of it is sent (changed or truncated at rest)",
			"mailbox", mailbox, "uid", uid, "err", err)
		return fmt.Errorf("%w: uid %d: %w", ErrIntegrity, uid, err)
	}
	return err
}

// decrypt starts decrypting sealed: with the session key sk if not nil,
// else with the private key.
func (r *Reader) decrypt(sealed io.Reader, sk, ad []byte) (io.Reader, error) {
	if sk != nil {
		return r.keys.OpenWithSessionKeyFor(sealed, sk, ad)
	}
	p, _, err := r.keys.OpenFor(sealed, ad)
	return p, err
}
