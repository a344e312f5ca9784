package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// summaryBatch is how many summaries go into one store.SetSummaries call.
const summaryBatch = 256

// summaryWriteQueue is how many full batches may wait for the store.
const summaryWriteQueue = 2

// Summaries returns the summary of each message of msgs (listed with
// WithSummary), nil where a message cannot be opened; errs[i] says why
// (store.ErrNotFound: expunged meanwhile; anything else is logged). Stored summaries are opened with the index key; messages
// without a usable one (new, copied by an older version, or tampered
// with) are opened with the private key once, and their summary and
// session key are stored for later reads. msgs[i].SessionKey is updated
// for rebuilt ones. The work runs on the server's workers; it stops when
// ctx ends, which is then the error.
func (r *Reader) Summaries(ctx context.Context, mailbox uint64, msgs []store.Message) (sums []*Summary, errs []error, err error) {
	out := make([]*Summary, len(msgs))
	errs = make([]error, len(msgs))
	// Rebuilt summaries are stored in batches by one goroutine of their
	// own, so that the workers go on opening messages while a batch is
	// committed (a durable write); a bounded queue holds them back if
	// the store falls behind.
	writes := make(chan []store.SummaryUpdate, summaryWriteQueue)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for batch := range writes {
			if err := r.svc.st.SetSummaries(ctx, r.account, mailbox, batch); err != nil {
				r.log.Warn("storing summaries", "mailbox", mailbox, "err", err)
			}
		}
	}()
	var (
		mu      sync.Mutex
		updates []store.SummaryUpdate // guarded by mu
		wg      sync.WaitGroup
	)
	// Chunks of messages go to the server's workers: opening a stored
	// summary is a few microseconds, building one a private-key
	// operation and a parse.
	const chunk = 16
	next := make(chan int)
	for range min(r.svc.Workers(), (len(msgs)+chunk-1)/chunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := range next {
				var full []store.SummaryUpdate
				r.svc.work(ctx, func() {
					// Stored summaries first; the messages left to
					// build are read from the store together.
					var build []*store.Message
					var at []int
					for i := lo; i < min(lo+chunk, len(msgs)) && ctx.Err() == nil; i++ {
						if !r.stored(mailbox, &msgs[i], out, i) {
							build = append(build, &msgs[i])
							at = append(at, i)
						}
					}
					for blo := 0; blo < len(build) && ctx.Err() == nil; {
						pre, n := r.ReadSealed(ctx, mailbox, build[blo:])
						bhi := blo + n
						for k := blo; k < bhi && ctx.Err() == nil; k++ {
							u, ok := r.rebuild(ctx, mailbox, build[k], pre[k-blo], out, errs, at[k])
							pre[k-blo] = nil
							if ok {
								mu.Lock()
								updates = append(updates, u)
								if len(updates) >= summaryBatch {
									full, updates = updates, nil
								}
								mu.Unlock()
							}
						}
						blo = bhi
					}
				})
				if full != nil {
					writes <- full // outside the worker slot
				}
			}
		}()
	}
	for lo := 0; lo < len(msgs); lo += chunk {
		if ctx.Err() != nil {
			break
		}
		next <- lo
	}
	close(next)
	wg.Wait()
	if len(updates) > 0 {
		writes <- updates
	}
	close(writes)
	<-written
	return out, errs, ctx.Err()
}

// stored opens message m's stored summary into out[i] and reports
// whether it did; if not, the summary is to be built (rebuild).
func (r *Reader) stored(mailbox uint64, m *store.Message, out []*Summary, i int) bool {
	if m.Summary == nil || m.SessionKey == nil {
		return false
	}
	sm, err := r.openSummary(mailbox, m)
	if err == nil {
		out[i] = sm
		return true
	}
	if r.legacySummary(m) {
		// Written by a version that bound summaries to the account
		// only: authentic, but not known to be this message's. The
		// migration is this rebuild.
		r.log.Debug("rebuilding a summary of the older format", "mailbox", mailbox, "uid", m.UID)
	} else {
		r.log.Warn("stored summary does not open; rebuilding it from the message (an interrupted copy, or data changed outside sealmail)",
			"mailbox", mailbox, "uid", m.UID, "err", err)
	}
	return false
}

// rebuild builds message m's summary into out[i] (pre: its sealed bytes
// read ahead, or nil) and returns the update to store.
func (r *Reader) rebuild(ctx context.Context, mailbox uint64, m *store.Message, pre []byte, out []*Summary, errs []error, i int) (store.SummaryUpdate, bool) {
	sm, sealed, sk, err := r.build(ctx, mailbox, m, pre)
	if err != nil {
		errs[i] = r.integrity(mailbox, m.UID, err)
		r.logUnreadable(mailbox, m.UID, err)
		return store.SummaryUpdate{}, false
	}
	out[i] = sm
	m.SessionKey = sk
	return store.SummaryUpdate{UID: m.UID, Summary: sealed, SessionKey: sk}, true
}

func (r *Reader) logUnreadable(mailbox uint64, uid uint32, err error) {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, crypto.ErrIntegrity) || errors.Is(err, context.Canceled) {
		return // expunged meanwhile; logged by integrity; nobody waits
	}
	r.log.Error("message cannot be opened", "mailbox", mailbox, "uid", uid, "err", err)
}

// openSummary opens a stored summary and checks that the stored session
// key belongs to the message too.
func (r *Reader) openSummary(mailbox uint64, m *store.Message) (*Summary, error) {
	b, err := r.keys.OpenIndex(m.Summary, summaryAD(r.account, mailbox, m.UID))
	if err != nil {
		return nil, err
	}
	defer wipe(b)
	return DecodeSummary(b)
}

// legacySummaryAD is the associated data of summaries written before they
// were bound to their message (server/imap, summary version 1).
func legacySummaryAD(account string) []byte {
	return []byte("sealmail imap summary v1\x00" + account)
}

// legacySummary reports whether m's stored summary is of that older
// format (it opens with the account-only binding).
func (r *Reader) legacySummary(m *store.Message) bool {
	b, err := r.keys.OpenIndex(m.Summary, legacySummaryAD(r.account))
	wipe(b)
	return err == nil
}

// build opens one message with the private key, builds its summary and
// seals it, with the session key, for this message. pre, if not nil, is
// its sealed bytes read ahead.
func (r *Reader) build(ctx context.Context, mailbox uint64, m *store.Message, pre []byte) (*Summary, []byte, []byte, error) {
	uid := m.UID
	src, err := r.sealed(ctx, mailbox, m, pre)
	if err != nil {
		return nil, nil, nil, err
	}
	sealed, err := src.open(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	defer sealed.Close()
	plainR, sk, err := r.keys.OpenFor(sealed, MessageAD(r.account, mailbox, uid))
	if err != nil {
		return nil, nil, nil, err
	}
	held, err := r.svc.budget.acquire(ctx, m.SealedSize)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.svc.budget.release(held)
	// Read to EOF before trusting anything: integrity is checked at the
	// end. The bound stops a compressed message from expanding without
	// limit.
	plain, err := readAll(io.LimitReader(plainR, r.svc.maxMessage+1), int(min(m.SealedSize, r.svc.maxMessage)))
	defer wipe(plain)
	if err != nil {
		return nil, nil, nil, err
	}
	if int64(len(plain)) > r.svc.maxMessage {
		return nil, nil, nil, fmt.Errorf("mailbox: plaintext of uid %d larger than %d bytes", uid, r.svc.maxMessage)
	}
	sm, sealedSum, err := r.sealSummary(mailbox, uid, plain)
	if err != nil {
		return nil, nil, nil, err
	}
	return sm, sealedSum, sk, nil
}

// sealSummary builds the summary of plain and seals it for message uid.
func (r *Reader) sealSummary(mailbox uint64, uid uint32, plain []byte) (*Summary, []byte, error) {
	sm := BuildSummary(plain)
	enc := EncodeSummary(sm)
	defer wipe(enc)
	sealed, err := r.keys.SealIndex(enc, summaryAD(r.account, mailbox, uid))
	if err != nil {
		return nil, nil, err
	}
	return sm, sealed, nil
}

// readAll is io.ReadAll starting with a buffer of hint bytes (the sealed
// size, which is close to the plaintext size), so that a message is not
// copied over and over while the buffer grows. Buffers it outgrows are
// wiped.
func readAll(r io.Reader, hint int) ([]byte, error) {
	b := make([]byte, 0, max(hint, 512))
	for {
		if len(b) == cap(b) {
			nb := append(b, 0)[:len(b)]
			wipe(b[:cap(b)])
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

// Added stores the summary and session key of a message that the caller
// has just sealed and delivered (APPEND): the plaintext is at hand, so
// only the session key needs the private key, and the first FETCH needs
// no public-key work. Failures are logged, not returned: the first read
// builds what is missing.
func (r *Reader) Added(ctx context.Context, mailbox uint64, uid uint32, sealed, plain []byte) {
	_, sk, err := r.keys.OpenFor(bytes.NewReader(sealed), MessageAD(r.account, mailbox, uid))
	if err == nil {
		var sum []byte
		_, sum, err = r.sealSummary(mailbox, uid, plain)
		if err == nil {
			err = r.svc.st.SetSummaries(ctx, r.account, mailbox, []store.SummaryUpdate{{UID: uid, Summary: sum, SessionKey: sk}})
		}
	}
	if err != nil {
		r.log.Warn("storing summary of an added message", "mailbox", mailbox, "uid", uid, "err", err)
	}
}

// Copied binds the summaries and session keys that store.CopyMessages or
// MoveMessages carried from mailbox src to dst to their new messages
// (they are sealed for the source messages). Summaries that cannot be
// moved are left to be rebuilt at the first read; failures are logged.
func (r *Reader) Copied(ctx context.Context, src, dst uint64, pairs []store.UIDPair) {
	if len(pairs) == 0 {
		return
	}
	srcOf := make(map[uint32]uint32, len(pairs))
	lo, hi := pairs[0].Dst, pairs[0].Dst
	for _, p := range pairs {
		srcOf[p.Dst] = p.Src
		lo, hi = min(lo, p.Dst), max(hi, p.Dst)
	}
	msgs, err := r.svc.st.Messages(ctx, r.account, dst, store.ListOptions{FromUID: lo, ToUID: hi, WithSummary: true})
	if err != nil {
		r.log.Warn("rebinding copied summaries", "mailbox", dst, "err", err)
		return
	}
	var updates []store.SummaryUpdate
	flush := func() {
		if len(updates) == 0 {
			return
		}
		if err := r.svc.st.SetSummaries(ctx, r.account, dst, updates); err != nil {
			r.log.Warn("rebinding copied summaries", "mailbox", dst, "err", err)
		}
		updates = nil
	}
	for _, m := range msgs {
		s, ok := srcOf[m.UID]
		if !ok || m.Summary == nil || m.SessionKey == nil {
			continue
		}
		u, err := r.rebind(src, s, dst, m)
		if err != nil {
			continue // rebuilt at the first read
		}
		updates = append(updates, u)
		if len(updates) == summaryBatch {
			flush()
		}
	}
	flush()
}

func (r *Reader) rebind(src uint64, srcUID uint32, dst uint64, m store.Message) (store.SummaryUpdate, error) {
	b, err := r.keys.OpenIndex(m.Summary, summaryAD(r.account, src, srcUID))
	if err != nil {
		return store.SummaryUpdate{}, err
	}
	defer wipe(b)
	sum, err := r.keys.SealIndex(b, summaryAD(r.account, dst, m.UID))
	if err != nil {
		return store.SummaryUpdate{}, err
	}
	sk, err := r.keys.ResealSessionKey(m.SessionKey, MessageAD(r.account, src, srcUID), MessageAD(r.account, dst, m.UID))
	if err != nil {
		return store.SummaryUpdate{}, err
	}
	return store.SummaryUpdate{UID: m.UID, Summary: sum, SessionKey: sk}, nil
}
