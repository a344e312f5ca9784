package keyserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"
)

func TestAutocertHosts(t *testing.T) {
	got := AutocertHosts("Mail.Example.org.", []string{"example.org", "EXAMPLE.org", "example.net", "bad domain"})
	want := []string{
		"autoconfig.example.net", "autoconfig.example.org", "mail.example.org",
		"mta-sts.example.net", "mta-sts.example.org", "openpgpkey.example.net", "openpgpkey.example.org",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("AutocertHosts = %q, want %q", got, want)
	}
}

func TestAutocertHostPolicy(t *testing.T) {
	m := NewAutocert(AutocertOptions{Hostname: "mail.example.org", Domains: []string{"example.org"}})
	ctx := context.Background()
	for _, h := range []string{"mail.example.org", "openpgpkey.example.org", "autoconfig.example.org", "mta-sts.example.org", "OpenPGPKey.Example.Org"} {
		if err := m.HostPolicy(ctx, h); err != nil {
			t.Errorf("HostPolicy(%s): %v", h, err)
		}
	}
	for _, h := range []string{"example.org", "www.example.org", "openpgpkey.example.com", "evil.openpgpkey.example.org", "127.0.0.1", ""} {
		if err := m.HostPolicy(ctx, h); err == nil {
			t.Errorf("HostPolicy(%q) allowed", h)
		}
	}
	if m.Client.DirectoryURL == "" || m.Cache != nil {
		t.Errorf("defaults: directory %q cache %v", m.Client.DirectoryURL, m.Cache)
	}
}

func TestPrivateDirCache(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "acme")
	c := NewAutocert(AutocertOptions{Dir: dir, Hostname: "mail.example.org"}).Cache
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, "k"), 0o600)
	if got, err := c.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// An existing, too open directory is tightened on the next write.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k2", []byte("v")); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700)
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Fatal("Get after Delete succeeded")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %o, want %o", path, got, want)
	}
}

// pebbleTool finds a binary of Let's Encrypt's ACME test server module:
// $SEALMAIL_PEBBLE_DIR/name, or name on $PATH, or in $GOPATH/bin. Install
// both with
//
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.1
func pebbleTool(t *testing.T, name string) string {
	t.Helper()
	if d := os.Getenv("SEALMAIL_PEBBLE_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(bytes.TrimSpace(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not installed (go install github.com/letsencrypt/pebble/v2/cmd/%s@v2.10.1; README lists what the tests need, .ci/run installs it)", name, name)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// child is a helper binary the test runs.
type child struct {
	name string
	out  *lockedBuffer
	done chan struct{} // closed when it has exited
	stop func()        // kills it and waits; idempotent
}

// startProcess runs a helper binary until stop or the end of the test.
func startProcess(t *testing.T, env []string, bin string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	c := &child{name: filepath.Base(bin), out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-c.done
		})
	}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", c.name, c.out.String())
		}
	})
	return c
}

// lostPort reports whether the child said that one of its ports was
// taken: the ports are picked free but released before the child binds
// them, so another process on the machine may take one in between.
func (c *child) lostPort() bool {
	return strings.Contains(c.out.String(), "address already in use")
}

// ready waits until check succeeds, the child exits or says it lost a
// port, or 30 seconds pass.
func (c *child) ready(check func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v", c.name, err)
		default:
		}
		if c.lostPort() {
			return fmt.Errorf("%s lost a port: %v", c.name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %v", c.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRetrying starts a child with fresh ports until it is ready.
// Only a lost port is tried again, with new ports, a few times; any
// other failure fails the test.
func startRetrying(t *testing.T, start func() (*child, func() error)) {
	t.Helper()
	const attempts = 5
	for i := 1; ; i++ {
		c, check := start()
		err := c.ready(check)
		if err == nil {
			return
		}
		c.stop()
		if !c.lostPort() || i == attempts {
			t.Fatalf("%v\n%s", err, c.out.String())
		}
		t.Logf("attempt %d: %v; again with new ports", i, err)
	}
}

// challReady checks that the pebble-challtestsrv started with management
// address mgmt is the DNS server on dnsAddr: it adds an A record for a
// name of its own through the management interface and asks dnsAddr for
// it, so that no other process that took either port passes.
func challReady(mgmt, dnsAddr string) func() error {
	var token [8]byte
	_, _ = rand.Read(token[:])
	name := "ready-" + hex.EncodeToString(token[:]) + ".example.test."
	const marker = "127.0.0.9" // the challenge server's default answer is 127.0.0.1
	added := false
	return func() error {
		if !added {
			body, _ := json.Marshal(map[string]any{"host": name, "addresses": []string{marker}})
			resp, err := http.Post("http://"+mgmt+"/add-a", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("add-a: status %d", resp.StatusCode)
			}
			added = true
		}
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		in, _, err := (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(q, dnsAddr)
		if err != nil {
			return err
		}
		for _, rr := range in.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.String() == marker {
				return nil
			}
		}
		return fmt.Errorf("DNS answer on %s without our record: %v", dnsAddr, in.Answer)
	}
}

// startPebble runs pebble on loopback with a certificate from ca and
// returns its directory URL and management base URL. Pebble validates
// for real: its resolver is pebble-challtestsrv, whose DNS answers
// 127.0.0.1 for every name (and no AAAA), and its tls-alpn-01 validation
// connects to 127.0.0.1:tlsPort, where the test serves the manager's
// TLSConfig. So the whole flow runs: account, order, challenge answered
// by autocert, finalisation, certificate.
func startPebble(t *testing.T, ca *TestCA, tlsPort int) (dirURL, mgmtURL string) {
	t.Helper()
	pebble := pebbleTool(t, "pebble")
	challsrv := pebbleTool(t, "pebble-challtestsrv")
	var dnsAddr string
	startRetrying(t, func() (*child, func() error) {
		dnsAddr = "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
		mgmt := "127.0.0.1:" + strconv.Itoa(freePort(t))
		c := startProcess(t, nil, challsrv, "-dnsserver", dnsAddr, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-management", mgmt, "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
		return c, challReady(mgmt, dnsAddr)
	})

	dir := t.TempDir()
	_, certPEM, keyPEM := ca.Issue(t, "localhost", "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// Both of pebble's listeners present ca's certificate, so a process
	// that took one of their ports fails the checks.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}, Timeout: 5 * time.Second}
	get := func(url string) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return nil
	}
	startRetrying(t, func() (*child, func() error) {
		port, mport := freePort(t), freePort(t)
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":                  "127.0.0.1:" + strconv.Itoa(port),
			"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mport),
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       freePort(t), // nothing listens: http-01 cannot succeed
			"tlsPort":                        tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
		}}
		b, _ := json.Marshal(cfg)
		cfgFile := filepath.Join(dir, "pebble.json")
		if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c := startProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
			pebble, "-config", cfgFile, "-dnsserver", dnsAddr)
		dirURL = "https://127.0.0.1:" + strconv.Itoa(port) + "/dir"
		mgmtURL = "https://127.0.0.1:" + strconv.Itoa(mport)
		return c, func() error {
			if err := get(dirURL); err != nil {
				return err
			}
			return get(mgmtURL + "/roots/0")
		}
	})
	return dirURL, mgmtURL
}

// TestAutocertPebble runs the ACME flow against a local pebble that
// validates for real (tls-alpn-01 against the test's listener): a
// certificate is ordered for an allowed name, cached privately, and served
// by an HTTPS listener using the manager's TLS config; names outside the
// policy are refused without contacting the CA.
func TestAutocertPebble(t *testing.T) {
	ca := NewTestCA(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dirURL, mgmtURL := startPebble(t, ca, raw.Addr().(*net.TCPAddr).Port)
	acmeClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}, Timeout: time.Minute}
	cacheDir := filepath.Join(t.TempDir(), "acme")
	m := NewAutocert(AutocertOptions{
		Dir:          cacheDir,
		Hostname:     "mail.example.test",
		Domains:      []string{"example.test"},
		Email:        "ops@example.test",
		DirectoryURL: dirURL,
		HTTPClient:   acmeClient,
	})

	for _, name := range []string{"example.test", "evil.example.test"} {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err == nil {
			t.Errorf("certificate issued for %s", name)
		}
	}

	h, err := New(Options{Keys: &mapKeys{}, Hostname: "mail.example.test", Domains: []string{"example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	// Count the CA's tls-alpn-01 validation handshakes, to know the
	// challenge was really answered.
	var challenges atomic.Int64
	tcfg := m.TLSConfig()
	getCert := tcfg.GetCertificate
	tcfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
			challenges.Add(1)
		}
		return getCert(hello)
	}
	ln := tls.NewListener(raw, tcfg)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// Trust pebble's (random) root for the issued chain.
	resp, err := acmeClient.Get(mgmtURL + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}
	addr := ln.Addr().String()
	client := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
	resp, err = client.Get("https://openpgpkey.example.test/.well-known/openpgpkey/example.test/policy")
	if err != nil {
		t.Fatalf("GET over ACME certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, wkdPolicy) {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{"openpgpkey.example.test"}) {
		t.Fatalf("certificate names %q", leaf.DNSNames)
	}

	assertMode(t, cacheDir, 0o700)
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		assertMode(t, filepath.Join(cacheDir, e.Name()), 0o600)
	}
	if !slices.Contains(names, "openpgpkey.example.test") || !slices.Contains(names, "acme_account+key") {
		t.Fatalf("cache holds %q", names)
	}
	if challenges.Load() == 0 {
		t.Fatalf("the CA never made a tls-alpn-01 validation handshake")
	}

	// A second manager over the same cache serves the certificate without
	// the CA: stop pebble's clients from working by pointing it nowhere.
	m2 := NewAutocert(AutocertOptions{Dir: cacheDir, Hostname: "mail.example.test", Domains: []string{"example.test"},
		DirectoryURL: "https://127.0.0.1:1/dir", HTTPClient: acmeClient})
	c, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "openpgpkey.example.test",
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, SupportedCurves: []tls.CurveID{tls.CurveP256},
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		t.Fatalf("cached certificate: %v", err)
	}
	if c.Leaf != nil && !slices.Equal(c.Leaf.DNSNames, leaf.DNSNames) {
		t.Fatalf("cached certificate names %q", c.Leaf.DNSNames)
	}
}
