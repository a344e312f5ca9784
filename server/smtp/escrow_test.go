package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

const escrowPass = "the officer's escrow passphrase"

// fakeEscrow seals alice's copies to key; fail fails every decision.
type fakeEscrow struct {
	key *crypto.PublicKey

	mu      sync.Mutex
	fail    bool
	classes []string // guarded by mu
}

func (f *fakeEscrow) EscrowKeys(_ context.Context, account string, mailbox uint64, class string) ([]*crypto.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.classes = append(f.classes, fmt.Sprintf("%s/%d/%s", account, mailbox, class))
	if f.fail {
		return nil, errors.New("policy store unavailable")
	}
	if account == "alice@example.org" {
		return []*crypto.PublicKey{f.key}, nil
	}
	return nil, nil
}

// blobs returns the sealed messages in addr's INBOX.
func (e *testEnv) blobs(addr string) [][]byte {
	e.t.Helper()
	ctx := context.Background()
	msgs, err := e.db.Messages(ctx, addr, e.inboxID(addr), store.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := e.db.Blob(ctx, addr, e.inboxID(addr), m.UID)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestEscrowAtDelivery: a copy the escrow decision names is sealed to the
// escrow key too, inline and staged (a large message); the others are
// not; a failing decision refuses the message temporarily and stores
// nothing.
func TestEscrowAtDelivery(t *testing.T) {
	pair, err := crypto.NewEscrowKey("sealmail escrow <escrow@example.org>", []byte(escrowPass))
	if err != nil {
		t.Fatal(err)
	}
	epub, err := crypto.ParsePublicKey(pair.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := crypto.UnlockEscrowKey(pair.Private, []byte(escrowPass))
	if err != nil {
		t.Fatal(err)
	}
	defer ek.Wipe()
	fe := &fakeEscrow{key: epub}
	e := newEnv(t, func(o *Options) { o.Escrow = fe })

	small := testMessage("escrowed", "for the record")
	large := testMessage("large", strings.Repeat("a line of a large message, to be staged\r\n", 240_000)) // ~9.6 MiB
	for _, msg := range []string{small, large} {
		if err := sendGo(t, e.addr, "sender@remote.test", []string{"alice@example.org", "bob@example.org"}, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	plain := e.inbox("alice@example.org")
	for i, blob := range e.blobs("alice@example.org") {
		if ok, err := epub.SealedTo(bytes.NewReader(blob)); err != nil || !ok {
			t.Fatalf("alice's copy %d is not sealed to the escrow key: %v", i+1, err)
		}
		r, err := ek.Open(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != plain[i] {
			t.Fatalf("escrow opened copy %d: %d bytes, %v; alice reads %d", i+1, len(got), err, len(plain[i]))
		}
		if !strings.HasSuffix(plain[i], []string{small, large}[i]) {
			t.Errorf("copy %d is not what was sent", i+1)
		}
	}
	for i, blob := range e.blobs("bob@example.org") {
		if ok, _ := epub.SealedTo(bytes.NewReader(blob)); ok {
			t.Errorf("bob's copy %d is sealed to the escrow key", i+1)
		}
	}
	if n := len(e.inbox("bob@example.org")); n != 2 {
		t.Fatalf("bob has %d messages", n)
	}
	fe.mu.Lock()
	if fe.classes[0] != "alice@example.org/0/" {
		t.Errorf("asked %v", fe.classes)
	}
	fe.fail = true
	fe.mu.Unlock()
	before := e.counts()
	err = sendGo(t, e.addr, "sender@remote.test", []string{"alice@example.org", "bob@example.org"}, testMessage("refused", "x"))
	if code := smtpCode(err); !strings.HasPrefix(code, "451 4.") {
		t.Errorf("a failing escrow decision answered %s", code)
	}
	if after := e.counts(); after["alice@example.org"] != before["alice@example.org"] || after["bob@example.org"] != before["bob@example.org"] {
		t.Errorf("stored after a failed escrow decision: %v → %v", before, after)
	}
	if strings.Contains(e.logs.String(), escrowPass) {
		t.Error("passphrase in the log")
	}
}
