package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestPrefetchReadsAhead: building summaries and prefetching bodies read
// small messages from the store in runs (Blobs), not one Blob call each,
// and what they give is unchanged: every body verified and whole, a
// message changed at rest ErrIntegrity, one gone since the listing
// store.ErrNotFound.
func TestPrefetchReadsAhead(t *testing.T) {
	const n = 100
	_, pk := keys(t)
	st := newMemStore()
	plain := make(map[uint32][]byte)
	for uid := uint32(1); uid <= n; uid++ {
		plain[uid] = fmt.Appendf(nil, "Subject: %d\r\n\r\n%s\r\n", uid, bytes.Repeat([]byte{'a' + byte(uid%26)}, int(uid)*37))
		st.blobs[uid] = seal(t, pk, plain[uid])
	}
	rd := newReader(t, st, Options{Workers: 2})
	ctx := context.Background()
	msgs, _ := st.Messages(ctx, "", 1, store.ListOptions{WithSummary: true})
	sums, errs, err := rd.Summaries(ctx, 1, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if sums[i] == nil || errs[i] != nil {
			t.Fatalf("summary of %d: %v", msgs[i].UID, errs[i])
		}
	}
	if st.singles != 0 || st.batches == 0 || st.batches > n/16+1 {
		t.Errorf("building %d summaries read %d blobs alone and %d runs; want 0 and at most %d", n, st.singles, st.batches, n/16+1)
	}

	const tampered, gone = 40, 70
	st.mu.Lock()
	st.blobs[tampered] = bytes.Clone(st.blobs[tampered])
	st.blobs[tampered][len(st.blobs[tampered])-30] ^= 1
	delete(st.blobs, gone)
	st.singles, st.batches = 0, 0
	st.mu.Unlock()

	items := make([]PrefetchItem, n)
	for i := range msgs {
		items[i] = PrefetchItem{Msg: &msgs[i], Size: sums[i].Size}
	}
	pf := rd.Prefetch(ctx, 1, items)
	defer pf.Stop()
	for i := range items {
		uid := msgs[i].UID
		b, err := pf.Get(i)
		switch uid {
		case tampered:
			if !errors.Is(err, ErrIntegrity) {
				t.Errorf("tampered message: %v, want ErrIntegrity", err)
			}
		case gone:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("message gone: %v, want store.ErrNotFound", err)
			}
		default:
			if err != nil || b == nil {
				t.Fatalf("uid %d: body %v, %v", uid, b, err)
			}
			if !bytes.Equal(b.Bytes(), plain[uid]) {
				t.Errorf("uid %d: body differs", uid)
			}
		}
		pf.Release(i)
	}
	pf.Stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	// The message gone is looked for alone once more, by its worker.
	if st.singles != 1 || st.batches == 0 || st.batches > n/readAheadMessages+1 {
		t.Errorf("prefetching %d bodies read %d blobs alone and %d runs; want 1 and at most %d", n, st.singles, st.batches, n/readAheadMessages+1)
	}
}

// TestReadSealedBounded: one ReadSealed reads at most readAheadMessages
// messages and about readAheadBytes, at least one message, and leaves
// messages too large to read whole (and nil ones) to their reader.
func TestReadSealedBounded(t *testing.T) {
	st := newMemStore()
	for uid := uint32(1); uid <= 100; uid++ {
		st.blobs[uid] = bytes.Repeat([]byte{byte(uid)}, 10)
	}
	rd := newReader(t, st, Options{})
	msgs := func(sizes ...int64) []*store.Message {
		out := make([]*store.Message, len(sizes))
		for i, sz := range sizes {
			if sz >= 0 {
				out[i] = &store.Message{UID: uint32(i + 1), SealedSize: sz}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sizes  []int64
		n      int
		isRead []bool
	}{
		{"small", []int64{100, 100, 100}, 3, []bool{true, true, true}},
		{"bytes", []int64{300 << 10, 300 << 10, 300 << 10, 300 << 10, 10}, 3, []bool{true, true, true}},
		{"first alone", []int64{readAheadBytes, 10}, 1, []bool{true}},
		{"too large", []int64{streamAbove + 1, 10, -1, 10}, 4, []bool{false, true, false, true}},
		{"count", make([]int64, 40), readAheadMessages, nil},
	} {
		out, n := rd.ReadSealed(context.Background(), 1, msgs(tc.sizes...))
		if n != tc.n || len(out) != n {
			t.Errorf("%s: read %d of %d (%d results), want %d", tc.name, n, len(tc.sizes), len(out), tc.n)
			continue
		}
		for i, want := range tc.isRead {
			if got := out[i] != nil; got != want {
				t.Errorf("%s: message %d read %v, want %v", tc.name, i+1, got, want)
			}
		}
	}
}
