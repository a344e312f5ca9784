package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store/badgerstore"
)

// binary is the sealmail binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sealmail-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by others so a test can run it as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binary = filepath.Join(dir, "sealmail")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sealmail:", err)
		return 1
	}
	return m.Run()
}

// testEnv is a private data directory and environment for CLI runs.
type testEnv struct {
	t       testing.TB
	dir     string // working directory (no sealmail.yaml unless a test writes one)
	dataDir string
	env     []string
}

// newTestEnv makes a data directory in a short temporary path (Unix socket
// paths are limited to 108 bytes) and cheap KDF settings.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "sm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	te := &testEnv{t: t, dir: dir, dataDir: filepath.Join(dir, "data")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") && !strings.HasPrefix(kv, "GORACE=") {
			te.env = append(te.env, kv)
		}
	}
	te.env = append(te.env,
		// The race runtime sleeps a second at exit by default.
		"GORACE=atexit_sleep_ms=0 halt_on_error=1",
		"SEALMAIL_DATA_DIR="+te.dataDir,
		"SEALMAIL_DOMAINS=example.org localhost",
		"SEALMAIL_KDF_TIME=1",
		"SEALMAIL_KDF_MEMORY_KIB=1024",
		"SEALMAIL_LISTEN_SMTP=127.0.0.1:0",
		"SEALMAIL_LISTEN_SUBMISSION=127.0.0.1:0",
		"SEALMAIL_LISTEN_SUBMISSIONS=127.0.0.1:0",
		"SEALMAIL_LISTEN_IMAP=127.0.0.1:0",
		"SEALMAIL_LISTEN_IMAPS=127.0.0.1:0",
		"SEALMAIL_LISTEN_HTTPS=127.0.0.1:0",
		"SEALMAIL_LISTEN_POP3=127.0.0.1:0",
		"SEALMAIL_LISTEN_POP3S=127.0.0.1:0",
	)
	return te
}

// result is one finished CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (te *testEnv) command(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Dir = te.dir
	cmd.Env = te.env
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs sealmail with args and stdin and returns what it printed.
func (te *testEnv) run(stdin string, args ...string) result {
	te.t.Helper()
	cmd := te.command(stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		te.t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs and fails the test unless the exit code is 0.
func (te *testEnv) ok(stdin string, args ...string) result {
	te.t.Helper()
	r := te.run(stdin, args...)
	if r.code != 0 {
		te.t.Fatalf("sealmail %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs and checks the exit code and that stderr mentions want.
func (te *testEnv) fails(code int, want, stdin string, args ...string) result {
	te.t.Helper()
	r := te.run(stdin, args...)
	if r.code != code {
		te.t.Fatalf("sealmail %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		te.t.Fatalf("sealmail %s: stderr %q does not mention %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// server is a running `sealmail serve`.
type server struct {
	cmd   *exec.Cmd
	addrs map[string]string // "smtp" → "127.0.0.1:port"
	done  chan struct{}
	err   error // set when done is closed
	mu    sync.Mutex
	log   bytes.Buffer    // guarded by mu
	out   strings.Builder // standard output; guarded by mu
}

// stdout is what the server printed so far.
func (s *server) stdout() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var listenLine = regexp.MustCompile(`^\s+(smtp|submission|submissions|imap|imaps|pop3|pop3s|https|control|metrics)\s+(\S+) \(`)

// serve starts `sealmail serve` and waits until it prints where it listens.
func (te *testEnv) serve() *server {
	te.t.Helper()
	return te.start(te.command("", "serve"))
}

// start starts cmd, a `sealmail serve`, and waits until it prints where it
// listens.
func (te *testEnv) start(cmd *exec.Cmd) *server {
	te.t.Helper()
	cmd.Stdin = nil
	s := &server{cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	cmd.Stderr = lockedWriter{&s.mu, &s.log}
	out, err := cmd.StdoutPipe()
	if err != nil {
		te.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		te.t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		readyClosed := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			if m := listenLine.FindStringSubmatch(line); m != nil {
				s.addrs[m[1]] = m[2]
			}
			s.mu.Unlock()
			if line == readyLine {
				close(ready)
				readyClosed = true
			}
		}
		if !readyClosed {
			close(ready)
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	te.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		te.t.Fatalf("serve did not start:\n%s", s.logs())
	}
	s.mu.Lock()
	n := len(s.addrs)
	s.mu.Unlock()
	if n == 0 {
		<-s.done
		te.t.Fatalf("serve exited: %v\n%s", s.err, s.logs())
	}
	return s
}

func (s *server) addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// stop sends sig and waits for the process to exit.
func (s *server) stop(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit after %v:\n%s", sig, s.logs())
	}
	return s.err
}

func TestCLIUsage(t *testing.T) {
	te := newTestEnv(t)
	te.fails(exitUsage, "usage: sealmail", "")
	te.fails(exitUsage, `unknown command "frobnicate"`, "", "frobnicate")
	te.fails(exitUsage, `unknown command "user frob"`, "", "user", "frob")
	te.fails(exitUsage, "want exactly one ADDRESS", "", "user", "add")
	te.fails(exitUsage, "flag provided but not defined", "", "user", "list", "--nope")
	te.fails(exitUsage, "use --wkd=true|false, --quota SIZE or --autocrypt=true|false", "", "user", "set", "a@example.org")
	te.fails(exitUsage, "--wkd: want true or false", "", "user", "set", "a@example.org", "--wkd=maybe")
	te.fails(exitUsage, "pass --yes", "", "user", "delete", "a@example.org")
	te.fails(exitUsage, "use --password-stdin", "", "user", "add", "a@example.org")
	r := te.ok("", "help")
	if !strings.Contains(r.stdout, "recovery-code") {
		t.Errorf("help lacks commands:\n%s", r.stdout)
	}
	r = te.ok("", "help", "user", "add")
	if !strings.Contains(r.stdout, "-password-stdin") {
		t.Errorf("help user add lacks its flag:\n%s", r.stdout)
	}
}

func TestCLIConfig(t *testing.T) {
	te := newTestEnv(t)
	// Flag beats environment; flags may come before or after the command.
	for _, args := range [][]string{
		{"--data-dir", "/from/flag", "config", "show"},
		{"config", "show", "--data-dir=/from/flag"},
	} {
		r := te.ok("", args...)
		if !strings.Contains(r.stdout, "data_dir: /from/flag\n") {
			t.Errorf("%v: flag not applied:\n%s", args, r.stdout)
		}
	}
	r := te.ok("", "config", "show")
	if !strings.Contains(r.stdout, "data_dir: "+te.dataDir+"\n") || !strings.Contains(r.stdout, "- example.org\n") {
		t.Errorf("env not applied:\n%s", r.stdout)
	}
	cfg := filepath.Join(te.dir, "other.yaml")
	if err := os.WriteFile(cfg, []byte("hostname: mx.example.org\nlimits:\n  recipents: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	te.fails(exitError, "unknown key limits.recipents", "", "--config", cfg, "config", "show")
	if err := os.WriteFile(cfg, []byte("hostname: mx.example.org\nlimits:\n  command_timeout: 300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	te.fails(exitError, "limits.command_timeout", "", "config", "show", "--config", cfg)
	te.fails(exitError, "outbound.transports", "", "config", "show", "--config", writeFile(t, te.dir, "s.yaml", "outbound:\n  transports: [example.net]\n"))
	te.fails(exitError, "no such file", "", "config", "show", "--config", filepath.Join(te.dir, "missing.yaml"))
}

const (
	alicePW  = "correct horse battery staple"
	aliceNew = "a new and even longer password"
)

// userLifecycle runs every account command against te, whether a server
// holds the store (remote) or not (local).
func userLifecycle(t *testing.T, te *testEnv) {
	r := te.ok(alicePW+"\n", "user", "add", "Alice@Example.ORG", "--password-stdin")
	if !strings.Contains(r.stdout, "created alice@example.org") {
		t.Errorf("user add said %q", r.stdout)
	}
	te.fails(exitError, "already exists", alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.fails(exitError, `malformed address "bob@@example.org": '@' in local part`, alicePW+"\n", "user", "add", "bob@@example.org", "--password-stdin")
	te.fails(exitError, `malformed address "bob%x@example.org": '%' in local part`, alicePW+"\n", "user", "add", "bob%x@example.org", "--password-stdin")
	te.fails(exitError, `malformed address "bob": "bob" is not local@domain`, alicePW+"\n", "user", "add", "bob", "--password-stdin")
	te.fails(exitError, "not configured", alicePW+"\n", "user", "add", "bob@example.net", "--password-stdin")
	// The address is refused before any password is read.
	te.fails(exitError, `malformed address "bob@@example.org"`, "", "user", "add", "bob@@example.org", "--password-stdin")
	te.fails(exitError, "not configured", "", "user", "add", "bob@example.net", "--password-stdin")
	te.fails(exitError, "too short", "short\n", "user", "add", "bob@example.org", "--password-stdin")
	te.fails(exitError, "no password", "", "user", "add", "bob@example.org", "--password-stdin")
	te.fails(exitError, "empty", "\n", "user", "add", "bob@example.org", "--password-stdin")

	r = te.ok("", "user", "list")
	if !regexp.MustCompile(`alice@example.org\s+\d{4}-\d\d-\d\d\s+yes\s+password\s+0\s+none\s+[0-9a-f]{40}`).MatchString(r.stdout) {
		t.Errorf("user list:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "bob@") {
		t.Errorf("a refused account was created:\n%s", r.stdout)
	}
	te.ok("", "user", "set", "alice@example.org", "--wkd=false")
	if r = te.ok("", "user", "list"); !regexp.MustCompile(`alice@example.org\s+\S+\s+no\s`).MatchString(r.stdout) {
		t.Errorf("wkd not cleared:\n%s", r.stdout)
	}
	te.ok("", "user", "set", "alice@example.org", "--wkd=true")
	te.fails(exitError, "no account", "", "user", "set", "carol@example.org", "--wkd=true")

	pub := te.ok("", "key", "export", "alice@example.org").stdout
	if !strings.HasPrefix(pub, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("key export:\n%s", pub)
	}
	te.fails(exitError, "no account", "", "key", "export", "carol@example.org")
	checkGPGImport(t, pub, "", "alice@example.org")

	te.fails(exitError, "wrong password", "not the password at all\n", "key", "export-secret", "alice@example.org", "--password-stdin")
	sec := te.ok(alicePW+"\n", "key", "export-secret", "alice@example.org", "--password-stdin").stdout
	if !strings.HasPrefix(sec, "-----BEGIN PGP PRIVATE KEY BLOCK-----") {
		t.Fatalf("key export-secret:\n%.200s", sec)
	}
	checkGPGImport(t, sec, alicePW, "alice@example.org")

	r = te.ok(alicePW+"\n", "user", "recovery-code", "alice@example.org", "--password-stdin")
	code := lastLine(r.stdout)
	if !regexp.MustCompile(`^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$`).MatchString(code) || strings.Contains(r.stdout, alicePW) {
		t.Fatalf("recovery-code printed %q", r.stdout)
	}
	te.fails(exitError, "cannot reset a password without the current password", "wrong wrong wrong\n"+aliceNew+"\n",
		"user", "passwd", "alice@example.org", "--password-stdin")
	te.fails(exitError, "too short", code+"\nshort\n", "user", "passwd", "alice@example.org", "--password-stdin")
	// The recovery code unlocks however a person types it back (lower
	// case, spaces for dashes, O for 0 and l for 1); the old password slot
	// goes.
	typed := strings.NewReplacer("-", " ", "0", "O", "1", "l").Replace(strings.ToLower(code))
	r = te.ok(typed+"\n"+aliceNew+"\n", "user", "passwd", "alice@example.org", "--password-stdin")
	if !strings.Contains(r.stdout, "password changed") {
		t.Errorf("passwd said %q", r.stdout)
	}
	te.fails(exitError, "wrong password", alicePW+"\n", "key", "export-secret", "alice@example.org", "--password-stdin")
	sec2 := te.ok(aliceNew+"\n", "key", "export-secret", "alice@example.org", "--password-stdin").stdout
	checkGPGImport(t, sec2, aliceNew, "alice@example.org")
	if r = te.ok("", "user", "list"); !regexp.MustCompile(`alice@example.org\s+\S+\s+yes\s+(recovery,password|password,recovery)\s`).MatchString(r.stdout) {
		t.Errorf("slots after passwd:\n%s", r.stdout)
	}
	// Same key after the password change: mail stays readable.
	if pub2 := te.ok("", "key", "export", "alice@example.org").stdout; pub2 != pub {
		t.Error("public key changed with the password")
	}

	// App passwords: printed alone on the last line, listed with their
	// label, revocable; the last password or recovery code is not.
	te.fails(exitUsage, "want ADDRESS and LABEL", aliceNew+"\n", "user", "app-password", "alice@example.org", "--password-stdin")
	te.fails(exitError, "wrong password", "wrong wrong wrong\n", "user", "app-password", "alice@example.org", "phone", "--password-stdin")
	r = te.ok(aliceNew+"\n", "user", "app-password", "alice@example.org", "Thunderbird laptop", "--password-stdin")
	app := lastLine(r.stdout)
	if !regexp.MustCompile(`^([0-9a-hjkmnp-tv-z]{4}-){4}[0-9a-hjkmnp-tv-z]{4}$`).MatchString(app) {
		t.Fatalf("app-password printed %q", r.stdout)
	}
	// An app password cannot make another or change the account.
	te.fails(exitError, "wrong password", app+"\n", "user", "app-password", "alice@example.org", "phone", "--password-stdin")
	te.fails(exitError, "wrong password", app+"\n"+alicePW+"\n", "user", "passwd", "alice@example.org", "--password-stdin")
	r = te.ok("", "user", "slots", "alice@example.org")
	if !regexp.MustCompile(`(?m)^\d+\s+app-password\s+\S+ \S+\s+Thunderbird laptop$`).MatchString(r.stdout) {
		t.Errorf("user slots:\n%s", r.stdout)
	}
	var slots []struct {
		ID      uint32    `json:"id"`
		Kind    string    `json:"kind"`
		Label   string    `json:"label"`
		Created time.Time `json:"created"`
	}
	if err := json.Unmarshal([]byte(te.ok("", "user", "slots", "alice@example.org", "--json").stdout), &slots); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]uint32{}
	for _, sl := range slots {
		if sl.ID == 0 || sl.Created.IsZero() {
			t.Errorf("slot %+v", sl)
		}
		kinds[sl.Kind] = sl.ID
	}
	if len(slots) != 3 || kinds["password"] == 0 || kinds["recovery"] == 0 || kinds["app-password"] == 0 {
		t.Fatalf("user slots --json: %+v", slots)
	}
	id := func(k string) string { return strconv.FormatUint(uint64(kinds[k]), 10) }
	te.fails(exitUsage, "SLOT-ID", "", "user", "revoke", "alice@example.org", "x")
	te.fails(exitError, "has no unlock slot 999", "", "user", "revoke", "alice@example.org", "999")
	r = te.ok("", "user", "revoke", "alice@example.org", id("app-password"))
	if !strings.Contains(r.stdout, `(app-password "Thunderbird laptop")`) {
		t.Errorf("revoke said %q", r.stdout)
	}
	te.ok("", "user", "revoke", "alice@example.org", id("recovery"))
	te.fails(exitError, "last password or recovery code", "", "user", "revoke", "alice@example.org", id("password"))
	var users []userInfo
	if err := json.Unmarshal([]byte(te.ok("", "user", "list", "--json").stdout), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Address != "alice@example.org" || len(users[0].Slots) != 1 || users[0].Fingerprint == "" {
		t.Errorf("user list --json: %+v", users)
	}

	r = te.ok("", "user", "delete", "alice@example.org", "--yes")
	if !strings.Contains(r.stdout, "destroyed 1 unlock slot(s) and the wrapped private key") ||
		!strings.Contains(r.stdout, "6 mailbox(es)") {
		t.Errorf("delete said %q", r.stdout)
	}
	te.fails(exitError, "no account", "", "user", "delete", "alice@example.org", "--yes")
	if r = te.ok("", "user", "list"); strings.Contains(r.stdout, "alice") {
		t.Errorf("deleted account still listed:\n%s", r.stdout)
	}
}

// lastLine is the last non-empty line of out, trimmed.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// checkGPGImport imports an armored key into a throwaway GnuPG home and
// checks its user ID. With a passphrase, the secret key must unlock with it.
func checkGPGImport(t *testing.T, armored, passphrase, uid string) {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal("gpg is needed (README lists the test prerequisites; .ci/run installs them)")
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	base := []string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", passphrase}
	imp := exec.Command(gpg, append(base, "--import")...)
	imp.Stdin = strings.NewReader(armored)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	list := "--list-keys"
	if passphrase != "" {
		list = "--list-secret-keys"
	}
	out, err := exec.Command(gpg, append(base, "--with-colons", list)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gpg %s: %v\n%s", list, err, out)
	}
	if !strings.Contains(string(out), uid) {
		t.Fatalf("gpg lists no UID %s:\n%s", uid, out)
	}
	if passphrase == "" {
		return
	}
	// Sign something: only works if the passphrase unlocks the secret key.
	sign := exec.Command(gpg, append(base, "--local-user", uid, "--clearsign")...)
	sign.Stdin = strings.NewReader("hello\n")
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("gpg --clearsign with the exported key: %v\n%s", err, out)
	}
}

func TestCLIUsersLocal(t *testing.T) {
	te := newTestEnv(t)
	userLifecycle(t, te)
}

func TestCLIUsersWhileServing(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	sock := filepath.Join(te.dataDir, "control.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want socket 0600", fi.Mode())
	}
	userLifecycle(t, te)
	te.ok(alicePW+"\n", "user", "add", "bob@example.org", "--password-stdin")
	te.fails(exitError, "another sealmail serve is running", "", "serve")
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs())
	}
	// The log is complete once the process has exited.
	logs := s.logs()
	if !strings.Contains(logs, "self-signed") {
		t.Errorf("no self-signed warning:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="control request user.add"`) || !strings.Contains(logs, `msg="control request user.passwd"`) ||
		!strings.Contains(logs, `msg="control request user.app-password"`) || !strings.Contains(logs, `msg="control request user.revoke"`) {
		t.Errorf("the admin commands did not go through the server:\n%s", logs)
	}
	// The CLI's liveness probe and the second serve's are not bad
	// requests.
	if strings.Contains(logs, "bad request") || strings.Contains(logs, "control reply") {
		t.Errorf("control socket warnings for well-formed CLI requests:\n%s", logs)
	}
	if strings.Contains(logs, alicePW) || strings.Contains(logs, aliceNew) {
		t.Error("a password reached the server log")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	// The store reopens: the CLI now works on its own.
	if r := te.ok("", "user", "list"); !strings.Contains(r.stdout, "bob@example.org") {
		t.Errorf("after shutdown:\n%s", r.stdout)
	}
}

// TestCLIStaleSocket: a socket left by a crashed server is removed and the
// CLI opens the store itself.
func TestCLIStaleSocket(t *testing.T) {
	te := newTestEnv(t)
	if err := os.MkdirAll(te.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(te.dataDir, "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("stale socket not removed: %v", err)
	}
}

// TestControlPeerCheck: the server answers only its own user. Run as
// root, a child process switches to nobody and must be refused.
func TestControlPeerCheck(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	te := newTestEnv(t)
	s := te.serve()
	sock := filepath.Join(te.dataDir, "control.sock")
	// Let the other user reach the socket file itself, so only the
	// credential check stands in the way.
	for _, p := range []string{te.dir, te.dataDir} {
		os.Chmod(p, 0o711)
	}
	os.Chmod(sock, 0o666)
	cmd := te.command("", "user", "list")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("another user was served:\n%s", out)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs())
	}
	if !strings.Contains(s.logs(), "connection from another user refused") {
		t.Errorf("no refusal logged:\n%s\nclient said: %s", s.logs(), out)
	}
}

// TestCLIStoreLocked: a store held by another process (here: the test)
// with no control socket is a clear error, and nothing is created.
func TestCLIStoreLocked(t *testing.T) {
	te := newTestEnv(t)
	te.ok("", "user", "list") // creates the store
	st, err := badgerstore.Open(filepath.Join(te.dataDir, "store"), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	te.fails(exitError, "another sealmail holds "+te.dataDir, alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.fails(exitError, "another sealmail holds", "", "serve")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if r := te.ok("", "user", "list"); strings.Contains(r.stdout, "alice") {
		t.Errorf("account created while the store was locked:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(te.dataDir, "control.sock")); !os.IsNotExist(err) {
		t.Errorf("the failed serve left its control socket: %v", err)
	}
}
