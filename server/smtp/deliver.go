package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/store"
)

// Data implements gosmtp.Session: it reads and checks the message, seals
// one copy per recipient account, commits all copies in one store
// transaction and returns nil (go-smtp then answers 250) only after the
// commit. Any failure stores nothing.
func (ss *session) Data(r io.Reader) error {
	start := time.Now()
	ss.mu.Lock()
	tx := ss.tx
	ss.mu.Unlock()
	if !tx.active || len(tx.accounts) == 0 {
		return errNoRcpt
	}
	if ss.tc != nil {
		// The transaction began before any shutdown (Mail checked), so
		// it may finish even while the server drains.
		ss.tc.beginData()
		defer ss.tc.endData()
	}
	// go-smtp's read deadline was set for one command; give the transfer
	// the data timeout instead (for BDAT each chunk's command resets it).
	ss.c.Conn().SetReadDeadline(start.Add(ss.s.lim.DataTimeout))

	id := newTxID()
	msg := ss.s.getBuf()
	defer ss.s.putBuf(msg)
	ti := traceInfo{
		reversePath: tx.from,
		helo:        ss.helo,
		remoteIP:    ss.ip,
		hostname:    ss.s.opt.Hostname,
		tls:         ss.tls,
		utf8:        tx.utf8,
		id:          id,
		when:        start,
	}
	if len(tx.rcptText) == 1 {
		ti.rcpt = tx.rcptText[0]
	}
	writeTrace(msg, ti)
	size, err := readMessage(msg, r, dataLimits{
		maxBytes: ss.s.lim.MessageBytes,
		maxLine:  ss.s.lim.LineLength,
		maxHops:  ss.s.lim.Hops,
	})
	if err != nil {
		reply, clientFault := dataError(err)
		level := ss.log.Info
		if !clientFault {
			level = ss.log.Warn
		}
		level("message refused", keyID, id, keySize, size, keyRcpts, len(tx.accounts),
			keyResult, resultText(reply), keyDuration, time.Since(start), keyErr, err)
		return reply
	}

	ctx, cancel := context.WithTimeout(ss.ctx, ss.s.lim.CommandTimeout)
	defer cancel()
	delivered, err := ss.s.deliver(ctx, tx.accounts, msg.Bytes(), start)
	var reply *gosmtp.SMTPError
	if err != nil {
		reply = ss.deliverError(err)
	}
	attrs := []any{keyID, id, keySize, size, keyRcpts, len(tx.accounts),
		keyResult, resultText(reply), keyDuration, time.Since(start)}
	if reply != nil {
		ss.log.Warn("message not delivered", append(attrs, keyErr, err)...)
		return reply
	}
	accounts := make([]string, len(delivered))
	for i, d := range delivered {
		accounts[i] = d.Account
		ss.log.Debug("copy stored", keyID, id, keyAccount, d.Account, keyMailbox, d.Mailbox, keyUID, d.UID)
	}
	ss.log.Info("message delivered", append(attrs, keyAccount, strings.Join(accounts, ","))...)
	return nil
}

// deliverError maps a sealing or commit failure to the reply.
func (ss *session) deliverError(err error) *gosmtp.SMTPError {
	var nf *neverFitsError
	switch {
	case errors.As(err, &nf):
		return errNeverFits
	case errors.Is(err, store.ErrOverQuota):
		return errMailboxFull
	case errors.Is(err, store.ErrTooLarge):
		return errStoreTooLarge
	}
	return errTemporary
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

// deliver seals plain to each account and commits all copies in one store
// transaction. Sealing happens before, and outside, the store's commit.
func (s *Server) deliver(ctx context.Context, accounts []store.PublicAccount, plain []byte, when time.Time) ([]store.Delivered, error) {
	sealed := make([]*bytes.Buffer, len(accounts))
	defer func() {
		for _, b := range sealed {
			if b != nil {
				s.putBuf(b)
			}
		}
	}()
	if err := s.sealAll(accounts, plain, sealed); err != nil {
		return nil, err
	}
	ds := make([]store.Delivery, len(accounts))
	for i, a := range accounts {
		if a.QuotaBytes > 0 && int64(sealed[i].Len()) > a.QuotaBytes {
			return nil, &neverFitsError{account: a.Address, sealed: int64(sealed[i].Len())}
		}
		ds[i] = store.Delivery{
			Account:      a.Address, // MailboxID 0: the account's INBOX
			InternalDate: when,
			Blob:         sealed[i].Bytes(), // the store copies it
		}
	}
	delivered, err := s.opt.Store.Deliver(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("smtp: deliver: %w", err)
	}
	if s.opt.OnDeliver != nil {
		s.opt.OnDeliver(delivered)
	}
	return delivered, nil
}

// sealAll seals plain once per account into out, in parallel across
// recipients (at most GOMAXPROCS at a time).
func (s *Server) sealAll(accounts []store.PublicAccount, plain []byte, out []*bytes.Buffer) error {
	if len(accounts) == 1 {
		out[0] = s.getBuf()
		return s.sealOne(accounts[0], plain, out[0])
	}
	for i := range out {
		out[i] = s.getBuf()
	}
	workers := min(len(accounts), runtime.GOMAXPROCS(0))
	next := make(chan int, len(accounts))
	for i := range accounts {
		next <- i
	}
	close(next)
	errs := make([]error, len(accounts))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				errs[i] = s.sealOne(accounts[i], plain, out[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) sealOne(a store.PublicAccount, plain []byte, dst *bytes.Buffer) error {
	pub, err := s.keys.get(a)
	if err != nil {
		return err
	}
	dst.Grow(len(plain) + sealOverhead)
	w, err := pub.Seal(dst)
	if err != nil {
		return fmt.Errorf("smtp: seal for %s: %w", a.Address, err)
	}
	if _, err := w.Write(plain); err != nil {
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
