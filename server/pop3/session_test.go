package pop3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// TestAppPasswordAndRecoveryCode: an app password logs in, a recovery
// code does not (it only manages the account).
func TestAppPasswordAndRecoveryCode(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	ctx := context.Background()
	app, err := e.acc.AddAppPassword(ctx, user, []byte(pw), "phone")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.acc.AddRecoveryCode(ctx, user, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	c := e.dialTLS()
	c.login(user, app.Secret)
	c.send("QUIT")
	c.expect("+OK*")
	c = e.dialTLS()
	c.expect("+OK*")
	c.send("AUTH PLAIN " + plainResp("", user, rec.Secret))
	c.expect("-ERR [AUTH] Authentication failed")
}

// TestLoginEndsWithAccount: deleting the account or revoking the app
// password a session logged in with closes its connection at once and
// wipes its keys.
func TestLoginEndsWithAccount(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	e.deliver(user, testMessage("x", "body\r\n"))
	ctx := context.Background()
	app, err := e.acc.AddAppPassword(ctx, user, []byte(pw), "phone")
	if err != nil {
		t.Fatal(err)
	}
	byApp := e.dialTLS()
	byApp.login(user, app.Secret)
	byPW := e.dialTLS()
	byPW.login(user, pw)
	keys := e.sessionKeys(2)

	if _, err := e.acc.RevokeSlot(ctx, user, app.Slot); err != nil {
		t.Fatal(err)
	}
	byApp.expectEOF()
	byPW.send("STAT")
	byPW.expect("+OK 1 *")

	if _, err := e.acc.Delete(ctx, user); err != nil {
		t.Fatal(err)
	}
	byPW.expectEOF()
	for i, k := range keys {
		if k.wiped() == false {
			t.Errorf("session %d: keyring not wiped", i)
		}
	}
}

// TestShutdown: an idle client is told and disconnected; keys are wiped;
// nothing it marked deleted is removed.
func TestShutdown(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	e.deliver(user, testMessage("x", "body\r\n"))
	c := e.dialTLS()
	c.login(user, pw)
	c.send("DELE 1")
	c.expect("+OK*")
	pre := e.dialTLS()
	pre.expect("+OK*")
	keys := e.sessionKeys(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expect("-ERR [SYS/TEMP] Server shutting down")
	c.expectEOF()
	pre.expect("-ERR [SYS/TEMP] Server shutting down")
	pre.expectEOF()
	if !keys[0].wiped() {
		t.Error("keyring not wiped at shutdown")
	}
	if n := len(e.messages(user)); n != 1 {
		t.Errorf("%d messages after shutdown, want 1 (no QUIT, no removal)", n)
	}
}

// TestLargeMessage: a message beyond the in-memory bound is verified,
// then streamed from a second decryption, byte-identical; TOP reads its
// head.
func TestLargeMessage(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	var body strings.Builder
	for i := 0; body.Len() < 3<<20; i++ {
		fmt.Fprintf(&body, "line %d of a large message\r\n", i)
		if i%1000 == 0 {
			body.WriteString(".dot at the start\r\n")
		}
	}
	m := testMessage("large", body.String())
	e.deliver(user, m)
	c := e.dialTLS()
	c.login(user, pw)
	c.send("RETR 1")
	c.expect(fmt.Sprintf("+OK %d octets", len(m)))
	if got := c.multi(); got != string(m) {
		t.Fatalf("RETR of %d bytes: got %d bytes, differ", len(m), len(got))
	}
	c.send("TOP 1 2")
	c.expect("+OK*")
	hdr, _, _ := strings.Cut(string(m), "\r\n\r\n")
	if got, want := c.multi(), hdr+"\r\n\r\nline 0 of a large message\r\n.dot at the start\r\n"; got != want {
		t.Fatalf("TOP 1 2:\n%q\nwant\n%q", got, want)
	}
}

// TestReadahead: RETR in order (with DELE between and a skip) gives
// every message right, through the readahead.
func TestReadahead(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	var msgs [][]byte
	for i := range 30 {
		m := testMessage(fmt.Sprintf("m%d", i), strings.Repeat(fmt.Sprintf("message %d\r\n", i), 100+i))
		msgs = append(msgs, m)
		e.deliver(user, m)
	}
	c := e.dialTLS()
	c.login(user, pw)
	order := []int{1, 2, 3, 4, 6, 7, 20, 21, 22, 5, 23, 24, 25, 26, 27, 28, 29, 30}
	for _, n := range order {
		c.send(fmt.Sprintf("RETR %d", n))
		c.expect("+OK*")
		if got := c.multi(); got != string(msgs[n-1]) {
			t.Fatalf("RETR %d: wrong content", n)
		}
		c.send(fmt.Sprintf("DELE %d", n))
		c.expect("+OK*")
	}
	c.send("QUIT")
	c.expect(fmt.Sprintf("+OK Bye (%d messages deleted)", len(order)))
	if n := len(e.messages(user)); n != 30-len(order) {
		t.Errorf("%d messages left", n)
	}
}

// tamperStore flips a byte of a message's sealed blob when armed.
type tamperStore struct {
	*badgerstore.DB
	armed atomic.Bool
}

func (s *tamperStore) Blob(ctx context.Context, address string, mailbox uint64, uid uint32) ([]byte, error) {
	b, err := s.DB.Blob(ctx, address, mailbox, uid)
	if err == nil && s.armed.Load() {
		b = bytes.Clone(b)
		b[len(b)-40] ^= 1
	}
	return b, err
}

func (s *tamperStore) Blobs(ctx context.Context, address string, mailbox uint64, uids []uint32) ([][]byte, error) {
	out := make([][]byte, len(uids))
	for i, uid := range uids {
		b, err := s.Blob(ctx, address, mailbox, uid)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (s *tamperStore) OpenBlob(ctx context.Context, address string, mailbox uint64, uid uint32) (io.ReadCloser, int64, error) {
	b, err := s.Blob(ctx, address, mailbox, uid)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// TestTamperedMessage: a message changed at rest after its summary was
// built gets -ERR [SYS/PERM] and none of its bytes; one changed before
// is left out of the maildrop.
func TestTamperedMessage(t *testing.T) {
	var ts *tamperStore
	e := newEnv(t, Options{}, func(db *badgerstore.DB) Store { ts = &tamperStore{DB: db}; return ts })
	e.addUser(user, pw)
	e.deliver(user, testMessage("canary", "tamper canary body\r\n"))
	c := e.dialTLS()
	c.login(user, pw) // builds the summary
	c.send("QUIT")
	c.expect("+OK*")

	ts.armed.Store(true)
	c = e.dialTLS()
	c.login(user, pw)
	c.send("RETR 1")
	c.expect("-ERR [SYS/PERM] Message cannot be read: it was changed at rest; the cause has been logged")
	c.send("TOP 1 1")
	c.expect("-ERR [SYS/PERM]*")
	c.send("NOOP")
	c.expect("+OK")

	e.deliver(user, testMessage("second", "never summarised\r\n"))
	c = e.dialTLS()
	c.expect("+OK*")
	c.send("USER " + user)
	c.expect("+OK*")
	c.send("PASS " + pw)
	c.expect("+OK 1 message*") // the second cannot be opened at all
}

// sessionKeys returns the keyrings of the n logged-in sessions.
func (e *testEnv) sessionKeys(n int) []keyState {
	e.t.Helper()
	var out []keyState
	e.srv.sessions.Each(func(s *session) {
		s.mu.Lock()
		if s.login != nil {
			out = append(out, keyState{s.login})
		}
		s.mu.Unlock()
	})
	if len(out) != n {
		e.t.Fatalf("%d sessions logged in, want %d", len(out), n)
	}
	return out
}

// keyState is a session's login, to check that its keys were wiped.
type keyState struct{ login *account.Session }

func (k keyState) wiped() bool {
	_, err := k.login.Keyring().SealIndex([]byte("x"), []byte("ad"))
	return errors.Is(err, crypto.ErrWiped)
}

// TestKeysWiped: QUIT and a dropped connection wipe the session's keys.
func TestKeysWiped(t *testing.T) {
	e := newEnv(t, Options{})
	e.addUser(user, pw)
	for _, quit := range []bool{true, false} {
		c := e.dialTLS()
		c.login(user, pw)
		keys := e.sessionKeys(1)
		if quit {
			c.send("QUIT")
			c.expect("+OK*")
			c.expectEOF()
		} else {
			c.nc.Close()
		}
		deadline := time.Now().Add(10 * time.Second)
		for !keys[0].wiped() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !keys[0].wiped() {
			t.Errorf("quit %v: keyring not wiped", quit)
		}
		for e.srv.sessionCount() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (s *Server) sessionCount() int { return s.sessions.Len() }
