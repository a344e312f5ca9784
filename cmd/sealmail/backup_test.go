package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapMessage is one message as an IMAP client sees it.
type imapMessage struct {
	Mailbox string
	UID     imap.UID
	Flags   []imap.Flag
	Date    time.Time
	Body    []byte
}

// fetchMailboxes logs in as user with password over IMAPS and returns
// every message of every mailbox: UID, flags, internal date and the
// whole message (BODY.PEEK[], so nothing changes).
func fetchMailboxes(t *testing.T, s *server, dataDir, user, password string) []imapMessage {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, dataDir)})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []imapMessage
	for _, mb := range list {
		sel, err := c.Select(mb.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %s: %v", mb.Mailbox, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		whole := &imap.FetchItemBodySection{Peek: true}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{whole},
		}).Collect()
		if err != nil {
			t.Fatalf("fetch %s: %v", mb.Mailbox, err)
		}
		for _, m := range msgs {
			// \Recent is the session's, not the message's (IMAP4rev1).
			flags := slices.DeleteFunc(m.Flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
			if len(flags) == 0 {
				flags = nil
			}
			out = append(out, imapMessage{Mailbox: mb.Mailbox, UID: m.UID, Flags: flags, Date: m.InternalDate.UTC(), Body: m.FindBodySection(whole)})
		}
	}
	c.Logout().Wait()
	return out
}

// TestBackupRestoreRoundTrip: `sealmail backup FILE` while the server
// runs writes a file as sealed as the data directory (no canary of the
// mail in it, mode 0600); `sealmail restore FILE` into an absent data
// directory gives a server whose IMAP clients read every message back
// byte-identical, with the same UIDs, flags and internal dates. A
// restore refuses a used data directory and a truncated or damaged
// file, and leaves the target as it was.
func TestBackupRestoreRoundTrip(t *testing.T) {
	const alice, bob = "alice@example.org", "bob@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", bob, "--password-stdin")
	s := te.serve()
	msgs := []atRestMessage{{canary(t), canary(t), canary(t), canary(t)}, {canary(t), canary(t), canary(t), canary(t)}}
	if err := sendTo(s.addr("smtp"), []string{alice}, msgs[0].text(alice)); err != nil {
		t.Fatal(err)
	}
	if err := sendTo(s.addr("smtp"), []string{alice, bob}, msgs[1].text(alice+", "+bob)); err != nil {
		t.Fatal(err)
	}
	// A large message, and one in another mailbox with flags and an old
	// internal date.
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 48<<10)
	if err := sendTo(s.addr("smtp"), []string{alice}, big); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, te.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Projects/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appended := "Subject: appended\r\nFrom: a@example.net\r\n\r\nkept as it was\r\n"
	w := c.Append("Projects/2026", int64(len(appended)), &imap.AppendOptions{
		Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$Work"}, Time: time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)})
	w.Write([]byte(appended))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()
	before := map[string][]imapMessage{
		alice: fetchMailboxes(t, s, te.dataDir, alice, alicePW),
		bob:   fetchMailboxes(t, s, te.dataDir, bob, alicePW),
	}
	if len(before[alice]) != 4 || len(before[bob]) != 1 {
		t.Fatalf("before: alice %d, bob %d messages", len(before[alice]), len(before[bob]))
	}

	file := filepath.Join(te.dir, "mail.backup")
	r := te.ok("", "backup", file)
	if !strings.Contains(r.stderr, "backup written to "+file) {
		t.Errorf("backup said %q", r.stderr)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	data, _ := os.ReadFile(file)
	for _, m := range msgs {
		for _, c := range append(m.canaries(), strings.ToLower(m.subject), m.encodedAttachment()) {
			if bytes.Contains(data, []byte(c)) {
				t.Errorf("the backup contains %q in the clear", c)
			}
		}
	}
	if !bytes.Contains(data, []byte("Projects/2026")) {
		t.Error("the backup lacks a mailbox name: the canary search cannot see it")
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Refused: a data directory in use, a truncated file, a damaged one.
	te.fails(exitError, "is not empty", "", "restore", file)
	restored := filepath.Join(te.dir, "restored")
	for name, b := range map[string][]byte{
		"truncated": data[:len(data)*2/3],
		"damaged":   append(bytes.Clone(data[:len(data)-40]), bytes.Repeat([]byte{0}, 40)...),
		"foreign":   []byte("PK\x03\x04 a zip file\n"),
	} {
		bad := filepath.Join(te.dir, name)
		os.WriteFile(bad, b, 0o600)
		te.fails(exitError, "", "", "--data-dir", restored, "restore", bad)
		if _, err := os.Stat(restored); !os.IsNotExist(err) {
			t.Fatalf("restore of a %s file left %s behind: %v", name, restored, err)
		}
	}

	r = te.ok("", "--data-dir", restored, "restore", file)
	if !strings.Contains(r.stdout, "restored 2 account(s)") {
		t.Errorf("restore said %q", r.stdout)
	}
	te.setenv("SEALMAIL_DATA_DIR=" + restored)
	s = te.serve()
	for _, user := range []string{alice, bob} {
		after := fetchMailboxes(t, s, restored, user, alicePW)
		if !reflect.DeepEqual(before[user], after) {
			t.Errorf("%s after restore differs", user)
			for i := range min(len(after), len(before[user])) {
				b, a := before[user][i], after[i]
				if !bytes.Equal(a.Body, b.Body) {
					t.Errorf("  message %d: body of %d bytes, was %d", i, len(a.Body), len(b.Body))
				}
				a.Body, b.Body = nil, nil
				if !reflect.DeepEqual(a, b) {
					t.Errorf("  message %d: %+v, was %+v", i, a, b)
				}
			}
		}
	}
	// New mail arrives in the restored server after the old.
	if err := sendTo(s.addr("smtp"), []string{bob}, "Subject: new\r\n\r\nafter the restore\r\n"); err != nil {
		t.Fatal(err)
	}
	after := fetchMailboxes(t, s, restored, bob, alicePW)
	if len(after) != 2 || after[1].UID <= after[0].UID {
		t.Errorf("bob after a new message: %v", len(after))
	}

	// A backup without a running server works the same way.
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r = te.ok("", "backup", "-")
	if !strings.HasPrefix(r.stdout, `{"format":"sealmail-backup"`) {
		t.Errorf("backup to standard output starts %q", r.stdout[:min(len(r.stdout), 60)])
	}
	local := filepath.Join(te.dir, "local")
	r = te.run(r.stdout, "--data-dir", local, "restore", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "restored 2 account(s)") {
		t.Errorf("restore from standard input: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
