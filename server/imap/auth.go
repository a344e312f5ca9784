package imap

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// maxCredentialLen bounds user names and passwords (RFC 9051 leaves it to us).
const maxCredentialLen = 1024

// Login implements imapserver.Session. imapserver refuses it (and
// AUTHENTICATE PLAIN, which ends here too) unless the connection is TLS.
func (s *session) Login(username, password string) error {
	pw := []byte(password)
	defer wipeBytes(pw)

	account, err := policy.CanonicalAddress(username)
	if err != nil || len(username) > maxCredentialLen || len(password) > maxCredentialLen {
		account = ""
	}
	ip := remoteIP(s.remote)
	throttleKey := account
	if throttleKey == "" {
		throttleKey = "invalid:" + strings.ToLower(limitString(username, 64))
	}

	if err := s.srv.throttle.wait(s.srv.ctx, ip, throttleKey, time.Now); err != nil {
		if err == errThrottled {
			s.log.Warn("login refused: too many attempts from the address", "account", account)
			return errThrottled
		}
		return errUnavailable
	}

	start := time.Now()
	keys, err := s.srv.tryUnlock(s.srv.ctx, account, pw)
	if err != nil {
		if !errors.Is(err, crypto.ErrBadPassword) {
			s.log.Error("login", "account", account, "err", err)
		}
		s.srv.throttle.failed(ip, throttleKey, time.Now())
		s.log.Info("login failed", "account", account, "duration", time.Since(start))
		// Answer failureDelay after the attempt started, not after the
		// work ended: an unknown account (one burnt unlock) and a wrong
		// password (one argon2id run per slot of the account) then take
		// the same time, as long as the work fits in failureDelay.
		tm := time.NewTimer(s.srv.failureDelay - time.Since(start))
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-s.srv.ctx.Done():
		}
		return imapserver.ErrAuthFailed
	}
	s.srv.throttle.succeeded(ip, throttleKey, time.Now())

	s.mu.Lock()
	if s.closed || s.srv.ctx.Err() != nil {
		s.mu.Unlock()
		keys.Wipe()
		return errUnavailable
	}
	if s.keys != nil {
		s.keys.Wipe()
	}
	s.account = account
	s.keys = keys
	s.alog = s.log.With("account", account)
	s.mu.Unlock()
	s.log.Info("login", "account", account, "duration", time.Since(start))
	return nil
}

// tryUnlock unlocks account with pw. Unknown and invalid accounts burn the
// time of one unlock and fail with crypto.ErrBadPassword, like a wrong
// password.
func (s *Server) tryUnlock(ctx context.Context, account string, pw []byte) (keyring, error) {
	select {
	case s.unlockSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.unlockSem }()

	if account == "" {
		s.burn(pw)
		return nil, crypto.ErrBadPassword
	}
	acct, err := s.st.Account(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		s.burn(pw)
		return nil, crypto.ErrBadPassword
	}
	if err != nil {
		s.burn(pw)
		return nil, err
	}
	slots := make([][]byte, 0, len(acct.Slots))
	for _, sl := range acct.Slots {
		slots = append(slots, sl.Data)
	}
	return s.unlock(slots, pw, acct.WrappedKey)
}

// remoteIP returns the throttling key of a remote address: the IPv4 address,
// or the /64 of an IPv6 address (one host usually owns a whole /64).
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Throttle parameters. Failure scores decay with failureHalfLife.
const (
	failureHalfLife = 10 * time.Minute
	// ipFreeFailures failures from one address are not slowed down; after
	// that, attempts from the address are spaced by a gap that doubles per
	// failure up to ipMaxGap. An attempt that would have to wait more than
	// ipMaxWait (many attempts in parallel) is refused: this locks out an
	// address, never an account.
	ipFreeFailures = 5
	ipBaseGap      = 500 * time.Millisecond
	ipMaxGap       = 30 * time.Second
	ipMaxWait      = 60 * time.Second
	// accountFreeFailures failures on one account are not slowed down; after
	// that, attempts on the account from addresses it has not logged in
	// from are spaced by a gap that doubles per failure up to accountMaxGap.
	// They are never refused and never wait more than accountMaxWait, and
	// addresses the account logged in from within trustedFor are not slowed
	// down by the account's failures at all, so an attacker cannot lock the
	// owner out.
	accountFreeFailures = 3
	accountBaseGap      = 250 * time.Millisecond
	accountMaxGap       = 5 * time.Second
	accountMaxWait      = 30 * time.Second
	trustedFor          = 30 * 24 * time.Hour
	// maxThrottleEntries bounds each of the throttle's maps; beyond it,
	// decayed entries are pruned, then arbitrary ones.
	maxThrottleEntries = 100000
)

// errThrottled refuses a login from an address with too many attempts in
// flight.
var errThrottled = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeUnavailable,
	Text: "Too many failed logins from your address; try again later",
}

type failureScore struct {
	score float64   // decayed failure count
	at    time.Time // when score was last updated
	next  time.Time // earliest start of the next attempt
}

func (f *failureScore) decayed(now time.Time) float64 {
	if f.at.IsZero() {
		return 0
	}
	dt := now.Sub(f.at)
	return f.score * math.Exp2(-float64(dt)/float64(failureHalfLife))
}

// reserve returns when the next attempt may start (at the earliest now) and
// books the one after it gap later.
func (f *failureScore) reserve(now time.Time, gap time.Duration) time.Time {
	slot := now
	if f.next.After(slot) {
		slot = f.next
	}
	f.next = slot.Add(gap)
	return slot
}

// throttle slows down password guessing per remote address and per account.
type throttle struct {
	mu       sync.Mutex
	byIP     map[string]*failureScore // guarded by mu
	byAcct   map[string]*failureScore // guarded by mu
	trusted  map[string]time.Time     // guarded by mu; account+"\x00"+ip -> last successful login
	maxEntry int                      // immutable
}

func newThrottle() *throttle {
	return &throttle{
		byIP:     make(map[string]*failureScore),
		byAcct:   make(map[string]*failureScore),
		trusted:  make(map[string]time.Time),
		maxEntry: maxThrottleEntries,
	}
}

func trustKey(ip, account string) string { return account + "\x00" + ip }

// delay computes how long an attempt must wait, reserving its place, or
// returns ok == false if the address has too many attempts queued.
func (t *throttle) delay(ip, account string, now time.Time) (wait time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.byIP[ip]; f != nil {
		gap := time.Duration(0)
		if n := f.decayed(now) - ipFreeFailures; n > 0 {
			gap = expWait(ipBaseGap, n, ipMaxGap)
		}
		if gap > 0 && f.next.Sub(now) > ipMaxWait {
			return 0, false
		}
		wait = f.reserve(now, gap).Sub(now)
	}
	if at, ok := t.trusted[trustKey(ip, account)]; ok && now.Sub(at) < trustedFor {
		return wait, true
	}
	if f := t.byAcct[account]; f != nil {
		gap := time.Duration(0)
		if n := f.decayed(now) - accountFreeFailures; n > 0 {
			gap = expWait(accountBaseGap, n, accountMaxGap)
		}
		if f.next.Sub(now) > accountMaxWait {
			f.next = now.Add(accountMaxWait)
		}
		if d := f.reserve(now, gap).Sub(now); d > wait {
			wait = d
		}
	}
	return wait, true
}

func expWait(base time.Duration, n float64, max time.Duration) time.Duration {
	if n > 30 {
		return max
	}
	d := time.Duration(float64(base) * math.Exp2(n-1))
	if d > max || d <= 0 {
		return max
	}
	return d
}

// wait blocks until the attempt may proceed. It returns errThrottled if
// the address has too many attempts queued.
func (t *throttle) wait(ctx context.Context, ip, account string, now func() time.Time) error {
	d, ok := t.delay(ip, account, now())
	if !ok {
		return errThrottled
	}
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *throttle) failed(ip, account string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	bump(t.byIP, ip, now)
	bump(t.byAcct, account, now)
}

func bump(m map[string]*failureScore, k string, now time.Time) {
	f := m[k]
	if f == nil {
		f = &failureScore{}
		m[k] = f
	}
	f.score = f.decayed(now) + 1
	f.at = now
}

// succeeded clears the address's failures and trusts the address for the
// account. The account's score is left to decay: a success from one place
// says nothing about guesses from others.
func (t *throttle) succeeded(ip, account string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	delete(t.byIP, ip)
	t.trusted[trustKey(ip, account)] = now
}

// prune drops decayed entries when the maps grow too large.
func (t *throttle) prune(now time.Time) {
	for _, m := range []map[string]*failureScore{t.byIP, t.byAcct} {
		if len(m) < t.maxEntry {
			continue
		}
		for k, f := range m {
			if f.decayed(now) < 1 && !f.next.After(now) {
				delete(m, k)
			}
		}
		// Still too large under attack: drop arbitrary entries rather than
		// grow without bound.
		for k := range m {
			if len(m) < t.maxEntry {
				break
			}
			delete(m, k)
		}
	}
	if len(t.trusted) >= t.maxEntry {
		for k, at := range t.trusted {
			if now.Sub(at) >= trustedFor || len(t.trusted) >= t.maxEntry {
				delete(t.trusted, k)
			}
		}
	}
}
