package main

import (
	"strings"
	"syscall"
	"testing"
)

// TestMissingAccountWarnings: issue 14 found that a postmaster or alias
// pointing at a missing account got no warning (mail to it then fails
// with 451). serve warns at start-up and `config show` on standard error
// (standard output stays a configuration file), without and with a
// running server; once the accounts exist, neither warns.
func TestMissingAccountWarnings(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_POSTMASTER=admin@example.org", "SEALMAIL_ALIASES=info@example.org=alice@example.org,bob@example.org")
	pmWarn := "postmaster admin@example.org has no account"
	aliasWarn := "aliases: info@example.org delivers to bob@example.org, which has no account"

	// No store yet: config show warns and does not create the store.
	r := te.ok("", "config", "show")
	for _, w := range []string{pmWarn, aliasWarn, "aliases: info@example.org delivers to alice@example.org"} {
		if !strings.Contains(r.stderr, "warning: "+w) {
			t.Errorf("config show without a store: no warning %q:\n%s", w, r.stderr)
		}
	}
	// (outbound.delay_warning is a key: look for warning lines.)
	if strings.Contains("\n"+r.stdout, "\nwarning: ") {
		t.Errorf("warning on standard output:\n%s", r.stdout)
	}
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	r = te.ok("", "config", "show")
	if !strings.Contains(r.stderr, pmWarn) || !strings.Contains(r.stderr, aliasWarn) ||
		strings.Contains(r.stderr, "delivers to alice@example.org") {
		t.Errorf("config show with alice only:\n%s", r.stderr)
	}

	s := te.serve()
	waitLog(t, s, "sealmail started in")
	for _, w := range []string{pmWarn, aliasWarn} {
		if !strings.Contains(s.logs(), w) {
			t.Errorf("serve does not warn %q:\n%s", w, s.logs())
		}
	}
	// Through the running server.
	r = te.ok("", "config", "show")
	if !strings.Contains(r.stderr, pmWarn) || !strings.Contains(r.stderr, aliasWarn) {
		t.Errorf("config show while serving:\n%s", r.stderr)
	}
	te.ok(alicePW+"\n", "user", "add", "admin@example.org", "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	if r := te.ok("", "config", "show"); strings.Contains(r.stderr, "warning") {
		t.Errorf("config show warns with every account there:\n%s", r.stderr)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s = te.serve()
	waitLog(t, s, "sealmail started in")
	if strings.Contains(s.logs(), "has no account") {
		t.Errorf("serve warns with every account there:\n%s", s.logs())
	}
}

// TestMissingPostmasterDefault: without a postmaster setting,
// postmaster@ of each domain must be an account or an alias.
func TestMissingPostmasterDefault(t *testing.T) {
	clearEnv(t)
	c, err := parseConfigBytes([]byte("domains: [example.org, example.net]\naliases:\n  postmaster@example.net: [a@example.net]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := missingAccounts(c, nil)
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	all := strings.Join(s, "\n")
	if len(got) != 2 || !strings.Contains(all, "postmaster is not set and postmaster@example.org has no account") ||
		!strings.Contains(all, "postmaster@example.net delivers to a@example.net") {
		t.Errorf("missingAccounts:\n%s", all)
	}
}

// TestEveryListenerLogsListening: issue 14 found that only SMTP logged
// "listening". Every listener does, once, with its name and address.
func TestEveryListenerLogsListening(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	waitLog(t, s, "sealmail started in")
	logs := s.logs()
	for _, name := range []string{"control", "smtp", "imap", "imaps", "https"} {
		want := "msg=listening proto=" + name + " addr=" + s.addr(name) + " "
		if n := strings.Count(logs, "msg=listening proto="+name+" "); n != 1 || !strings.Contains(logs, want) {
			t.Errorf("%d lines saying %s is listening, want 1 with %q:\n%s", n, name, want, logs)
		}
	}
}
