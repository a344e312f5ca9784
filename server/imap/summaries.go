package imap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// summaryBatch is how many summaries go into one store.SetSummaries call.
const summaryBatch = 256

// summaries returns the summary of each message of msgs (nil where a
// message cannot be opened; the cause is logged). Stored summaries are
// opened with the index key; messages without one are opened with the
// private key once, and their summary and session key are stored so later
// reads need no public-key work. msgs[i].SessionKey is filled in for built
// ones. Work is spread over the server's workers.
func (s *session) summaries(ctx context.Context, account string, mailbox uint64, keys keyring, log *slog.Logger, msgs []store.Message) []*summary {
	out := make([]*summary, len(msgs))
	ad := summaryAD(account)
	var (
		mu      sync.Mutex
		updates []store.SummaryUpdate
		wg      sync.WaitGroup
	)
	flush := func(force bool) {
		// called with mu held
		if len(updates) == 0 || (!force && len(updates) < summaryBatch) {
			return
		}
		batch := updates
		updates = nil
		if err := s.srv.st.SetSummaries(ctx, account, mailbox, batch); err != nil {
			log.Warn("storing summaries", "err", err)
		}
	}
	next := make(chan int)
	workers := min(s.srv.workers, len(msgs))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := &msgs[i]
				if m.Summary != nil && m.SessionKey != nil {
					if sm, err := openSummary(keys, m.Summary, ad); err == nil {
						out[i] = sm
						continue
					} else {
						log.Warn("stored summary unreadable; rebuilding", "uid", m.UID, "err", err)
					}
				}
				sm, sealedSum, sk, err := s.buildOne(ctx, account, mailbox, keys, m.UID, ad)
				if err != nil {
					log.Error("opening message", "uid", m.UID, "err", err)
					continue
				}
				out[i] = sm
				m.SessionKey = sk
				mu.Lock()
				updates = append(updates, store.SummaryUpdate{UID: m.UID, Summary: sealedSum, SessionKey: sk})
				flush(false)
				mu.Unlock()
			}
		}()
	}
	for i := range msgs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	mu.Lock()
	flush(true)
	mu.Unlock()
	return out
}

func openSummary(keys keyring, sealed, ad []byte) (*summary, error) {
	b, err := keys.OpenIndex(sealed, ad)
	if err != nil {
		return nil, err
	}
	return decodeSummary(b)
}

// buildOne opens one message with the private key and builds its summary.
func (s *session) buildOne(ctx context.Context, account string, mailbox uint64, keys keyring, uid uint32, ad []byte) (*summary, []byte, []byte, error) {
	blob, err := s.srv.st.Blob(ctx, account, mailbox, uid)
	if err != nil {
		return nil, nil, nil, err
	}
	plainR, sk, err := keys.Open(bytes.NewReader(blob))
	if err != nil {
		return nil, nil, nil, err
	}
	// Read to EOF before trusting anything: integrity is checked at the end.
	// The bound stops a compressed message from expanding without limit.
	limit := int64(len(blob)) + int64(s.srv.appendLimit)
	plain, err := readAllHint(io.LimitReader(plainR, limit+1), len(blob))
	if err != nil {
		wipeBytes(plain)
		return nil, nil, nil, err
	}
	if int64(len(plain)) > limit {
		return nil, nil, nil, fmt.Errorf("imap: plaintext of uid %d too large", uid)
	}
	sm, sealed, err := sealSummary(keys, plain, ad)
	wipeBytes(plain)
	if err != nil {
		return nil, nil, nil, err
	}
	return sm, sealed, sk, nil
}

// readAllHint is io.ReadAll starting with a buffer of hint bytes (the
// sealed size, which is close to the plaintext size), so that a message is
// not copied over and over while the buffer grows. Buffers it outgrows are
// wiped.
func readAllHint(r io.Reader, hint int) ([]byte, error) {
	b := make([]byte, 0, max(hint, 512))
	for {
		if len(b) == cap(b) {
			nb := append(b, 0)[:len(b)]
			wipeBytes(b[:cap(b)])
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// sealSummary builds the summary of plain and seals it. The returned
// summary does not refer to plain.
func sealSummary(keys keyring, plain, ad []byte) (*summary, []byte, error) {
	sm := buildSummary(plain)
	enc := encodeSummary(sm)
	sealed, err := keys.SealIndex(enc, ad)
	if err != nil {
		return nil, nil, err
	}
	// Decode our own encoding so the summary owns its bytes, not plain's.
	own, err := decodeSummary(enc)
	if err != nil {
		return nil, nil, err
	}
	return own, sealed, nil
}

// openBody returns the plaintext of a message, using its stored session key
// when there is one.
func (s *session) openBody(ctx context.Context, account string, mailbox uint64, keys keyring, m *store.Message) (io.Reader, error) {
	blob, err := s.srv.st.Blob(ctx, account, mailbox, m.UID)
	if err != nil {
		return nil, err
	}
	if m.SessionKey != nil {
		return keys.OpenWithSessionKey(bytes.NewReader(blob), m.SessionKey)
	}
	r, _, err := keys.Open(bytes.NewReader(blob))
	return r, err
}
