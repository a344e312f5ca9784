package imap

import (
	"context"
	"io"
	"iter"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// fakeTrainer records what it is asked to learn.
type fakeTrainer struct {
	mu    sync.Mutex
	calls []trained
}

type trained struct {
	account string
	spam    bool
	bodies  []string
	keysOK  bool
}

func (f *fakeTrainer) Learn(ctx context.Context, account string, keys IndexKeys, spam bool, msgs iter.Seq2[io.Reader, error]) error {
	c := trained{account: account, spam: spam}
	_, err := keys.SealIndex([]byte("x"), nil)
	c.keysOK = err == nil
	for r, err := range msgs {
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(r)
		c.bodies = append(c.bodies, string(b))
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	return nil
}

func (f *fakeTrainer) take() []trained {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// TestTrainOnMove: MOVE or COPY into Junk trains spam with the
// messages' plaintext, MOVE out of Junk trains ham, and moves between
// other mailboxes, or from Junk to Trash, train nothing.
func TestTrainOnMove(t *testing.T) {
	ft := &fakeTrainer{}
	env := newEnv(t, envOptions{opt: Options{Trainer: ft}})
	env.addUser(alice, alicePW)
	for _, s := range []string{"one", "two", "three", "four"} {
		env.deliver(alice, "", testMessage(s, "body of "+s))
	}
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(1, 2), "Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	calls := ft.take()
	if len(calls) != 1 || !calls[0].spam || calls[0].account != alice || !calls[0].keysOK || len(calls[0].bodies) != 2 ||
		!strings.Contains(calls[0].bodies[0], "body of one") || !strings.Contains(calls[0].bodies[1], "body of two") {
		t.Fatalf("MOVE into Junk: %+v", calls)
	}
	if _, err := c.Copy(imap.UIDSetNum(3), "Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	if calls := ft.take(); len(calls) != 1 || !calls[0].spam || len(calls[0].bodies) != 1 {
		t.Fatalf("COPY into Junk: %+v", calls)
	}
	if _, err := c.Move(imap.UIDSetNum(4), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if calls := ft.take(); len(calls) != 0 {
		t.Fatalf("MOVE to Archive trained: %+v", calls)
	}
	if _, err := c.Select("Junk", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(1), "INBOX").Wait(); err != nil {
		t.Fatal(err)
	}
	if calls := ft.take(); len(calls) != 1 || calls[0].spam || !strings.Contains(calls[0].bodies[0], "body of one") {
		t.Fatalf("MOVE out of Junk: %+v", calls)
	}
	if _, err := c.Move(imap.UIDSetNum(2), "Trash").Wait(); err != nil {
		t.Fatal(err)
	}
	if calls := ft.take(); len(calls) != 0 {
		t.Fatalf("MOVE from Junk to Trash trained: %+v", calls)
	}
}
