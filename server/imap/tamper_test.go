package imap

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Tests of what someone who can write the data directory can do (a
// restored backup, a storage administrator): change sealed bytes, move
// summaries and session keys between messages, swap a public key.

// unlocked returns a mailbox reader of alice's account, as a session
// has one.
func (e *testEnv) unlocked(user, pw string) *mailbox.Reader {
	e.t.Helper()
	sess, err := e.acc.Login(context.Background(), account.LoginRequest{Remote: "192.0.2.9:1", Username: user, Secret: []byte(pw)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(sess.Close)
	return e.srv.mbx.Reader(user, sess.Keyring(), nil)
}

// tampered delivers a copy of msg whose sealed bytes have one byte
// flipped near the end, with the summary and session key its intact
// form had: what a session finds when the blob was changed after the
// summary was built. It returns the copy's UID.
func (e *testEnv) tampered(rd *mailbox.Reader, msg []byte) uint32 {
	e.t.Helper()
	sealed := e.seal(alice, msg)
	bad := bytes.Clone(sealed)
	bad[len(bad)-30] ^= 0x01
	inbox := e.mailboxID(alice, "")
	ds, err := e.st.Deliver(context.Background(), []store.Delivery{{Account: alice, MailboxID: inbox, Blob: bad}})
	if err != nil {
		e.t.Fatal(err)
	}
	rd.Added(context.Background(), inbox, ds[0].UID, bad, msg)
	if stored, err := e.st.Messages(context.Background(), alice, inbox, store.ListOptions{FromUID: ds[0].UID, WithSummary: true}); err != nil || len(stored) != 1 || stored[0].Summary == nil {
		e.t.Fatalf("summary of the tampered message not stored: %v", err)
	}
	e.srv.Delivered(ds)
	e.srv.notify.wait()
	return ds[0].UID
}

// TestTamperedMessageNeverPartlySent is issue 8 §3: a message whose
// integrity check (MDC/AEAD) fails must not be partly sent. One byte of
// a stored blob is flipped near its end, where the bytes before it still
// decrypt; FETCH of its body (in memory and, for a large message, read
// twice) sends none of it and answers NO [CORRUPTION], the intact
// message beside it is sent whole, the failure is logged, and SEARCH
// does not match text of the tampered message.
func TestTamperedMessageNeverPartlySent(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	rd := env.unlocked(alice, alicePW)
	small := testMessage("small", "EarlyCanaryS4 "+strings.Repeat("small body line\r\n", 100))
	large := testMessage("large", "EarlyCanaryL7 "+strings.Repeat("a large body line that is read twice\r\n", 2*mailbox.DefaultInMemoryMax/38))
	intact := testMessage("intact", "nothing to see")
	env.deliver(alice, "", intact)
	uSmall := env.tampered(rd, small)
	uLarge := env.tampered(rd, large)

	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	head := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 200}}
	for _, set := range []imap.UIDSet{imap.UIDSetNum(imap.UID(uSmall)), imap.UIDSetNum(imap.UID(uLarge)), imap.UIDSetNum(1, imap.UID(uSmall), imap.UID(uLarge))} {
		var trace bytes.Buffer
		_ = trace
		msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{whole, head}}).Collect()
		if imapCode(err) != imap.ResponseCodeCorruption {
			t.Errorf("FETCH %v: %v, want NO [CORRUPTION]", set, err)
		}
		for _, m := range msgs {
			if uint32(m.UID) == uSmall || uint32(m.UID) == uLarge {
				t.Errorf("FETCH %v sent tampered message %d: %q", set, m.UID, m.FindBodySection(head))
			}
			if m.UID == 1 && !bytes.Equal(m.FindBodySection(whole), intact) {
				t.Errorf("FETCH %v: the intact message differs", set)
			}
		}
	}
	// The header (kept in the summary) is still readable: it was verified
	// when the summary was built.
	m := fetchOne(t, c, imap.UIDSetNum(imap.UID(uSmall)), &imap.FetchOptions{Envelope: true})
	if m.Envelope == nil || m.Envelope.Subject != "small" {
		t.Errorf("envelope of the tampered message: %+v", m.Envelope)
	}
	for _, word := range []string{"EarlyCanaryS4", "EarlyCanaryL7"} {
		res, err := c.Search(&imap.SearchCriteria{Body: []string{word}}, nil).Wait()
		if err != nil || len(res.AllSeqNums()) != 0 {
			t.Errorf("SEARCH BODY %s matched the tampered message: %v %v", word, res.AllSeqNums(), err)
		}
	}
	logs := env.logs.String()
	if strings.Count(logs, "fails its integrity check") < 2 {
		t.Errorf("integrity failures not logged:\n%s", logs)
	}
	if strings.Contains(logs, "EarlyCanary") {
		t.Errorf("message content in the log")
	}
}

// TestSwappedSummariesRebuilt is issue 9 item 13: summaries and session
// keys were bound only to the account, so swapping them between messages
// made FETCH serve one message's envelope and size for another. Bound to
// account, mailbox and UID, a moved summary does not open: it is rebuilt
// from the message (with a warning), and each message reads as itself.
func TestSwappedSummariesRebuilt(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	a := testMessage("first", "the first body")
	b := testMessage("second", "the second body, which is longer")
	env.deliver(alice, "", a)
	env.deliver(alice, "", b)
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}) // builds summaries
	fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true})
	stored, err := env.messages(alice, "INBOX", storeListWithSummary())
	if err != nil || len(stored) != 2 || stored[0].Summary == nil || stored[1].Summary == nil {
		t.Fatalf("summaries not stored: %v", err)
	}
	// The data directory writer's swap.
	inbox := env.mailboxID(alice, "")
	err = env.st.SetSummaries(context.Background(), alice, inbox, []store.SummaryUpdate{
		{UID: stored[0].UID, Summary: stored[1].Summary, SessionKey: stored[1].SessionKey},
		{UID: stored[1].UID, Summary: stored[0].Summary, SessionKey: stored[0].SessionKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("FETCH after the swap: %d messages, %v", len(msgs), err)
	}
	for i, want := range [][]byte{a, b} {
		m := msgs[i]
		if m.Envelope.Subject != []string{"first", "second"}[i] || m.RFC822Size != int64(len(want)) || !bytes.Equal(m.FindBodySection(whole), want) {
			t.Errorf("message %d after the swap: subject %q, size %d", i+1, m.Envelope.Subject, m.RFC822Size)
		}
	}
	if !strings.Contains(env.logs.String(), "stored summary does not open") {
		t.Errorf("the refused summaries were not logged")
	}
	// Rebuilt and stored again: bound to their own messages now.
	again, _ := env.messages(alice, "INBOX", storeListWithSummary())
	if bytes.Equal(again[0].Summary, stored[1].Summary) || bytes.Equal(again[1].Summary, stored[0].Summary) {
		t.Errorf("swapped summaries were kept")
	}
}

// TestSwappedPublicKeyRefused is issue 9 item 13 at the protocol: an
// account whose stored public key is another account's cannot log in
// (NO [UNAVAILABLE]); the operator reads why in the log.
func TestSwappedPublicKeyRefused(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.addUser("mallory@example.org", "mallory's long password")
	ctx := context.Background()
	a, err := env.st.Account(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.st.Account(ctx, "mallory@example.org")
	if err != nil {
		t.Fatal(err)
	}
	forged := store.Account{Address: "victim@example.org", KeyFingerprint: m.KeyFingerprint, PublicKey: m.PublicKey, WrappedKey: a.WrappedKey, Slots: a.Slots}
	if err := env.st.CreateAccount(ctx, forged, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	r := env.rawDial()
	out, status := r.cmd(`LOGIN "victim@example.org" "` + alicePW + `"`)
	if status != "NO" || !strings.Contains(out, "[UNAVAILABLE]") {
		t.Errorf("LOGIN with a swapped public key: %s", out)
	}
	if !strings.Contains(env.logs.String(), "tampered") {
		t.Errorf("not logged for the operator:\n%s", env.logs.String())
	}
}

// TestLegacySummariesMigrated: summaries and session keys of the older
// format (bound to the account only) are rebuilt at the first read,
// quietly (no warning: they are not tampered with), and read correctly.
func TestLegacySummariesMigrated(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	msg := testMessage("legacy", "an old message")
	d := env.deliver(alice, "", msg)
	sess, err := env.acc.Login(context.Background(), account.LoginRequest{Remote: "192.0.2.9:1", Username: alice, Secret: []byte(alicePW)})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	kr := sess.Keyring()
	_, sk, err := kr.Open(bytes.NewReader(env.seal(alice, msg))) // an unbound session key, as before
	if err != nil {
		t.Fatal(err)
	}
	old, err := kr.SealIndex([]byte{1, 0xff, 0xff}, []byte("sealmail imap summary v1\x00"+alice))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.st.SetSummaries(context.Background(), alice, d.MailboxID, []store.SummaryUpdate{{UID: d.UID, Summary: old, SessionKey: sk}}); err != nil {
		t.Fatal(err)
	}
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{whole}})
	if m.Envelope == nil || m.Envelope.Subject != "legacy" || !bytes.Equal(m.FindBodySection(whole), msg) {
		t.Errorf("legacy message reads %+v", m.Envelope)
	}
	if strings.Contains(env.logs.String(), "does not open") {
		t.Errorf("a legacy summary was reported as tampered:\n%s", env.logs.String())
	}
	stored, _ := env.messages(alice, "INBOX", storeListWithSummary())
	if bytes.Equal(stored[0].Summary, old) {
		t.Errorf("the legacy summary was not replaced")
	}
}
