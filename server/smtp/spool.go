package smtp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Memory of messages in flight (see Limits.InFlightBytes).
const (
	// txWorkingSet is what one transfer takes from the budget up front:
	// its read buffers and, should it spill, the spool's record buffers.
	txWorkingSet = 256 << 10
	// memStep is the step in which a message buffer takes budget.
	memStep = 64 << 10
	// memMax is the largest message kept in memory while it arrives;
	// above it, or when the budget has no room, it goes to the spool.
	memMax = 1 << 20
	// spoolRecord is the plaintext size of one sealed spool record.
	spoolRecord = 64 << 10
)

// msgBuffer keeps one incoming message (trace fields first): in a pooled
// memory buffer while it is small and the budget has room, then in an
// encrypted spool file. It is written by one goroutine; once finished it
// can be read by several at once (reader).
type msgBuffer struct {
	srv  *Server
	mem  *bytes.Buffer // nil once spilled
	held int64         // budget taken for mem
	sp   *spoolFile    // nil while in memory
	err  error         // sticky: spooling failed
}

func (s *Server) newMsgBuffer() *msgBuffer {
	return &msgBuffer{srv: s, mem: s.getBuf()}
}

// Write keeps p, spilling to the spool when memory is full. A failure to
// spool is sticky and reported by Write and finish.
func (m *msgBuffer) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.sp == nil {
		need := int64(m.mem.Len() + len(p))
		for need > m.held && need <= memMax {
			if !m.srv.budget.tryTake(memStep) {
				break
			}
			m.held += memStep
		}
		if need <= m.held {
			return m.mem.Write(p)
		}
		if err := m.spill(); err != nil {
			m.err = err
			return 0, err
		}
	}
	if _, err := m.sp.Write(p); err != nil {
		m.err = err
		return 0, err
	}
	return len(p), nil
}

// spill moves the buffered bytes to a new spool file and frees memory.
func (m *msgBuffer) spill() error {
	sp, err := newSpoolFile(m.srv.spoolDir)
	if err != nil {
		return err
	}
	if _, err := sp.Write(m.mem.Bytes()); err != nil {
		sp.close()
		return err
	}
	m.sp = sp
	m.srv.putBuf(m.mem)
	m.mem = nil
	m.srv.budget.give(m.held)
	m.held = 0
	return nil
}

// finish ends writing; the buffer can be read afterwards.
func (m *msgBuffer) finish() error {
	if m.err != nil {
		return m.err
	}
	if m.sp != nil {
		if err := m.sp.finish(); err != nil {
			m.err = err
			return err
		}
	}
	return nil
}

// inMemory reports whether the message is in memory; bytes returns it.
func (m *msgBuffer) inMemory() bool { return m.sp == nil }
func (m *msgBuffer) bytes() []byte  { return m.mem.Bytes() }

// size returns the bytes kept.
func (m *msgBuffer) size() int64 {
	if m.sp != nil {
		return m.sp.size
	}
	return int64(m.mem.Len())
}

// reader returns a new reader of the whole message. Readers are
// independent and may run concurrently.
func (m *msgBuffer) reader() io.Reader {
	if m.sp != nil {
		return m.sp.reader()
	}
	return bytes.NewReader(m.mem.Bytes())
}

// release wipes and frees everything: memory back to the pool and the
// budget, the spool file closed (it has no name, so closing it frees its
// blocks). Safe to call twice.
func (m *msgBuffer) release() {
	if m.mem != nil {
		m.srv.putBuf(m.mem)
		m.mem = nil
	}
	m.srv.budget.give(m.held)
	m.held = 0
	if m.sp != nil {
		m.sp.close()
		m.sp = nil
	}
}

// spoolFile is a message on disk, sealed with AES-256-GCM under a random
// key that exists only in this struct: record i holds spoolRecord bytes
// of plaintext (the last one fewer) and its tag, at offset i·(spoolRecord
// + tag), with the record number as nonce (one key per file, so nonces
// never repeat). The file is unlinked right after it is created, so
// neither a crash nor a forgotten close leaves it behind.
type spoolFile struct {
	f    *os.File
	aead cipher.AEAD
	buf  []byte // plaintext of the record being filled
	ct   []byte // scratch for its ciphertext
	size int64  // plaintext bytes written, buf included
	recs uint64 // records written
	done bool
}

// spoolPattern names spool files for the moment between create and
// unlink; leftovers from a crash in that moment are removed by New.
const spoolPattern = "spool-*.tmp"

func newSpoolFile(dir string) (*spoolFile, error) {
	var key [32]byte // 32: AES-256
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("smtp: spool key: %w", err)
	}
	blk, err := aes.NewCipher(key[:])
	clear(key[:])
	if err != nil {
		return nil, fmt.Errorf("smtp: spool cipher: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("smtp: spool cipher: %w", err)
	}
	f, err := os.CreateTemp(dir, spoolPattern)
	if err != nil {
		return nil, fmt.Errorf("smtp: spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("smtp: spool: %w", err)
	}
	return &spoolFile{
		f:    f,
		aead: aead,
		buf:  make([]byte, 0, spoolRecord),
		ct:   make([]byte, 0, spoolRecord+aead.Overhead()),
	}, nil
}

func spoolNonce(dst []byte, rec uint64) []byte {
	dst = dst[:12]
	clear(dst[:4])
	binary.BigEndian.PutUint64(dst[4:], rec)
	return dst
}

func (s *spoolFile) Write(p []byte) (int, error) {
	if s.done {
		return 0, errors.New("smtp: spool: write after finish")
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), spoolRecord-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		s.size += int64(k)
		if len(s.buf) == spoolRecord {
			if err := s.seal(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// seal writes the buffered record.
func (s *spoolFile) seal() error {
	var nonce [12]byte
	s.ct = s.aead.Seal(s.ct[:0], spoolNonce(nonce[:], s.recs), s.buf, nil)
	clear(s.buf)
	s.buf = s.buf[:0]
	if _, err := s.f.Write(s.ct); err != nil {
		return fmt.Errorf("smtp: spool: %w", err)
	}
	s.recs++
	return nil
}

// finish writes the last, partial record.
func (s *spoolFile) finish() error {
	if s.done {
		return nil
	}
	s.done = true
	if len(s.buf) > 0 {
		return s.seal()
	}
	return nil
}

func (s *spoolFile) close() {
	clear(s.buf[:cap(s.buf)])
	s.f.Close()
}

// reader returns a reader of the plaintext; it uses ReadAt, so readers
// do not disturb each other.
func (s *spoolFile) reader() io.Reader {
	return &spoolReader{s: s}
}

type spoolReader struct {
	s     *spoolFile
	rec   uint64
	plain []byte // decrypted, not yet returned
	pbuf  []byte // backing array of plain
	ct    []byte
}

func (r *spoolReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		off := int64(r.rec) * spoolRecord
		if off >= r.s.size {
			clear(r.pbuf)
			return 0, io.EOF
		}
		n := min(r.s.size-off, spoolRecord)
		tag := r.s.aead.Overhead()
		if r.ct == nil {
			r.ct = make([]byte, spoolRecord+tag)
			r.pbuf = make([]byte, 0, spoolRecord)
		}
		ct := r.ct[:int(n)+tag]
		if _, err := r.s.f.ReadAt(ct, int64(r.rec)*int64(spoolRecord+tag)); err != nil {
			return 0, fmt.Errorf("smtp: spool: read: %w", err)
		}
		var nonce [12]byte
		plain, err := r.s.aead.Open(r.pbuf[:0], spoolNonce(nonce[:], r.rec), ct, nil)
		if err != nil {
			return 0, fmt.Errorf("smtp: spool: record %d: %w", r.rec, err)
		}
		r.plain = plain
		r.rec++
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// prepareSpoolDir creates dir (mode 0700) and removes spool files a crash
// left between their creation and unlinking.
func prepareSpoolDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("smtp: spool directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("smtp: spool directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("smtp: spool directory: %w", err)
	}
	for _, e := range ents {
		if ok, _ := filepath.Match(spoolPattern, e.Name()); ok && strings.HasPrefix(e.Name(), "spool-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}
