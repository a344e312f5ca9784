package imap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/imap/wire/wiretest"
	"github.com/sealmail/sealmail/store"
)

// Regression tests of issue 9 against the real server: the attack steps
// of package wiretest (which server/imap/wire runs against its in-memory
// Session), with the same thresholds, and the items this package owns
// (8: SEARCH cost, 17: mailbox limits). The server runs in this process,
// so its heap is sampled here.

func (e *testEnv) target(user, pw string) wiretest.Target {
	return wiretest.Target{Addr: e.tlsAddr, TLS: e.clientTL, User: user, Pass: pw}
}

// peakHeap samples the heap every few milliseconds until stop is
// closed, and returns the largest sample.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		for {
			peak = max(peak, wiretest.HeapInUse())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

// quietEnv is a test server whose log is not kept (the floods would fill
// it).
func quietEnv(t *testing.T, opt Options) *testEnv {
	env := newEnv(t, envOptions{opt: opt})
	env.addUser(alice, alicePW)
	return env
}

// TestIssue9LiteralFloodPreAuth is item 1: 60 unauthenticated
// connections each sending "a SEARCH" and 3,300 × " TEXT {4096+}" with
// their data took the server from 232 MiB to 1.7 GiB. SEARCH is refused
// by state before its arguments are read and the literals are discarded
// within the pre-auth budget, then the connection is closed.
func TestIssue9LiteralFloodPreAuth(t *testing.T) {
	env := quietEnv(t, Options{})
	base := wiretest.HeapInUse()
	stop := make(chan struct{})
	peak := peakHeap(stop)
	wiretest.LiteralFlood(t, env.target(alice, alicePW), 60, 3300, nil)
	close(stop)
	grew := int64(<-peak) - int64(base)
	t.Logf("heap grew by %d KiB during the flood", grew>>10)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB: literals are buffered", grew>>20)
	}
}

// TestIssue9RefusedAppendNotRun is item 6: "APPEND INBOX {52428801+}"
// was refused without reading the literal, so the message's header
// lines ran as commands (DELETE, RENAME INBOX). The literal is discarded
// or, beyond the discard budget, the connection closed with BYE
// [TOOBIG]; and for a command other than APPEND too.
func TestIssue9RefusedAppendNotRun(t *testing.T) {
	env := quietEnv(t, Options{})
	wiretest.RefusedAppendNotRun(t, env.target(alice, alicePW), "Victim", DefaultAppendLimit+1)
	wiretest.RefusedLiteralDiscarded(t, env.target(alice, alicePW), 300000)
}

// TestIssue9AppendNoPrealloc is item 7: 20 sessions each announcing a
// 50 MiB APPEND and sending nothing took 1.1 GiB. The message streams
// into the sealer as it arrives; nothing is allocated from the declared
// size. (The per-account bound on APPENDs in progress is lifted here to
// let all 20 start; TestAppendsPerAccount checks it.)
func TestIssue9AppendNoPrealloc(t *testing.T) {
	env := quietEnv(t, Options{MaxAppends: 20})
	base := wiretest.HeapInUse()
	var during uint64
	wiretest.AppendNoPrealloc(t, env.target(alice, alicePW), 20, 50<<20, func() { during = wiretest.HeapInUse() })
	grew := int64(during) - int64(base)
	t.Logf("heap grew by %d KiB with 20 pending 50 MiB APPENDs", grew>>10)
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB: APPEND allocates the declared size", grew>>20)
	}
}

// TestAppendsPerAccount: beyond Options.MaxAppends APPENDs in progress
// for one account, the next waits for a slot and, when none frees in
// time, is refused before its literal.
func TestAppendsPerAccount(t *testing.T) {
	env := quietEnv(t, Options{MaxAppends: 2})
	env.srv.appends.wait = 2 * time.Second
	tg := env.target(alice, alicePW)
	for i := range 2 {
		c := wiretest.Dial(t, tg)
		c.Login(tg)
		c.Send(fmt.Sprintf("a%d APPEND INBOX {1000}", i))
		c.ExpectRe(`^\+ `)
	}
	c := wiretest.Dial(t, tg)
	c.Login(tg)
	c.Send("a APPEND INBOX {1000}")
	if l, err := c.LineWithin(time.Second); err == nil {
		t.Fatalf("third APPEND answered at once: %q", l)
	}
	c.ExpectRe(`^a NO \[LIMIT\]`)
	c.Send("b NOOP")
	c.ExpectRe(`^b OK`)
}

// TestIssue9Malformed is item 16: malformed input ("FETCH 4294967296",
// 2,000 nested parentheses before login, NUL in a mailbox name) was
// answered NO [SERVERBUG]; it is BAD, and the connection goes on.
func TestIssue9Malformed(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("one", "body"))
	wiretest.MalformedAnsweredBad(t, env.target(alice, alicePW))
}

// TestIssue9MailboxLimits is item 17: one CREATE made 250 levels, and
// nothing bounded an account's mailboxes. Both are bounded (NO [LIMIT]),
// RENAME included, and nothing is created by a refused command.
func TestIssue9MailboxLimits(t *testing.T) {
	env := quietEnv(t, Options{MaxMailboxes: 10, MaxDepth: 4})
	tg := env.target(alice, alicePW)
	c := wiretest.Dial(t, tg)
	c.Login(tg)
	deep := strings.TrimSuffix(strings.Repeat("d/", 250), "/")
	c.Send(`a CREATE "` + deep + `"`)
	c.ExpectRe(`^a NO \[LIMIT\]`)
	c.Send(`b CREATE "a/b/c/d"`)
	c.ExpectRe(`^b OK`)
	c.Send(`c CREATE "a/b/c/d/e"`)
	c.ExpectRe(`^c NO \[LIMIT\]`)
	c.Send(`d RENAME "a/b" "x/y/z"`) // a/b/c/d would become x/y/z/c/d
	c.ExpectRe(`^d NO \[LIMIT\]`)
	// Six default mailboxes and a, a/b, a/b/c, a/b/c/d make ten.
	c.Send(`e CREATE "one"`)
	c.ExpectRe(`^e NO \[LIMIT\]`)
	c.Send(`f LIST "" "*"`)
	lines := c.Until("f ")
	if len(lines) != 11 || strings.Contains(strings.Join(lines, "\n"), `"one"`) {
		t.Errorf("mailboxes after refusals: %q", lines)
	}
	mbs, err := env.st.Mailboxes(context.Background(), alice)
	if err != nil || len(mbs) != 10 {
		t.Errorf("store has %d mailboxes (%v), want 10", len(mbs), err)
	}
}

// TestIssue9SearchBounds is item 8: a 3,000-key SEARCH TEXT took 16 s and
// a 2,000-key one kept a core busy 40 s after the client left. The
// strings of one command are bounded, so is strings × bytes scanned, and
// a SEARCH stops when its client goes away.
func TestIssue9SearchBounds(t *testing.T) {
	env := quietEnv(t, Options{Search: SearchLimits{MaxPatterns: 8, MaxWork: 64 << 10}})
	for i := range 5 {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), strings.Repeat("filler words ", 200)))
	}
	tg := env.target(alice, alicePW)
	c := wiretest.Dial(t, tg)
	c.Login(tg)
	c.Send("s SELECT INBOX")
	c.Until("s ")
	c.Send("a SEARCH" + strings.Repeat(" TEXT x", 9))
	c.ExpectRe(`^a NO \[LIMIT\]`)
	// 5 messages of ~2.8 KB: 4 strings fit 64 KiB of work, 8 do not.
	c.Send("b SEARCH TEXT z0 TEXT z1 TEXT z2 TEXT z3")
	c.Until("b OK")
	c.Send("c SEARCH BODY z0 BODY z1 BODY z2 BODY z3 BODY z4 BODY z5 BODY z6 BODY z7")
	c.ExpectRe(`^c NO \[LIMIT\]`)
	c.Send("d NOOP")
	c.ExpectRe(`^d OK`)
}

// TestSearchStopsWhenClientLeaves: a long SEARCH (1,000 strings over 45
// MB, far longer than the test) ends soon after its client disconnects:
// its context is cancelled and its workers stop.
func TestSearchStopsWhenClientLeaves(t *testing.T) {
	env := quietEnv(t, Options{Workers: 1, Search: SearchLimits{MaxPatterns: 1000, MaxWork: 1 << 50, Timeout: time.Hour}})
	body := strings.Repeat("some text to scan ", 5000)
	for i := range 500 {
		env.deliver(alice, "", testMessage(fmt.Sprintf("m%d", i), body))
	}
	tg := env.target(alice, alicePW)
	c := wiretest.Dial(t, tg)
	c.Login(tg)
	c.Send("s SELECT INBOX")
	c.Until("s ")
	var sb strings.Builder
	sb.WriteString("a SEARCH")
	for i := range 990 {
		fmt.Fprintf(&sb, " TEXT some-%d", i)
	}
	c.Send(sb.String())
	if l, err := c.LineWithin(500 * time.Millisecond); err == nil {
		t.Fatalf("the search answered at once (%q): not long enough to test cancelling", l)
	}
	// The workers are busy (sampled: a worker slot is free for an
	// instant between messages).
	busy := func(d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if env.srv.mbx.Busy() > 0 {
				return true
			}
		}
		return false
	}
	if !busy(200 * time.Millisecond) {
		t.Fatalf("no search is running")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for busy(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("search still running 10 s after the client left")
		}
	}
	if !strings.Contains(env.logs.String(), "client went away") {
		t.Errorf("the disconnect was not noticed")
	}
}

// sneakyStore adds the keyword $Sneaky to the messages of a StoreFlags
// call right after it, as another session or process could between
// STORE's change and its listing of the new flags.
type sneakyStore struct {
	Store
	once sync.Once
}

func (s *sneakyStore) StoreFlags(ctx context.Context, address string, mailbox uint64, u store.FlagUpdate) (store.FlagResult, error) {
	res, err := s.Store.StoreFlags(ctx, address, mailbox, u)
	if err == nil {
		s.once.Do(func() {
			_, err = s.Store.StoreFlags(ctx, address, mailbox, store.FlagUpdate{UIDs: u.UIDs, Op: store.FlagsAdd, Flags: []string{"$Sneaky"}})
		})
	}
	return res, err
}

// TestStoreAnnouncesRacingKeyword: a keyword another writer adds between
// STORE's change and its listing of the new flags is announced with FLAGS
// before STORE's FETCH responses use it (imaptest's state checker:
// "Keyword used without being in FLAGS").
func TestStoreAnnouncesRacingKeyword(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("one", "body\r\n"))
	env.srv.st = &sneakyStore{Store: env.srv.st}
	r := env.rawLogin(alice, alicePW)
	r.ok("SELECT INBOX")
	out := r.ok("STORE 1 +FLAGS (\\Flagged)")
	flags := strings.Index(out, "* FLAGS (")
	fetch := strings.Index(out, " FETCH (")
	if fetch < 0 || !strings.Contains(out[fetch:], "$Sneaky") {
		t.Fatalf("STORE's FETCH lacks the racing keyword:\n%s", out)
	}
	if flags < 0 || flags > fetch || !strings.Contains(out[flags:fetch], "$Sneaky") {
		t.Fatalf("$Sneaky used before FLAGS announced it:\n%s", out)
	}
}
