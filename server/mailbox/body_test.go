package mailbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// memStore is a Store of sealed blobs in memory. change, if set, gives
// the bytes OpenBlob returns the nth time (from 1) a UID is opened.
type memStore struct {
	mu    sync.Mutex
	blobs map[uint32][]byte
	sums  map[uint32]store.SummaryUpdate
	opens map[uint32]int
	// batches counts Blobs calls, singles Blob calls.
	batches, singles int
	change           func(uid uint32, n int, b []byte) []byte
}

func newMemStore() *memStore {
	return &memStore{blobs: map[uint32][]byte{}, sums: map[uint32]store.SummaryUpdate{}, opens: map[uint32]int{}}
}

func (s *memStore) Messages(ctx context.Context, address string, mailbox uint64, opt store.ListOptions) ([]store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Message
	for uid := uint32(1); uid <= uint32(len(s.blobs)); uid++ {
		m := store.Message{UID: uid, SealedSize: int64(len(s.blobs[uid]))}
		if u, ok := s.sums[uid]; ok && opt.WithSummary {
			m.Summary, m.SessionKey = u.Summary, u.SessionKey
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *memStore) Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.singles++
	b, ok := s.blobs[uid]
	if !ok {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(b), nil
}

func (s *memStore) Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(uids))
	for i, uid := range uids {
		if b, ok := s.blobs[uid]; ok {
			out[i] = bytes.Clone(b)
		}
	}
	s.batches++
	return out, nil
}

func (s *memStore) OpenBlob(ctx context.Context, address string, mailbox uint64, uid uint32) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[uid]
	if !ok {
		return nil, 0, store.ErrNotFound
	}
	s.opens[uid]++
	if s.change != nil {
		b = s.change(uid, s.opens[uid], bytes.Clone(b))
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (s *memStore) SetSummaries(ctx context.Context, address string, mailbox uint64, us []store.SummaryUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range us {
		s.sums[u.UID] = u
	}
	return nil
}

var (
	testKeysOnce sync.Once
	testKeys     *crypto.Keyring
	testPub      *crypto.PublicKey
)

func keys(t *testing.T) (*crypto.Keyring, *crypto.PublicKey) {
	t.Helper()
	testKeysOnce.Do(func() {
		sec, err := crypto.NewAccount("alice@example.org", []byte("a password for tests"), crypto.AccountOptions{KDF: crypto.TestKDF()})
		if err != nil {
			panic(err)
		}
		testKeys, err = crypto.Unlock([][]byte{sec.Slot}, []byte("a password for tests"), sec.WrappedKey)
		if err != nil {
			panic(err)
		}
		testPub, err = crypto.ParsePublicKey(sec.PublicKey)
		if err != nil {
			panic(err)
		}
	})
	return testKeys, testPub
}

func seal(t *testing.T, pk *crypto.PublicKey, msg []byte) []byte {
	t.Helper()
	b, err := pk.SealBytes(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newReader(t *testing.T, st *memStore, opt Options) *Reader {
	kr, _ := keys(t)
	opt.Store = st
	svc, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return svc.Reader("alice@example.org", kr, nil)
}

// openAll builds the summaries of st's messages and opens message uid.
func openAll(t *testing.T, rd *Reader, st *memStore, uid uint32) (*Body, error) {
	t.Helper()
	msgs, _ := st.Messages(context.Background(), "", 1, store.ListOptions{WithSummary: true})
	sums, _, err := rd.Summaries(context.Background(), 1, msgs)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ = st.Messages(context.Background(), "", 1, store.ListOptions{WithSummary: true})
	m := msgs[uid-1]
	size := int64(0)
	if sums[uid-1] != nil {
		size = sums[uid-1].Size
	}
	return rd.Open(context.Background(), 1, &m, size)
}

func TestOpenInMemoryAndStreamed(t *testing.T) {
	_, pk := keys(t)
	st := newMemStore()
	small := crlf("Subject: small\n\n" + strings.Repeat("small body\n", 10))
	large := crlf("Subject: large\n\n" + strings.Repeat("a large body line read twice\n", 3*DefaultInMemoryMax/29))
	st.blobs[1], st.blobs[2] = seal(t, pk, small), seal(t, pk, large)
	rd := newReader(t, st, Options{})
	for uid, want := range map[uint32][]byte{1: small, 2: large} {
		b, err := openAll(t, rd, st, uid)
		if err != nil {
			t.Fatalf("uid %d: %v", uid, err)
		}
		if (b.Bytes() != nil) != (uid == 1) {
			t.Errorf("uid %d: in memory %v", uid, b.Bytes() != nil)
		}
		r, err := b.Range(context.Background(), 10, 5000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want[10:min(5010, len(want))]) {
			t.Errorf("uid %d: range differs (%v)", uid, err)
		}
		b.Close()
	}
	// No room in the budget: the small one is read twice too.
	rd = newReader(t, st, Options{MemoryBudget: 10})
	b, err := openAll(t, rd, st, 1)
	if err != nil || b.Bytes() != nil {
		t.Fatalf("without room: %v, in memory %v", err, b != nil && b.Bytes() != nil)
	}
	r, _ := b.Range(context.Background(), 0, 1<<20)
	if got, _ := io.ReadAll(r); !bytes.Equal(got, small) {
		t.Errorf("without room: differs")
	}
}

// TestOpenTampered: a sealed message changed at rest, small or large,
// fails its integrity check before any byte is released.
func TestOpenTampered(t *testing.T) {
	_, pk := keys(t)
	for _, n := range []int{100, 3 * DefaultInMemoryMax / 29} {
		st := newMemStore()
		msg := crlf("Subject: x\n\n" + strings.Repeat("a body line read twice here\n", n))
		st.blobs[1] = seal(t, pk, msg)
		rd := newReader(t, st, Options{})
		if _, err := openAll(t, rd, st, 1); err != nil {
			t.Fatal(err) // the summary is built while intact
		}
		st.blobs[1][len(st.blobs[1])-25] ^= 0x40
		if b, err := openAll(t, rd, st, 1); !errors.Is(err, ErrIntegrity) || b != nil {
			t.Errorf("%d lines: %v", n, err)
		}
	}
}

// TestStreamedBodyChangedBetweenReadings: the second reading of a large
// message (the one sent) must be the bytes the first verified; a store
// that returns other bytes the second time makes the range fail.
func TestStreamedBodyChangedBetweenReadings(t *testing.T) {
	_, pk := keys(t)
	st := newMemStore()
	msg := crlf("Subject: x\n\n" + strings.Repeat("a body line read twice here\n", 3*DefaultInMemoryMax/28))
	st.blobs[1] = seal(t, pk, msg)
	rd := newReader(t, st, Options{})
	if _, err := openAll(t, rd, st, 1); err != nil { // summary
		t.Fatal(err)
	}
	st.mu.Lock()
	st.opens = map[uint32]int{}
	st.change = func(uid uint32, n int, b []byte) []byte {
		if n >= 2 {
			b[len(b)/2] ^= 1
		}
		return b
	}
	st.mu.Unlock()
	msgs, _ := st.Messages(context.Background(), "", 1, store.ListOptions{WithSummary: true})
	b, err := rd.Open(context.Background(), 1, &msgs[0], int64(len(msg)))
	if err != nil {
		t.Fatalf("first reading: %v", err)
	}
	defer b.Close()
	r, err := b.Range(context.Background(), 0, int64(len(msg)))
	if err == nil {
		got, rerr := io.ReadAll(r)
		err = rerr
		if !bytes.Equal(got, msg[:len(got)]) {
			t.Errorf("bytes that differ from the message were released")
		}
	}
	if !errors.Is(err, crypto.ErrIntegrity) {
		t.Errorf("changed second reading: %v", err)
	}
}
