//go:build linux

package keyserver_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/store"
)

// The gpg --locate-keys test needs what GnuPG's WKD lookup insists on:
// port 443, the system CA bundle, and DNS for the test domain. It gets
// them without touching the machine: the test binary re-runs itself under
// `unshare --net --mount` (root only), and inside the new namespaces
// brings up loopback, bind-mounts a hosts file over /etc/hosts, a
// resolv.conf naming a local NXDOMAIN-only DNS responder over
// /etc/resolv.conf and the test CA over the system bundle, and serves on
// 127.0.0.1:443. openpgpkey.example.org resolves and openpgpkey.example.net
// does not, so gpg uses the advanced method for alice and the direct
// method for carol; the test checks both were used. Before any
// mount the child checks that its mount and network namespaces differ
// from the parent's. Where unshare is not possible the test is skipped,
// and docs/wkd.md gives the same steps by hand.

const (
	envChild   = "SEALMAIL_WKD_NETNS_CHILD"
	envParentM = "SEALMAIL_WKD_PARENT_MNTNS"
	envParentN = "SEALMAIL_WKD_PARENT_NETNS"
)

// systemCABundle is where Debian's GnuTLS (and so dirmngr) reads the
// system trust store.
const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

func namespaces(t *testing.T) (mnt, netns string) {
	t.Helper()
	mnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Skipf("no namespaces: %v", err)
	}
	netns, err = os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no namespaces: %v", err)
	}
	return mnt, netns
}

func TestGPGLocateKeys(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		locateKeysInNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare, port 443 and bind mounts (see docs/wkd.md for the manual steps)")
	}
	for _, tool := range []string{"unshare", "ip", "gpg", "gpgconf", "dirmngr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (README lists what the tests need, .ci/run installs it)", tool)
		}
	}
	// Bind mounts need existing targets; the test never creates files
	// outside its temporary directories.
	for _, f := range []string{systemCABundle, "/etc/hosts", "/etc/resolv.conf"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no %s to bind-mount over in the namespace: %v", f, err)
		}
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare not permitted here: %v %s", err, out)
	}
	mnt, netns := namespaces(t)
	cmd := exec.Command("unshare", "--net", "--mount", "--", os.Args[0], "-test.run=^TestGPGLocateKeys$", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", envParentM+"="+mnt, envParentN+"="+netns)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGPGLocateKeys") {
		t.Fatalf("in namespace: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func bindMount(t *testing.T, content []byte, target string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), filepath.Base(target))
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over %s: %v", src, target, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(target, 0) })
}

func locateKeysInNamespace(t *testing.T) {
	mnt, netns := namespaces(t)
	if mnt == os.Getenv(envParentM) || netns == os.Getenv(envParentN) || os.Getenv(envParentM) == "" {
		t.Fatalf("refusing to mount: not in fresh mount and network namespaces")
	}
	// Keep mounts from propagating back, whatever unshare's default.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	ca := keyserver.NewTestCA(t)
	// openpgpkey.example.net does not resolve, so GnuPG looks carol up
	// with the direct method, and alice with the advanced one.
	bindMount(t, []byte("127.0.0.1 localhost example.org openpgpkey.example.org example.net openpgpkey.xn--bcher-kva.example\n"), "/etc/hosts")
	// dirmngr also asks DNS (for _openpgpkey._tcp SRV records before the
	// direct method): a resolver on 127.0.0.1 that knows no name makes
	// that a clean "no such name" instead of "try again later".
	bindMount(t, []byte("nameserver 127.0.0.1\n"), "/etc/resolv.conf")
	serveNXDOMAIN(t)
	bindMount(t, ca.PEM, systemCABundle)

	w := newWorld(t)
	// An international domain, configured as people write it; its
	// account is stored, and its key made, under the canonical address.
	const idn = "info@xn--bcher-kva.example"
	sec, err := crypto.NewAccount(idn, []byte(password), crypto.AccountOptions{KeyType: crypto.KeyEd25519, KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	err = w.db.CreateAccount(context.Background(), store.Account{Address: idn, PublicKey: sec.PublicKey, KeyFingerprint: sec.Fingerprint,
		WrappedKey: sec.WrappedKey, PublishWKD: true, Slots: []store.Slot{{Kind: store.SlotPassword, Data: sec.Slot}}}, store.DefaultMailboxes)
	if err != nil {
		t.Fatal(err)
	}
	w.secrets[idn] = sec
	if w.h, err = keyserver.New(keyserver.Options{Keys: w.db, Hostname: "mail.example.org", Domains: []string{"example.org", "example.net", "bücher.example"}}); err != nil {
		t.Fatal(err)
	}
	// Record which WKD method each lookup used.
	var mu sync.Mutex
	var seen []string
	rec := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+r.URL.Path)
		mu.Unlock()
		w.h.ServeHTTP(rw, r)
	})
	serveTLS(t, rec, ca, listen(t, "127.0.0.1:443"))
	g := newGnuPG(t)
	// dirmngr's own resolver would ask DNS servers there are none of;
	// the system resolver reads /etc/hosts.
	if err := os.WriteFile(filepath.Join(g.home, "dirmngr.conf"), []byte("standard-resolver\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// GnuPG 2.2 does not convert a U-label domain for WKD ("Syntax error
	// in URI"): its users look an IDN address up as A-labels, and find
	// the key's user ID in that form (docs/wkd.md).
	for _, addr := range []string{"alice@example.org", "carol@example.net", idn} {
		g.run(nil, "--auto-key-locate", "clear,nodefault,wkd", "--locate-keys", addr)
		fprs, uids := g.key(addr)
		if len(fprs) != 1 || fprs[0] != w.secrets[addr].Fingerprint || len(uids) != 1 || !strings.Contains(uids[0], addr) {
			t.Fatalf("%s: gpg located fingerprints %q user IDs %q, want %s", addr, fprs, uids, w.secrets[addr].Fingerprint)
		}
		w.checkEncryptsTo(t, g, addr)
	}
	mu.Lock()
	got := strings.Join(seen, "\n")
	mu.Unlock()
	for _, want := range []string{
		"openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/" + keyserver.WKDHash("alice"),
		"example.net/.well-known/openpgpkey/hu/" + keyserver.WKDHash("carol"),
		"openpgpkey.xn--bcher-kva.example/.well-known/openpgpkey/xn--bcher-kva.example/hu/" + keyserver.WKDHash("info"),
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("no request for %s; requests:\n%s", want, got)
		}
	}
	// Unpublished and unknown addresses are not found.
	for _, addr := range []string{"bob@example.org", "nobody@example.org"} {
		cmd := exec.Command("gpg", "--homedir", g.home, "--batch", "--no-tty", "--auto-key-locate", "clear,nodefault,wkd", "--locate-keys", addr)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("gpg located %s:\n%s", addr, out)
		}
	}
}

// serveNXDOMAIN answers every DNS query on 127.0.0.1:53 (UDP) with
// NXDOMAIN, echoing the question (RFC 1035 §4.1.1).
func serveNXDOMAIN(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("listen udp 53: %v", err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 || buf[2]&0x80 != 0 {
				continue // too short, or a response
			}
			q := buf[:n]
			q[2] = 0x80 | q[2]&0x79 // QR, keep opcode and RD
			q[3] = 0x80 | 3         // RA, RCODE NXDOMAIN
			// QDCOUNT stays; no answer, authority or additional records,
			// and any EDNS OPT record in the query is dropped with them.
			q[4], q[5] = 0, 1 // only the first question is echoed
			q[6], q[7], q[8], q[9], q[10], q[11] = 0, 0, 0, 0, 0, 0
			_, _ = pc.WriteTo(q[:questionEnd(q)], from)
		}
	}()
}

// questionEnd returns the offset after the first question of a query, or
// len(q) if it does not parse.
func questionEnd(q []byte) int {
	i := 12
	for i < len(q) {
		l := int(q[i])
		if l == 0 {
			if i+5 <= len(q) {
				return i + 5 // root label, QTYPE, QCLASS
			}
			return len(q)
		}
		if l&0xc0 != 0 {
			return len(q)
		}
		i += 1 + l
	}
	return len(q)
}
