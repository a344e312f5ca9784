package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/retention"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// zeroDayPreset keeps default mail no time at all: the next sweep
// destroys it.
const zeroDayPreset = `id: ZERO
name: Test — keep nothing
version: 1
notice: Not legal advice; a test preset.
sources: ["the test"]
rules:
  - {class: default, min: 0d, max: 0d, start: receipt}
`

// imapLogin logs user in over IMAPS and selects INBOX.
func imapLogin(t *testing.T, s *server, dataDir, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, dataDir)})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	if err := c.Login(user, alicePW).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// inboxCount returns how many messages user's INBOX holds over IMAP.
func inboxCount(t *testing.T, s *server, dataDir, user string) uint32 {
	t.Helper()
	c := imapLogin(t, s, dataDir, user)
	defer c.Close()
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return *st.NumMessages
}

// filesWith returns the files under dir that contain needle.
func filesWith(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			out = append(out, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonOut(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("JSON output %q: %v", r.stdout, err)
	}
}

// TestRetentionEndToEnd runs the real binary through issue 10's
// scenario: mail delivered over SMTP, expunged by its user over IMAP
// under DE-HGB-AO, is gone for the user and in `vault list`; a 0d class
// is destroyed by the sweep and a canary scan of the data directory
// after the purge finds nothing; a held message outlives its maximum,
// its account cannot be deleted, and once the hold is released the sweep
// destroys it.
func TestRetentionEndToEnd(t *testing.T) {
	const (
		alice = "alice@example.org"
		bob   = "bob@example.org"
		carol = "carol@example.org"
	)
	te := newTestEnv(t)
	for _, u := range []string{alice, bob, carol} {
		te.ok(alicePW+"\n", "user", "add", u, "--password-stdin")
	}
	// Presets: the shipped ones, and a bad file refused with its line.
	var presets []retention.PresetInfo
	jsonOut(t, te.ok("", "policy", "presets", "--json"), &presets)
	if len(presets) != 8 {
		t.Fatalf("%d presets", len(presets))
	}
	bad := filepath.Join(te.dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(zeroDayPreset, "min: 0d", "minimum: 0d", 1)), 0o600)
	te.fails(1, "bad.yaml:7: rule 1: unknown key \"minimum\"", "", "policy", "import", bad)
	good := filepath.Join(te.dir, "zero.yaml")
	os.WriteFile(good, []byte(zeroDayPreset), 0o600)
	if r := te.ok("", "policy", "import", good); !strings.Contains(r.stdout, "imported ZERO@1") {
		t.Errorf("import: %s", r.stdout)
	}
	te.ok("", "policy", "assign", "ZERO", "user:"+bob)

	s := te.serve()
	// Through the running server from here on.
	te.ok("", "policy", "assign", "DE-HGB-AO", "user:"+alice)
	te.ok("", "policy", "assign", "ZERO", "user:"+carol)
	if err := sendTo(s.addr("smtp"), []string{alice, bob, carol}, "Subject: hello\r\n\r\nretention test\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := sendTo(s.addr("smtp"), []string{alice}, "Subject: second\r\n\r\nkept\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := sendTo(s.addr("smtp"), []string{alice}, "Subject: news\r\nList-Id: <news.example.net>\r\n\r\nread me\r\n"); err != nil {
		t.Fatal(err)
	}

	// alice expunges her first message: gone over IMAP, in the vault.
	c := imapLogin(t, s, te.dataDir, alice)
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()
	if n := inboxCount(t, s, te.dataDir, alice); n != 2 {
		t.Errorf("alice's INBOX holds %d after the expunge", n)
	}
	var vault []retention.VaultItem
	jsonOut(t, te.ok("", "vault", "list", alice, "--json"), &vault)
	if len(vault) != 1 || vault[0].UID != 1 || vault[0].Mailbox != store.Inbox || vault[0].Reason != "expunge" ||
		!strings.Contains(vault[0].Retention.Rule, "DE-HGB-AO@1") || vault[0].DueAt.Year() < 2031 {
		t.Fatalf("alice's vault: %+v", vault)
	}
	var eff retention.EffectiveReport
	jsonOut(t, te.ok("", "policy", "effective", alice, "INBOX", "2", "--json"), &eff)
	if eff.Message == nil || len(eff.Assignments) != 1 || eff.Assignments[0].Preset != "DE-HGB-AO" || eff.Message.Stored.KeepUntil.Year() < 2031 {
		t.Errorf("policy effective: %+v", eff)
	}
	// List mail is classed newsletter at delivery, before sealing; under
	// DE-HGB-AO it has no minimum.
	jsonOut(t, te.ok("", "policy", "effective", alice, "INBOX", "3", "--json"), &eff)
	if eff.Message == nil || eff.Message.Stored.Origin != "newsletter" || eff.Message.Stored.Class != "newsletter" || !eff.Message.Stored.KeepUntil.IsZero() {
		t.Errorf("policy effective of the newsletter: %+v", eff.Message)
	}
	// MOVE into another mailbox, then DELETE of that mailbox, over IMAP:
	// the message, still under its minimum, goes to the vault as well,
	// and the user no longer sees it anywhere.
	c = imapLogin(t, s, te.dataDir, alice)
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()
	if n := inboxCount(t, s, te.dataDir, alice); n != 1 {
		t.Errorf("alice's INBOX holds %d after the move", n)
	}
	// The MOVE left the message's retention state pending until the
	// server's retention service computes it, which it does on its own
	// time: wait for that (the deadline only ends a failed test).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		jsonOut(t, te.ok("", "vault", "list", alice, "--json"), &vault)
		if len(vault) != 2 || !vault[1].Retention.Pending || time.Now().After(deadline) {
			break
		}
	}
	if len(vault) != 2 || vault[1].Mailbox != "Projects" || vault[1].Reason != "mailbox deleted" || vault[1].DueAt.Year() < 2031 {
		t.Fatalf("alice's vault after the mailbox's deletion: %+v", vault)
	}

	// carol's message is due now, but a hold keeps it.
	hold := te.ok("", "hold", "place", "user:"+carol, "--matter", "M-1", "--reason", "lawsuit")
	holdID := lastWord(hold.stdout)
	te.fails(1, "legal hold", "", "user", "delete", carol, "--yes")
	var dry retention.SweepReport
	jsonOut(t, te.ok("", "retention", "sweep", "--dry-run", "--json"), &dry)
	if dry.Messages != 1 || len(dry.Lines) != 1 || dry.Lines[0].Account != bob || dry.Lines[0].Class != "default" {
		t.Fatalf("dry run: %+v", dry)
	}

	// bob's message: note its sealed bytes (offline), then have the
	// running server sweep it.
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	canaryBytes := sealedCanary(t, te, bob)
	if found := filesWith(t, te.dataDir, canaryBytes); len(found) == 0 {
		t.Fatal("setup: bob's sealed bytes not found in the data directory")
	}
	s = te.serve()
	var rep retention.SweepReport
	jsonOut(t, te.ok("", "retention", "sweep", "--json"), &rep)
	if rep.Messages != 1 || rep.Purge == nil || rep.Lines[0].Account != bob {
		t.Fatalf("sweep: %+v", rep)
	}
	if n := inboxCount(t, s, te.dataDir, bob); n != 0 {
		t.Errorf("bob's INBOX holds %d after the sweep", n)
	}
	if n := inboxCount(t, s, te.dataDir, carol); n != 1 {
		t.Errorf("carol's held message: %d in INBOX after the sweep", n)
	}
	if found := filesWith(t, te.dataDir, canaryBytes); len(found) != 0 {
		t.Errorf("bob's destroyed message is still in %v after the sweep's purge", found)
	}

	// The hold released, the next sweep destroys carol's message and her
	// account can go.
	if r := te.ok("", "hold", "release", holdID, "--reason", "settled"); !strings.Contains(r.stdout, "the next sweep destroys 1 messages") {
		t.Errorf("hold release: %s", r.stdout)
	}
	jsonOut(t, te.ok("", "retention", "sweep", "--json"), &rep)
	if rep.Messages != 1 || rep.Lines[0].Account != carol {
		t.Fatalf("sweep after release: %+v", rep)
	}
	if n := inboxCount(t, s, te.dataDir, carol); n != 0 {
		t.Errorf("carol's INBOX holds %d after the release and sweep", n)
	}
	te.ok("", "user", "delete", carol, "--yes")
	var holds []retention.HoldInfo
	jsonOut(t, te.ok("", "hold", "list", "--json"), &holds)
	if len(holds) != 1 || holds[0].Active() || holds[0].ReleaseReason != "settled" {
		t.Errorf("holds: %+v", holds)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Stopped: the same commands work on the store directly.
	jsonOut(t, te.ok("", "vault", "list", alice, "--json"), &vault)
	if len(vault) != 2 {
		t.Errorf("vault without the server: %+v", vault)
	}
}

// sealedCanary opens the stopped server's store and returns 32 bytes from
// the middle of the sealed blob of user's first INBOX message: bytes that
// exist nowhere else.
func sealedCanary(t *testing.T, te *testEnv, user string) []byte {
	t.Helper()
	db, err := badgerstore.Open(filepath.Join(te.dataDir, "store"), badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mb, err := db.Mailbox(t.Context(), user, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := db.Messages(t.Context(), user, mb.ID, store.ListOptions{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("%s: %d messages, %v", user, len(ms), err)
	}
	b, err := db.Blob(t.Context(), user, mb.ID, ms[0].UID)
	if err != nil || len(b) < 100 {
		t.Fatalf("blob: %d bytes, %v", len(b), err)
	}
	return bytes.Clone(b[len(b)/2 : len(b)/2+32])
}

func lastWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// TestRetentionCLI: the retention commands' text output, usage errors and
// refusals, on a stopped server.
func TestRetentionCLI(t *testing.T) {
	const alice = "alice@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	if r := te.ok("", "help"); !strings.Contains(r.stdout, "policy COMMAND") || !strings.Contains(r.stdout, "(erase, report)") {
		t.Errorf("help lacks the retention commands:\n%s", r.stdout)
	}
	if r := te.ok("", "help", "policy"); !strings.Contains(r.stdout, "policy assign PRESET SCOPE") {
		t.Errorf("help policy:\n%s", r.stdout)
	}
	if r := te.ok("", "policy", "presets"); !strings.Contains(r.stdout, "DE-HGB-AO") || !strings.Contains(r.stdout, "not legal advice") {
		t.Errorf("policy presets:\n%s", r.stdout)
	}
	if r := te.ok("", "policy", "show", "DE-HGB-AO"); !strings.Contains(r.stdout, "Not legal advice") || !strings.Contains(r.stdout, "HGB §257") ||
		!strings.Contains(r.stdout, "business-letter") || !strings.Contains(r.stdout, "--- YAML ---") {
		t.Errorf("policy show:\n%s", r.stdout)
	}
	te.fails(1, `no preset "NOPE"`, "", "policy", "show", "NOPE")
	te.fails(1, `no preset "NOPE"`, "", "policy", "assign", "NOPE", "org")
	te.fails(1, "scope", "", "policy", "assign", "DE-HGB-AO", "everyone")
	te.fails(1, `has no mailbox "Nope"`, "", "policy", "assign", "DE-HGB-AO", "mailbox:"+alice+"/Nope")
	te.fails(1, "--class applies to a mailbox", "", "policy", "assign", "DE-HGB-AO", "org", "--class", "spam")
	if r := te.ok("", "policy", "assign", "DE-HGB-AO", "org", "--reason", "GoBD"); !strings.Contains(r.stdout, "assigned DE-HGB-AO@1 to org") {
		t.Errorf("policy assign: %s", r.stdout)
	}
	te.ok("", "policy", "assign", "US-SEC-17a-4", "mailbox:"+alice+"/Archive", "--class", "regulated-comms")
	te.fails(1, "locked rules", "", "policy", "unassign", "US-SEC-17a-4", "mailbox:"+alice+"/Archive")
	if r := te.ok("", "policy", "assignments"); !strings.Contains(r.stdout, "mailbox:"+alice+"/Archive") || !strings.Contains(r.stdout, "regulated-comms") {
		t.Errorf("policy assignments:\n%s", r.stdout)
	}
	if r := te.ok("", "policy", "effective", alice); !strings.Contains(r.stdout, "business-letter: keep until") || !strings.Contains(r.stdout, "DE-HGB-AO@1 via org") {
		t.Errorf("policy effective:\n%s", r.stdout)
	}
	if r := te.ok("", "policy", "effective", alice, "Archive"); !strings.Contains(r.stdout, "every message in this mailbox has class regulated-comms") ||
		!strings.Contains(r.stdout, "locked") {
		t.Errorf("policy effective Archive:\n%s", r.stdout)
	}
	te.fails(2, "--matter and --reason are required", "", "hold", "place", "org")
	te.fails(2, "--from", "", "hold", "place", "org", "--matter", "M", "--reason", "r", "--from", "yesterday")
	te.fails(2, "want a hold number", "", "hold", "release", "x", "--reason", "r")
	te.fails(2, "--reason is required", "", "hold", "release", "1")
	te.fails(1, "no hold 7", "", "hold", "release", "7", "--reason", "r")
	r := te.ok("", "hold", "place", "user:"+alice, "--matter", "TAX-2026", "--reason", "tax audit", "--from", "2026-01-01")
	if id := lastWord(r.stdout); id != "1" || !strings.Contains(r.stdout, "mail from 2026-01-01") {
		t.Errorf("hold place: %s", r.stdout)
	}
	if r := te.ok("", "hold", "list"); !strings.Contains(r.stdout, "TAX-2026") || !strings.Contains(r.stdout, "active") {
		t.Errorf("hold list:\n%s", r.stdout)
	}
	te.fails(1, "legal hold 1 (matter TAX-2026)", "", "user", "delete", alice, "--yes")
	te.ok("", "retention", "event", "contract-end", "user:"+alice, "--at", "2026-01-01")
	if r := te.ok("", "vault", "list", alice); !strings.Contains(r.stdout, "is empty") {
		t.Errorf("vault list: %s", r.stdout)
	}
	te.fails(2, "pass --yes", "", "compliance", "erase", alice)
	if r := te.ok("", "compliance", "erase", alice, "--yes", "--reason", "request 1"); !strings.Contains(r.stdout, "destroyed 0 messages") {
		t.Errorf("compliance erase: %s", r.stdout)
	}
	if r := te.ok("", "retention", "sweep", "--dry-run"); !strings.Contains(r.stdout, "would destroy 0 messages") {
		t.Errorf("sweep --dry-run: %s", r.stdout)
	}
	if r := te.ok("", "hold", "release", "1", "--reason", "closed"); !strings.Contains(r.stdout, "released hold 1") {
		t.Errorf("hold release: %s / %s", r.stdout, r.stderr)
	}
	te.fails(2, "want [SCOPE]", "", "compliance", "report", "org", "more")
	te.fails(1, "scope", "", "compliance", "report", "everyone")
	if r := te.ok("", "compliance", "report"); !strings.Contains(r.stdout, "compliance report of org") || !strings.Contains(r.stdout, "DE-HGB-AO") ||
		!strings.Contains(r.stdout, "UNDER MIN") || !strings.Contains(r.stdout, alice) {
		t.Errorf("compliance report:\n%s", r.stdout)
	}
	var rep retention.ComplianceReport
	r = te.ok("", "compliance", "report", "user:"+alice, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Scope != "user:"+alice || len(rep.Accounts) != 1 || len(rep.Assignments) != 2 {
		t.Errorf("compliance report --json: %+v, %v\n%s", rep, err, r.stdout)
	}
	// Every act above is in the audit log, as done by the user who ran
	// the command, and the chain verifies.
	actor := cliActor(os.Getuid())
	acts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(te.ok("", "audit", "export").stdout), "\n") {
		var rec audit.JSONRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		if strings.HasPrefix(rec.Action, "account.") {
			continue
		}
		acts[rec.Action]++
		if rec.Actor != actor {
			t.Errorf("audit record %+v: actor, want %s", rec, actor)
		}
		if rec.Action == "hold.place" && (rec.Scope != "hold:1" || rec.Detail["scope"] != "user:"+alice || rec.Reason != "tax audit" || rec.Detail["matter"] != "TAX-2026") {
			t.Errorf("hold.place record %+v", rec)
		}
	}
	for _, a := range []string{"policy.assign", "hold.place", "hold.release", "retention.event", "compliance.erase", "compliance.report"} {
		if acts[a] == 0 {
			t.Errorf("audit log lacks %s: %v", a, acts)
		}
	}
	if acts["policy.assign"] != 2 || acts["compliance.report"] != 2 {
		t.Errorf("audited %v", acts)
	}
	te.ok("", "audit", "verify")
}
