package main

import (
	"encoding/json"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// TestCLIHelpGroups: issue 14 found that `sealmail user`, `sealmail user
// --help` and `sealmail help user` said "unknown command". Each must list
// the group's commands; asked-for help goes to standard output with exit
// 0, a bare group (a missing command) to standard error with exit 2.
func TestCLIHelpGroups(t *testing.T) {
	te := newTestEnv(t)
	for _, g := range []string{"user", "key", "filter"} {
		cs, ok := groupCommands(g)
		if !ok {
			t.Fatalf("no group %s", g)
		}
		check := func(what, out string) {
			t.Helper()
			for _, c := range cs {
				if !strings.Contains(out, c.name+" ") && !strings.HasSuffix(strings.TrimSpace(out), c.name) {
					t.Errorf("%s does not list %q:\n%s", what, c.name, out)
				}
			}
			if strings.Contains(strings.ReplaceAll(out, `unknown command "`+g+` frob"`, ""), "unknown command") {
				t.Errorf("%s: %s", what, out)
			}
		}
		r := te.fails(exitUsage, "usage: sealmail", "", g)
		check("sealmail "+g, r.stderr)
		for _, args := range [][]string{{g, "--help"}, {g, "-h"}, {g, "help"}, {"help", g}, {"--data-dir", te.dataDir, g, "--help"}} {
			r := te.ok("", args...)
			check("sealmail "+strings.Join(args, " "), r.stdout)
		}
		r = te.fails(exitUsage, `unknown command "`+g+` frob"`, "", g, "frob")
		check("sealmail "+g+" frob", r.stderr)
	}
	// Top-level help names every group and every command outside one.
	r := te.ok("", "help")
	for _, want := range []string{"user COMMAND", "key COMMAND", "recovery-code", "serve", "version", "config show", "dns DOMAIN"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
	if r2 := te.ok("", "--help"); r2.stdout != r.stdout {
		t.Errorf("--help differs from help:\n%s", r2.stdout)
	}
	// A command's own help goes to standard output too.
	r = te.ok("", "user", "add", "--help")
	if !strings.Contains(r.stdout, "usage: sealmail user add") || !strings.Contains(r.stdout, "-password-stdin") {
		t.Errorf("user add --help:\n%s", r.stdout)
	}
	te.fails(exitUsage, `unknown command "frob"`, "", "help", "frob")
	// Three-word commands: a group's middle word asks for the group.
	r = te.ok("", "filter", "allow", "--help")
	if !strings.Contains(r.stdout, "filter allow add") {
		t.Errorf("filter allow --help:\n%s", r.stdout)
	}
	r = te.ok("", "filter", "allow", "add", "--help")
	if !strings.Contains(r.stdout, "usage: sealmail filter allow add") {
		t.Errorf("filter allow add --help:\n%s", r.stdout)
	}
}

// TestRegisterRefusesClashes: a name is a command or a group, once.
func TestRegisterRefusesClashes(t *testing.T) {
	saved := commands
	t.Cleanup(func() { commands = saved })
	for _, name := range []string{"user add", "user", "serve", "serve now", "", "a b c d", "help", " user x", "filter allow"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("register(%q) did not panic", name)
				}
			}()
			commands = saved
			register(&command{name: name, run: runVersion})
		}()
	}
	commands = saved
	register(&command{name: "frob nicate", run: runVersion})
	if c, _ := findCommand([]string{"frob", "nicate"}); c == nil {
		t.Error("a new group's command is not found")
	}
}

// TestVersion: `sealmail version` and `--version` print what the build
// stamped into the binary (go version -m is the authority), and the
// commit when the build had version control information.
func TestVersion(t *testing.T) {
	te := newTestEnv(t)
	r := te.ok("", "version", "--json")
	var got buildInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("version --json: %v\n%s", err, r.stdout)
	}
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	// go version -m prints "path: goversion", then the build info
	// lines indented by a tab.
	first, rest, _ := strings.Cut(string(out), "\n")
	bi, err := debug.ParseBuildInfo(strings.ReplaceAll("\n"+rest, "\n\t", "\n")[1:])
	if err != nil {
		t.Fatalf("parse go version -m: %v\n%s", err, out)
	}
	want := buildInfoFrom(buildInfo{Module: "github.com/sealmail/sealmail", Version: "unknown",
		Go: got.Go, Platform: got.Platform}, bi)
	want.Go = strings.Fields(first)[1]
	if got != want {
		t.Errorf("version --json = %+v, want %+v", got, want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := te.ok("", args...)
		if !strings.Contains(r.stdout, "sealmail "+want.Version) || !strings.Contains(r.stdout, want.Go) ||
			!strings.Contains(r.stdout, "commit: ") {
			t.Errorf("%v:\n%s", args, r.stdout)
		}
		if want.Commit != "" && !strings.Contains(r.stdout, want.Commit) {
			t.Errorf("%v lacks the commit %s:\n%s", args, want.Commit, r.stdout)
		}
	}
}

// TestBuildInfoFrom reads the VCS stamp, which test builds from a git
// worktree or with -buildvcs=false lack.
func TestBuildInfoFrom(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/sealmail/sealmail", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-01T00:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	got := buildInfoFrom(buildInfo{}, bi)
	want := buildInfo{Module: "github.com/sealmail/sealmail", Version: "v1.2.3", Commit: "0123456789abcdef0123",
		Time: "2026-12-01T00:00:00Z", Modified: true, Go: "go1.99"}
	if got != want {
		t.Errorf("buildInfoFrom = %+v, want %+v", got, want)
	}
	if s := got.String(); s != "v1.2.3 0123456789ab+modified go1.99" {
		t.Errorf("String() = %q", s)
	}
}

// TestEveryGroupHasSummary: every group of commands has registerGroup's
// summary for `sealmail help` (audit and escrow once had none: they
// bypassed register).
func TestEveryGroupHasSummary(t *testing.T) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(words) > 1 && groups[words[0]] == "" {
			t.Errorf("group %q of %q has no summary", words[0], c.name)
		}
	}
}
