package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore/tamper"
)

// auditDoc holds the export format and the Python verifier.
const auditDoc = "../../docs/audit.md"

// docScript returns the Python verifier of docs/audit.md, written to a
// file.
func docScript(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(auditDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "## Verifying an export elsewhere")
	if !ok {
		t.Fatal("docs/audit.md lost its verifier section")
	}
	_, rest, ok = strings.Cut(rest, "```python\n")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/audit.md: no python block in the verifier section")
	}
	if n := strings.Count(strings.TrimSpace(script), "\n") + 1; n > 25 {
		t.Errorf("the verifier script is %d lines; the doc promises a short one", n)
	}
	path := filepath.Join(t.TempDir(), "verify.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// python3 is the path of the python3 the tests run their clients with; a
// test requirement (README), so its absence fails the test.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed (README lists the test tools): %v", err)
	}
	return py
}

// python runs the doc's verifier on file and returns its exit code and
// output.
func python(t *testing.T, script, file string) (int, string) {
	t.Helper()
	out, err := exec.Command(python3(t), script, file).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// exportLines parses an export.
func exportLines(t *testing.T, out string) []audit.JSONRecord {
	t.Helper()
	var rs []audit.JSONRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, audit.MaxLineBytes)
	for sc.Scan() {
		var j audit.JSONRecord
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		rs = append(rs, j)
	}
	return rs
}

// auditLifecycle runs account commands and checks what the log says of
// them, then every form of verify and export, with or without a server.
func auditLifecycle(t *testing.T, te *testEnv) {
	actor := cliActor(os.Getuid())
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.ok("", "user", "set", "alice@example.org", "--wkd=false")
	app := te.ok(alicePW+"\n", "user", "app-password", "alice@example.org", "Jörg's phone", "--password-stdin")
	te.ok(alicePW+"\n"+aliceNew+"\n", "user", "passwd", "alice@example.org", "--password-stdin")
	var slots []slotInfo
	if err := json.Unmarshal([]byte(te.ok("", "user", "slots", "alice@example.org", "--json").stdout), &slots); err != nil {
		t.Fatal(err)
	}
	var appSlot uint32
	for _, s := range slots {
		if s.Kind == "app-password" {
			appSlot = s.ID
		}
	}
	te.ok("", "user", "revoke", "alice@example.org", fmt.Sprint(appSlot))
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	te.ok("", "user", "delete", "bob@example.org", "--yes")
	// A refused command changes nothing and records nothing.
	te.fails(exitError, "wrong password", "wrong wrong wrong\n", "user", "app-password", "alice@example.org", "x", "--password-stdin")
	if strings.Contains(app.stdout, "Jörg") && strings.Contains(te.ok("", "audit", "export").stdout, lastLine(app.stdout)) {
		t.Error("an app password reached the audit log")
	}

	exp := te.ok("", "audit", "export").stdout
	rs := exportLines(t, exp)
	want := []struct{ action, scope, detail string }{
		{"account.create", "user:alice@example.org", ""},
		{"account.wkd", "user:alice@example.org", "publish=false"},
		{"slot.add", "user:alice@example.org", "kind=app-password label=Jörg's phone"},
		{"account.password-change", "user:alice@example.org", "kind=password"},
		{"slot.revoke", "user:alice@example.org", "kind=app-password label=Jörg's phone slot=" + fmt.Sprint(appSlot)},
		{"account.create", "user:bob@example.org", ""},
		// The retention service records that the account closed (rules
		// that start at event:account-closed count from it); the server
		// does that on its own.
		{"retention.event", "user:bob@example.org", "event=account-closed"},
		{"account.delete", "user:bob@example.org", ""},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(rs), len(want), exp)
	}
	for i, w := range want {
		r := rs[i]
		by := actor
		if w.action == "retention.event" {
			by = "system"
		}
		if r.Seq != uint64(i+1) || r.Action != w.action || r.Scope != w.scope || r.Actor != by {
			t.Errorf("record %d: %+v, want %s %s by %s", i+1, r, w.action, w.scope, by)
		}
		for _, kv := range strings.Fields(strings.ReplaceAll(w.detail, "Jörg's phone", "Jörg's_phone")) {
			k, v, _ := strings.Cut(kv, "=")
			if got := strings.ReplaceAll(r.Detail[k], " ", "_"); got != v {
				t.Errorf("record %d detail %s = %q, want %q", i+1, k, r.Detail[k], v)
			}
		}
	}

	// audit head names the last record; verify agrees, in text and JSON.
	head := te.ok("", "audit", "head").stdout
	anchor := lastLine(head)
	if want := fmt.Sprintf("%d:%s", len(rs), rs[len(rs)-1].Hash); anchor != want {
		t.Fatalf("audit head ends %q, want %q", anchor, want)
	}
	v := te.ok("", "audit", "verify", "--anchor", anchor)
	if !strings.Contains(v.stdout, fmt.Sprintf("store: %d records, #1 to #%d, chain intact", len(rs), len(rs))) ||
		!strings.Contains(v.stdout, "anchor: "+anchor) {
		t.Errorf("audit verify:\n%s", v.stdout)
	}
	var vj verifyOutcome
	if err := json.Unmarshal([]byte(te.ok("", "audit", "verify", "--json").stdout), &vj); err != nil {
		t.Fatal(err)
	}
	if !vj.OK || vj.Store == nil || vj.Store.Records != len(rs) || vj.Store.Head.Hash != rs[len(rs)-1].Hash {
		t.Errorf("audit verify --json: %+v", vj)
	}

	// The export checks out with the CLI (alone and against the store)
	// and with the documented script.
	file := writeFile(t, te.dir, "audit.jsonl", exp)
	te.ok("", "audit", "verify", "--file", file, "--file-only")
	if r := te.ok("", "audit", "verify", "--file", file); !strings.Contains(r.stdout, fmt.Sprintf("file %s: %d records", file, len(rs))) {
		t.Errorf("verify --file:\n%s", r.stdout)
	}
	script := docScript(t)
	if code, out := python(t, script, file); code != 0 || !strings.Contains(out, fmt.Sprintf("ok: records #1 to #%d, anchor %s", len(rs), anchor)) {
		t.Errorf("python verifier: exit %d: %s", code, out)
	}

	// Partial exports: by number and by time.
	part := te.ok("", "audit", "export", "--from", "4").stdout
	if got := exportLines(t, part); len(got) != len(rs)-3 || got[0].Seq != 4 {
		t.Fatalf("export --from 4: %d records", len(got))
	}
	pfile := writeFile(t, te.dir, "part.jsonl", part)
	r := te.ok("", "audit", "verify", "--file", pfile)
	if !strings.Contains(r.stdout, "starts at #4; it takes record #3's hash "+rs[2].Hash+" on trust") {
		t.Errorf("verify partial file:\n%s", r.stdout)
	}
	if code, out := python(t, script, pfile); code != 0 || !strings.Contains(out, fmt.Sprintf("ok: records #4 to #%d", len(rs))) {
		t.Errorf("python on a partial export: exit %d: %s", code, out)
	}
	since := rs[3].Time
	if got := exportLines(t, te.ok("", "audit", "export", "--since", since).stdout); len(got) != len(rs)-3 || got[0].Seq != 4 {
		t.Errorf("export --since %s: %d records from #%d", since, len(got), got[0].Seq)
	}
	if got := exportLines(t, te.ok("", "audit", "export", "--since", "2999-01-01").stdout); len(got) != 0 {
		t.Errorf("export --since the future: %d records", len(got))
	}
	te.fails(exitUsage, "--since: want a time", "", "audit", "export", "--since", "yesterday")
	te.fails(exitUsage, "--file-only needs --file", "", "audit", "verify", "--file-only")
	te.fails(exitUsage, "want SEQ:HASH", "", "audit", "verify", "--anchor", "12")
	// A wrong anchor is a broken chain.
	te.fails(exitError, "the store's chain breaks at record #2", "", "audit", "verify", "--anchor", "2:"+rs[0].Hash)
}

func TestAuditLocal(t *testing.T) {
	auditLifecycle(t, newTestEnv(t))
}

func TestAuditWhileServing(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	auditLifecycle(t, te)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.logs())
	}
	logs := s.logs()
	// The commands went through the server, and its log anchors every
	// record and the head at stop.
	rs := exportLines(t, te.ok("", "audit", "export").stdout)
	for _, r := range rs {
		if !strings.Contains(logs, fmt.Sprintf("audit #%d %s %s by %s; hash %s", r.Seq, r.Action, r.Scope, r.Actor, r.Hash)) {
			t.Errorf("record #%d not in the server log", r.Seq)
		}
	}
	last := rs[len(rs)-1]
	if !strings.Contains(logs, "audit log empty at start") ||
		!strings.Contains(logs, fmt.Sprintf("audit log head at stop: record #%d of %s; anchor %d:%s", last.Seq, last.Time, last.Seq, last.Hash)) {
		t.Errorf("head not logged at start and stop:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="control request audit.records"`) || !strings.Contains(logs, `msg="control request audit.head"`) {
		t.Errorf("the audit commands did not go through the server:\n%s", logs)
	}
}

// tamperedStore copies te's stopped data directory, damages the copy with
// f and returns a testEnv on it.
func tamperedStore(t *testing.T, te *testEnv, f func(storeDir string) error) *testEnv {
	t.Helper()
	te2 := newTestEnv(t)
	if err := os.CopyFS(te2.dataDir, os.DirFS(te.dataDir)); err != nil {
		t.Fatal(err)
	}
	if err := f(filepath.Join(te2.dataDir, "store")); err != nil {
		t.Fatal(err)
	}
	return te2
}

// TestAuditTampering: a record changed, removed or reordered in the store
// or in an export is found by the CLI, which exits 1 and names the first
// bad record; the documented Python script agrees on files. Truncation
// with the head row moved passes alone, as docs/audit.md says, and is
// found against an earlier export or anchor.
func TestAuditTampering(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	for i := range 6 {
		te.ok("", "user", "set", "alice@example.org", fmt.Sprintf("--wkd=%v", i%2 == 1))
	}
	exp := te.ok("", "audit", "export").stdout
	rs := exportLines(t, exp)
	if len(rs) != 7 {
		t.Fatalf("%d records", len(rs))
	}
	anchor := lastLine(te.ok("", "audit", "head").stdout)
	script := docScript(t)

	for _, tc := range []struct {
		name  string
		f     func(dir string) error
		where string
	}{
		{"changed", func(d string) error { return tamper.Replace(d, 3, "publish\x04true", "publish\x04xxxx") }, "record #3: its hash does not match its content"},
		{"removed", func(d string) error { return tamper.Delete(d, 4) }, "record #5: record #4 is missing"},
		{"reordered", func(d string) error { return tamper.Swap(d, 2, 3) }, "record #2: its prev is not the hash of record #1"},
		{"truncated", func(d string) error { return tamper.Truncate(d, 5, false) }, "the end of the chain: the store's head row names record #7"},
	} {
		t.Run("store "+tc.name, func(t *testing.T) {
			te2 := tamperedStore(t, te, tc.f)
			r := te2.fails(exitError, "the store's chain breaks at "+tc.where, "", "audit", "verify")
			if tc.name != "truncated" && !strings.Contains(r.stdout, "first bad record: #") {
				t.Errorf("the first bad record is not shown:\n%s", r.stdout)
			}
			var vj verifyOutcome
			r = te2.run("", "audit", "verify", "--json")
			if err := json.Unmarshal([]byte(r.stdout), &vj); err != nil || r.code != exitError || vj.OK || vj.Broken == nil || vj.Broken.Source != "store" {
				t.Errorf("verify --json: exit %d %+v %v", r.code, vj, err)
			}
		})
	}
	t.Run("store truncated with its head row", func(t *testing.T) {
		te2 := tamperedStore(t, te, func(d string) error { return tamper.Truncate(d, 5, true) })
		te2.ok("", "audit", "verify") // undetectable alone: documented
		file := writeFile(t, te2.dir, "before.jsonl", exp)
		te2.fails(exitError, "the chain ends at #5 but the file "+file+" has record #6: records were removed from the end", "", "audit", "verify", "--file", file)
		te2.fails(exitError, "the chain ends at #5 but anchor "+anchor+" has record #7", "", "audit", "verify", "--anchor", anchor)
	})

	lines := strings.SplitAfter(strings.TrimSuffix(exp, "\n"), "\n")
	variants := map[string]struct {
		lines []string
		where string
		py    string
	}{
		"changed": {
			append(append(append([]string(nil), lines[:2]...), strings.Replace(lines[2], `"publish":"true"`, `"publish":"nope"`, 1)), lines[3:]...),
			"record #3 (line 3 of ", "line 3: record #3 breaks the chain",
		},
		"removed":   {append(append([]string(nil), lines[:3]...), lines[4:]...), "record #5 (line 4 of ", "line 4: record #5 breaks the chain"},
		"reordered": {append([]string{lines[0], lines[2], lines[1]}, lines[3:]...), "record #3 (line 2 of ", "line 2: record #3 breaks the chain"},
	}
	for name, v := range variants {
		t.Run("file "+name, func(t *testing.T) {
			file := writeFile(t, te.dir, name+".jsonl", strings.Join(v.lines, ""))
			te.fails(exitError, "the file's chain breaks at "+v.where, "", "audit", "verify", "--file", file, "--file-only")
			te.fails(exitError, "the file's chain breaks at "+v.where, "", "audit", "verify", "--file", file)
			if code, out := python(t, script, file); code == 0 || !strings.Contains(out, v.py) {
				t.Errorf("python verifier: exit %d: %s", code, out)
			}
		})
	}
	// The untouched export still passes everywhere.
	file := writeFile(t, te.dir, "intact.jsonl", exp)
	te.ok("", "audit", "verify", "--file", file)
	if code, out := python(t, script, file); code != 0 {
		t.Errorf("python on the intact export: %s", out)
	}
}

// TestAuditCrash: clients change accounts through the running server's
// control socket, many at once, and the server is SIGKILLed among them.
// The log is one verifiable chain afterwards, holds a record for every
// change that was acknowledged, and goes on after a restart.
func TestAuditCrash(t *testing.T) {
	const (
		clients   = 6
		killAfter = 150
	)
	te := newTestEnv(t)
	for c := range clients {
		te.ok(alicePW+"\n", "user", "add", fmt.Sprintf("u%d@example.org", c), "--password-stdin")
	}
	s := te.serve()
	adm := &remoteAdmin{path: filepath.Join(te.dataDir, "control.sock")}
	var (
		acked  atomic.Int32
		ackedN = make([]int, clients)
		wg     sync.WaitGroup
		stop   = make(chan struct{})
	)
	for c := range clients {
		wg.Go(func() {
			addr := fmt.Sprintf("u%d@example.org", c)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := adm.SetWKD(ctx, addr, n%2 == 0)
				cancel()
				if err != nil {
					return // the server is gone
				}
				ackedN[c]++
				acked.Add(1)
			}
		})
	}
	deadline := time.Now().Add(2 * time.Minute)
	for acked.Load() < killAfter && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := s.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("serve survived SIGKILL?")
	}
	close(stop)
	wg.Wait()
	if acked.Load() < killAfter {
		t.Fatalf("only %d changes acknowledged:\n%s", acked.Load(), s.logs())
	}

	r := te.ok("", "audit", "verify")
	t.Logf("%d changes acknowledged before SIGKILL; %s", acked.Load(), strings.SplitN(r.stdout, "\n", 2)[0])
	rs := exportLines(t, te.ok("", "audit", "export").stdout)
	perAccount := map[string]int{}
	for _, r := range rs {
		if r.Action == "account.wkd" {
			perAccount[r.Scope]++
		}
	}
	for c := range clients {
		scope := fmt.Sprintf("user:u%d@example.org", c)
		if perAccount[scope] < ackedN[c] {
			t.Errorf("%s: %d changes acknowledged, %d recorded", scope, ackedN[c], perAccount[scope])
		}
	}
	// The chain goes on after a restart.
	s2 := te.serve()
	te.ok("", "user", "set", "u0@example.org", "--wkd=true")
	if err := s2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	te.ok("", "audit", "verify")
	if got := exportLines(t, te.ok("", "audit", "export").stdout); len(got) != len(rs)+1 {
		t.Errorf("after restart: %d records, want %d", len(got), len(rs)+1)
	}
}

// TestAuditDocExample: the record the doc shows verifies and its hash is
// the one crypto's known-answer test pins.
func TestAuditDocExample(t *testing.T) {
	data, err := os.ReadFile(auditDoc)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\{"seq":1,.*\}$`).Find(data)
	if line == nil {
		t.Fatal("docs/audit.md shows no example record")
	}
	v := audit.NewVerifier()
	err = audit.ReadJSON(bytes.NewReader(line), func(_ int, r store.AuditRecord) error { return v.Check(r) })
	if err != nil || v.Count() != 1 {
		t.Fatalf("the doc's example record: %v", err)
	}
}

// TestAuditAdminActs: the operator's other acts — a quota change, the
// allow and deny lists, training the spam filter, searching the delivery
// trace — are recorded with who did them, through the control socket as
// well as on a stopped server; refused ones are not.
func TestAuditAdminActs(t *testing.T) {
	for _, serving := range []bool{false, true} {
		t.Run(fmt.Sprintf("serving=%v", serving), func(t *testing.T) {
			te := newTestEnv(t)
			if serving {
				s := te.serve()
				defer func() {
					if err := s.stop(t, syscall.SIGTERM); err != nil {
						t.Errorf("serve: %v\n%s", err, s.logs())
					}
				}()
			}
			te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
			te.ok("", "user", "set", "alice@example.org", "--quota", "none")
			te.ok("", "user", "set", "alice@example.org", "--autocrypt=false")
			te.ok("", "filter", "deny", "add", "192.0.2.7", "--note", "abuse report 17")
			te.ok("", "filter", "allow", "add", "partner.example", "--user", "alice@example.org")
			te.fails(exitError, "already on the deny list", "", "filter", "deny", "add", "192.0.2.7/32")
			te.ok("", "filter", "deny", "remove", "1")
			mbox := writeFile(t, te.dir, "spam.mbox", "From a@b Mon Jan  1 00:00:00 2026\nSubject: x\n\nbuy now\n")
			te.ok("", "filter", "train", "--org", "--spam", mbox)
			te.fails(exitError, "wrong address or password", "not the password\n", "filter", "train", "alice@example.org", "--ham", mbox, "--password-stdin")
			te.ok("", "trace", "search", "--from", "x@bad.test", "--since", "2026-01-01")

			rs := exportLines(t, te.ok("", "audit", "export").stdout)
			want := []struct{ action, scope, reason, detail string }{
				{"account.create", "user:alice@example.org", "", ""},
				{"account.quota", "user:alice@example.org", "", "quota=none"},
				{"account.autocrypt", "user:alice@example.org", "", "autocrypt=false"},
				{"filter.rule-add", "org", "abuse report 17", "id=1 list=deny kind=cidr value=192.0.2.7/32"},
				{"filter.rule-add", "user:alice@example.org", "", "id=2 list=allow kind=domain value=partner.example"},
				{"filter.rule-remove", "org", "abuse report 17", "id=1 list=deny value=192.0.2.7/32"},
				{"filter.train", "org", "", "verdict=spam messages=1 file=" + mbox},
				{"trace.search", "org", "", "terms=from since=2026-01-01T00:00:00Z results=0"},
			}
			if len(rs) != len(want) {
				t.Fatalf("%d records, want %d: %+v", len(rs), len(want), rs)
			}
			actor := cliActor(os.Getuid())
			for i, w := range want {
				r := rs[i]
				if r.Action != w.action || r.Scope != w.scope || r.Reason != w.reason || r.Actor != actor {
					t.Errorf("record %d: %+v, want %s %s %q by %s", i+1, r, w.action, w.scope, w.reason, actor)
				}
				for _, kv := range strings.Fields(w.detail) {
					k, v, _ := strings.Cut(kv, "=")
					if r.Detail[k] != v {
						t.Errorf("record %d (%s) detail %s = %q, want %q", i+1, r.Action, k, r.Detail[k], v)
					}
				}
			}
			te.ok("", "audit", "verify")
			// The trace is sealed; the log does not name what was searched for.
			if exp := te.ok("", "audit", "export").stdout; strings.Contains(exp, "bad.test") {
				t.Errorf("the searched address is in the audit log:\n%s", exp)
			}
		})
	}
}
