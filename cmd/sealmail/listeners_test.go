package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Environment of a test binary run as a wrapper that lowers its file
// descriptor limit and then executes the sealmail binary in its place, so
// that `serve` runs with that limit as its hard limit.
const (
	wrapExecEnv   = "SMTEST_EXEC"
	wrapNofileEnv = "SMTEST_NOFILE"
)

func init() {
	bin := os.Getenv(wrapExecEnv)
	if bin == "" {
		return
	}
	n, err := strconv.ParseUint(os.Getenv(wrapNofileEnv), 10, 64)
	if err == nil {
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrapper: set RLIMIT_NOFILE:", err)
		os.Exit(3)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, wrapExecEnv+"=") && !strings.HasPrefix(kv, wrapNofileEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), env)
	fmt.Fprintln(os.Stderr, "wrapper: exec:", err)
	os.Exit(3)
}

// serveNofile starts `sealmail serve` with RLIMIT_NOFILE at nofile, soft
// and hard.
func (te *testEnv) serveNofile(nofile int) *server {
	te.t.Helper()
	cmd := te.command("", "serve")
	self, err := os.Executable()
	if err != nil {
		te.t.Fatal(err)
	}
	cmd.Path, cmd.Args = self, []string{self, "serve"}
	cmd.Env = append(cmd.Env, wrapExecEnv+"="+binary, wrapNofileEnv+"="+strconv.Itoa(nofile))
	return te.start(cmd)
}

// waitLog waits until the server's log contains want.
func waitLog(t *testing.T, s *server, want string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(s.logs(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, s.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greeting connects to addr and returns the first line, or the error.
func greeting(addr string, conf *tls.Config) string {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 10 * time.Second}
	if conf != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, conf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "ERR " + err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "ERR " + err.Error()
	}
	return line
}

// httpsStatus fetches the WKD policy of example.org over HTTPS.
func httpsStatus(t *testing.T, s *server, conf *tls.Config) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+s.addr("https")+"/.well-known/openpgpkey/example.org/policy", nil)
	req.Host = "openpgpkey.example.org"
	resp, err := client.Do(req)
	if err != nil {
		return "ERR " + err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Status
}

// runWithin runs a CLI command that must finish within d (a dead control
// socket would leave it waiting for minutes).
func (te *testEnv) runWithin(d time.Duration, args ...string) result {
	te.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := te.command("", args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Dir, cmd.Env = te.dir, te.env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		te.t.Fatalf("run %v: %v", args, err)
	}
	if ctx.Err() != nil {
		te.t.Fatalf("sealmail %s did not finish within %v:\n%s", strings.Join(args, " "), d, out)
	}
	return result{stdout: string(out), code: code}
}

// TestServeFloodedIMAPS is issue 9's attack: with a 200-descriptor limit,
// 250 connections to IMAPS that never start the TLS handshake. The caps,
// fitted to the descriptor budget at start-up, refuse what does not fit,
// and SMTP, IMAP, HTTPS, a real IMAPS client of another listener and the
// control socket all keep working while the flood holds its share.
func TestServeFloodedIMAPS(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	te.setenv(
		// Per-client caps would stop a one-address flood by themselves;
		// lift them so that the descriptor budget is what is tested.
		"SEALMAIL_LIMITS_IMAP_CONNECTIONS_PER_IP=1000",
		"SEALMAIL_LIMITS_HTTPS_CONNECTIONS_PER_IP=200",
		// The flood must last the whole test.
		"SEALMAIL_LIMITS_TLS_HANDSHAKE_TIMEOUT=10m",
		"SEALMAIL_LIMITS_IDLE_TIMEOUT=10m",
	)
	s := te.serveNofile(200)
	waitLog(t, s, "limits lowered to")
	conf := trustSelfSigned(t, te.dataDir)

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 250 {
		c, err := net.DialTimeout("tcp", s.addr("imaps"), 10*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(flood), err)
		}
		flood = append(flood, c)
	}
	waitLog(t, s, `msg="connections refused: limit reached" proto=imaps`)

	if got := greeting(s.addr("smtp"), nil); !strings.HasPrefix(got, "220 ") {
		t.Errorf("SMTP during the flood: %q", got)
	}
	if got := greeting(s.addr("imap"), nil); !strings.HasPrefix(got, "* OK") {
		t.Errorf("IMAP during the flood: %q", got)
	}
	if got := httpsStatus(t, s, conf); got != "200 OK" {
		t.Errorf("HTTPS during the flood: %q", got)
	}
	// A login over IMAP with STARTTLS still works.
	c, err := imapclient.DialStartTLS(s.addr("imap"), &imapclient.Options{TLSConfig: conf})
	if err != nil {
		t.Fatalf("IMAP STARTTLS during the flood: %v", err)
	}
	if err := c.Login("alice@example.org", alicePW).Wait(); err != nil {
		t.Errorf("IMAP login during the flood: %v", err)
	}
	c.Close()
	if r := te.runWithin(time.Minute, "user", "list"); r.code != 0 || !strings.Contains(r.stdout, "alice@example.org") {
		t.Errorf("user list during the flood: exit %d\n%s", r.code, r.stdout)
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// Once the flood is gone, IMAPS serves again.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if got := greeting(s.addr("imaps"), conf); strings.HasPrefix(got, "* OK") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("IMAPS after the flood: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.logs())
	}
}

// TestServeSilentTLSClientsClosed: a client that connects to an
// implicit-TLS listener (IMAPS, HTTPS) and never starts the handshake is
// closed once limits.tls_handshake_timeout has passed (before, it stayed
// forever); one that completes it is served.
func TestServeSilentTLSClientsClosed(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_LIMITS_TLS_HANDSHAKE_TIMEOUT=1s")
	s := te.serve()
	for _, name := range []string{"imaps", "https"} {
		c, err := net.DialTimeout("tcp", s.addr(name), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err == nil || os.IsTimeout(err) {
			t.Errorf("%s: silent client read %d bytes, %v; want it closed after 1 s", name, n, err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("%s: silent client closed after %v, before the handshake timeout", name, d)
		}
	}
	if got := greeting(s.addr("imaps"), trustSelfSigned(t, te.dataDir)); !strings.HasPrefix(got, "* OK") {
		t.Errorf("IMAPS client that completes the handshake: %q", got)
	}
}

// TestServeConnectionCaps: over limits.connections_per_ip an SMTP client
// gets 421 4.7.0 and an IMAP client * BYE before the greeting; the
// others of the same address keep their connections.
func TestServeConnectionCaps(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_LIMITS_CONNECTIONS_PER_IP=2", "SEALMAIL_LIMITS_IMAP_CONNECTIONS_PER_IP=2")
	s := te.serve()
	for _, p := range []struct{ name, ok, refused string }{
		{"smtp", "220 ", "421 4.7.0 localhost Too many connections"},
		{"imap", "* OK", "* BYE [UNAVAILABLE] Too many connections"},
	} {
		var held []net.Conn
		for range 2 {
			c, err := net.DialTimeout("tcp", s.addr(p.name), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, p.ok) {
				t.Fatalf("%s: %q, %v", p.name, line, err)
			}
			held = append(held, c)
		}
		if got := greeting(s.addr(p.name), nil); !strings.HasPrefix(got, p.refused) {
			t.Errorf("%s: third connection got %q, want %q", p.name, got, p.refused)
		}
		held[0].Close()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if got := greeting(s.addr(p.name), nil); strings.HasPrefix(got, p.ok) {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: after a close: %q", p.name, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestControlSocketSurvivesEMFILE: connections to the control socket
// that use up every descriptor make its accept fail with EMFILE; it
// retries instead of giving up (before, one such error ended it until
// restart), and admin commands work once the descriptors are free.
func TestControlSocketSurvivesEMFILE(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serveNofile(200)
	sock := filepath.Join(te.dataDir, "control.sock")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.DialTimeout("unix", sock, 10*time.Second)
		if err != nil {
			break // the backlog is full too
		}
		conns = append(conns, c)
	}
	waitLog(t, s, "control socket accept; retrying")
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if r := te.runWithin(time.Minute, "user", "list"); r.code != 0 || !strings.Contains(r.stdout, "alice@example.org") {
		t.Fatalf("user list after EMFILE: exit %d\n%s\n%s", r.code, r.stdout, s.logs())
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.logs())
	}
}
