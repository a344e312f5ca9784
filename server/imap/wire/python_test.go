package wire

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"slices"
	"testing"
)

// TestPythonImaplib runs Python's imaplib against the dispatcher: a second
// client, with its own parser and literal handling. python3 is a CI
// requirement (.ci/run installs it): its absence fails the test.
func TestPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test")
	}
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, func(o *Options) {
		o.InsecureAuth = false
		o.TLSConfig = testTLS(t)
	})
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(py, "testdata/imaplib_wire.py", host, port).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		LoginDisabled bool     `json:"logindisabled"`
		Caps          []string `json:"caps"`
		Exists        int      `json:"exists"`
		FetchMeta     string   `json:"fetch_meta"`
		Body          string   `json:"body"`
		Append        string   `json:"append"`
		Search        string   `json:"search"`
		List          []string `json:"list"`
		BadName       string   `json:"bad_name"`
		Store         string   `json:"store"`
		BadNumber     string   `json:"bad_number"`
		Logout        string   `json:"logout"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	want := struct {
		LoginDisabled bool
		Exists        int
		FetchMeta     string
		Body          string
		Append        string
		Search        string
		List          []string
		BadName       string
		Store         string
		BadNumber     string
		Logout        string
	}{true, 1, fmt.Sprintf("1 (UID 1 FLAGS () BODY[] {%d}", len(msg1)), msg1, "[APPENDUID 1 2] APPEND completed", "2",
		[]string{`(\HasNoChildren) "/" "Entw&APw-rfe"`}, "NO [CANNOT] Mailbox name is not valid modified UTF-7",
		`2 (FLAGS (\Flagged \Seen))`, "FETCH command error: BAD [b'[CLIENTBUG] Number out of range']", "BYE"}
	have := want
	have.LoginDisabled, have.Exists, have.FetchMeta, have.Body, have.Append = got.LoginDisabled, got.Exists, got.FetchMeta, got.Body, got.Append
	have.Search, have.List, have.BadName, have.Store, have.BadNumber, have.Logout = got.Search, got.List, got.BadName, got.Store, got.BadNumber, got.Logout
	if !reflect.DeepEqual(have, want) {
		t.Errorf("imaplib saw\n%+v\nwant\n%+v", have, want)
	}
	for _, c := range []string{"IMAP4REV2", "IDLE", "MOVE", "CONDSTORE", "LITERAL+"} {
		if !slices.Contains(got.Caps, c) {
			t.Errorf("capability %s missing after login: %v", c, got.Caps)
		}
	}
}
