package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestStatus: `sealmail status [--json]` reports the running server over
// the control socket: its listeners with their open connections, accounts,
// logged-in sessions, storage, the (absent) outbound queue, the
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
	if st.QueueLength != nil || st.LastSweep != nil || !strings.Contains(r.stdout, `"queue_length": null`) {
		t.Errorf("queue and sweep without a queue or sweeper: %s", r.stdout)
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
	for _, want := range []string{"accounts     1", "sessions     1 logged in", "queue        no outbound queue", "imaps    " + s.addr("imaps"),
		"certificate  self-signed, expires", "last sweep   none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
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
