package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// crashBody is the body of message n from sender c; it is unique, so a
// stored message can be matched to what was sent, byte for byte.
func crashBody(c, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: crash %d-%d\r\nMessage-ID: <crash-%d-%d@client.test>\r\n\r\n", c, n, c, n)
	for i := range 40 {
		fmt.Fprintf(&b, "line %03d of message %d-%d: the quick brown fox jumps over the lazy dog\r\n", i, c, n)
	}
	return b.String()
}

// sendOne delivers one message over its own SMTP connection and reports
// whether the server answered 250 to the end of data.
func sendOne(addr, rcpt, body string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail("sender@client.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // returns nil only on 250
		return err
	}
	c.Quit()
	return nil
}

// TestCrashSafety starts the server, sends from several connections,
// SIGKILLs it mid-load and restarts it. Every message that got 250 must be
// present and open with the account's key; every stored message must be
// complete.
func TestCrashSafety(t *testing.T) {
	const (
		senders   = 6
		killAfter = 40 // acknowledged messages before SIGKILL
		rcpt      = "alice@example.org"
	)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", rcpt, "--password-stdin")
	s := te.serve()
	addr := s.addr("smtp")
	if addr == "" {
		t.Fatalf("no smtp address announced:\n%s", s.logs())
	}

	var (
		mu       sync.Mutex
		accepted = map[string]bool{} // Message-ID → sent body
		sent     = map[string]string{}
		acks     atomic.Int32
		wg       sync.WaitGroup
	)
	killed := make(chan struct{})
	for c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-killed:
					return
				default:
				}
				body := crashBody(c, n)
				id := fmt.Sprintf("crash-%d-%d", c, n)
				mu.Lock()
				sent[id] = body
				mu.Unlock()
				if err := sendOne(addr, rcpt, body); err != nil {
					continue // refused or cut off by the kill: no promise made
				}
				mu.Lock()
				accepted[id] = true
				mu.Unlock()
				acks.Add(1)
			}
		}()
	}
	killAfterAcks(t, s, &acks, killAfter, killed, &wg)
	if len(accepted) < killAfter {
		t.Fatalf("only %d messages accepted before the deadline:\n%s", len(accepted), s.logs())
	}
	t.Logf("%d messages acknowledged before SIGKILL", len(accepted))

	// Restart on the same data directory: the stale control socket and
	// the badger state left by the kill must not stop it.
	s2 := te.serve()
	if err := sendOne(s2.addr("smtp"), rcpt, crashBody(99, 0)); err != nil {
		t.Fatalf("send after restart: %v\n%s", err, s2.logs())
	}
	accepted["crash-99-0"] = true
	sent["crash-99-0"] = crashBody(99, 0)
	if err := s2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s2.logs())
	}

	// Open the store as the user would: unlock with the password and open
	// every blob.
	st, err := badgerstore.Open(te.dataDir+"/store", badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	acct, err := st.Account(ctx, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	var slots [][]byte
	for _, sl := range acct.Slots {
		slots = append(slots, sl.Data)
	}
	kr, err := crypto.Unlock(slots, []byte(alicePW), acct.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Wipe()
	inbox, err := st.Mailbox(ctx, rcpt, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, rcpt, inbox.ID, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, m := range msgs {
		blob, err := st.Blob(ctx, rcpt, inbox.ID, m.UID)
		if err != nil {
			t.Fatalf("blob %d: %v", m.UID, err)
		}
		if int64(len(blob)) != m.SealedSize {
			t.Errorf("uid %d: blob is %d bytes, metadata says %d", m.UID, len(blob), m.SealedSize)
		}
		plain, _, err := kr.Open(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("uid %d does not open: %v", m.UID, err)
		}
		text, err := io.ReadAll(plain)
		if err != nil {
			t.Fatalf("uid %d is damaged: %v", m.UID, err)
		}
		id := messageID(string(text))
		body, ok := sent[id]
		if !ok {
			t.Fatalf("uid %d: unknown message %q", m.UID, id)
		}
		// The server prepends trace headers; the rest is byte for byte.
		if !strings.HasSuffix(string(text), body) {
			t.Errorf("uid %d (%s): stored message differs from what was sent", m.UID, id)
		}
		if found[id] {
			t.Errorf("%s stored twice", id)
		}
		found[id] = true
	}
	for id := range accepted {
		if !found[id] {
			t.Errorf("%s got 250 but is not in the store", id)
		}
	}
	t.Logf("%d messages stored (%d acknowledged)", len(found), len(accepted))
}

// messageID extracts "crash-c-n" from the Message-ID field.
func messageID(msg string) string {
	const prefix = "Message-ID: <"
	i := strings.Index(msg, prefix)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(prefix):]
	j := strings.Index(rest, "@")
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// killAfterAcks waits until acks reaches n (for at most two minutes),
// SIGKILLs s, closes killed to tell the workers and waits for them.
func killAfterAcks(t *testing.T, s *server, acks *atomic.Int32, n int32, killed chan struct{}, wg *sync.WaitGroup) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for acks.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("serve survived SIGKILL?")
	}
	close(killed)
	wg.Wait()
}
