package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
)

// canary returns a unique marker. Random hex, no shared prefix: badger
// keeps each key of a table block as its difference from the block's
// first key, so a marker that began like another key could be split.
func canary(t *testing.T) string {
	t.Helper()
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "c" + hex.EncodeToString(b)
}

// atRestMessage is a multipart message carrying one canary in the subject,
// the sender's display name, the body, and a base64 attachment.
type atRestMessage struct {
	subject, name, body, attach string
}

func (m atRestMessage) canaries() []string {
	return []string{m.subject, m.name, m.body, m.attach}
}

// attachment is the attachment's decoded content.
func (m atRestMessage) attachment() string {
	return "attached file text " + m.attach + " end of file\r\n"
}

func (m atRestMessage) encodedAttachment() string {
	return base64.StdEncoding.EncodeToString([]byte(m.attachment()))
}

func (m atRestMessage) text(to string) string {
	return "From: \"Sender " + m.name + "\" <sender@client.test>\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + m.subject + "\r\n" +
		"Message-ID: <" + m.subject + "@client.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b0undary\r\n\r\n" +
		"--b0undary\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
		"Hello, the body says " + m.body + " and more.\r\n" +
		"--b0undary\r\nContent-Type: text/plain; name=notes.txt\r\n" +
		"Content-Disposition: attachment; filename=notes.txt\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" +
		m.encodedAttachment() + "\r\n" +
		"--b0undary--\r\n"
}

// sendTo delivers body to every rcpt in one SMTP transaction.
func sendTo(addr string, rcpts []string, body string) error {
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
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestNoPlaintextAtRestBinary runs the real binary: messages whose subject,
// sender display name, body and attachment carry unique canaries arrive
// over SMTP (one to two recipients), are read, searched and summarised over
// IMAP, and after the server stops no file under the data directory
// contains any canary, decoded or as sent. The data directory is searched
// twice: while the server runs (the store's newest writes then rest in
// its write-ahead log) and after it stopped (stopping flushes them into
// the store's tables). A mailbox name, which is stored in the clear by
// design, must be found each time, after the stop in a table: it proves
// the search sees the store's files in both forms. The store writes its
// tables uncompressed (store/badgerstore's TestTablesAsWritten), so a
// byte search sees all they hold.
func TestNoPlaintextAtRestBinary(t *testing.T) {
	const (
		alice = "alice@example.org"
		bob   = "bob@example.org"
	)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", bob, "--password-stdin")
	s := te.serve()

	msgs := []atRestMessage{
		{canary(t), canary(t), canary(t), canary(t)},
		{canary(t), canary(t), canary(t), canary(t)},
	}
	if err := sendTo(s.addr("smtp"), []string{alice}, msgs[0].text(alice)); err != nil {
		t.Fatalf("send: %v\n%s", err, s.logs())
	}
	if err := sendTo(s.addr("smtp"), []string{alice, bob}, msgs[1].text(alice+", "+bob)); err != nil {
		t.Fatalf("send: %v\n%s", err, s.logs())
	}

	clearName := "Folder" + canary(t)
	for _, user := range []string{alice, bob} {
		readAll(t, s, te.dataDir, user, msgs, user == alice, clearName)
	}
	var forbidden []string
	for _, m := range msgs {
		forbidden = append(forbidden, m.canaries()...)
		forbidden = append(forbidden, strings.ToLower(m.subject), m.encodedAttachment())
	}
	if seen := searchAtRest(t, te.dataDir, forbidden, clearName); len(seen) == 0 {
		t.Fatalf("while serving: never found the mailbox name %s: the search cannot see the store", clearName)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs())
	}
	seen := searchAtRest(t, te.dataDir, forbidden, clearName)
	if !slices.ContainsFunc(seen, func(p string) bool { return strings.HasSuffix(p, ".sst") }) {
		t.Fatalf("after the stop the mailbox name %s is in no table of the store (found in %q): the search cannot see the flushed store", clearName, seen)
	}
	for _, c := range forbidden {
		if strings.Contains(s.logs(), c) {
			t.Errorf("the server log contains %q", c)
		}
	}
}

// searchAtRest reads every regular file under dir and fails t for each
// forbidden string one holds. It returns the files that hold clear. A
// file removed while it is searched (the store runs) is passed over.
func searchAtRest(t *testing.T, dir string, forbidden []string, clear string) (withClear []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range forbidden {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s contains %q", path, c)
			}
		}
		if bytes.Contains(b, []byte(clear)) {
			withClear = append(withClear, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return withClear
}

// readAll logs in as user over IMAPS, fetches every message (envelope,
// body structure, full text) and searches its body, checking that the
// canaries come back: the mail is really there and readable. alice also
// gets the first message and a mailbox named clearName.
func readAll(t *testing.T, s *server, dataDir, user string, msgs []atRestMessage, first bool, clearName string) {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, dataDir)})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, alicePW).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	want := msgs[1:]
	if first {
		want = msgs
		if err := c.Create(clearName, nil).Wait(); err != nil {
			t.Fatalf("create %s: %v", clearName, err)
		}
	}
	whole := &imap.FetchItemBodySection{}
	got, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		Envelope:      true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{whole},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch as %s: %v", user, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d messages, want %d", user, len(got), len(want))
	}
	for i, m := range want {
		if got[i].Envelope == nil || got[i].Envelope.Subject != m.subject {
			t.Errorf("%s message %d: envelope %+v, want subject %s", user, i+1, got[i].Envelope, m.subject)
		}
		text := string(got[i].FindBodySection(whole))
		for _, want := range []string{m.name, m.body, m.encodedAttachment()} {
			if !strings.Contains(text, want) {
				t.Errorf("%s message %d lacks %s", user, i+1, want)
			}
		}
		res, err := c.Search(&imap.SearchCriteria{Body: []string{m.body}}, nil).Wait()
		if err != nil || len(res.AllSeqNums()) != 1 {
			t.Errorf("%s: search for the body canary: %v, %v", user, res, err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("logout: %v", err)
	}
}
