package imap

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const (
	alice   = "alice@example.org"
	alicePW = "correct horse battery staple"
)

func fetchOne(t *testing.T, c *imapclient.Client, set imap.NumSet, o *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, o).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("fetch: got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func hasFlag(fs []imap.Flag, f imap.Flag) bool {
	for _, g := range fs {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func TestDeliverAndFetch(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	msg := testMessage("hello", "Body line one.\r\nSecond line with a Canary-word.")
	d := env.deliver(alice, "", msg)

	c := env.dial(alice, alicePW)
	sd, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.NumMessages != 1 || sd.UIDValidity != d.UIDValidity || uint32(sd.UIDNext) != d.UID+1 {
		t.Fatalf("select data = %+v, delivered %+v", sd, d)
	}

	whole := &imap.FetchItemBodySection{Peek: true}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, Envelope: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{whole},
	})
	if got := m.FindBodySection(whole); !bytes.Equal(got, msg) {
		t.Fatalf("BODY.PEEK[] differs:\n%q\nwant\n%q", got, msg)
	}
	if m.RFC822Size != int64(len(msg)) {
		t.Errorf("RFC822.SIZE = %d, want %d", m.RFC822Size, len(msg))
	}
	if m.UID != imap.UID(d.UID) {
		t.Errorf("UID = %d", m.UID)
	}
	if m.Envelope == nil || m.Envelope.Subject != "hello" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Host != "example.org" {
		t.Errorf("envelope = %+v", m.Envelope)
	}
	if m.Envelope != nil && m.Envelope.Date.IsZero() {
		t.Errorf("envelope date missing")
	}
	if bs, ok := m.BodyStructure.(*imap.BodyStructureSinglePart); !ok || !strings.EqualFold(bs.Type, "text") || !strings.EqualFold(bs.Subtype, "plain") {
		t.Errorf("bodystructure = %#v", m.BodyStructure)
	}
	if hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("PEEK set \\Seen: %v", m.Flags)
	}

	// Sections, partials, and the implicit \Seen of a non-PEEK fetch.
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}
	part1 := &imap.FetchItemBodySection{Part: []int{1}}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	part := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 6, Size: 5}}
	bin := &imap.FetchItemBinarySection{Peek: true}
	m = fetchOne(t, c, imap.UIDSetNum(imap.UID(d.UID)), &imap.FetchOptions{
		BodySection:   []*imap.FetchItemBodySection{hdr, text, part1, fields, part},
		BinarySection: []*imap.FetchItemBinarySection{bin},
	})
	split := bytes.Index(msg, []byte("\r\n\r\n")) + 4
	if got := m.FindBodySection(hdr); !bytes.Equal(got, msg[:split]) {
		t.Errorf("BODY[HEADER] = %q", got)
	}
	if got := m.FindBodySection(text); !bytes.Equal(got, msg[split:]) {
		t.Errorf("BODY[TEXT] = %q", got)
	}
	if got := m.FindBodySection(part1); !bytes.Equal(got, msg[split:]) {
		t.Errorf("BODY[1] = %q", got)
	}
	if got := string(m.FindBodySection(fields)); got != "Subject: hello\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS (Subject)] = %q", got)
	}
	if got := m.FindBodySection(part); !bytes.Equal(got, msg[6:11]) {
		t.Errorf("BODY[]<6.5> = %q", got)
	}
	if got := m.FindBinarySection(bin); !bytes.Equal(got, msg) {
		t.Errorf("BINARY.PEEK[] = %q", got)
	}
	if !hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("non-PEEK fetch did not report \\Seen: %v", m.Flags)
	}
	m = fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true})
	if !hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("\\Seen not stored: %v", m.Flags)
	}
}

func TestAppendThenFetch(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)
	msg := testMessage("appended", "Drafted text.")
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cmd := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, "$Custom"}, Time: date})
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := cmd.Wait()
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Fatalf("APPENDUID = %+v", ad)
	}
	if _, err := c.Select("Drafts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	m := fetchOne(t, c, imap.UIDSetNum(ad.UID), &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{whole}})
	if got := m.FindBodySection(whole); !bytes.Equal(got, msg) {
		t.Fatalf("body = %q", got)
	}
	if !m.InternalDate.Equal(date) {
		t.Errorf("internal date = %v, want %v", m.InternalDate, date)
	}
	if !hasFlag(m.Flags, imap.FlagDraft) || !hasFlag(m.Flags, "$Custom") {
		t.Errorf("flags = %v", m.Flags)
	}
	// The summary was stored after APPEND: the stored message has one.
	env.srv.addedWG.Wait()
	msgs, err := env.messages(alice, "Drafts", storeListWithSummary())
	if err != nil || len(msgs) != 1 || msgs[0].Summary == nil || msgs[0].SessionKey == nil {
		t.Fatalf("stored summary missing: %v %+v", err, msgs)
	}

	// APPEND to a missing mailbox asks the client to create it.
	cmd = c.Append("Nope", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("append to missing mailbox: %v", err)
	}
	// An APPEND to the selected mailbox is announced with EXISTS.
	cmd = c.Append("Drafts", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Errorf("after APPEND to selected mailbox, client sees %d messages", n)
	}
}

// recorder collects unilateral responses.
type recorder struct {
	mu       sync.Mutex
	expunged []uint32
	exists   []uint32
	flags    map[uint32][]imap.Flag
	notify   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{flags: map[uint32][]imap.Flag{}, notify: make(chan struct{}, 100)}
}

func (r *recorder) options() *imapclient.Options {
	return &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			r.mu.Lock()
			r.expunged = append(r.expunged, seq)
			r.mu.Unlock()
			r.ping()
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				r.mu.Lock()
				r.exists = append(r.exists, *d.NumMessages)
				r.mu.Unlock()
				r.ping()
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			buf, err := m.Collect()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.flags[buf.SeqNum] = buf.Flags
			r.mu.Unlock()
			r.ping()
		},
	}}
}

// waitFor waits until cond (called with r.mu held) holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) ping() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func TestTwoSessionsFlagsAndExpunge(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	for i := range 3 {
		env.deliver(alice, "", testMessage("m"+string(rune('a'+i)), "x"))
	}
	a := env.dial(alice, alicePW)
	rec := newRecorder()
	b := env.dial(alice, alicePW, rec.options())
	for _, c := range []*imapclient.Client{a, b} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// A non-silent STORE answers with FETCH FLAGS.
	res, err := a.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !hasFlag(res[0].Flags, imap.FlagDeleted) {
		t.Fatalf("STORE response = %+v", res)
	}
	// B learns of it at its next command.
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "FETCH FLAGS for message 2", func() bool { return hasFlag(rec.flags[2], imap.FlagDeleted) })
	exp, err := a.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 1 || exp[0] != 2 {
		t.Fatalf("EXPUNGE = %v", exp)
	}
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "EXPUNGE 2", func() bool { return len(rec.expunged) == 1 && rec.expunged[0] == 2 })
	// Both now agree on sequence numbers: message 2 is the old 3.
	for _, c := range []*imapclient.Client{a, b} {
		m := fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{UID: true, Envelope: true})
		if m.UID != 3 || m.Envelope.Subject != "mc" {
			t.Errorf("seq 2 = uid %d subject %q", m.UID, m.Envelope.Subject)
		}
	}
	// UID EXPUNGE only removes what it names.
	a.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	exp, err = a.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || len(exp) != 1 || exp[0] != 2 {
		t.Fatalf("UID EXPUNGE = %v, %v", exp, err)
	}
}

func TestIdleWakesOnDelivery(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("first", "x"))
	rec := newRecorder()
	c := env.dial(alice, alicePW, rec.options())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	env.deliver(alice, "", testMessage("second", "y"))
	deadline := time.After(5 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.exists)
		var last uint32
		if n > 0 {
			last = rec.exists[n-1]
		}
		rec.mu.Unlock()
		if last == 2 {
			break
		}
		select {
		case <-rec.notify:
		case <-deadline:
			t.Fatalf("no EXISTS during IDLE (exists=%v)", rec.exists)
		}
	}
	t.Logf("IDLE woke %v after delivery", time.Since(start))
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true})
	if m.Envelope.Subject != "second" {
		t.Errorf("subject = %q", m.Envelope.Subject)
	}
}

func TestExamineIsReadOnly(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("ro", "x"), `\Deleted`)
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{body}})
	if hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("EXAMINE body fetch set \\Seen")
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err == nil {
		t.Errorf("STORE allowed in EXAMINE")
	}
	if _, err := c.Expunge().Collect(); err == nil {
		t.Errorf("EXPUNGE allowed in EXAMINE")
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Trash").Wait(); err == nil {
		t.Errorf("MOVE allowed in EXAMINE")
	}
	// CLOSE succeeds and removes nothing.
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE: %v", err)
	}
	msgs, err := env.messages(alice, "INBOX", storeList())
	if err != nil || len(msgs) != 1 || hasFlagStr(msgs[0].Flags, `\Seen`) || hasFlagStr(msgs[0].Flags, `\Flagged`) {
		t.Fatalf("stored state changed: %v %+v", err, msgs)
	}
}

func TestWrongPasswordAndTLS(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c, err := imapclient.DialTLS(env.tlsAddr, &imapclient.Options{TLSConfig: env.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errWrong := c.Login(alice, "wrong").Wait()
	errUnknown := c.Login("nobody@example.org", "wrong").Wait()
	errGarbage := c.Login("not an address", "x").Wait()
	for _, e := range []error{errWrong, errUnknown, errGarbage} {
		if imapCode(e) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("failed login: %v", e)
		}
	}
	if errWrong.Error() != errUnknown.Error() {
		t.Errorf("wrong password and unknown user differ: %q vs %q", errWrong, errUnknown)
	}
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("correct login after failures: %v", err)
	}

	// Cleartext: LOGINDISABLED, LOGIN refused; after STARTTLS it works.
	p, err := imapclient.DialInsecure(env.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	caps, err := p.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) {
		t.Errorf("cleartext caps = %v", caps)
	}
	if err := p.Login(alice, alicePW).Wait(); err == nil {
		t.Fatalf("LOGIN accepted without TLS")
	}
	s, err := imapclient.DialStartTLS(env.addr, &imapclient.Options{TLSConfig: env.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	// Logs never carry the password.
	if strings.Contains(env.logs.String(), alicePW) {
		t.Errorf("password in logs")
	}
}
