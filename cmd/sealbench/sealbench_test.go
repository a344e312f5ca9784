package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testUser = "bench1@sealbench.test"

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a `sealbench serve` running in-process through run.
type served struct {
	smtp, imap string
	passFile   string
	stop       func() int // cancels serve and returns its exit status
}

// runServe runs `sealbench serve` on data with cheap argon2id and
// listeners on 127.0.0.1:0, and waits for its ready line.
func runServe(t *testing.T, data string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"serve", "-data", data, "-smtp", "127.0.0.1:0", "-imap", "127.0.0.1:0", "-fast-kdf"}, pw, &stderr)
		pw.Close()
		done <- code
	}()
	s := &served{passFile: filepath.Join(data, passFileName)}
	sc := bufio.NewScanner(pr)
	var out []string
	for sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "smtp" {
			s.smtp = f[1]
		} else if len(f) >= 2 && f[0] == "imap" {
			s.imap = f[1]
		}
		if strings.HasPrefix(line, "ready") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if s.smtp == "" || s.imap == "" {
		cancel()
		t.Fatalf("serve did not get ready (exit %d):\n%s\nstderr:\n%s", <-done, strings.Join(out, "\n"), stderr.String())
	}
	var once sync.Once
	var code int
	s.stop = func() int {
		once.Do(func() {
			cancel()
			code = <-done
			if code != 0 {
				t.Errorf("serve exited %d; stderr:\n%s", code, stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// sealbench runs one command in-process and returns its exit status and
// output.
func sealbench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s output lacks %q:\n%s", what, w, out)
		}
	}
}

func TestIngestIMAPVerify(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv := runServe(t, data)
	ids := filepath.Join(dir, "ids")

	const n = 40
	code, out, errOut := sealbench(t, "ingest", "-addr", srv.smtp, "-n", fmt.Sprint(n), "-c", "4", "-size", "4096",
		"-to", testUser, "-starttls", "-insecure", "-ids", ids, "-word", "zebrafish", "-word-every", "10")
	if code != 0 {
		t.Fatalf("ingest exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "ingest", out, "accepted 40, failed 0", `accepted with the word "zebrafish": 4`,
		"msgs/s", "MB/s", "latency p50 ", " p90 ", " p99 ")
	recorded, err := readIDs(ids)
	if err != nil || len(recorded) != n {
		t.Fatalf("ids file: %d ids, %v; want %d", len(recorded), err, n)
	}

	// imap first, so that its first envelope fetch is the first one.
	code, out, errOut = sealbench(t, "imap", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
		"-pass-file", srv.passFile, "-word", "zebrafish", "-sessions", "5", "-session-mode", "idle", "-pid", fmt.Sprint(os.Getpid()), "-settle", "0s")
	if code != 0 {
		t.Fatalf("imap exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "imap", out, "40 messages\n", "connect: ", "LOGIN: ", "SELECT: ",
		"envelopes, first fetch: ", "(40 messages, UID FETCH", "envelopes, second: ",
		"bodies: ", "MB/s", "search: ", "(4 hits, UID SEARCH TEXT zebrafish)",
		"idle sessions:          5 logged in", "(after 4 warm-up sessions), mode idle", "server memory: ", "KiB per idle session")
	for _, mode := range []string{"login", "select", "notify"} {
		code, out, errOut = sealbench(t, "imap", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
			"-pass-file", srv.passFile, "-sessions", "2", "-session-par", "1", "-session-mode", mode, "-hold", "1ms")
		if code != 0 {
			t.Fatalf("imap -session-mode %s: exit %d\n%s%s", mode, code, out, errOut)
		}
		mustContain(t, "imap -session-mode "+mode, out, "idle sessions:          2 logged in", "mode "+mode)
		mustContain(t, "imap -session-mode "+mode+" stderr", errOut, "holding 3 idle sessions for 1ms")
	}

	code, out, errOut = sealbench(t, "verify", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
		"-pass-file", srv.passFile, "-ids", ids)
	if code != 0 {
		t.Fatalf("verify exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "verify", out, "40 messages; 40 of 40 recorded Message-IDs found, 0 missing")

	// A Message-ID that was never sent must be reported, with exit 1.
	f, err := os.OpenFile(ids, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "never-sent.1@sealbench.invalid")
	f.Close()
	code, out, errOut = sealbench(t, "verify", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
		"-pass-file", srv.passFile, "-ids", ids)
	if code != 1 {
		t.Fatalf("verify with a missing ID: exit %d, want 1\n%s%s", code, out, errOut)
	}
	mustContain(t, "verify", out, "40 of 41 recorded Message-IDs found, 1 missing", "missing: <never-sent.1@sealbench.invalid>")
	mustContain(t, "verify stderr", errOut, "1 accepted messages did not arrive")

	// serve again on the same data: the account and its password file are
	// reused and every message is still there.
	srv.stop()
	srv = runServe(t, data)
	code, out, errOut = sealbench(t, "verify", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
		"-pass-file", srv.passFile, "-ids", ids)
	if code != 1 {
		t.Fatalf("verify after restart: exit %d, want 1\n%s%s", code, out, errOut)
	}
	mustContain(t, "verify after restart", out, "40 of 41 recorded Message-IDs found, 1 missing")
}

func TestIngestErrorsByCode(t *testing.T) {
	srv := runServe(t, filepath.Join(t.TempDir(), "data"))
	code, out, errOut := sealbench(t, "ingest", "-addr", srv.smtp, "-n", "6", "-c", "2", "-size", "2000",
		"-to", "nobody@sealbench.test")
	if code != 1 {
		t.Fatalf("ingest to an unknown user: exit %d, want 1\n%s%s", code, out, errOut)
	}
	mustContain(t, "ingest", out, "accepted 0, failed 6", "error x6: 550 5.1.1 ")
	mustContain(t, "ingest stderr", errOut, "6 of 6 messages not accepted")

	code, out, errOut = sealbench(t, "ingest", "-addr", srv.smtp, "-n", "3", "-to", "someone@elsewhere.example")
	if code != 1 {
		t.Fatalf("ingest to a foreign domain: exit %d, want 1\n%s%s", code, out, errOut)
	}
	mustContain(t, "ingest", out, "error x3: 550 5.7.1 ")
}

func TestVerifyWrongPassword(t *testing.T) {
	dir := t.TempDir()
	srv := runServe(t, filepath.Join(dir, "data"))
	bad := filepath.Join(dir, "bad")
	ids := filepath.Join(dir, "ids")
	for path, content := range map[string]string{bad: "not-the-password\n", ids: "x.1@sealbench.invalid\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := sealbench(t, "verify", "-imap", srv.imap, "-starttls", "-insecure", "-user", testUser,
		"-pass-file", bad, "-ids", ids)
	if code != 1 || !strings.Contains(errOut, "login:") {
		t.Fatalf("verify with a wrong password: exit %d, want 1 and a login error\n%s%s", code, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(passwordEnv, "")
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"ingest", "-nope"},
		{"ingest", "-n", "1"}, // no -to
		{"ingest", "-to", "a@b.example", "-n", "0"},
		{"ingest", "-to", "a@b.example", "-c", "-1"},
		{"ingest", "-to", "a@b.example", "-size", "0"},
		{"ingest", "-to", "a@b.example", "-word", "two words"},
		{"ingest", "-to", "a@b.example", "-word-every", "0"},
		{"ingest", "-to", "a@b.example", "extra"},
		{"verify", "-ids", "x"},                                // no -user
		{"verify", "-user", "a@b.example", "-pass-file", pass}, // no -ids
		{"verify", "-user", "a@b.example", "-ids", "x"},        // no password
		{"verify", "-user", "a@b.example", "-pass-file", pass, "-ids", "x", "-tls", "-starttls"},
		{"verify", "-user", "a@b.example", "-pass-file", pass, "-ids", "x", "-imap", "no-port"},
		{"imap"},
		{"imap", "-user", "a@b.example", "-pass-file", pass, "-pid", "1"}, // -pid without -sessions
		{"imap", "-user", "a@b.example", "-pass-file", pass, "-sessions", "-1"},
		{"imap", "-user", "a@b.example", "-pass-file", pass, "-session-par", "0"},
		{"imap", "-user", "a@b.example", "-pass-file", pass, "-sessions", "1", "-settle", "-1s"},
		{"serve"}, // no -data
		{"serve", "-data", dir, "-users", "2", "-user", "a@b.example"},
		{"serve", "-data", dir, "-users", "0"},
		{"serve", "-data", dir, "-user", "not an address"},
		{"serve", "-data", dir, "-max-conns", "0"},
	} {
		code, out, errOut := sealbench(t, args...)
		if code != 2 {
			t.Errorf("sealbench %q: exit %d, want 2\n%s%s", args, code, out, errOut)
		}
		if errOut == "" {
			t.Errorf("sealbench %q: nothing on stderr", args)
		}
	}
	for _, args := range [][]string{{"help"}, {"ingest", "-h"}, {"serve", "-help"}} {
		if code, out, errOut := sealbench(t, args...); code != 0 {
			t.Errorf("sealbench %q: exit %d, want 0\n%s%s", args, code, out, errOut)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	// A listener that is closed at once gives a port nobody answers on.
	srv := runServe(t, filepath.Join(t.TempDir(), "data"))
	addr := srv.smtp
	srv.stop()
	code, out, errOut := sealbench(t, "ingest", "-addr", addr, "-n", "2", "-to", testUser, "-timeout", "5s")
	if code != 1 {
		t.Fatalf("ingest to a closed port: exit %d, want 1\n%s%s", code, out, errOut)
	}
	mustContain(t, "ingest", out, "error x2: network: dial: ")
}

func TestBuildMessage(t *testing.T) {
	filler := fillerLines(64 << 10)
	for _, size := range []int{1, 100, 300, 301, 302, 1000, 10240, 65536} {
		for _, word := range []bool{false, true} {
			cfg := ingestConfig{size: size, from: "s@x.invalid", to: []string{"a@b.example"}, word: "zebrafish"}
			var b bytes.Buffer
			buildMessage(&b, cfg, "id.1@x.invalid", word, filler)
			msg := b.Bytes()
			hdr, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
			if !ok {
				t.Fatalf("size %d: no header/body separator", size)
			}
			// Exactly size bytes, unless the header (and word line) alone
			// leave no room for a body line.
			want := len(hdr) + 4 + len(wordLine(cfg, word))
			if size-want > 2 {
				want = size
			}
			if len(msg) != want {
				t.Errorf("size %d word %v: message is %d bytes, want %d", size, word, len(msg), want)
			}
			if got := bytes.Contains(body, []byte("zebrafish")); got != word {
				t.Errorf("size %d: word in body = %v, want %v", size, got, word)
			}
			if !bytes.Contains(hdr, []byte("Message-ID: <id.1@x.invalid>")) {
				t.Errorf("size %d: no Message-ID", size)
			}
			// Every line ends in CRLF: no bare CR or LF for the server to refuse.
			for i, c := range msg {
				if c == '\n' && (i == 0 || msg[i-1] != '\r') || c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
					t.Fatalf("size %d: bare CR or LF at %d", size, i)
				}
			}
			if !bytes.HasSuffix(msg, []byte("\r\n")) {
				t.Errorf("size %d: no final CRLF", size)
			}
		}
	}
}

// wordLine is the body line buildMessage adds for the word.
func wordLine(cfg ingestConfig, word bool) string {
	if !word {
		return ""
	}
	return "The word is " + cfg.word + ".\r\n"
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
	if got := percentile(d[:1], 99); got != time.Millisecond {
		t.Errorf("percentile of one = %v", got)
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS(strings.NewReader("Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n"))
	if err != nil || got != 12345<<10 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 12345<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\tlots kB\n", "VmRSS:\t12 MB\n", "VmRSS:\t-1 kB\n"} {
		if _, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("parseVmRSS(%q): no error", bad)
		}
	}
	if rss, err := readRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("readRSS(self) = %d, %v", rss, err)
	}
}

func TestCompareIDs(t *testing.T) {
	res := compareIDs([]string{"a", "b", "c"}, map[string]int{"a": 1, "c": 3, "z": 1}, 5)
	if res.expected != 3 || res.found != 2 || res.duplicates != 2 || len(res.missing) != 1 || res.missing[0] != "b" || res.inMailbox != 5 {
		t.Errorf("compareIDs = %+v", res)
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("secret one\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readPassword(p); err != nil || got != "secret one" {
		t.Errorf("readPassword = %q, %v", got, err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), maxPasswordFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPassword(p); err == nil {
		t.Error("readPassword of an oversized file: no error")
	}
	// loadOrMakePassword makes a private file once and then reuses it.
	q := filepath.Join(dir, "new")
	pw1, err := loadOrMakePassword(q)
	if err != nil || len(pw1) < 20 {
		t.Fatalf("loadOrMakePassword = %q, %v", pw1, err)
	}
	if fi, err := os.Stat(q); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode: %v, %v", fi.Mode(), err)
	}
	if pw2, err := loadOrMakePassword(q); err != nil || pw2 != pw1 {
		t.Errorf("second loadOrMakePassword = %q, %v; want %q", pw2, err, pw1)
	}
}

func TestParseMemStatus(t *testing.T) {
	st := "Name:\tx\nVmHWM:\t  2000 kB\nVmRSS:\t   1500 kB\nRssAnon:\t 1000 kB\nRssFile:\t 400 kB\nRssShmem:\t 100 kB\n"
	m, err := parseMemStatus(strings.NewReader(st))
	if err != nil || m.hwm != 2000<<10 || m.rss != 1500<<10 || m.anon != 1000<<10 || m.file != 400<<10 {
		t.Errorf("parseMemStatus = %+v, %v", m, err)
	}
	if _, err := parseMemStatus(strings.NewReader("VmRSS:\t1 kB\n")); err == nil {
		t.Error("parseMemStatus without VmHWM, RssAnon, RssFile: no error")
	}
	// The ingest run with -pid on this process: the watch reads real
	// /proc files.
	w, err := watchRSS(context.Background(), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.finish()
	if err != nil || rep.peak <= 0 || rep.clean+rep.dirty <= 0 {
		t.Errorf("watch of self: %+v, %v", rep, err)
	}
}

// TestIngestReportsMemory: ingest -pid reports the server's memory.
func TestIngestReportsMemory(t *testing.T) {
	srv := runServe(t, filepath.Join(t.TempDir(), "data"))
	code, out, errOut := sealbench(t, "ingest", "-addr", srv.smtp, "-n", "4", "-c", "2", "-size", "2000",
		"-to", "bench1@sealbench.test", "-pid", strconv.Itoa(os.Getpid()))
	if code != 0 {
		t.Fatalf("ingest: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "ingest", out, "memory: VmRSS", "anonymous (heap, stacks): growth", "clean (page cache")
}

// TestProbe: probe counts the unknown recipients a server answers.
func TestProbe(t *testing.T) {
	srv := runServe(t, filepath.Join(t.TempDir(), "data"))
	code, out, errOut := sealbench(t, "probe", "-addr", srv.smtp, "-c", "2", "-d", "500ms")
	if code != 0 {
		t.Fatalf("probe: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "probe", out, "addresses probed", "answered unknown")
	if code, _, _ := sealbench(t, "probe", "-c", "0"); code != 2 {
		t.Errorf("probe -c 0: exit %d, want 2", code)
	}
}
