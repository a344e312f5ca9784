package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/server/smtp/sink"
)

// TestStatus: `sealmail status [--json]` reports the running server over
// the control socket: its listeners with their open connections, accounts,
// logged-in sessions, storage, the outbound queue's entries, the
// certificate and the (absent) last sweep; without a server it says so
// and exits 3.
func TestStatus(t *testing.T) {
	te := newTestEnv(t)
	r := te.fails(exitNotRunning, "", "", "status")
	if !strings.Contains(r.stdout, "sealmail is not running on "+te.dataDir) {
		t.Errorf("status without a server: %q", r.stdout)
	}
	r = te.fails(exitNotRunning, "", "", "status", "--json")
	var down statusReport
	if err := json.Unmarshal([]byte(r.stdout), &down); err != nil || down.Running {
		t.Errorf("status --json without a server: %q, %v", r.stdout, err)
	}
	if _, err := statOK(te.dataDir + "/store"); err == nil {
		t.Error("status without a server created the store")
	}

	// A destination that defers every recipient keeps one entry queued.
	sk := startSink(t, sink.Options{Rcpt: func(string) error {
		return sink.Reply(451, "4.7.1", "greylisted, try again")
	}})
	te.env = append(te.env, "SEALMAIL_OUTBOUND_TRANSPORTS=slow.test="+sk.Addr)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, te.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	r = te.ok("", "status", "--json")
	var st statusReport
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if !st.Running || st.Accounts != 1 || st.Sessions != 1 || st.DataDir != te.dataDir || st.Started.IsZero() {
		t.Errorf("status: %+v", st)
	}
	if st.QueueLength == nil || *st.QueueLength != 0 || st.LastSweep != nil || !strings.Contains(r.stdout, `"queue_length": 0`) {
		t.Errorf("queue and sweep with an empty queue and no sweeper: %s", r.stdout)
	}
	names := map[string]listenerStatus{}
	for _, l := range st.Listeners {
		names[l.Name] = l
	}
	for _, n := range []string{"control", "smtp", "imap", "imaps", "https"} {
		if _, ok := names[n]; !ok {
			t.Errorf("status lacks listener %s: %+v", n, st.Listeners)
		}
	}
	if l := names["imaps"]; l.Addr != s.addr("imaps") || l.Connections == nil || *l.Connections != 1 {
		t.Errorf("imaps in status: %+v", l)
	}
	if st.Certificate.Source != "self-signed" || st.Certificate.NotAfter.IsZero() || len(st.Certificate.Fingerprint) != 95 {
		t.Errorf("certificate: %+v", st.Certificate)
	}
	if _, ok := st.Storage.Files["vlog"]; !ok {
		t.Errorf("storage: %+v", st.Storage)
	}
	r = te.ok("", "status")
	for _, want := range []string{"accounts     1", "sessions     1 logged in", "queue        0 entries", "imaps    " + s.addr("imaps"),
		"certificate  self-signed, expires", "last sweep   none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	msg := "From: alice@example.org\r\nTo: later@slow.test\r\nSubject: status\r\n\r\nDeferred.\r\n"
	if err := submit(t, s, te.dataDir, "alice@example.org", alicePW, "alice@example.org", []string{"later@slow.test"}, msg); err != nil {
		t.Fatalf("submit: %v\n%s", err, s.logs())
	}
	waitUntil(t, "status to count the queued entry", func() bool {
		return strings.Contains(te.ok("", "status").stdout, "queue        1 entry\n")
	})
	if err := json.Unmarshal([]byte(te.ok("", "status", "--json").stdout), &st); err != nil || st.QueueLength == nil || *st.QueueLength != 1 {
		t.Errorf("status --json with one queued entry: %+v, %v", st.QueueLength, err)
	}
	c.Logout().Wait()
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

func statOK(path string) (bool, error) {
	_, err := os.Stat(path)
	return err == nil, err
}
