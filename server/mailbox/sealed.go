package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// streamAbove is the sealed size above which a message is read from the
// store piece by piece (store.OpenBlob) instead of whole (store.Blob).
const streamAbove = 1 << 20

// pieceSize is the granularity of the hashes that tie the second reading
// of a large message to the first (see sealedSource).
const pieceSize = 64 << 10

// sealedSource gives the sealed bytes of one message as often as they
// are read: a small message is fetched once and kept; a large one is
// streamed from the store at every read, and every read after the first
// checks each piece against the SHA-256 the first read recorded, so a
// second reading (the one whose plaintext is sent) is the bytes the first
// one verified, even if the store changed in between.
type sealedSource struct {
	r       *Reader
	mailbox uint64
	uid     uint32
	small   []byte     // whole sealed bytes; nil when streamed
	hashes  [][32]byte // per piece, recorded by the first streamed read
	reads   int
}

// sealed returns the source of message m's sealed bytes: pre if the
// caller read them ahead (ReadSealed), else read from the store now.
func (r *Reader) sealed(ctx context.Context, mailbox uint64, m *store.Message, pre []byte) (*sealedSource, error) {
	src := &sealedSource{r: r, mailbox: mailbox, uid: m.UID}
	if m.SealedSize > streamAbove {
		return src, nil
	}
	if pre != nil {
		src.small = pre
		return src, nil
	}
	blob, err := r.svc.st.Blob(ctx, r.account, mailbox, m.UID)
	if err != nil {
		return nil, err
	}
	src.small = blob
	return src, nil
}

// Read-ahead bounds: the most messages, and sealed bytes, that one
// store.Blobs call reads for ReadSealed's callers.
const (
	readAheadMessages = 32
	readAheadBytes    = 1 << 20
)

// ReadSealed reads the sealed bytes of the small messages among the
// first messages of msgs (of mailbox) with one store read, for Open and
// Scan to use instead of reading each message alone (one read
// transaction per message, the mailbox resolved each time). It reads a
// bounded run: at most readAheadMessages messages and about
// readAheadBytes sealed bytes, at least one message; n is how many of
// msgs it covered. out[i] is msgs[i]'s sealed bytes, or nil where a
// message is nil, too large to be read whole, gone, or the read failed:
// Open and Scan then read it themselves and report what they find. The
// bytes are sealed: nothing readable is held.
func (r *Reader) ReadSealed(ctx context.Context, mailbox uint64, msgs []*store.Message) (out [][]byte, n int) {
	n = readAheadEnd(msgs, 0)
	out = make([][]byte, n)
	uids := make([]uint32, 0, n)
	idx := make([]int, 0, n)
	for i, m := range msgs[:n] {
		if m != nil && m.SealedSize <= streamAbove {
			uids = append(uids, m.UID)
			idx = append(idx, i)
		}
	}
	if len(uids) == 0 {
		return out, n
	}
	bs, err := r.svc.st.Blobs(ctx, r.account, mailbox, uids)
	if err != nil {
		return out, n
	}
	for k, i := range idx {
		out[i] = bs[k]
	}
	return out, n
}

// readAheadEnd returns the end of the run of msgs starting at lo that one
// ReadSealed reads: at most readAheadMessages messages and about
// readAheadBytes sealed bytes (at least one message).
func readAheadEnd(msgs []*store.Message, lo int) int {
	var bytes int64
	hi := lo
	for hi < len(msgs) && hi-lo < readAheadMessages {
		if m := msgs[hi]; m != nil && m.SealedSize <= streamAbove {
			if hi > lo && bytes+m.SealedSize > readAheadBytes {
				break
			}
			bytes += m.SealedSize
		}
		hi++
	}
	return hi
}

// open returns a reader of the sealed bytes; it must be closed.
func (s *sealedSource) open(ctx context.Context) (io.ReadCloser, error) {
	if s.small != nil {
		return io.NopCloser(bytes.NewReader(s.small)), nil
	}
	rc, _, err := s.r.svc.st.OpenBlob(ctx, s.r.account, s.mailbox, s.uid)
	if err != nil {
		return nil, err
	}
	s.reads++
	return &pieceReader{src: s, rc: rc, record: s.reads == 1}, nil
}

// errChanged: the sealed bytes differ from those verified before.
var errChanged = errors.New("mailbox: sealed bytes changed between two readings")

// pieceReader hashes the pieces of a streamed blob: the first reading
// records, later ones compare.
type pieceReader struct {
	src    *sealedSource
	rc     io.ReadCloser
	record bool
	buf    []byte // the current piece
	off    int
	n      int // pieces done
	eof    bool
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if p.off == len(p.buf) {
		if p.eof {
			if !p.record && p.n != len(p.src.hashes) {
				return 0, fmt.Errorf("%w: %w (fewer pieces)", crypto.ErrIntegrity, errChanged)
			}
			return 0, io.EOF
		}
		if err := p.fill(); err != nil {
			return 0, err
		}
		if len(p.buf) == 0 {
			return p.Read(b)
		}
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	return n, nil
}

// fill reads the next piece and records or checks its hash.
func (p *pieceReader) fill() error {
	if p.buf == nil {
		p.buf = make([]byte, pieceSize)
	}
	n, err := io.ReadFull(p.rc, p.buf[:pieceSize])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		p.eof = true
	case err != nil:
		return err
	}
	p.buf = p.buf[:n]
	p.off = 0
	if n == 0 {
		return nil
	}
	h := sha256.Sum256(p.buf)
	if p.record {
		p.src.hashes = append(p.src.hashes, h)
	} else if p.n >= len(p.src.hashes) || p.src.hashes[p.n] != h {
		return fmt.Errorf("%w: %w", crypto.ErrIntegrity, errChanged)
	}
	p.n++
	return nil
}

func (p *pieceReader) Close() error { return p.rc.Close() }
