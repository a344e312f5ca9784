package imap

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

func TestThrottle(t *testing.T) {
	th := newThrottle()
	now := time.Unix(1e9, 0)
	mustDelay := func(ip, account string, at time.Time) time.Duration {
		t.Helper()
		d, ok := th.delay(ip, account, at)
		if !ok {
			t.Fatalf("attempt from %s on %s refused", ip, account)
		}
		return d
	}
	// The first failures from one address cost nothing extra.
	for i := range ipFreeFailures {
		if d := mustDelay("192.0.2.1", "other@x", now); d != 0 {
			t.Fatalf("early delay %v", d)
		}
		th.failed("192.0.2.1", "k"+itoa(i), now)
	}
	th.failed("192.0.2.1", "k", now)
	// Then attempts from the address are spaced out.
	mustDelay("192.0.2.1", "other@x", now)
	if d := mustDelay("192.0.2.1", "other@x", now); d < ipBaseGap {
		t.Errorf("address not slowed after many failures: %v", d)
	}
	// Another address is not affected.
	if d := mustDelay("192.0.2.2", "other@x", now); d != 0 {
		t.Errorf("other address delayed %v", d)
	}
	// Many attempts in parallel from one guessing address: the address is
	// refused once too many are queued.
	for i := range 40 {
		th.failed("192.0.2.3", "g"+itoa(i), now)
	}
	refused := false
	for range 100 {
		if _, ok := th.delay("192.0.2.3", "other@x", now); !ok {
			refused = true
			break
		}
	}
	if !refused {
		t.Errorf("parallel attempts from one address never refused")
	}

	// Many failures on one account, from many addresses: attempts from new
	// addresses are spaced out but never refused, and never wait longer
	// than accountMaxWait, however many are queued.
	for i := range 40 {
		th.failed(remoteIP("198.51.100."+itoa(i)+":1"), "victim@x", now)
	}
	d1 := mustDelay("203.0.113.9", "victim@x", now)
	d2 := mustDelay("203.0.113.10", "victim@x", now)
	if d2 <= d1 || d2-d1 > accountMaxGap {
		t.Errorf("account spacing: %v then %v", d1, d2)
	}
	for i := range 1000 {
		if d := mustDelay("203.0.114."+itoa(i%250), "victim@x", now); d > accountMaxWait {
			t.Fatalf("attempt %d on the account waits %v", i, d)
		}
	}
	// The owner's usual address is not slowed down by the account's
	// failures once it has logged in from there.
	th.succeeded("192.0.2.77", "victim@x", now.Add(-time.Hour))
	if d := mustDelay("192.0.2.77", "victim@x", now); d != 0 {
		t.Errorf("trusted address delayed %v", d)
	}
	// Scores decay: hours later the account is free again.
	later := now.Add(3 * time.Hour)
	mustDelay("203.0.113.11", "victim@x", later)
	if d := mustDelay("203.0.113.12", "victim@x", later); d > accountBaseGap {
		t.Errorf("no decay: %v", d)
	}
	if got := remoteIP("[2001:db8::1]:993"); got != "2001:db8::" {
		t.Errorf("remoteIP v6 = %q", got)
	}
}

func TestThrottlePrune(t *testing.T) {
	th := newThrottle()
	th.maxEntry = 10
	now := time.Unix(1e9, 0)
	for i := range 100 {
		th.failed("ip"+itoa(i), "acct"+itoa(i), now)
	}
	for i := range 100 {
		th.succeeded("ip"+itoa(i), "acct"+itoa(i), now)
	}
	if len(th.byIP) > 10 || len(th.byAcct) > 10 || len(th.trusted) > 10 {
		t.Errorf("throttle grew to %d/%d/%d entries", len(th.byIP), len(th.byAcct), len(th.trusted))
	}
}

func TestAuthenticatePlainAndLogout(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c, err := imapclient.DialTLS(env.tlsAddr, &imapclient.Options{TLSConfig: env.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewPlainClient("", alice, "bad")); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("PLAIN with wrong password: %v", err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	env.srv.mu.Lock()
	n := len(env.srv.sessions)
	env.srv.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sessions", n)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, env, 0)
}

func waitSessions(t *testing.T, env *testEnv, want int) {
	t.Helper()
	for range 200 {
		env.srv.mu.Lock()
		n := len(env.srv.sessions)
		env.srv.mu.Unlock()
		if n == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("sessions did not drop to %d", want)
}

// TestShutdownWipesKeys: Shutdown ends every session and wipes its keyring;
// a dropped connection does too.
func TestShutdownWipesKeys(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	var wiped []*spyKeyring
	real := env.srv.unlock
	env.srv.unlock = func(slots [][]byte, secret, wrapped []byte) (keyring, error) {
		k, err := real(slots, secret, wrapped)
		if err != nil {
			return nil, err
		}
		s := &spyKeyring{keyring: k}
		wiped = append(wiped, s)
		return s, nil
	}
	dropped := env.dial(alice, alicePW)
	kept := env.dial(alice, alicePW)
	if _, err := kept.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	dropped.Close()
	waitSessions(t, env, 1)
	if !wiped[0].isWiped() || wiped[1].isWiped() {
		t.Fatalf("after drop: wiped = %v %v", wiped[0].isWiped(), wiped[1].isWiped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !wiped[1].isWiped() {
		t.Fatal("Shutdown left a keyring unwiped")
	}
	select {
	case <-kept.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after Shutdown")
	}
	if _, err := imapclient.DialTLS(env.tlsAddr, &imapclient.Options{TLSConfig: env.clientTL}); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

// spyKeyring lets a test ask whether the real keyring was wiped.
type spyKeyring struct{ keyring }

func (s *spyKeyring) isWiped() bool {
	_, err := s.keyring.OpenIndex([]byte("x"), nil)
	return err != nil && isWipedErr(err)
}

// TestFailedLoginDelay: a failed login is answered FailureDelay after it
// started whatever the work behind it: an unknown account (one burnt
// unlock) and a wrong password for an account with several slots (one
// argon2id run each). The answer is never earlier, and a correct password
// is not delayed by it.
func TestFailedLoginDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	env := newEnv(t, envOptions{opt: Options{FailureDelay: delay}})
	env.addUser(alice, alicePW)
	// Unknown accounts do no work at all here (the real burn costs one
	// DefaultKDF run, slow under -race); they must still wait the delay.
	env.srv.burn = func([]byte) {}
	// A second slot (an app password) doubles the work of a wrong password.
	acct, err := env.st.Account(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.Unlock([][]byte{acct.Slots[0].Data}, []byte(alicePW), acct.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := kr.NewSlot([]byte("app password"), crypto.TestKDF())
	kr.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.st.AddSlot(t.Context(), alice, store.Slot{Kind: store.SlotAppPassword, Data: slot}); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(env.tlsAddr, &imapclient.Options{TLSConfig: env.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct{ user, pw string }{
		{alice, "wrong"},
		{"nobody@example.org", "wrong"},
		{"not an address", "wrong"},
	} {
		start := time.Now()
		err := c.Login(tc.user, tc.pw).Wait()
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("LOGIN %s: %v", tc.user, err)
		}
		if d := time.Since(start); d < delay {
			t.Errorf("LOGIN %s failed after %v, before the %v delay", tc.user, d, delay)
		}
	}
	if err := c.Login(alice, "app password").Wait(); err != nil {
		t.Fatalf("LOGIN with the app password: %v", err)
	}
}
