package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// writeMaildir makes a Maildir with a Maildir++ subfolder.
func writeMaildir(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"cur/1700000001.M1P1.host:2,FS":                    "Subject: maildir seen and flagged\nFrom: a@example.net\n\nhello from cur\n",
		"new/1700000002.M2P1.host":                         "Subject: maildir new\n\nunread\n",
		".Sent/cur/1700000003.M3P1.host:2,RS":              "Subject: sent one\n\nI wrote this\n",
		".Archive.2024/cur/1700000004.M4P1.host:2,S":       "Subject: archived\n\nold\n",
		".Archive.&AMk-t&AOk-/cur/1700000005.M5P1.host:2,": "Subject: summer\n\nunicode folder\n",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, time.Unix(1700000000, 0), time.Unix(1700000000, 0))
	}
	os.MkdirAll(filepath.Join(root, "tmp"), 0o700)
}

const testMbox = "From alice@example.net Thu Jan  2 10:11:12 2020\n" +
	"Subject: mbox one\nStatus: RO\nX-Status: A\n\nfirst\n>From quoted\n\n" +
	"From bob@example.net Fri Jan  3 10:11:12 2020\n" +
	"Subject: mbox two\n\nsecond\n\n" +
	"From carol@example.net Sat Jan  4 10:11:12 2020\n" +
	"Subject: mbox three\n\nthird\n\n"

// byMailbox groups fetched messages by mailbox.
func byMailbox(ms []imapMessage) map[string][]imapMessage {
	out := map[string][]imapMessage{}
	for _, m := range ms {
		out[m.Mailbox] = append(out[m.Mailbox], m)
	}
	return out
}

func hasFlag(fs []imap.Flag, f imap.Flag) bool { return slices.Contains(fs, f) }

// TestImport: `sealmail import` reads an mbox file and a Maildir (with
// Maildir++ subfolders, modified UTF-7 names included) into an account
// while the server runs: the messages arrive sealed like delivered mail,
// readable over IMAP with CRLF line endings, their flags (Status and
// X-Status, Maildir info) and internal dates (From line, file time). An
// import that completed is not repeated; one that was interrupted
// resumes after what it committed, and refuses to when the source
// changed before that point.
func TestImport(t *testing.T) {
	const alice = "alice@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	mboxPath := filepath.Join(te.dir, "old.mbox")
	os.WriteFile(mboxPath, []byte(testMbox), 0o600)
	maildir := filepath.Join(te.dir, "Maildir")
	writeMaildir(t, maildir)

	s := te.serve()
	r := te.ok("", "import", alice, mboxPath)
	if !strings.Contains(r.stdout, "imported 3 messages from "+mboxPath+" (mbox) into "+alice) {
		t.Errorf("import said %q", r.stdout)
	}
	r = te.ok("", "import", alice, maildir, "--mailbox", "Old")
	if !strings.Contains(r.stdout, "imported 5 messages") || !strings.Contains(r.stdout, "created mailbox(es) Archive/2024, Archive/Été, Old") {
		t.Errorf("import said %q", r.stdout)
	}
	got := byMailbox(fetchMailboxes(t, s, te.dataDir, alice, alicePW))
	inbox := got["INBOX"]
	if len(inbox) != 3 {
		t.Fatalf("INBOX has %d messages", len(inbox))
	}
	if want := "Subject: mbox one\r\n\r\nfirst\r\nFrom quoted\r\n"; string(inbox[0].Body) != want {
		t.Errorf("first message %q, want %q", inbox[0].Body, want)
	}
	if !hasFlag(inbox[0].Flags, imap.FlagSeen) || !hasFlag(inbox[0].Flags, imap.FlagAnswered) || len(inbox[1].Flags) != 0 {
		t.Errorf("flags %v, %v", inbox[0].Flags, inbox[1].Flags)
	}
	if !inbox[0].Date.Equal(time.Date(2020, 1, 2, 10, 11, 12, 0, time.UTC)) {
		t.Errorf("internal date %v", inbox[0].Date)
	}
	old := got["Old"]
	if len(old) != 2 || string(old[0].Body) != "Subject: maildir seen and flagged\r\nFrom: a@example.net\r\n\r\nhello from cur\r\n" ||
		!hasFlag(old[0].Flags, imap.FlagFlagged) || !hasFlag(old[0].Flags, imap.FlagSeen) || hasFlag(old[1].Flags, imap.FlagSeen) ||
		!old[0].Date.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("Old: %+v", old)
	}
	if len(got["Sent"]) != 1 || !hasFlag(got["Sent"][0].Flags, imap.FlagAnswered) || len(got["Archive/2024"]) != 1 || len(got["Archive/Été"]) != 1 {
		t.Errorf("subfolders: %v", got)
	}

	// Done before: refused, unless --restart.
	te.fails(exitError, "was imported into "+alice+" before (3 messages", "", "import", alice, mboxPath)

	// Interrupted after its first 3 messages (the journal says so), with
	// two messages added since: a new run imports only those two.
	journals, _ := filepath.Glob(filepath.Join(te.dataDir, "import", "*.json"))
	var jpath string
	for _, p := range journals {
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(mboxPath)) {
			jpath = p
		}
	}
	setIncomplete := func() {
		t.Helper()
		var j map[string]any
		b, err := os.ReadFile(jpath)
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(b, &j)
		j["complete"] = false
		b, _ = json.Marshal(j)
		os.WriteFile(jpath, b, 0o600)
	}
	if fi, err := os.Stat(jpath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal: %v %v", fi, err)
	}
	setIncomplete()
	f, _ := os.OpenFile(mboxPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("From dave@example.net Sun Jan  5 10:11:12 2020\nSubject: mbox four\n\nfourth\n\nFrom erin@example.net Mon Jan  6 10:11:12 2020\nSubject: mbox five\n\nfifth\n")
	f.Close()
	r = te.ok("", "import", alice, mboxPath)
	if !strings.Contains(r.stderr, "resuming the import of "+mboxPath+" into "+alice+" after 3 messages") ||
		!strings.Contains(r.stdout, "imported 5 messages") {
		t.Errorf("resumed import: %q %q", r.stdout, r.stderr)
	}
	inbox = byMailbox(fetchMailboxes(t, s, te.dataDir, alice, alicePW))["INBOX"]
	var subjects []string
	for _, m := range inbox {
		subjects = append(subjects, strings.SplitN(string(m.Body), "\r\n", 2)[0])
	}
	if want := []string{"Subject: mbox one", "Subject: mbox two", "Subject: mbox three", "Subject: mbox four", "Subject: mbox five"}; !slices.Equal(subjects, want) {
		t.Errorf("INBOX after resuming: %v", subjects)
	}
	// The start of the source changed: no resume.
	setIncomplete()
	edited, _ := os.ReadFile(mboxPath)
	os.WriteFile(mboxPath, bytes.Replace(edited, []byte("first"), []byte("first, edited"), 1), 0o600)
	te.fails(exitError, "changed since an earlier run imported its first 5 messages", "", "import", alice, mboxPath)

	te.fails(exitError, "no account nobody@example.org", "", "import", "nobody@example.org", maildir)
	notMbox := filepath.Join(te.dir, "notes.txt")
	os.WriteFile(notMbox, []byte("Subject: hi\n\njust a file\n"), 0o600)
	te.fails(exitError, "not an mbox file", "", "import", alice, notMbox)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Without a server, the CLI imports itself.
	other := filepath.Join(te.dir, "other.mbox")
	os.WriteFile(other, []byte(testMbox), 0o600)
	r = te.ok("", "import", alice, other, "--mailbox", "Offline")
	if !strings.Contains(r.stdout, "imported 3 messages") {
		t.Errorf("offline import: %q", r.stdout)
	}
}

// TestExport: `sealmail export ADDRESS DIR` with the account's password
// writes one mbox file per mailbox, and every message in it is
// byte-identical to what an IMAP client reads (BODY[]), with its
// internal date on the From line; the export of one account imports
// into another as the same mail. A wrong password exports nothing.
func TestExport(t *testing.T) {
	const alice, bob = "alice@example.org", "bob@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", bob, "--password-stdin")
	maildir := filepath.Join(te.dir, "Maildir")
	writeMaildir(t, maildir)
	te.ok("", "import", alice, maildir)
	s := te.serve()
	tricky := "Subject: tricky\r\n\r\nFrom the start of a line\r\n>From quoted\r\n\r\nFrom after an empty line\r\n"
	if err := sendTo(s.addr("smtp"), []string{alice}, tricky); err != nil {
		t.Fatal(err)
	}
	before := fetchMailboxes(t, s, te.dataDir, alice, alicePW)

	dir := filepath.Join(te.dir, "export")
	te.fails(exitError, "wrong password for "+alice, "not the password\n", "export", alice, dir, "--password-stdin")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s: %v", dir, err)
	}
	r := te.ok(alicePW+"\n", "export", alice, dir, "--password-stdin")
	if !strings.Contains(r.stdout, "exported 6 message(s) of 8 mailbox(es) of "+alice+" to "+dir) {
		t.Errorf("export said %q", r.stdout)
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v", rel, fi.Mode().Perm())
			}
		}
		return nil
	})
	sort.Strings(files)
	want := []string{"Archive.mbox", "Archive/2024.mbox", "Archive/Été.mbox", "Drafts.mbox", "INBOX.mbox", "Junk.mbox", "Sent.mbox", "Trash.mbox"}
	if !slices.Equal(files[:len(want)], want) {
		t.Errorf("files %v", files)
	}
	// Each mbox holds exactly what IMAP shows, in order.
	for mailbox, msgs := range byMailbox(before) {
		f, err := os.Open(filepath.Join(dir, mboxFileName(mailbox)))
		if err != nil {
			t.Fatal(err)
		}
		r := newMboxReader(f, 1<<30)
		for i, m := range msgs {
			got, err := r.Next()
			if err != nil {
				t.Fatalf("%s message %d: %v", mailbox, i, err)
			}
			if !bytes.Equal(got.Data, m.Body) || !got.Date.Equal(m.Date) {
				t.Errorf("%s message %d: %q %v, IMAP reads %q %v", mailbox, i, got.Data, got.Date, m.Body, m.Date)
			}
		}
		if _, err := r.Next(); err == nil {
			t.Errorf("%s has more messages than IMAP shows", mailbox)
		}
		f.Close()
	}
	te.fails(exitError, "is not empty", alicePW+"\n", "export", alice, dir, "--password-stdin")
	one := filepath.Join(te.dir, "one")
	r = te.ok(alicePW+"\n", "export", alice, one, "--password-stdin", "--mailbox", "Archive/2024")
	if !strings.Contains(r.stdout, "exported 1 message(s) of 1 mailbox(es)") {
		t.Errorf("one mailbox: %q", r.stdout)
	}

	// The export imports into bob as the same mail.
	te.ok("", "import", bob, dir)
	after := byMailbox(fetchMailboxes(t, s, te.dataDir, bob, alicePW))
	for mailbox, msgs := range byMailbox(before) {
		if len(after[mailbox]) != len(msgs) {
			t.Errorf("bob's %s: %d messages, alice's %d", mailbox, len(after[mailbox]), len(msgs))
			continue
		}
		for i := range msgs {
			if !bytes.Equal(after[mailbox][i].Body, msgs[i].Body) || !after[mailbox][i].Date.Equal(msgs[i].Date) {
				t.Errorf("bob's %s message %d differs", mailbox, i)
			}
		}
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

func TestMboxFileNames(t *testing.T) {
	for _, name := range []string{"INBOX", "Archive/2024", "..", ".hidden", "a/../b", "100%", `back\slash`, "Été", "tab\there"} {
		f := mboxFileName(name)
		for _, level := range strings.Split(filepath.ToSlash(f), "/") {
			if level == "." || level == ".." || strings.HasPrefix(level, ".") || strings.ContainsAny(level, "\t\\") {
				t.Errorf("mboxFileName(%q) = %q", name, f)
			}
		}
		if back := mailboxOfFile(f); back != name {
			t.Errorf("mailboxOfFile(%q) = %q, want %q", f, back, name)
		}
	}
	if got, err := decodeModifiedUTF7("&AMk-t&AOk-"); err != nil || got != "Été" {
		t.Errorf("decodeModifiedUTF7: %q %v", got, err)
	}
	if got, _ := decodeModifiedUTF7("Tom &- Jerry"); got != "Tom & Jerry" {
		t.Errorf("decodeModifiedUTF7: %q", got)
	}
}
