package imap

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestID: ID (RFC 2971) before and after login, from go-imap's client and
// Python's imaplib: the server names itself, and the client's fields are
// logged bounded and sanitised, never as sent.
func TestID(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)
	got, err := c.ID(&imap.IDData{Name: "gotest\x1b[2Jcleared", Version: strings.Repeat("v", 500)}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "sealmail" {
		t.Errorf("ID name = %q, want sealmail", got.Name)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, "client ID") || !strings.Contains(logs, "gotest?[2Jcleared") || strings.Contains(logs, strings.Repeat("v", 100)) {
		t.Errorf("client ID not logged bounded and sanitised:\n%s", logs)
	}
	res := env.runImaplib(alice, alicePW, pycmd("ID", `("name" "imaplib" "os" NIL)`), pycmd("ID", "NIL"))
	for i, r := range res {
		if r.Status != "OK" || !strings.Contains(r.first("ID"), `"name" "sealmail"`) {
			t.Errorf("ID %d: %s %v", i, r.Status, r.Untagged)
		}
	}
}

func TestServerIDVersion(t *testing.T) {
	if id := serverID(false, "v1.2.3"); id.Name != "sealmail" || id.Version != "v1.2.3" {
		t.Errorf("serverID = %+v", id)
	}
	if id := serverID(true, "v1.2.3"); id.Version != "" {
		t.Errorf("serverID with the version hidden = %+v", id)
	}
}
