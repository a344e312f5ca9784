package imap

import (
	"context"
	"encoding/json"
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
	in, err := json.Marshal(cmds)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := e.python(context.Background(), e.tlsAddr, "imaplib_ext.py", user, password)
	cmd.Stdin = strings.NewReader(string(in))
	out := pyOutput(e.t, cmd)
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
