package keyserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// startProcess runs a helper binary until the test ends and returns its
// collected output.
func startProcess(t *testing.T, env []string, bin string, args ...string) *lockedBuffer {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
	return out
}

// waitDNS waits until a DNS server answers on addr (UDP), so that pebble
// never meets a resolver that is not up yet.
func waitDNS(t *testing.T, addr string) {
	t.Helper()
	// A query for A example.test (RFC 1035 §4.1): ID 0x5ea1, RD, one question.
	query := []byte{0x5e, 0xa1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}
	deadline := time.Now().Add(30 * time.Second)
	buf := make([]byte, 512)
	for {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Write(query)
		if err == nil {
			var n int
			n, err = c.Read(buf)
			if err == nil && n >= 12 && buf[0] == 0x5e && buf[1] == 0xa1 {
				c.Close()
				return
			}
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no DNS answer from pebble-challtestsrv on %s: %v", addr, err)
		}
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
	dnsAddr := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	startProcess(t, nil, challsrv, "-dnsserver", dnsAddr, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-management", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitDNS(t, dnsAddr)

	dir := t.TempDir()
	_, certPEM, keyPEM := ca.Issue(t, "localhost", "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
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
	out := startProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		pebble, "-config", cfgFile, "-dnsserver", dnsAddr)

	dirURL = "https://127.0.0.1:" + strconv.Itoa(port) + "/dir"
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(dirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return dirURL, "https://127.0.0.1:" + strconv.Itoa(mport)
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
