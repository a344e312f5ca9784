package main

import (
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestSweepStatusAndProgress: `retention sweep` through the running
// server draws its progress on a terminal; `sealmail status` shows the
// last sweep (when, what it destroyed, how long it took) as text and
// JSON; the served sweeper logs its progress; and an IMAP session with
// the mailbox selected is told EXPUNGE when the sweeper destroys its
// mail.
func TestSweepStatusAndProgress(t *testing.T) {
	const bob = "bob@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", bob, "--password-stdin")
	te.ok("", "policy", "import", writeFile(t, te.dir, "zero.yaml", zeroDayPreset))
	te.ok("", "policy", "assign", "ZERO", "user:"+bob)

	// The periodic sweep off: the operator sweeps.
	te.env = append(te.env, "SEALMAIL_RETENTION_SWEEP_INTERVAL=0")
	s := te.serve()
	if r := te.ok("", "status"); !strings.Contains(r.stdout, "last sweep   none") {
		t.Errorf("status before any sweep:\n%s", r.stdout)
	}
	for range 3 {
		if err := sendTo(s.addr("smtp"), []string{bob}, "Subject: gone soon\r\n\r\nzero days\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	r := te.runOnTerminal("", "retention", "sweep")
	if r.code != 0 || !strings.Contains(r.stdout, "sweep destroyed 3 messages") {
		t.Fatalf("retention sweep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "\rsweep    3 messages") {
		t.Errorf("no progress on the terminal: %q", r.stderr)
	}
	var st statusReport
	jsonOut(t, te.ok("", "status", "--json"), &st)
	ls := st.LastSweep
	if ls == nil || ls.Destroyed != 3 || ls.FromVault != 0 || ls.Bytes <= 0 || ls.Finished.Before(ls.Started) || ls.Started.IsZero() || ls.DurationMS < 0 {
		t.Errorf("status --json: last sweep %+v", ls)
	}
	if r := te.ok("", "status"); !strings.Contains(r.stdout, "destroyed 3 messages (") || !strings.Contains(r.stdout, "0 from the vault") {
		t.Errorf("status:\n%s", r.stdout)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The served sweeper, every second. A hold keeps bob's next message
	// until his IMAP session has seen it; released, the sweeper destroys
	// it and the session is told.
	te.env = append(te.env, "SEALMAIL_RETENTION_SWEEP_INTERVAL=1s")
	s = te.serve()
	te.ok("", "hold", "place", "user:"+bob, "--matter", "M-1", "--reason", "until IMAP sees it")
	var expunges atomic.Int32
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{
		TLSConfig:             trustSelfSigned(t, te.dataDir),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Expunge: func(uint32) { expunges.Add(1) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(bob, alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sendTo(s.addr("smtp"), []string{bob}, "Subject: held\r\n\r\nheld, then swept\r\n"); err != nil {
		t.Fatal(err)
	}
	noopUntil := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !done(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s (logs:\n%s)", what, s.logs())
			}
			if err := c.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	noopUntil("EXISTS 1", func() bool { return c.Mailbox().NumMessages == 1 })
	te.ok("", "hold", "release", "1", "--reason", "seen")
	noopUntil("EXPUNGE from the sweeper", func() bool { return expunges.Load() == 1 })
	if n := c.Mailbox().NumMessages; n != 0 {
		t.Errorf("after the sweep the session counts %d messages", n)
	}
	c.Logout().Wait()
	// The sweep logs its result after the purge that follows.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.logs(), `msg="retention sweep" messages=1 from_vault=0`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the served sweeper logged no result:\n%s", s.logs())
		}
	}
	if logs := s.logs(); !strings.Contains(logs, `msg=progress job="retention sweep" messages=1`) {
		t.Errorf("the served sweeper logged no progress:\n%s", logs)
	}
}
