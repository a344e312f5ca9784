package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilterCLI runs the allow and deny commands without a server:
// kinds are recognised and canonicalised, duplicates and unknown
// accounts refused with clear messages, per-account entries kept apart,
// and removal checks the list.
func TestFilterCLI(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	for _, c := range []struct{ args, want string }{
		{"filter deny add 192.0.2.7", "added deny entry 1: cidr 192.0.2.7/32 (organisation)"},
		{"filter deny add 2001:DB8::/32 --note v6", "added deny entry 2: cidr 2001:db8::/32 (organisation)"},
		{"filter allow add Partner.EXAMPLE --user Alice@example.org", "added allow entry 3: domain partner.example (for alice@example.org)"},
		{"filter allow add @bücher.example", "added allow entry 4: domain xn--bcher-kva.example (organisation)"},
		{"filter deny add Spammer@Bad.Example", "added deny entry 5: address spammer@bad.example (organisation)"},
	} {
		if out := te.ok("", strings.Fields(c.args)...); !strings.Contains(out.stdout, c.want) {
			t.Errorf("%s: %q, want %q", c.args, out.stdout, c.want)
		}
	}
	te.fails(1, "already on the deny list", "", "filter", "deny", "add", "192.0.2.7/32")
	te.fails(1, "no account nobody@example.org", "", "filter", "allow", "add", "x.example", "--user", "nobody@example.org")
	te.fails(1, "not a network, domain or address", "", "filter", "allow", "add", "not a domain!")
	te.fails(2, "want exactly one VALUE", "", "filter", "allow", "add")
	var rules []ruleInfo
	if err := json.Unmarshal([]byte(te.ok("", "filter", "allow", "list", "--json").stdout), &rules); err != nil || len(rules) != 2 {
		t.Fatalf("allow list: %+v, %v", rules, err)
	}
	if err := json.Unmarshal([]byte(te.ok("", "filter", "allow", "list", "--user", "alice@example.org", "--json").stdout), &rules); err != nil ||
		len(rules) != 1 || rules[0].Value != "partner.example" || rules[0].Owner != "alice@example.org" {
		t.Errorf("alice's allow list: %+v, %v", rules, err)
	}
	if out := te.ok("", "filter", "deny", "list").stdout; !strings.Contains(out, "2001:db8::/32") || !strings.Contains(out, "v6") || strings.Contains(out, "partner") {
		t.Errorf("deny list:\n%s", out)
	}
	te.fails(1, "entry 1 is on the deny list, not the allow list", "", "filter", "allow", "remove", "1")
	te.ok("", "filter", "deny", "remove", "1")
	te.fails(1, "no entry 1", "", "filter", "deny", "remove", "1")
	// Training refuses a wrong password, and needs a label.
	mbox := filepath.Join(te.dir, "x.mbox")
	os.WriteFile(mbox, []byte("From a@b Mon Jan  1 00:00:00 2026\nSubject: x\n\nhello\n"), 0o600)
	te.fails(1, "wrong address or password", "not the password\n", "filter", "train", "alice@example.org", "--spam", mbox, "--password-stdin")
	te.fails(2, "say --spam or --ham", "", "filter", "train", "--org", mbox)
	if out := te.ok("", "filter", "train", "--org", "--spam", mbox); !strings.Contains(out.stdout, "organisation's model with 1 messages as spam") {
		t.Errorf("train --org: %q", out.stdout)
	}
}
