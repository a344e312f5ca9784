package main

import (
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/server/retention"
)

// keepPreset keeps default mail at least 30 days and at most 90.
const keepPreset = `id: KEEP
name: Test — keep 30 to 90 days
version: 1
notice: Not legal advice; a test preset.
sources: ["the test"]
rules:
  - {class: default, min: 30d, max: 90d, start: receipt}
`

// pop3DeleScript logs in with Python's poplib over POP3S, prints the
// EXPIRE capability before and after the login, deletes message 1 and
// quits.
const pop3DeleScript = `import json, poplib, ssl, sys
host, port, ca, user, pw = sys.argv[1:6]
p = poplib.POP3_SSL(host, int(port), context=ssl.create_default_context(cafile=ca))
out = {"before": p.capa().get("EXPIRE")}
p.user(user)
p.pass_(pw)
out["after"] = p.capa().get("EXPIRE")
out["stat"] = list(p.stat())
out["dele"] = p.dele(1).decode()
out["quit"] = p.quit().decode()
print(json.dumps(out))
`

// TestPOP3DeleteUnderRetention: a POP3 DELE and QUIT of mail under
// minimum retention takes the same deletion decision as IMAP's EXPUNGE:
// gone for the user, kept in the retention vault. And CAPA's EXPIRE says
// how long the policy keeps the account's mail (RFC 2449 §6.7), not
// NEVER, since the sweeper deletes mail past its maximum.
func TestPOP3DeleteUnderRetention(t *testing.T) {
	const alice = "alice@example.org"
	py := python3(t)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	te.ok("", "policy", "import", writeFile(t, te.dir, "keep.yaml", keepPreset))
	te.ok("", "policy", "assign", "KEEP", "user:"+alice)
	s := te.serve()
	for _, subj := range []string{"first", "second"} {
		if err := sendTo(s.addr("smtp"), []string{alice}, "Subject: "+subj+"\r\n\r\nkept 30 days\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	ca := caFile(t, te.dataDir, t.TempDir())
	script := writeFile(t, te.dir, "dele.py", pop3DeleScript)
	host, port, _ := net.SplitHostPort(s.addr("pop3s"))
	out, err := exec.Command(py, script, host, port, ca, alice, alicePW).CombinedOutput()
	if err != nil {
		t.Fatalf("poplib: %v\n%s\n%s", err, out, s.logs())
	}
	var got struct {
		Before, After []string
		Stat          []int
		Dele, Quit    string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("poplib output %q: %v", out, err)
	}
	if strings.Join(got.Before, " ") != "90 USER" || strings.Join(got.After, " ") != "90" {
		t.Errorf("EXPIRE before login %q, after %q; want 90 USER and 90", got.Before, got.After)
	}
	if len(got.Stat) != 2 || got.Stat[0] != 2 || !strings.HasPrefix(got.Dele, "+OK") || !strings.Contains(got.Quit, "1 message deleted") {
		t.Errorf("poplib session: %+v", got)
	}
	// Gone for the user, over IMAP too; kept in the vault.
	if n := inboxCount(t, s, te.dataDir, alice); n != 1 {
		t.Errorf("INBOX holds %d after DELE", n)
	}
	var vault []retention.VaultItem
	jsonOut(t, te.ok("", "vault", "list", alice, "--json"), &vault)
	if len(vault) != 1 || vault[0].Mailbox != "INBOX" || vault[0].UID != 1 || vault[0].Reason != "expunge" {
		t.Errorf("vault after DELE: %+v", vault)
	}
}
