package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// asMainEnv makes the test binary run as sealbench itself (TestMain), so
// that the mailbox harness can start it as its server process.
const asMainEnv = "SEALBENCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestMailBench runs the harness on a small data set with both clients:
// every row of the table is reported, and the run (which checks each
// command's responses against the data set) succeeds; the second run
// reuses the data set the first filled.
func TestMailBench(t *testing.T) {
	t.Setenv(asMainEnv, "1")
	data := filepath.Join(t.TempDir(), "mb")
	for _, client := range []string{clientRaw, clientGoIMAP} {
		t.Run(client, func(t *testing.T) {
			code, out, errOut := sealbench(t, "mailbox", "-data", data, "-messages", "200", "-resync-messages", "100",
				"-fast-kdf", "-client", client, "-timeout", "2m")
			if code != 0 {
				t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
			}
			mustContain(t, "mailbox", out, "200 messages", "2 hits of \"quokkaberry\"", "client "+client)
			for _, row := range mailTargets {
				line := tableLine(out, row.name)
				if line == "" {
					t.Errorf("no row %q:\n%s", row.name, out)
					continue
				}
				if !strings.Contains(line, "ms") {
					t.Errorf("row %q has no figure: %q", row.name, line)
				}
			}
			mustContain(t, "envelopes row", tableLine(out, mailTargets[rowEnvFirst].name), "200 FETCH")
			mustContain(t, "bodies row", tableLine(out, mailTargets[rowBodyWarm].name), "200 FETCH", "MB/s")
			mustContain(t, "search row", tableLine(out, mailTargets[rowSearchCold].name), "2 hits")
			for _, r := range []int{rowResyncSelectCold, rowResyncSelectWarm, rowResyncFetchCold, rowResyncFetchWarm} {
				mustContain(t, "resync row", tableLine(out, mailTargets[r].name), "50 FETCH, 50 vanished")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(data, "round")); !os.IsNotExist(err) {
		t.Errorf("round copy left behind: %v", err)
	}
	// Another data set's dimensions are refused, not mixed.
	code, _, errOut := sealbench(t, "mailbox", "-data", data, "-messages", "300", "-resync-messages", "100", "-fast-kdf")
	if code != 1 || !strings.Contains(errOut, "another data set") {
		t.Errorf("other dimensions: exit %d, %s", code, errOut)
	}
}

func tableLine(out, name string) string {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// TestMailBenchChecks: a command whose responses fall short of the data
// set fails the run.
func TestMailBenchChecks(t *testing.T) {
	m := mailManifest{Messages: 10, PlainBytes: 1000, Hits: 1}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"envelopes complete", checkEnvelopes(m, rawCounts{fetch: 10, complete: 10})},
		{"bodies complete", checkBodies(m, rawCounts{fetch: 10, literals: 1000})},
		{"search complete", checkSearch(m, rawCounts{hits: 1})},
		{"resync complete", checkResyncCounts(m, rawCounts{fetch: 50, vanished: 50})},
	} {
		if c.err != nil {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"envelope missing", checkEnvelopes(m, rawCounts{fetch: 10, complete: 9})},
		{"message missing", checkEnvelopes(m, rawCounts{fetch: 9, complete: 9})},
		{"body short", checkBodies(m, rawCounts{fetch: 10, literals: 999})},
		{"hit missing", checkSearch(m, rawCounts{})},
		{"vanished missing", checkResyncCounts(m, rawCounts{fetch: 50, vanished: 49})},
	} {
		if c.err == nil {
			t.Errorf("%s: passed", c.name)
		}
	}
}

// TestRawIMAP feeds the raw client a scripted server: literals are
// skipped and counted (also inside an envelope), FETCH responses checked
// for their items, SEARCH hits and VANISHED UIDs counted, and a tagged
// NO is an error.
func TestRawIMAP(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	c := &rawIMAP{conn: cli, r: bufio.NewReader(cli), timeout: 10 * time.Second}
	defer c.Close()
	script := []struct{ want, reply string }{
		{"s1 UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)\r\n",
			"* 1 FETCH (UID 1 FLAGS () ENVELOPE (\"d\" {5}\r\nab\r\nc NIL NIL NIL NIL NIL NIL NIL NIL) RFC822.SIZE 10)\r\n" +
				"* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 10)\r\n" +
				"* 3 EXISTS\r\ns1 OK done\r\n"},
		{"s2 UID FETCH 1:* BODY.PEEK[]\r\n",
			"* 1 FETCH (UID 1 BODY[] {12}\r\nhello {3}\r\nx)\r\n* 2 FETCH (UID 2 BODY[] {0}\r\n)\r\ns2 OK done\r\n"},
		{"s3 UID SEARCH TEXT \"w\"\r\n", "* SEARCH 4 8 15\r\ns3 OK done\r\n"},
		{"s4 SELECT INBOX\r\n", "* VANISHED (EARLIER) 2,4:6,9\r\n* 7 FETCH (UID 8 FLAGS (\\Seen) MODSEQ (5))\r\ns4 OK done\r\n"},
		{"s5 NOOP\r\n", "s5 NO no\r\n"},
	}
	go func() {
		r := bufio.NewReader(srv)
		for _, s := range script {
			l, err := r.ReadString('\n')
			if err != nil || l != s.want {
				t.Errorf("server got %q, %v; want %q", l, err, s.want)
				srv.Close()
				return
			}
			io.WriteString(srv, s.reply)
		}
	}()
	n, err := c.run("UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)", "FLAGS (", "ENVELOPE (", "RFC822.SIZE ")
	if err != nil || n.fetch != 2 || n.complete != 1 || n.literals != 5 || n.untagged != 3 {
		t.Errorf("envelopes: %+v, %v", n, err)
	}
	n, err = c.run("UID FETCH 1:* BODY.PEEK[]")
	if err != nil || n.fetch != 2 || n.literals != 12 {
		t.Errorf("bodies: %+v, %v", n, err)
	}
	n, err = c.run(`UID SEARCH TEXT "w"`)
	if err != nil || n.hits != 3 {
		t.Errorf("search: %+v, %v", n, err)
	}
	n, err = c.run("SELECT INBOX")
	if err != nil || n.vanished != 5 || n.fetch != 1 {
		t.Errorf("resync: %+v, %v", n, err)
	}
	if _, err := c.run("NOOP"); err == nil || !strings.Contains(err.Error(), "NO no") {
		t.Errorf("tagged NO: %v", err)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	stat := "4242 (sealbench (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	d, err := parseProcStatCPU(stat)
	if err != nil || d != 1750*time.Millisecond {
		t.Errorf("got %v, %v; want 1.75s", d, err)
	}
	if _, err := parseProcStatCPU("4242 (x) S 1"); err == nil {
		t.Error("short stat accepted")
	}
	if d, err := processCPU(os.Getpid()); err != nil || d <= 0 {
		t.Errorf("own CPU: %v, %v", d, err)
	}
}

// TestMailBenchServerFails: a server process that cannot start is
// reported with its log.
func TestMailBenchServerFails(t *testing.T) {
	t.Setenv(asMainEnv, "1")
	cfg := mailBenchConfig{serverBin: os.Args[0], timeout: time.Minute}
	dir := t.TempDir()
	// A data directory that is a file: serve cannot start.
	if err := os.WriteFile(filepath.Join(dir, "store"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startServerProcess(context.Background(), cfg, dir, "bad")
	if err == nil || !strings.Contains(err.Error(), "server-bad.log") {
		t.Errorf("bad server: %v", err)
	}
}
