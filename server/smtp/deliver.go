package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/store"
)

// inlineMax bounds the sealed copies of one message that go to the store
// in memory, in one Deliver call: above it (or when the message is in the
// spool, or the budget has no room for them) every copy is sealed as a
// stream into a staged blob instead.
const inlineMax = 8 << 20

// deliverReply maps a sealing or commit failure to the reply.
func deliverReply(err error) *Reply {
	var nf *neverFitsError
	switch {
	case errors.As(err, &nf):
		return replyNeverFits
	case errors.Is(err, store.ErrOverQuota):
		return replyMailboxFull
	case errors.Is(err, store.ErrTooLarge):
		return replyStoreTooLarge
	}
	return replyTemporary
}

// neverFitsError says a sealed copy is larger than its account's whole
// quota: retrying cannot help.
type neverFitsError struct {
	account string
	sealed  int64
}

func (e *neverFitsError) Error() string {
	return fmt.Sprintf("smtp: sealed copy of %d bytes exceeds the quota of %s: %v", e.sealed, e.account, store.ErrOverQuota)
}

func (e *neverFitsError) Unwrap() error { return store.ErrOverQuota }

// commitFunc commits sealed copies in one durable transaction: the MX's
// Store.Deliver (commit), or submission's queue change with them.
type commitFunc func(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error)

// deliver seals prefix and msg, as one message, to each account and
// commits all copies with commit. Sealing happens before, and outside,
// the store's commit, at most len(s.sealers) at a time server-wide.
// Small messages are sealed into memory and handed to the store as they
// are; large ones (or many copies) are sealed as streams from the
// message buffer into staged blobs, so no whole copy is ever in memory.
// Any failure stores nothing.
func (s *Server) deliver(ctx context.Context, accounts []store.PublicAccount, prefix []byte, msg *msgBuffer, when time.Time, cp copyPlan, commit commitFunc) ([]store.Delivered, error) {
	size := int64(len(prefix)) + msg.size() + cp.extra()
	for _, a := range accounts {
		if a.QuotaLimit > 0 && size > a.QuotaLimit {
			return nil, &neverFitsError{account: a.Address, sealed: size}
		}
	}
	boxes, err := s.targets(ctx, accounts, cp)
	if err != nil {
		return nil, err
	}
	// Each copy's retention class, decided here from metadata before
	// sealing; escrow seals producible classes to the escrow keys too.
	classes := retentionClasses(msg, len(accounts), cp)
	names := make([]string, len(classes))
	for i, c := range classes {
		if c.Origin != policy.ClassDefault {
			names[i] = c.Origin // "" is the default class to Escrow
		}
	}
	escrow, err := s.escrowFor(ctx, accounts, boxes, names)
	if err != nil {
		return nil, err
	}
	n := int64(len(accounts))
	inline := n * (size + sealOverhead)
	if msg.inMemory() && inline <= inlineMax && s.budget.tryTake(inline) {
		defer s.budget.give(inline)
		plain := msg.bytes()
		return s.deliverInline(ctx, accounts, boxes, escrow, classes, func(i int) io.Reader {
			return cp.copyOf(i, io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(plain)))
		}, int(size), when, commit)
	}
	return s.deliverStaged(ctx, accounts, boxes, escrow, classes, prefix, msg, cp, when, commit)
}

// copyPlan is how each account's copy differs from the message as
// received: what the inbound checks add after the Return-Path line
// (Authentication-Results, the account's X-Spam fields), what they strip
// (such fields from outside), and whether the copy goes to Junk. The
// zero value copies the message as it is, to INBOX.
type copyPlan struct {
	plan  *inbound.Plan // nil: no inbound checks
	rpLen int64         // length of the Return-Path line
	// submission: the copies are of mail a user of this server sent
	// (their retention class is never newsletter or spam).
	submission bool
}

// extra bounds what a copy gains over the message.
func (cp copyPlan) extra() int64 {
	if cp.plan == nil {
		return 0
	}
	n := int64(len(cp.plan.Header))
	m := int64(0)
	for _, a := range cp.plan.Accounts {
		m = max(m, int64(len(a.Header)))
	}
	return n + m
}

// copyOf returns account i's copy of the message read from r.
func (cp copyPlan) copyOf(i int, r io.Reader) io.Reader {
	if cp.plan == nil {
		return r
	}
	insert := cp.plan.Header
	if i < len(cp.plan.Accounts) {
		insert = append(slices.Clip(insert), cp.plan.Accounts[i].Header...)
	}
	return &spliceReader{r: r, at: cp.rpLen, insert: insert, strip: cp.plan.Strip}
}

// targets returns each account's target mailbox: 0 (INBOX), or its
// \Junk mailbox when the plan files the copy there and it has one.
func (s *Server) targets(ctx context.Context, accounts []store.PublicAccount, cp copyPlan) ([]uint64, error) {
	boxes := make([]uint64, len(accounts))
	if cp.plan == nil {
		return boxes, nil
	}
	for i, a := range accounts {
		if i >= len(cp.plan.Accounts) || !cp.plan.Accounts[i].Junk {
			continue
		}
		mbs, err := s.opt.Store.Mailboxes(ctx, a.Address)
		if err != nil {
			return nil, fmt.Errorf("smtp: mailboxes of %s: %w", a.Address, err)
		}
		for _, mb := range mbs {
			if mb.SpecialUse == `\Junk` {
				boxes[i] = mb.ID
				break
			}
		}
	}
	return boxes, nil
}

// spliceReader reads r with insert put in at offset at and the strip
// ranges (increasing, at or after at) left out.
type spliceReader struct {
	r      io.Reader
	at     int64
	insert []byte
	strip  []inbound.Range
	off    int64 // offset in r of the next byte read from it
	done   bool  // insert was written
}

func (s *spliceReader) Read(p []byte) (int, error) {
	for {
		if !s.done && s.off == s.at {
			n := copy(p, s.insert)
			s.insert = s.insert[n:]
			if len(s.insert) == 0 {
				s.done = true
			}
			return n, nil
		}
		want := int64(len(p))
		if !s.done {
			want = min(want, s.at-s.off)
		}
		for len(s.strip) > 0 && s.strip[0].End <= s.off {
			s.strip = s.strip[1:]
		}
		if len(s.strip) > 0 {
			if st := s.strip[0]; st.Start <= s.off {
				// Inside a stripped range: skip it.
				n, err := io.CopyN(io.Discard, s.r, st.End-s.off)
				s.off += n
				if err != nil {
					return 0, err
				}
				continue
			} else {
				want = min(want, st.Start-s.off)
			}
		}
		n, err := s.r.Read(p[:want])
		s.off += int64(n)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// deliverInline seals each account's copy once (to the account's key
// and its escrow keys) into memory and commits the copies with their
// retention classes.
func (s *Server) deliverInline(ctx context.Context, accounts []store.PublicAccount, boxes []uint64, escrow [][]*crypto.PublicKey, classes []*store.Retention, copyOf func(i int) io.Reader, size int, when time.Time, commit commitFunc) ([]store.Delivered, error) {
	sealed := make([]*bytes.Buffer, len(accounts))
	defer func() {
		for _, b := range sealed {
			if b != nil {
				s.putBuf(b)
			}
		}
	}()
	err := s.eachSealer(ctx, len(accounts), func(i int) error {
		sealed[i] = s.getBuf()
		sealed[i].Grow(size + sealOverhead)
		return s.seal(accounts[i], copyOf(i), sealed[i], escrow[i]...)
	})
	if err != nil {
		return nil, err
	}
	ds := make([]store.Delivery, len(accounts))
	for i, a := range accounts {
		if a.QuotaLimit > 0 && int64(sealed[i].Len()) > a.QuotaLimit {
			return nil, &neverFitsError{account: a.Address, sealed: int64(sealed[i].Len())}
		}
		ds[i] = store.Delivery{
			Account:      a.Address,
			MailboxID:    boxes[i], // 0: the account's INBOX
			InternalDate: when,
			Blob:         sealed[i].Bytes(), // read in place until Deliver returns
			Retention:    classes[i],
		}
	}
	return commit(ctx, ds)
}

// deliverStaged seals prefix and msg once per account (to the account's
// key and its escrow keys) as a stream into a staged blob, then links all
// of them, with their retention classes, in one commit.
func (s *Server) deliverStaged(ctx context.Context, accounts []store.PublicAccount, boxes []uint64, escrow [][]*crypto.PublicKey, classes []*store.Retention, prefix []byte, msg *msgBuffer, cp copyPlan, when time.Time, commit commitFunc) ([]store.Delivered, error) {
	writers := make([]store.BlobWriter, len(accounts))
	staged := make([]store.StagedBlob, len(accounts))
	defer func() {
		// After a commit this does nothing (the blobs are linked); after
		// a failure it removes every copy written.
		for _, w := range writers {
			if w != nil {
				w.Discard()
			}
		}
	}()
	var mu sync.Mutex // guards writers
	err := s.eachSealer(ctx, len(accounts), func(i int) error {
		a := accounts[i]
		w, err := s.opt.Store.StageBlob(ctx, a.Address)
		if err != nil {
			return fmt.Errorf("smtp: stage for %s: %w", a.Address, err)
		}
		mu.Lock()
		writers[i] = w
		mu.Unlock()
		if err := s.seal(a, ctxReader{ctx, cp.copyOf(i, io.MultiReader(bytes.NewReader(prefix), msg.reader()))}, w, escrow[i]...); err != nil {
			return err
		}
		sb, err := w.Finish(ctx)
		if err != nil {
			return fmt.Errorf("smtp: stage for %s: %w", a.Address, err)
		}
		if a.QuotaLimit > 0 && sb.Size > a.QuotaLimit {
			return &neverFitsError{account: a.Address, sealed: sb.Size}
		}
		staged[i] = sb
		return nil
	})
	if err != nil {
		return nil, err
	}
	ds := make([]store.Delivery, len(accounts))
	for i, a := range accounts {
		ds[i] = store.Delivery{Account: a.Address, MailboxID: boxes[i], InternalDate: when, Staged: &staged[i], Retention: classes[i]}
	}
	return commit(ctx, ds)
}

// commit is the one durable store transaction for all copies.
func (s *Server) commit(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	delivered, err := s.opt.Store.Deliver(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("smtp: deliver: %w", err)
	}
	return delivered, nil
}

// eachSealer runs fn(0 … n-1) on sealing slots (s.sealers), in parallel
// when there is more than one, and joins their errors. After the first
// failure no new fn starts.
func (s *Server) eachSealer(ctx context.Context, n int, fn func(i int) error) error {
	if n == 1 {
		select {
		case s.sealers <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.sealers }()
		return fn(0)
	}
	errs := make([]error, n)
	var (
		wg     sync.WaitGroup
		failed bool
		mu     sync.Mutex
	)
	for i := range n {
		select {
		case s.sealers <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
		if errs[i] != nil {
			break
		}
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			<-s.sealers
			break
		}
		wg.Go(func() {
			defer func() { <-s.sealers }()
			if err := fn(i); err != nil {
				errs[i] = err
				mu.Lock()
				failed = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// seal writes the message from plain, sealed to a's public key (and to
// the escrow keys also), to dst.
func (s *Server) seal(a store.PublicAccount, plain io.Reader, dst io.Writer, also ...*crypto.PublicKey) error {
	pub, err := s.keys.get(a)
	if err != nil {
		return err
	}
	w, err := pub.SealWith(dst, also...)
	if err != nil {
		return fmt.Errorf("smtp: seal for %s: %w", a.Address, err)
	}
	if _, err := io.Copy(w, plain); err != nil {
		w.Close()
		return fmt.Errorf("smtp: seal for %s: %w", a.Address, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: seal for %s: %w", a.Address, err)
	}
	return nil
}

// txEncoding renders transaction ids: lower-case base32, no padding, so
// they are safe in a Received field and easy to grep.
var txEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newTxID returns a random transaction id (80 bits).
func newTxID() string {
	var b [10]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return txEncoding.EncodeToString(b[:])
}

// ctxReader stops a long copy once ctx ends (the client left, or the
// server is cut off at shutdown).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
