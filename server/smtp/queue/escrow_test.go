package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/smtp/sink"
	"github.com/sealmail/sealmail/store"
)

// stubEscrow names key for every copy; fail fails every decision.
type stubEscrow struct {
	key *crypto.PublicKey

	mu    sync.Mutex
	fail  bool
	asked []string // guarded by mu
}

func (s *stubEscrow) EscrowKeys(_ context.Context, account string, mailbox uint64, class string) ([]*crypto.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, account)
	if s.fail || mailbox != 0 || class != "" {
		return nil, errors.New("no decision")
	}
	return []*crypto.PublicKey{s.key}, nil
}

// inboxBlobs returns the sealed messages in addr's INBOX.
func (e *env) inboxBlobs(addr string) [][]byte {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.db.Mailbox(ctx, addr, store.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	ms, err := e.db.Messages(ctx, addr, mb.ID, store.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range ms {
		b, err := e.db.Blob(ctx, addr, mb.ID, m.UID)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestNoticeEscrow: a bounce delivered into a local sender's INBOX is
// sealed to the escrow keys Options.Escrow names, as the MX's mail is,
// and the escrow key opens it; when the decision fails, no notice is
// stored without its escrow.
func TestNoticeEscrow(t *testing.T) {
	const pass = "the officer's escrow passphrase"
	pair, err := crypto.NewEscrowKey("sealmail escrow <escrow@example.org>", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	epub, err := crypto.ParsePublicKey(pair.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := crypto.UnlockEscrowKey(pair.Private, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	defer ek.Wipe()
	sk := startSink(t, sink.Options{Rcpt: func(string) error {
		return sink.Reply(550, "5.1.1", "no such user")
	}})
	esc := &stubEscrow{key: epub}
	e := newEnv(t, func(o *Options) {
		o.Transports = map[string]string{"example.net": sk.Addr}
		o.Escrow = esc
	})
	e.submit(&Message{ID: "escrowed", Account: "alice@example.org", From: "alice@example.org",
		Rcpts: []Rcpt{{Addr: "nobody@example.net"}}}, message("escrowed", ""))
	waitFor(t, "the bounce", func() bool { return e.queueLen() == 0 && len(e.inboxBlobs("alice@example.org")) == 1 })
	blob := e.inboxBlobs("alice@example.org")[0]
	if ok, err := epub.SealedTo(bytes.NewReader(blob)); err != nil || !ok {
		t.Fatalf("the bounce is not sealed to the escrow key: %v", err)
	}
	r, err := ek.Open(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !strings.Contains(string(got), "Status: 5.1.1") {
		t.Fatalf("escrow opened the bounce: %v\n%s", err, got)
	}
	if in := e.inbox("alice@example.org"); len(in) != 1 || in[0] != string(got) {
		t.Fatalf("alice reads %d messages, not what escrow reads", len(in))
	}

	esc.mu.Lock()
	esc.fail = true
	esc.mu.Unlock()
	e.submit(&Message{ID: "refused", Account: "alice@example.org", From: "alice@example.org",
		Rcpts: []Rcpt{{Addr: "nobody@example.net"}}}, message("refused", ""))
	waitFor(t, "the second failure", func() bool { return e.queueLen() == 0 })
	e.idle()
	if n := len(e.inboxBlobs("alice@example.org")); n != 1 {
		t.Fatalf("%d messages in alice's INBOX after a failed escrow decision, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "escrow") {
		t.Errorf("the failed decision is not logged:\n%s", e.logs.String())
	}
}
