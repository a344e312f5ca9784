package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

const escrowPW = "the officer's long escrow passphrase"

// readEscrowMbox reads an mboxrd file as escrow export writes it: each
// message after its From line, with one '>' less on ^>+From␠ lines and
// without the empty line that ends it.
func readEscrowMbox(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var (
		msgs [][]byte
		cur  *bytes.Buffer
	)
	br := bufio.NewReader(bytes.NewReader(data))
	var lines [][]byte
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lines = append(lines, line)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, line := range lines {
		switch {
		case bytes.HasPrefix(line, []byte("From ")) && (i == 0 || string(lines[i-1]) == "\n"):
			if cur != nil {
				b := cur.Bytes()
				msgs = append(msgs, b[:len(b)-1]) // the separator
			}
			cur = &bytes.Buffer{}
		case cur == nil:
			t.Fatalf("mbox does not start with a From line: %q", line)
		case bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) && line[0] == '>':
			cur.Write(line[1:])
		default:
			cur.Write(line)
		}
	}
	if cur != nil {
		b := cur.Bytes()
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("last message lacks its separator")
		}
		msgs = append(msgs, b[:len(b)-1])
	}
	return msgs
}

// seeded is a message put into the store directly, as delivery would.
type seeded struct {
	account, mailbox string
	plain            []byte
	escrowed         bool
	damaged          bool // a byte of the sealed data flipped
}

// seedStore opens te's store (no server may run) and delivers msgs,
// sealed to the account's key and, where escrowed, to the escrow key
// in use.
func seedStore(t *testing.T, te *testEnv, msgs []seeded) {
	t.Helper()
	ctx := context.Background()
	st, err := badgerstore.Open(filepath.Join(te.dataDir, "store"), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := st.EscrowKeys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("escrow keys: %v %v", keys, err)
	}
	epub, err := crypto.ParsePublicKey(keys[len(keys)-1].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		acct, err := st.PublicAccount(ctx, m.account)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := crypto.ParsePublicKey(acct.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var also []*crypto.PublicKey
		if m.escrowed {
			also = append(also, epub)
		}
		var sealed bytes.Buffer
		w, err := pub.SealWith(&sealed, also...)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m.plain)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		blob := sealed.Bytes()
		if m.damaged {
			blob[len(blob)-5] ^= 1
		}
		mb, err := st.Mailbox(ctx, m.account, m.mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Deliver(ctx, []store.Delivery{{Account: m.account, MailboxID: mb.ID, Blob: blob,
			InternalDate: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// removeSlots destroys every unlock slot of addr, as if nobody knew its
// password any more: the account's own key can no longer be unlocked.
func removeSlots(t *testing.T, te *testEnv, addr string) {
	t.Helper()
	ctx := context.Background()
	st, err := badgerstore.Open(filepath.Join(te.dataDir, "store"), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range a.Slots {
		if err := st.RemoveSlot(ctx, addr, s.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// escrowMessage is a message with lines that mboxrd must quote.
func escrowMessage(n int, who string) []byte {
	return fmt.Appendf(nil, "From: sender@client.test\r\nTo: %s\r\nSubject: producible %d\r\n\r\nFrom the ledger, entry %d.\r\n>From quoted\r\n\r\nFrom here on\r\nno newline at the end is not possible over SMTP\r\n", who, n, n)
}

// escrowEnv makes alice and bob, an escrow key in te.dir/escrow.asc, and
// seeds: alice INBOX escrowed ×2 and not escrowed ×1, bob Archive
// escrowed ×1.
func escrowEnv(t *testing.T) (*testEnv, string, map[string][][]byte) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	key := filepath.Join(te.dir, "escrow.asc")
	r := te.ok(escrowPW+"\n", "escrow", "init", "--out", key, "--password-stdin")
	if !strings.Contains(r.stdout, "made and in use") {
		t.Fatalf("escrow init: %s", r.stdout)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	msgs := []seeded{
		{account: "alice@example.org", mailbox: "INBOX", plain: escrowMessage(1, "alice"), escrowed: true},
		{account: "alice@example.org", mailbox: "INBOX", plain: []byte("Subject: private\r\n\r\nnot producible\r\n")},
		{account: "alice@example.org", mailbox: "INBOX", plain: escrowMessage(2, "alice"), escrowed: true},
		{account: "bob@example.org", mailbox: "Archive", plain: escrowMessage(3, "bob"), escrowed: true},
	}
	seedStore(t, te, msgs)
	want := map[string][][]byte{}
	for _, m := range msgs {
		if m.escrowed {
			want[m.account] = append(want[m.account], m.plain)
		}
	}
	return te, key, want
}

// checkMbox checks that the mbox holds exactly want, byte for byte.
func checkMbox(t *testing.T, path string, want [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readEscrowMbox(t, data)
	if len(got) != len(want) {
		t.Fatalf("%s holds %d messages, want %d:\n%s", path, len(got), len(want), data)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s message %d:\n got %q\nwant %q", path, i+1, got[i], want[i])
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v", path, fi.Mode().Perm())
	}
}

func escrowExports(t *testing.T, te *testEnv, key string, want map[string][][]byte) {
	out := filepath.Join(te.dir, "alice.mbox")
	r := te.ok(escrowPW+"\n", "escrow", "export", "--key", key, "--out", out, "--password-stdin", "user:Alice@Example.org")
	if !strings.Contains(r.stdout, "exported 2 message(s) of user:alice@example.org") || !strings.Contains(r.stdout, "1 message(s) in scope are not sealed to escrow key") {
		t.Errorf("export said: %s", r.stdout)
	}
	checkMbox(t, out, want["alice@example.org"])

	all := filepath.Join(te.dir, "org.mbox")
	var done escrowDone
	r = te.ok(escrowPW+"\n", "escrow", "export", "--key", key, "--out", all, "--password-stdin", "--json", "org")
	if err := json.Unmarshal([]byte(r.stdout), &done); err != nil || done.Written != 3 || done.Skipped != 1 || done.Failed != 0 {
		t.Errorf("export org --json: %+v %v", done, err)
	}
	checkMbox(t, all, append(append([][]byte(nil), want["alice@example.org"]...), want["bob@example.org"]...))
	box := filepath.Join(te.dir, "archive.mbox")
	te.ok(escrowPW+"\n", "escrow", "export", "--key", key, "--out", box, "--password-stdin", "mailbox:bob@example.org/Archive")
	checkMbox(t, box, want["bob@example.org"])
	r = te.ok(escrowPW+"\n", "escrow", "export", "--key", key, "--out", "-", "--password-stdin", "domain:example.org")
	if got := readEscrowMbox(t, []byte(r.stdout)); len(got) != 3 || !strings.Contains(r.stderr, "exported 3 message(s)") {
		t.Errorf("export to standard output: %d messages; stderr %s", len(got), r.stderr)
	}

	// Refused: without a key, with a wrong passphrase, with a key that
	// is not the organisation's, over an existing file.
	te.fails(exitUsage, "--key FILE is required", "", "escrow", "export", "--out", filepath.Join(te.dir, "x.mbox"), "org")
	te.fails(exitError, "wrong passphrase", "not the right passphrase!!\n", "escrow", "export", "--key", key, "--out", filepath.Join(te.dir, "x.mbox"), "--password-stdin", "org")
	foreign, err := crypto.NewEscrowKey("someone else <else@example.net>", []byte(escrowPW))
	if err != nil {
		t.Fatal(err)
	}
	fkey := writeFile(t, te.dir, "foreign.asc", string(foreign.Private))
	te.fails(exitError, "is not an escrow key of this organisation", escrowPW+"\n", "escrow", "export", "--key", fkey, "--out", filepath.Join(te.dir, "x.mbox"), "--password-stdin", "org")
	te.fails(exitError, "no such file", "", "escrow", "export", "--key", filepath.Join(te.dir, "missing.asc"), "--out", filepath.Join(te.dir, "x.mbox"), "org")
	te.fails(exitError, "exists", escrowPW+"\n", "escrow", "export", "--key", key, "--out", out, "--password-stdin", "org")
	te.fails(exitUsage, "want org, domain:DOMAIN", "", "escrow", "export", "--key", key, "--out", "-", "frob:x")
	if _, err := os.Stat(filepath.Join(te.dir, "x.mbox")); !os.IsNotExist(err) {
		t.Errorf("a refused export left a file: %v", err)
	}

	// Every use is in the audit log, refused ones included, with the
	// export's hash.
	var outcomes []string
	for _, r := range exportLines(t, te.ok("", "audit", "export").stdout) {
		if r.Action == "escrow.export" {
			outcomes = append(outcomes, r.Scope+" "+r.Detail["outcome"]+" "+r.Reason)
		}
		if r.Action == "escrow.export" && r.Detail["outcome"] == "written" && r.Scope == "org" && r.Detail["sha256"] != done.SHA256 {
			t.Errorf("audited sha256 %s, export says %s", r.Detail["sha256"], done.SHA256)
		}
	}
	want2 := []string{
		"user:alice@example.org started ", "user:alice@example.org written ",
		"org started ", "org written ",
		"mailbox:bob@example.org/Archive started ", "mailbox:bob@example.org/Archive written ",
		"domain:example.org started ", "domain:example.org written ",
		"org refused " + causeNoKey,
		"org refused " + causePassphrase,
		"org refused " + causeUnknownKey + ": " + foreign.Fingerprint,
		"org refused " + causeKeyFile,
	}
	if strings.Join(outcomes, "\n") != strings.Join(want2, "\n") {
		t.Errorf("audited escrow use:\n%s\nwant:\n%s", strings.Join(outcomes, "\n"), strings.Join(want2, "\n"))
	}
	te.ok("", "audit", "verify")
}

// TestEscrowExportLocal: with no server, the export opens mail that only
// the escrow key can open any more (the account's slots are gone), byte
// for byte, for every kind of scope; refused uses fail and all are
// audited.
func TestEscrowExportLocal(t *testing.T) {
	te, key, want := escrowEnv(t)
	removeSlots(t, te, "alice@example.org")
	escrowExports(t, te, key, want)
}

// TestEscrowExportWhileServing: the same through the running server; the
// private key never crosses the control socket.
func TestEscrowExportWhileServing(t *testing.T) {
	te, key, want := escrowEnv(t)
	removeSlots(t, te, "alice@example.org")
	s := te.serve()
	escrowExports(t, te, key, want)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs := s.logs()
	if !strings.Contains(logs, `msg="control request escrow.export"`) {
		t.Errorf("the export did not go through the server:\n%s", logs)
	}
	priv, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(priv), "\n")[3:6] {
		if strings.Contains(logs, line) {
			t.Error("the private key reached the server log")
		}
	}
}

// TestEscrowInit: one key in use; --replace retires it and the old key
// still exports what was sealed to it; init refuses to overwrite a file
// and short passphrases.
func TestEscrowInit(t *testing.T) {
	te, key, want := escrowEnv(t)
	te.fails(exitError, "an escrow key is in use", escrowPW+"\n", "escrow", "init", "--out", filepath.Join(te.dir, "k2.asc"), "--password-stdin")
	te.fails(exitError, "exists", escrowPW+"\n", "escrow", "init", "--out", key, "--password-stdin", "--replace")
	te.fails(exitError, "at least 16", "short one\n", "escrow", "init", "--out", filepath.Join(te.dir, "k2.asc"), "--password-stdin", "--replace")
	te.fails(exitUsage, "--out FILE is required", "", "escrow", "init")
	key2 := filepath.Join(te.dir, "k2.asc")
	te.ok(escrowPW+"\n", "escrow", "init", "--out", key2, "--password-stdin", "--replace")
	var keys []escrowKeyInfo
	if err := json.Unmarshal([]byte(te.ok("", "escrow", "status", "--json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].InUse || !keys[1].InUse || keys[0].Retired.IsZero() {
		t.Fatalf("escrow status: %+v", keys)
	}
	if r := te.ok("", "escrow", "status"); !strings.Contains(r.stdout, "replaced") || !strings.Contains(r.stdout, "in use") {
		t.Errorf("escrow status:\n%s", r.stdout)
	}
	// The old key still opens what was sealed to it; the new one opens
	// none of it.
	out := filepath.Join(te.dir, "old.mbox")
	te.ok(escrowPW+"\n", "escrow", "export", "--key", key, "--out", out, "--password-stdin", "user:alice@example.org")
	checkMbox(t, out, want["alice@example.org"])
	r := te.ok(escrowPW+"\n", "escrow", "export", "--key", key2, "--out", filepath.Join(te.dir, "new.mbox"), "--password-stdin", "user:alice@example.org")
	if !strings.Contains(r.stdout, "exported 0 message(s)") || !strings.Contains(r.stdout, "3 message(s) in scope are not sealed") {
		t.Errorf("export with the new key: %s", r.stdout)
	}
	var inits []string
	for _, r := range exportLines(t, te.ok("", "audit", "export").stdout) {
		if r.Action == "escrow.init" {
			inits = append(inits, r.Detail["fingerprint"]+" replaced "+r.Detail["replaced"])
		}
	}
	if len(inits) != 2 || inits[0] != keys[0].Fingerprint+" replaced " || inits[1] != keys[1].Fingerprint+" replaced "+keys[0].Fingerprint {
		t.Errorf("audited inits: %q", inits)
	}
}

func TestMboxWriter(t *testing.T) {
	msgs := [][]byte{
		[]byte("Subject: a\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\nFromage\r\n"),
		[]byte("no final newline"),
		[]byte("From the start\n\n\nFrom \n"),
		[]byte("\r\n"),
	}
	var b bytes.Buffer
	mb := newMboxWriter(&b)
	for _, m := range msgs {
		if err := mb.write(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), m); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(b.String(), "From MAILER-DAEMON Fri Jan  2 03:04:05 2026\nSubject: a\r\n\r\n>From x\r\n>>From y\r\n>>>From z\r\nFromage\r\n\nFrom MAILER-DAEMON") {
		t.Errorf("mbox:\n%q", b.String())
	}
	got := readEscrowMbox(t, b.Bytes())
	want := [][]byte{msgs[0], []byte("no final newline\n"), msgs[2], msgs[3]}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestEscrowExportDamaged: a message that does not open is reported and
// counted; the others are written and the file kept; exit 1.
func TestEscrowExportDamaged(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	key := filepath.Join(te.dir, "escrow.asc")
	te.ok(escrowPW+"\n", "escrow", "init", "--out", key, "--password-stdin")
	good := escrowMessage(1, "alice")
	seedStore(t, te, []seeded{
		{account: "alice@example.org", mailbox: "INBOX", plain: escrowMessage(9, "alice"), escrowed: true, damaged: true},
		{account: "alice@example.org", mailbox: "INBOX", plain: good, escrowed: true},
	})
	out := filepath.Join(te.dir, "out.mbox")
	r := te.fails(exitError, "1 message(s) sealed to the escrow key did not open", escrowPW+"\n", "escrow", "export", "--key", key, "--out", out, "--password-stdin", "org")
	if !strings.Contains(r.stderr, "did not open: alice@example.org INBOX uid 1:") {
		t.Errorf("stderr: %s", r.stderr)
	}
	checkMbox(t, out, [][]byte{good})
	var written map[string]string
	for _, r := range exportLines(t, te.ok("", "audit", "export").stdout) {
		if r.Action == "escrow.export" && r.Detail["outcome"] == "written" {
			written = r.Detail
		}
	}
	if written["messages"] != "1" || written["failed"] != "1" {
		t.Errorf("audited %v", written)
	}
}

// fetchAll returns the messages of user's INBOX over IMAP, as the user
// reads them (BODY.PEEK[]), by UID.
func fetchAll(t *testing.T, s *server, dataDir, user string) [][]byte {
	t.Helper()
	c := imapLogin(t, s, dataDir, user)
	defer c.Close()
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, b.Bytes)
		}
	}
	c.Logout().Wait()
	return out
}

// onlyTraceFields reports whether head is made of the header fields a
// receiving server puts on top of a message (RFC 5321 §4.4, RFC 8601).
func onlyTraceFields(head []byte) bool {
	seen := false
	for _, line := range strings.SplitAfter(string(head), "\r\n") {
		switch {
		case line == "":
		case line[0] == ' ' || line[0] == '\t':
			if !seen {
				return false
			}
		case strings.HasPrefix(line, "Return-Path: "), strings.HasPrefix(line, "Received: "), strings.HasPrefix(line, "Authentication-Results: "):
			seen = true
		default:
			return false
		}
	}
	return seen
}

// TestEscrowEndToEnd runs issue 10's escrow scenario over the real
// binary: escrow on, alice's mail producible (US-SEC-17a-4) and bob's
// not; mail arrives over SMTP; alice's account is deleted, her mail kept
// in the retention vault where no password can open it; the escrow key
// exports it, byte for byte what alice read over IMAP (SMTP's bytes
// after the trace fields sealmail adds), while the server runs and after
// it stopped; without the key, or with a wrong passphrase, the export
// fails; every use is audited and the chain verifies.
func TestEscrowEndToEnd(t *testing.T) {
	const alice, bob = "alice@example.org", "bob@example.org"
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	te.ok(alicePW+"\n", "user", "add", bob, "--password-stdin")
	key := filepath.Join(te.dir, "escrow.asc")
	te.ok(escrowPW+"\n", "escrow", "init", "--out", key, "--password-stdin")
	s := te.serve()
	te.ok("", "policy", "assign", "US-SEC-17a-4", "user:"+alice, "--reason", "broker-dealer desk")

	sent := [][]byte{escrowMessage(1, alice), escrowMessage(2, alice)}
	for _, m := range sent {
		if err := sendTo(s.addr("smtp"), []string{alice, bob}, string(m)); err != nil {
			t.Fatal(err)
		}
	}
	read := fetchAll(t, s, te.dataDir, alice)
	if len(read) != len(sent) {
		t.Fatalf("alice reads %d messages over IMAP, want %d", len(read), len(sent))
	}
	for i := range sent {
		// What SMTP received, after the trace fields sealmail puts on top.
		if !bytes.HasSuffix(read[i], sent[i]) || !onlyTraceFields(read[i][:len(read[i])-len(sent[i])]) {
			t.Fatalf("message %d as alice reads it:\n%q\nsent:\n%q", i+1, read[i], sent[i])
		}
	}

	// alice leaves: her account is crypto-shredded, her mail kept.
	te.ok("", "user", "delete", alice, "--yes")
	if v := te.ok("", "vault", "list", alice).stdout; strings.Count(v, "account deleted 20") != 2 {
		t.Fatalf("vault list after the deletion:\n%s", v)
	}

	exportTo := func(name, scope string) escrowDone {
		t.Helper()
		out := filepath.Join(te.dir, name)
		var done escrowDone
		// Standard error on a terminal: the export draws its progress.
		r := te.runOnTerminal(escrowPW+"\n", "escrow", "export", "--key", key, "--out", out, "--password-stdin", "--json", scope)
		if r.code != 0 {
			t.Fatalf("export %s: exit %d\nstdout: %s\nterminal: %s", scope, r.code, r.stdout, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &done); err != nil {
			t.Fatalf("export %s: %q: %v", scope, r.stdout, err)
		}
		if !strings.Contains(r.stderr, "\rexport   1 message") {
			t.Errorf("no progress on standard error: %q", r.stderr)
		}
		checkMbox(t, out, read)
		return done
	}
	if d := exportTo("alice-live.mbox", "user:"+alice); d.Written != 2 || d.Skipped != 0 || d.Failed != 0 {
		t.Errorf("export of the deleted account while serving: %+v", d)
	}
	// bob's copies were not producible: in scope, not sealed to escrow.
	if d := exportTo("org-live.mbox", "org"); d.Written != 2 || d.Skipped != 2 {
		t.Errorf("export org: %+v", d)
	}
	te.fails(exitUsage, "--key FILE is required", "", "escrow", "export", "--out", filepath.Join(te.dir, "x.mbox"), "user:"+alice)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if d := exportTo("alice-offline.mbox", "mailbox:"+alice+"/INBOX"); d.Written != 2 {
		t.Errorf("export with the server stopped: %+v", d)
	}
	te.fails(exitError, "wrong passphrase", "not the escrow passphrase\n", "escrow", "export", "--key", key,
		"--out", filepath.Join(te.dir, "y.mbox"), "--password-stdin", "user:"+alice)

	var got []string
	for _, r := range exportLines(t, te.ok("", "audit", "export").stdout) {
		switch r.Action {
		case "escrow.init", "escrow.export", "policy.assign", "account.delete":
			got = append(got, r.Action+" "+r.Scope+" "+r.Detail["outcome"]+" "+r.Detail["messages"])
		}
	}
	want := []string{
		"escrow.init org  ",
		"policy.assign user:" + alice + "  ",
		"account.delete user:" + alice + "  ",
		"escrow.export user:" + alice + " started ", "escrow.export user:" + alice + " written 2",
		"escrow.export org started ", "escrow.export org written 2",
		"escrow.export user:" + alice + " refused ",
		"escrow.export mailbox:" + alice + "/INBOX started ", "escrow.export mailbox:" + alice + "/INBOX written 2",
		"escrow.export user:" + alice + " refused ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := te.runOnTerminal("", "audit", "verify"); r.code != 0 || !strings.Contains(r.stderr, "\rverify   [") || !strings.Contains(r.stderr, "100%") {
		t.Errorf("no progress on standard error: %q", r.stderr)
	}
}
