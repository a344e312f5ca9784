package imap

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	netsmtp "net/smtp"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// pyNotify is one session of Python's imaplib (testdata/imaplib_notify.py)
// driven step by step, to see what the server sends while no command runs.
type pyNotify struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

type pyNotifyResult struct {
	Status  string   `json:"status"`
	Text    string   `json:"text"`
	Lines   []string `json:"lines"`
	Matched bool     `json:"matched"`
	Error   string   `json:"error"`
}

// notifyWait bounds how long a test waits for a notification that must
// come; it fails the test, it measures nothing.
const notifyWait = "20"

func (e *testEnv) pyNotify(t *testing.T, user, password string) *pyNotify {
	t.Helper()
	p := &pyNotify{t: t, cmd: e.python(context.Background(), e.tlsAddr, "imaplib_notify.py", user, password)}
	var err error
	p.cmd.Stderr = os.Stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = bufio.NewScanner(stdout)
	p.out.Buffer(nil, 1<<20)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.in.Close()
		p.cmd.Wait()
	})
	return p
}

func (p *pyNotify) do(req map[string]string) pyNotifyResult {
	p.t.Helper()
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("imaplib: %v", err)
	}
	if !p.out.Scan() {
		p.t.Fatalf("imaplib ended: %v", p.out.Err())
	}
	var r pyNotifyResult
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		p.t.Fatalf("imaplib said %q: %v", p.out.Bytes(), err)
	}
	if r.Error != "" {
		p.t.Fatalf("imaplib: %s", r.Error)
	}
	return r
}

// run sends one command and returns its result; status is checked.
func (p *pyNotify) run(line, wantStatus string) pyNotifyResult {
	p.t.Helper()
	r := p.do(map[string]string{"op": "cmd", "line": line})
	if r.Status != wantStatus {
		p.t.Fatalf("%s: %s %s (want %s); untagged %q", line, r.Status, r.Text, wantStatus, r.Lines)
	}
	return r
}

// wait returns the lines the server sent unasked up to the first that
// matches re; it fails the test if none comes.
func (p *pyNotify) wait(re string) []string {
	p.t.Helper()
	r := p.do(map[string]string{"op": "wait", "match": re, "secs": notifyWait})
	if !r.Matched {
		p.t.Fatalf("no line matching %q; got %q", re, r.Lines)
	}
	return r.Lines
}

func (p *pyNotify) send(data string) {
	p.t.Helper()
	p.do(map[string]string{"op": "send", "data": data})
}

func anyMatch(lines []string, re string) bool {
	rx := regexp.MustCompile("(?i)" + re)
	for _, l := range lines {
		if rx.MatchString(l) {
			return true
		}
	}
	return false
}

func notifyAppend(t *testing.T, c *imapclient.Client, mailbox, subject string) {
	t.Helper()
	msg := testMessage(subject, "body of "+subject)
	a := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(); err != nil {
		t.Fatalf("APPEND %s: %v", mailbox, err)
	}
}

// TestNotifyStatus: NOTIFY SET STATUS for the personal namespace gives
// each mailbox's STATUS at once, then a STATUS whenever another session
// or an SMTP delivery adds, flags or removes mail in one; the selected
// mailbox is not reported by STATUS.
func TestNotifyStatus(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	smtpAddr := startSMTP(t, env)
	env.deliver(alice, "Archive", testMessage("old", "already there"))

	p := env.pyNotify(t, alice, alicePW)
	caps := p.run("CAPABILITY", "OK")
	if !anyMatch(caps.Lines, `^\* CAPABILITY .*\bNOTIFY\b`) {
		t.Fatalf("NOTIFY not advertised: %q", caps.Lines)
	}
	r := p.run("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge FlagChange))", "OK")
	if !anyMatch(r.Lines, `^\* STATUS "Archive" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$`) ||
		!anyMatch(r.Lines, `^\* STATUS "INBOX" \(MESSAGES 0 UIDNEXT 1 `) {
		t.Fatalf("initial STATUS: %q", r.Lines)
	}

	// Another IMAP session appends.
	b := env.dial(alice, alicePW)
	notifyAppend(t, b, "Drafts", "draft")
	p.wait(`^\* STATUS "Drafts" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1 HIGHESTMODSEQ \d+\)$`)

	// SMTP delivers to INBOX.
	if err := netsmtp.SendMail(smtpAddr, nil, "carol@example.net", []string{alice}, testMessage("smtp", "by SMTP")); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	p.wait(`^\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 `)

	// Flags and expunge in a mailbox the other session selects.
	if _, err := b.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* STATUS "Archive" \(MESSAGES 1 .*UNSEEN 0 `)
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* STATUS "Archive" \(MESSAGES 0 `)

	// The selected mailbox is not reported by STATUS: a delivery to INBOX
	// while INBOX is selected (and no SELECTED filter) shows after a
	// command, as EXISTS; a later change elsewhere comes on its own.
	p.run("SELECT INBOX", "OK")
	env.deliver(alice, "", testMessage("while selected", "x"))
	notifyAppend(t, b, "Drafts", "second draft")
	lines := p.wait(`^\* STATUS "Drafts" \(MESSAGES 2 `)
	if anyMatch(lines, `STATUS "INBOX"|EXISTS`) {
		t.Errorf("selected mailbox reported while no command runs: %q", lines)
	}
	r = p.run("NOOP", "OK")
	if !anyMatch(r.Lines, `^\* 2 EXISTS$`) || anyMatch(r.Lines, `STATUS "INBOX"`) {
		t.Errorf("NOOP after a delivery to the selected INBOX: %q", r.Lines)
	}

	// NOTIFY NONE: nothing more.
	p.run("NOTIFY NONE", "OK")
	notifyAppend(t, b, "Drafts", "third draft")
	r = p.run("NOOP", "OK")
	if anyMatch(r.Lines, `STATUS`) {
		t.Errorf("STATUS after NOTIFY NONE: %q", r.Lines)
	}
}

// TestNotifySelected: with a SELECTED filter, new mail (with MessageNew's
// fetch attributes), flag changes and expunges in the selected mailbox
// are told while no command runs; with SELECTED-DELAYED, expunges wait
// for a command.
func TestNotifySelected(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("first", "one"))

	p := env.pyNotify(t, alice, alicePW)
	p.run("SELECT INBOX", "OK")
	p.run("NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge FlagChange))", "OK")

	env.deliver(alice, "", testMessage("second", "two"))
	lines := p.wait(`^\* 2 FETCH \(UID 2 BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{\d+\}$`)
	if !anyMatch(lines, `^\* 2 EXISTS$`) {
		t.Errorf("no EXISTS before MessageNew's FETCH: %q", lines)
	}
	p.wait(`^Subject: second$`)

	b := env.dial(alice, alicePW)
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* 1 FETCH \(.*FLAGS \(.*\\Flagged.*\)`)
	if err := b.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* 1 EXPUNGE$`)

	// SELECTED-DELAYED: an expunge by the other session is held back
	// while a later delivery is told at once.
	p.run("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))", "OK")
	if err := b.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	env.deliver(alice, "", testMessage("third", "three"))
	lines = p.wait(`^\* 2 EXISTS$`)
	if anyMatch(lines, `EXPUNGE`) {
		t.Errorf("SELECTED-DELAYED sent EXPUNGE while no command ran: %q", lines)
	}
	r := p.run("NOOP", "OK")
	if !anyMatch(r.Lines, `^\* 1 EXPUNGE$`) {
		t.Errorf("the held EXPUNGE did not come with NOOP: %q", r.Lines)
	}
}

// TestNotifyMailboxNames: MailboxName and SubscriptionChange give LIST
// responses for a mailbox named before it exists (created later), a
// rename (OLDNAME), a subscription and a deletion (\NonExistent); the
// named mailbox's new mail gives STATUS once it exists.
func TestNotifyMailboxNames(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	p := env.pyNotify(t, alice, alicePW)
	r := p.run(`NOTIFY SET STATUS (MAILBOXES Later (MessageNew MessageExpunge MailboxName)) (SUBTREE Projects (MailboxName SubscriptionChange))`, "OK")
	if anyMatch(r.Lines, `STATUS`) {
		t.Errorf("STATUS for a mailbox that does not exist: %q", r.Lines)
	}
	b := env.dial(alice, alicePW)
	if err := b.Create("Later", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(.*\) "/" "Later"$`)
	notifyAppend(t, b, "Later", "later")
	p.wait(`^\* STATUS "Later" \(MESSAGES 1 UIDNEXT 2 `)

	if err := b.Create("Projects/a", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(.*\) "/" "Projects/a"$`)
	if err := b.Rename("Projects/a", "Projects/b", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(.*\) "/" "Projects/b" \("OLDNAME" \("Projects/a"\)\)$`)
	if err := b.Subscribe("Projects/b").Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(.*\\Subscribed.*\) "/" "Projects/b"$`)

	if err := b.Delete("Later").Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(\\NonExistent\) "/" "Later"$`)
	// Not covered: nothing.
	if err := b.Create("Elsewhere", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	r = p.run("NOOP", "OK")
	if anyMatch(r.Lines, `Elsewhere`) {
		t.Errorf("LIST for a mailbox no filter covers: %q", r.Lines)
	}
}

// TestNotifyOverflow: a session that falls behind (here: in the middle of
// an APPEND whose literal it has not sent) gets NOTIFICATIONOVERFLOW once
// its bounded queue is full, and NOTIFY is off after it.
func TestNotifyOverflow(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.srv.events.maxNames = 4
	p := env.pyNotify(t, alice, alicePW)
	p.run("NOTIFY SET (PERSONAL (MailboxName))", "OK")

	msg := "Subject: x\r\n\r\nx\r\n"
	p.send("A1 APPEND INBOX {" + strconv.Itoa(len(msg)) + "}\r\n")
	p.wait(`^\+`)
	b := env.dial(alice, alicePW)
	for i := range 6 {
		if err := b.Create("Box"+strconv.Itoa(i), nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	p.send(msg + "\r\n")
	lines := p.wait(`^A1 OK`)
	if !anyMatch(lines, `^\* OK \[NOTIFICATIONOVERFLOW\]`) || anyMatch(lines, `LIST`) {
		t.Fatalf("want NOTIFICATIONOVERFLOW and no LIST: %q", lines)
	}
	if err := b.Create("After", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	r := p.run("NOOP", "OK")
	if anyMatch(r.Lines, `LIST`) {
		t.Errorf("LIST after the overflow: %q", r.Lines)
	}
	env.srv.events.mu.Lock()
	n := len(env.srv.events.subs)
	env.srv.events.mu.Unlock()
	if n != 0 {
		t.Errorf("%d accounts still subscribed after the overflow", n)
	}
}

// TestNotifyRefused: unsupported events, fetch attributes outside
// SELECTED and bad names are refused and change nothing.
func TestNotifyRefused(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	p := env.pyNotify(t, alice, alicePW)
	r := p.run("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))", "NO")
	if !strings.HasPrefix(r.Text, "[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]") {
		t.Errorf("unsupported event: %s", r.Text)
	}
	p.run("NOTIFY SET (INBOXES (MessageNew (UID) MessageExpunge))", "BAD")
	p.run("NOTIFY SET (MAILBOXES (\"a//b\") (MessageNew MessageExpunge))", "NO")
	p.run("NOTIFY SET (SELECTED (MessageNew)) (SELECTED-DELAYED (MessageNew))", "BAD")
	env.srv.events.mu.Lock()
	n := len(env.srv.events.subs)
	env.srv.events.mu.Unlock()
	if n != 0 {
		t.Errorf("a refused NOTIFY subscribed")
	}
	// A refused NOTIFY SET leaves the previous one in force.
	p.run("NOTIFY SET (INBOXES (MessageNew MessageExpunge))", "OK")
	p.run("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))", "NO")
	env.deliver(alice, "", testMessage("still", "on"))
	p.wait(`^\* STATUS "INBOX" \(MESSAGES 1 `)
}

// TestNotifyDuringIdle: NOTIFY's STATUS and LIST responses come during
// IDLE as well.
func TestNotifyDuringIdle(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	p := env.pyNotify(t, alice, alicePW)
	p.run("SELECT INBOX", "OK")
	p.run("NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))", "OK")
	p.send("I1 IDLE\r\n")
	p.wait(`^\+`)
	env.deliver(alice, "Archive", testMessage("archived", "x"))
	p.wait(`^\* STATUS "Archive" \(MESSAGES 1 UIDNEXT 2 `)
	b := env.dial(alice, alicePW)
	if err := b.Create("Fresh", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	p.wait(`^\* LIST \(.*\) "/" "Fresh"$`)
	p.send("DONE\r\n")
	p.wait(`^I1 OK`)
}
