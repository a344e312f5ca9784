package imap

import (
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// pyResult is one command's outcome as testdata/imaplib_ext.py reports it.
type pyResult struct {
	Tag      string           `json:"tag"`
	Status   string           `json:"status"`
	Text     string           `json:"text"`
	Untagged map[string][]any `json:"untagged"`
}

// first returns the first untagged response called name, as text ("" if
// none).
func (r pyResult) first(name string) string {
	l := r.Untagged[name]
	if len(l) == 0 {
		return ""
	}
	return pyText(l[0])
}

// all returns every untagged response called name, as text.
func (r pyResult) all(name string) []string {
	var out []string
	for _, v := range r.Untagged[name] {
		out = append(out, pyText(v))
	}
	return out
}

func pyText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, pyText(x))
		}
		return strings.Join(parts, "")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// runImaplib runs cmds through Python's imaplib (testdata/imaplib_ext.py)
// as user, over implicit TLS, and returns each command's result. python3
// is required: a test that needs a real second client does not skip.
func (e *testEnv) runImaplib(user, password string, cmds ...[]string) []pyResult {
	e.t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		e.t.Fatalf("python3 is required for this test: %v", err)
	}
	cert, _ := testCert(e.t)
	ca := filepath.Join(e.t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		e.t.Fatal(err)
	}
	in, err := json.Marshal(cmds)
	if err != nil {
		e.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.tlsAddr)
	cmd := exec.Command(py, "testdata/imaplib_ext.py", host, port, ca, user, password)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		e.t.Fatalf("imaplib: %v\n%s\n%s", err, out, stderr)
	}
	var res []pyResult
	if err := json.Unmarshal(out, &res); err != nil {
		e.t.Fatalf("imaplib output %q: %v", out, err)
	}
	if len(res) != len(cmds) {
		e.t.Fatalf("imaplib ran %d commands of %d", len(res), len(cmds))
	}
	return res
}

// pycmd builds one command for runImaplib.
func pycmd(name string, args ...string) []string { return append([]string{name}, args...) }
