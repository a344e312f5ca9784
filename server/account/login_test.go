package account

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// TestLoginWork: what a login costs in argon2id runs, for every kind of
// failure and success. Unknown accounts burn what a one-password account
// costs, and codes cost one run whatever the number of codes.
func TestLoginWork(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Options{})
	mustCreate(t, s, alice, alicePW)
	var app string
	for i := range 5 {
		ap, err := s.AddAppPassword(ctx, alice, []byte(alicePW), "device")
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			app = ap.Secret
		}
		if _, err := s.AddRecoveryCode(ctx, alice, []byte(alicePW)); err != nil {
			t.Fatal(err)
		}
	}
	otherApp := strings.ToUpper(strings.Repeat("z", 20)) // shaped like an app password, names no slot
	for _, tc := range []struct {
		name, user, secret string
		ok                 bool
		runs               uint64
	}{
		{"password", alice, alicePW, true, 1},
		{"wrong password", alice, "wrong password!", false, 1},
		{"unknown account", "nobody@example.org", "wrong password!", false, 1},
		{"invalid user name", "not an address", "wrong password!", false, 1},
		{"app password", alice, app, true, 1},
		{"app password naming no slot", alice, otherApp, false, 2},
		{"app password, unknown account", "nobody@example.org", otherApp, false, 2},
	} {
		// Another address each time, so the throttle's gaps stay out of
		// the way.
		before := s.derivations.Load()
		sess, err := login(s, "198.51.100."+itoa(int(before))+":1", tc.user, tc.secret)
		runs := s.derivations.Load() - before
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadCredentials)) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if sess != nil {
			sess.Close()
		}
		if runs != tc.runs {
			t.Errorf("%s: %d argon2id runs, want %d", tc.name, runs, tc.runs)
		}
	}
}

// TestFailureDelay: a failed login is answered FailureDelay after its work
// started, never earlier, whatever the work; a success is not delayed.
func TestFailureDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	s, _ := newService(t, Options{FailureDelay: delay})
	mustCreate(t, s, alice, alicePW)
	for i, tc := range []struct{ user, secret string }{
		{alice, "wrong password!"},
		{"nobody@example.org", "wrong password!"},
		{strings.Repeat("x", 2000), "wrong password!"},
		{alice, strings.Repeat("p", 2000)},
	} {
		start := time.Now()
		_, err := login(s, "203.0.113."+itoa(i)+":1", tc.user, tc.secret)
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%.20s: %v", tc.user, err)
		}
		if d := time.Since(start); d < delay {
			t.Errorf("%.20s: failed after %v, before the %v delay", tc.user, d, delay)
		}
	}
	// A client that leaves stops the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Login(ctx, LoginRequest{Remote: "203.0.113.50:1", Username: alice, Secret: []byte("wrong password!")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled login: %v", err)
	}
}

// TestUnlockCache: a returning client skips argon2id and still proves its
// password; a wrong one takes the slow path whether or not an entry
// exists; every change of the account's slots, deletion, idleness and
// Close wipe the entries.
func TestUnlockCache(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, Options{UnlockCache: time.Hour})
	mustCreate(t, s, alice, alicePW)
	now := time.Now()
	s.cache.now = func() time.Time { return now }
	ap, err := s.AddAppPassword(ctx, alice, []byte(alicePW), "phone")
	if err != nil {
		t.Fatal(err)
	}
	runs := func(user, secret string, wantOK bool) uint64 {
		t.Helper()
		before := s.derivations.Load()
		sess, err := login(s, "192.0.2.1:1", user, secret)
		if (err == nil) != wantOK {
			t.Fatalf("login %s with %q: %v", user, secret, err)
		}
		if sess != nil {
			sess.Close()
		}
		return s.derivations.Load() - before
	}
	if n := runs(alice, alicePW, true); n != 1 {
		t.Fatalf("first login: %d runs", n)
	}
	if n := runs(alice, alicePW, true); n != 0 {
		t.Fatalf("second login: %d runs, want a cache hit", n)
	}
	if n := runs(alice, "wrong password!", false); n != 1 {
		t.Fatalf("wrong password with an entry cached: %d runs, want the slow path", n)
	}
	if n := runs(alice, ap.Secret, true); n != 1 {
		t.Fatalf("app password: %d runs", n)
	}
	if n := runs(alice, strings.ToUpper(strings.ReplaceAll(ap.Secret, "-", " ")), true); n != 0 {
		t.Fatalf("app password again, typed otherwise: %d runs, want a hit", n)
	}
	if n := s.cache.len(); n != 2 {
		t.Fatalf("%d entries", n)
	}
	// Idle entries go.
	now = now.Add(time.Hour)
	s.cache.expire()
	if n := s.cache.len(); n != 0 {
		t.Fatalf("%d entries after the idle time", n)
	}
	runs(alice, alicePW, true)
	// A change of slots wipes the account's entries.
	if _, err := s.RevokeSlot(ctx, alice, ap.Slot); err != nil {
		t.Fatal(err)
	}
	if n := s.cache.len(); n != 0 {
		t.Fatalf("%d entries after a revocation", n)
	}
	runs(alice, alicePW, true)
	pc, err := s.ChangePassword(ctx, alice, []byte(alicePW), []byte(newPW))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.cache.len(); n != 0 {
		t.Fatalf("%d entries after a password change", n)
	}
	if n := runs(alice, alicePW, false); n != 1 {
		t.Fatalf("old password after the change: %d runs", n)
	}
	runs(alice, newPW, true)
	// A slot removed behind the service's back (another process): the
	// entry is dropped at its next use, not trusted.
	ap2, err := s.AddAppPassword(ctx, alice, []byte(newPW), "tablet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddSlot(ctx, alice, store.Slot{Kind: store.SlotPassword, Data: mustSlot(t, s, newPW)}); err != nil {
		t.Fatal(err)
	}
	runs(alice, newPW, true) // caches under the old slot
	if err := st.RemoveSlot(ctx, alice, pc.NewSlot); err != nil {
		t.Fatal(err)
	}
	if n := runs(alice, newPW, true); n != 1 {
		t.Fatalf("entry of a vanished slot: %d runs, want the slow path", n)
	}
	runs(alice, ap2.Secret, true)
	if _, err := s.Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if n := s.cache.len(); n != 0 {
		t.Fatalf("%d entries after Delete", n)
	}
	mustCreate(t, s, "bob@example.org", alicePW)
	runs("bob@example.org", alicePW, true)
	s.Close()
	if n := s.cache.len(); n != 0 {
		t.Fatalf("%d entries after Close", n)
	}
}

// mustSlot makes another password slot for alice's M.
func mustSlot(t *testing.T, s *Service, pw string) []byte {
	t.Helper()
	acct, err := s.st.Account(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	kr, _, err := s.unlockManage(context.Background(), acct, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Wipe()
	slot, err := kr.NewSlot([]byte(pw), s.kdf)
	if err != nil {
		t.Fatal(err)
	}
	return slot
}

// TestCacheDisabled: UnlockCache 0 caches nothing.
func TestCacheDisabled(t *testing.T) {
	s, _ := newService(t, Options{})
	mustCreate(t, s, alice, alicePW)
	for range 2 {
		before := s.derivations.Load()
		mustLogin(t, s, "192.0.2.1:1", alice, alicePW)
		if n := s.derivations.Load() - before; n != 1 {
			t.Fatalf("login without a cache: %d runs", n)
		}
	}
}

func TestThrottleGaps(t *testing.T) {
	now := time.Unix(1e9, 0)
	lim := defaultLimits
	th := newThrottle(lim, func() time.Time { return now })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// With a cancelled context, admit returns at once if it would have
	// to wait, and succeeds if it would not.
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	try := func(ip, acct string) (*ticket, error) { return th.admit(cancelled, ip, acct) }

	// The first ipFree failures from an address cost nothing.
	for i := range int(lim.ipFree) {
		tk, err := try("192.0.2.1", "k"+itoa(i)+"@x")
		if err != nil {
			t.Fatalf("free attempt %d: %v", i, err)
		}
		tk.done(false)
	}
	// Then its attempts are spaced out: the next one starts now, the one
	// after it waits.
	tk, err := try("192.0.2.1", "other@x")
	if err != nil {
		t.Fatalf("first spaced attempt: %v", err)
	}
	tk.done(false)
	if _, err := try("192.0.2.1", "other@x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("attempt after the free ones: %v, want a wait", err)
	}
	// Another address is not affected.
	tk, err = try("192.0.2.2", "other@x")
	if err != nil {
		t.Fatalf("other address: %v", err)
	}
	tk.done(true)
	// A success refunds its own attempt only: the failures of 192.0.2.1
	// against other accounts stay.
	now = now.Add(time.Hour) // let reservations pass, scores decay a little
	tk, err = th.admit(ctx, "192.0.2.3", "mine@x")
	if err != nil {
		t.Fatal(err)
	}
	tk.done(true)
	if s := th.byIP["192.0.2.3"].decayed(now, lim.halfLife); s > 0.001 {
		t.Errorf("success left a score of %v", s)
	}
	// An address with many failures: one attempt per (long) gap, and
	// its success does not wipe its record.
	th.byIP["192.0.2.4"] = &score{value: 20, at: now}
	tk, err = th.admit(cancelled, "192.0.2.4", "mine@x")
	if err != nil {
		t.Fatal(err)
	}
	tk.done(true)
	// (mine@x is now a known pair for it; the others are not.)
	if _, err := th.admit(cancelled, "192.0.2.4", "yours@x"); err == nil {
		t.Fatal("a guessing address was not slowed down")
	}
	if s := th.byIP["192.0.2.4"].decayed(now, lim.halfLife); s < 19 {
		t.Errorf("failures of an address dropped to %v", s)
	}

	// Many failures on one account from many addresses: attempts from
	// new addresses wait, never longer than acctMaxWait, and are never
	// refused for the account's sake.
	th.byAcct["victim@x"] = &score{value: 40, at: now}
	for i := range 200 {
		th.mu.Lock()
		s := th.byAcct["victim@x"]
		next := s.next
		th.mu.Unlock()
		if next.Sub(now) > lim.acctMaxWait+lim.acctMaxGap {
			t.Fatalf("attempt %d on the account would wait %v", i, next.Sub(now))
		}
		tk, err := try("203.0.113."+itoa(i%250), "victim@x")
		if i == 0 { // the first starts now, the others are spaced out
			if err != nil {
				t.Fatal(err)
			}
			tk.done(false)
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("attempt %d on the account: %v, want a wait", i, err)
		}
	}
	// Scores decay: hours later the account is free again.
	now = now.Add(5 * time.Hour)
	tk, err = try("203.0.113.251", "victim@x")
	if err != nil {
		t.Fatalf("after decay: %v", err)
	}
	tk.done(false)
}

// TestThrottleInFlight: attempts in flight per address and per account
// are bounded; beyond the queue they are refused at once. A known pair
// has its own lane.
func TestThrottleInFlight(t *testing.T) {
	lim := defaultLimits
	now := time.Unix(1e9, 0)
	var mu sync.Mutex
	th := newThrottle(lim, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The owner logs in once from 192.0.2.9: a known pair from then on.
	tk, err := th.admit(ctx, "192.0.2.9", "victim@x")
	if err != nil {
		t.Fatal(err)
	}
	tk.done(true)

	// An attacker opens many attempts on the account from one address.
	var (
		admitted []*ticket
		refused  int
		waiting  sync.WaitGroup
		wmu      sync.Mutex
	)
	for range 50 {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			tk, err := th.admit(ctx, "198.51.100.1", "victim@x")
			wmu.Lock()
			defer wmu.Unlock()
			switch {
			case err == nil:
				admitted = append(admitted, tk)
			case errors.Is(err, ErrThrottled):
				refused++
			}
		}()
	}
	// Wait until everyone is admitted, refused or queued.
	deadline := time.Now().Add(10 * time.Second)
	for {
		wmu.Lock()
		a, r := len(admitted), refused
		wmu.Unlock()
		th.mu.Lock()
		q := 0
		if ln := th.acctL.m["victim@x"]; ln != nil {
			q = len(ln.waiters)
		}
		th.mu.Unlock()
		if a+r+q == 50 && a == lim.acctInFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admitted %d, refused %d, queued %d", a, r, q)
		}
		time.Sleep(time.Millisecond)
	}
	// The account lane admits acctInFlight and queues acctQueue; the
	// address lane (ipInFlight+ipQueue) holds the rest of what was let in.
	if want := 50 - (lim.acctInFlight + lim.acctQueue); refused != want {
		t.Errorf("refused %d of 50, want %d", refused, want)
	}
	// The owner's known address is not held up by any of it.
	tk, err = th.admit(ctx, "192.0.2.9", "victim@x")
	if err != nil {
		t.Fatalf("known pair: %v", err)
	}
	if !tk.trusted {
		t.Error("known pair not trusted")
	}
	tk.done(true)
	// Finishing attempts lets queued ones in, in order.
	wmu.Lock()
	first := admitted
	admitted = nil
	wmu.Unlock()
	for _, tk := range first {
		tk.done(false)
	}
	cancel()
	waiting.Wait()
	for _, tk := range admitted {
		tk.done(false)
	}
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.acctL.m) != 0 || len(th.ipL.m) != 0 || len(th.pairL.m) != 0 {
		t.Errorf("lanes left: %d %d %d", len(th.acctL.m), len(th.ipL.m), len(th.pairL.m))
	}
}

// TestThrottlePairTrustLapses: a known pair that keeps failing loses its
// privileges until it succeeds again.
func TestThrottlePairTrustLapses(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := newThrottle(defaultLimits, func() time.Time { return now })
	ctx := context.Background()
	tk, _ := th.admit(ctx, "192.0.2.1", "a@x")
	tk.done(true)
	for range defaultLimits.pairMaxFailures {
		tk, err := th.admit(ctx, "192.0.2.1", "a@x")
		if err != nil || !tk.trusted {
			t.Fatalf("known pair: %v trusted %v", err, tk != nil && tk.trusted)
		}
		tk.done(false)
	}
	tk, err := th.admit(ctx, "192.0.2.1", "a@x")
	if err != nil || tk.trusted {
		t.Fatalf("after %d failures: %v trusted %v", defaultLimits.pairMaxFailures, err, tk != nil && tk.trusted)
	}
	tk.done(true)
	tk, _ = th.admit(ctx, "192.0.2.1", "a@x")
	if !tk.trusted {
		t.Fatal("trust not restored by a success")
	}
	tk.done(true)
}

func TestThrottlePrune(t *testing.T) {
	lim := defaultLimits
	lim.maxEntries = 10
	now := time.Unix(1e9, 0)
	th := newThrottle(lim, func() time.Time { return now })
	for i := range 100 {
		tk, err := th.admit(context.Background(), "ip"+itoa(i), "acct"+itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		tk.done(i%2 == 0)
	}
	if len(th.byIP) > 10 || len(th.byAcct) > 10 || len(th.pairs) > 10 {
		t.Errorf("throttle grew to %d/%d/%d entries", len(th.byIP), len(th.byAcct), len(th.pairs))
	}
	if got := clientKey("[2001:db8::1]:993"); got != "2001:db8::" {
		t.Errorf("clientKey v6 = %q", got)
	}
	if got := clientKey("192.0.2.1:993"); got != "192.0.2.1" {
		t.Errorf("clientKey v4 = %q", got)
	}
}

// TestGate: known pairs go first; when the queue of others is full the
// worst guesser is shed for a better newcomer, and a worse newcomer is
// refused.
func TestGate(t *testing.T) {
	g := newGate(1, 2)
	ctx := context.Background()
	if err := g.acquire(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 10)
	wait := func(name string, trusted bool, score float64) {
		go func() { results <- result{name, g.acquire(ctx, trusted, score)} }()
		for { // until queued
			g.mu.Lock()
			n := len(g.q)
			g.mu.Unlock()
			if n > 0 && queued(g, trusted, score) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("guesser", false, 50)
	wait("new device", false, 0)
	// Queue of others full: a heavier guesser is refused outright.
	if err := g.acquire(ctx, false, 99); !errors.Is(err, ErrThrottled) {
		t.Fatalf("heavier guesser: %v", err)
	}
	// A lighter one takes the guesser's place.
	wait("light", false, 1)
	if r := <-results; r.name != "guesser" || !errors.Is(r.err, ErrThrottled) {
		t.Fatalf("%s: %v, want the guesser shed", r.name, r.err)
	}
	wait("owner", true, 0)
	var order []string
	for range 3 {
		g.release()
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		order = append(order, r.name)
	}
	if got := strings.Join(order, ","); got != "owner,new device,light" {
		t.Fatalf("order %s", got)
	}
	g.release()
	if g.free != 1 {
		t.Fatalf("free = %d", g.free)
	}
	// A waiter that gives up leaves no trace.
	if err := g.acquire(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- g.acquire(cctx, false, 0) }()
	for !queued(g, false, 0) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	g.release()
	if g.free != 1 || len(g.q) != 0 {
		t.Fatalf("free %d, queue %d", g.free, len(g.q))
	}
}

func queued(g *gate, trusted bool, score float64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.q {
		if w.trusted == trusted && w.score == score {
			return true
		}
	}
	return false
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
