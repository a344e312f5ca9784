package keyserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// world is a real store with accounts made by package crypto, and a
// keyserver over it.
type world struct {
	db      *badgerstore.DB
	secrets map[string]*crypto.AccountSecrets
	h       *keyserver.Handler
}

const password = "correct horse battery staple"

func newWorld(t testing.TB) *world {
	t.Helper()
	db, err := badgerstore.Open(filepath.Join(t.TempDir(), "store"), badgerstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	w := &world{db: db, secrets: map[string]*crypto.AccountSecrets{}}
	ctx := context.Background()
	for _, a := range []struct {
		addr    string
		kt      crypto.KeyType
		publish bool
	}{
		{"alice@example.org", crypto.KeyEd25519, true},
		{"bob@example.org", crypto.KeyEd25519, false},
		{"carol@example.net", crypto.KeyEd25519, true},
		{"dave@example.net", crypto.KeyV6Ed25519, true},
	} {
		s, err := crypto.NewAccount(a.addr, []byte(password), crypto.AccountOptions{KeyType: a.kt, KDF: crypto.TestKDF()})
		if err != nil {
			t.Fatalf("NewAccount(%s): %v", a.addr, err)
		}
		err = db.CreateAccount(ctx, store.Account{
			Address: a.addr, PublicKey: s.PublicKey, KeyFingerprint: s.Fingerprint, WrappedKey: s.WrappedKey,
			PublishWKD: a.publish, Slots: []store.Slot{{Kind: store.SlotPassword, Data: s.Slot}},
		}, store.DefaultMailboxes)
		if err != nil {
			t.Fatalf("CreateAccount(%s): %v", a.addr, err)
		}
		w.secrets[a.addr] = s
	}
	h, err := keyserver.New(keyserver.Options{
		Keys:     db,
		Hostname: "mail.example.org",
		Domains:  []string{"example.org", "example.net"},
	})
	if err != nil {
		t.Fatalf("keyserver.New: %v", err)
	}
	w.h = h
	return w
}

// serveTLS runs h over TLS on ln with a certificate from ca for every name
// the test domains use, and returns a client that reaches it for any host
// name.
func serveTLS(t *testing.T, h http.Handler, ca *keyserver.TestCA, ln net.Listener) *http.Client {
	t.Helper()
	cert, _, _ := ca.Issue(t, "example.org", "openpgpkey.example.org", "example.net", "openpgpkey.example.net",
		"xn--bcher-kva.example", "openpgpkey.xn--bcher-kva.example")
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := ln.Addr().String()
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

func get(t *testing.T, c *http.Client, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, b, resp.Header
}

func advancedURL(local, domain string) string {
	return "https://openpgpkey." + domain + "/.well-known/openpgpkey/" + domain + "/hu/" + keyserver.WKDHash(local) + "?l=" + local
}

func directURL(local, domain string) string {
	return "https://" + domain + "/.well-known/openpgpkey/hu/" + keyserver.WKDHash(local) + "?l=" + local
}

// gnupg is a throwaway GnuPG home.
type gnupg struct {
	t    *testing.T
	home string
}

func newGnuPG(t *testing.T) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg not installed (README lists what the tests need, .ci/run installs it)")
	}
	// A short path: gpg-agent and dirmngr put sockets in the home, and
	// socket paths are limited to 107 bytes.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		// Stops the agent and dirmngr of this home only.
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		_ = os.RemoveAll(home)
	})
	return g
}

func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", g.home, "--batch", "--no-tty"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// key lists the fingerprints and user IDs gpg holds for addr.
func (g *gnupg) key(addr string) (fprs, uids []string) {
	g.t.Helper()
	out := g.run(nil, "--with-colons", "--list-keys", addr)
	sc := bufio.NewScanner(bytes.NewReader(out))
	primary := false
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		switch f[0] {
		case "pub":
			primary = true
		case "sub":
			primary = false
		case "fpr":
			if primary {
				fprs = append(fprs, strings.ToLower(f[9]))
				primary = false
			}
		case "uid":
			uids = append(uids, f[9])
		}
	}
	return fprs, uids
}

// checkEncryptsTo has gpg encrypt to addr and the account's own key,
// unlocked with its password through package crypto, open it.
func (w *world) checkEncryptsTo(t *testing.T, g *gnupg, addr string) {
	t.Helper()
	canary := []byte("keyserver canary 7f3a\n")
	sealed := g.run(canary, "--trust-model", "always", "--compress-algo", "none", "--encrypt", "--recipient", addr)
	s := w.secrets[addr]
	kr, err := crypto.Unlock([][]byte{s.Slot}, []byte(password), s.WrappedKey)
	if err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	defer kr.Wipe()
	plain, _, err := kr.Open(bytes.NewReader(sealed))
	if err != nil {
		t.Fatalf("open gpg's message with the account key: %v", err)
	}
	got, err := io.ReadAll(plain)
	if err != nil {
		t.Fatalf("read plaintext: %v", err)
	}
	if !bytes.Equal(got, canary) {
		t.Fatalf("plaintext %q, want %q", got, canary)
	}
}

// TestWKDFetchImportEncrypt fetches keys over HTTPS with Go's client the
// way a WKD client does, imports them into GnuPG, and checks the user ID,
// the fingerprint and that GnuPG's encryption opens with the account's key.
// TestGPGLocateKeys does the same with gpg --locate-keys itself where it
// can run.
func TestWKDFetchImportEncrypt(t *testing.T) {
	w := newWorld(t)
	ca := keyserver.NewTestCA(t)
	c := serveTLS(t, w.h, ca, listen(t, "127.0.0.1:0"))
	g := newGnuPG(t)

	for _, url := range []string{advancedURL("alice", "example.org"), directURL("Alice", "example.org")} {
		status, body, hdr := get(t, c, url)
		if status != 200 || hdr.Get("Content-Type") != "application/octet-stream" || hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET %s: status %d headers %v", url, status, hdr)
		}
		pk, err := crypto.ParsePublicKey(body)
		if err != nil {
			t.Fatalf("served key does not parse: %v", err)
		}
		if pk.Fingerprint() != w.secrets["alice@example.org"].Fingerprint {
			t.Fatalf("served fingerprint %s, want %s", pk.Fingerprint(), w.secrets["alice@example.org"].Fingerprint)
		}
		g.run(body, "--import")
	}
	fprs, uids := g.key("alice@example.org")
	if len(fprs) != 1 || fprs[0] != w.secrets["alice@example.org"].Fingerprint {
		t.Fatalf("gpg has fingerprints %q, want %s", fprs, w.secrets["alice@example.org"].Fingerprint)
	}
	if len(uids) != 1 || !strings.Contains(uids[0], "alice@example.org") {
		t.Fatalf("gpg has user IDs %q", uids)
	}
	w.checkEncryptsTo(t, g, "alice@example.org")

	// carol in the other domain; dave's v6 key is served too (GnuPG 2.2
	// cannot import v6, so only Go parses it).
	if status, body, _ := get(t, c, advancedURL("carol", "example.net")); status != 200 {
		t.Fatalf("carol: status %d", status)
	} else {
		g.run(body, "--import")
		w.checkEncryptsTo(t, g, "carol@example.net")
	}
	status, body, _ := get(t, c, directURL("dave", "example.net"))
	if status != 200 {
		t.Fatalf("dave: status %d", status)
	}
	if pk, err := crypto.ParsePublicKey(body); err != nil || pk.Fingerprint() != w.secrets["dave@example.net"].Fingerprint {
		t.Fatalf("dave's v6 key: %v", err)
	}
}

func TestWKDPublishSwitch(t *testing.T) {
	w := newWorld(t)
	c := serveTLS(t, w.h, keyserver.NewTestCA(t), listen(t, "127.0.0.1:0"))
	ctx := context.Background()

	if status, _, _ := get(t, c, advancedURL("bob", "example.org")); status != 404 {
		t.Fatalf("unpublished bob: status %d", status)
	}
	if err := w.db.SetPublishWKD(ctx, "bob@example.org", true); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get(t, c, advancedURL("bob", "example.org")); status != 200 {
		t.Fatalf("published bob: status %d", status)
	}
	if err := w.db.SetPublishWKD(ctx, "alice@example.org", false); err != nil {
		t.Fatal(err)
	}
	status, body, _ := get(t, c, advancedURL("alice", "example.org"))
	_, unknownBody, _ := get(t, c, advancedURL("nobody", "example.org"))
	if status != 404 || !bytes.Equal(body, unknownBody) {
		t.Fatalf("unpublished alice: status %d body %q; unknown user body %q", status, body, unknownBody)
	}
}

// rawRequest sends one request line and headers as they are, bypassing
// any client-side path cleaning, and returns the status code.
func rawRequest(t *testing.T, c *http.Client, ca *keyserver.TestCA, addr, host, requestLine string) int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, requestLine+"\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", requestLine, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWKDBadRequestsOverTheWire(t *testing.T) {
	w := newWorld(t)
	ca := keyserver.NewTestCA(t)
	ln := listen(t, "127.0.0.1:0")
	c := serveTLS(t, w.h, ca, ln)
	addr := ln.Addr().String()
	alice := keyserver.WKDHash("alice")
	for _, tc := range []struct {
		host, line string
		want       int
	}{
		{"example.org", "GET /.well-known/openpgpkey/hu/" + alice + "?l=alice HTTP/1.1", 200},
		{"example.org", "GET /.well-known/openpgpkey/hu/../hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"example.org", "GET /.well-known/openpgpkey/hu/%2e%2e/hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"example.org", "GET /.well-known/openpgpkey/./hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"openpgpkey.example.org", "GET /.well-known/openpgpkey/example.org/hu/..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1", 404},
		{"openpgpkey.example.org", "GET /.well-known/openpgpkey/example.net/../example.org/hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"example.org", "GET /.well-known/openpgpkey/hu/" + strings.ToUpper(alice) + "?l=alice HTTP/1.1", 404},
		{"example.org", "GET /.well-known/openpgpkey/hu/" + alice + "?l=" + strings.Repeat("a", 5000) + " HTTP/1.1", 400},
		{"example.org", "GET /.well-known/openpgpkey/hu/" + alice + "?l=%GG HTTP/1.1", 400},
		{"evil.example", "GET /.well-known/openpgpkey/hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"example.org", "GET https://evil.example/.well-known/openpgpkey/hu/" + alice + "?l=alice HTTP/1.1", 404},
		{"example.org", "DELETE /.well-known/openpgpkey/hu/" + alice + "?l=alice HTTP/1.1", 405},
		{"example.org", "GET /" + strings.Repeat("a/", 600) + " HTTP/1.1", 404},
	} {
		if got := rawRequest(t, c, ca, addr, tc.host, tc.line); got != tc.want {
			t.Errorf("%s (Host %s): status %d, want %d", tc.line[:min(len(tc.line), 100)], tc.host, got, tc.want)
		}
	}
	// Nothing a request did changed anything stored.
	a, err := w.db.Account(context.Background(), "alice@example.org")
	if err != nil || !a.PublishWKD || !bytes.Equal(a.PublicKey, w.secrets["alice@example.org"].PublicKey) {
		t.Fatalf("alice changed: %v", err)
	}
}
