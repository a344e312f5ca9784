package imap

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPythonImaplib runs a second, independent client against the server.
func TestPythonImaplib(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	msg := testMessage("py", "Text with the python canary inside.")
	env.deliver(alice, "", msg)

	out := pyOutput(t, env.python(context.Background(), env.addr, "imaplib_client.py", alice, alicePW))
	var got struct {
		LoginDisabled   bool     `json:"logindisabled_before_tls"`
		List            []string `json:"list"`
		Exists          int      `json:"exists"`
		UnseenCode      []string `json:"unseen_code"`
		Body            string   `json:"body"`
		FetchMeta       string   `json:"fetch_meta"`
		SearchText      string   `json:"search_text"`
		UIDSearchUnseen string   `json:"uid_search_unseen"`
		AppendUID       bool     `json:"appenduid"`
		AppendedSubject string   `json:"appended_subject"`
		AppendedFlags   string   `json:"appended_flags"`
		Store           string   `json:"store"`
		Status          string   `json:"status"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !got.LoginDisabled {
		t.Errorf("LOGINDISABLED not advertised before STARTTLS")
	}
	if len(got.List) != 6 || !strings.Contains(strings.Join(got.List, "\n"), `\Sent`) {
		t.Errorf("LIST = %q", got.List)
	}
	if got.Exists != 1 || len(got.UnseenCode) != 1 || got.UnseenCode[0] != "1" {
		t.Errorf("SELECT: exists %d unseen %v", got.Exists, got.UnseenCode)
	}
	if got.Body != string(msg) {
		t.Errorf("BODY.PEEK[] = %q", got.Body)
	}
	if !strings.Contains(got.FetchMeta, "UID 1") || !strings.Contains(got.FetchMeta, "RFC822.SIZE "+itoa(len(msg))) {
		t.Errorf("FETCH meta = %q", got.FetchMeta)
	}
	if got.SearchText != "1" || got.UIDSearchUnseen != "1" {
		t.Errorf("SEARCH = %q, UID SEARCH = %q", got.SearchText, got.UIDSearchUnseen)
	}
	if !got.AppendUID || got.AppendedSubject != "Subject: from python" || !strings.Contains(got.AppendedFlags, `\Seen`) {
		t.Errorf("APPEND: uid %v subject %q flags %q", got.AppendUID, got.AppendedSubject, got.AppendedFlags)
	}
	if !strings.Contains(got.Store, `\Flagged`) {
		t.Errorf("STORE response = %q", got.Store)
	}
	if !strings.Contains(got.Status, "MESSAGES 2") || !strings.Contains(got.Status, "UNSEEN 1") || !strings.Contains(got.Status, "SIZE ") {
		t.Errorf("STATUS = %q", got.Status)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// python returns a command running a Python script of testdata against
// the listener at addr: python3 script host port ca-file args..., the CA
// file trusting the server's certificate. python3 is required: a test
// that needs a real second client does not skip.
func (e *testEnv) python(ctx context.Context, addr, script string, args ...string) *exec.Cmd {
	e.t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		e.t.Fatalf("python3 is required for this test (.ci/run installs it): %v", err)
	}
	cert, _ := testCert(e.t)
	ca := filepath.Join(e.t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		e.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	return exec.CommandContext(ctx, py, append([]string{"testdata/" + script, host, port, ca}, args...)...)
}

// pyOutput runs cmd and returns its standard output; if it fails, the
// test fails with its output and standard error.
func pyOutput(t testing.TB, cmd *exec.Cmd) []byte {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s\n%s", cmd.Args[1], err, out, stderr)
	}
	return out
}
