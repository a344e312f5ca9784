package crypto

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gnupg is a throwaway GnuPG home. Its path is short (under /tmp, not
// t.TempDir) because gpg-agent's socket path must fit in sun_path.
type gnupg struct {
	t    *testing.T
	home string
}

func newGnuPG(t *testing.T) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is needed (README lists the test prerequisites; .ci/run installs them)")
	}
	home, err := os.MkdirTemp("/tmp", "sg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "gpg-agent")
		kill.Env = g.env()
		_ = kill.Run()
		os.RemoveAll(home)
	})
	return g
}

func (g *gnupg) env() []string {
	return append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
}

// run runs gpg with args and stdin, and returns stdout; it fails the test,
// showing stderr, if gpg fails.
func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, stderr, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func (g *gnupg) try(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command("gpg", append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

func TestGnuPGInterop(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyRSA3072} {
		t.Run(kt.String(), func(t *testing.T) {
			g := newGnuPG(t)
			a := testAccount(t, kt)
			exportPW := "export pass phrase"
			armored, err := a.kr.ExportSecretKey([]byte(exportPW))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(armored, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
				t.Fatalf("export starts %q", armored[:40])
			}
			keyFile := filepath.Join(g.home, "key.asc")
			if err := os.WriteFile(keyFile, armored, 0o600); err != nil {
				t.Fatal(err)
			}
			g.run(nil, "--import", keyFile)

			// GnuPG sees the address as the user ID and our fingerprint.
			colons := string(g.run(nil, "--with-colons", "--list-secret-keys", "alice@example.org"))
			if !strings.Contains(colons, "<alice@example.org>") {
				t.Fatalf("gpg does not list the address:\n%s", colons)
			}
			if !strings.Contains(strings.ToLower(colons), a.sec.Fingerprint) {
				t.Fatalf("gpg does not list fingerprint %s:\n%s", a.sec.Fingerprint, colons)
			}

			// Sealed by us, decrypted by gpg, integrity-protected.
			msg := append([]byte("Subject: interop\r\n\r\n"), randomBytes(t, 100<<10)...)
			sealedFile := filepath.Join(g.home, "sealed.pgp")
			if err := os.WriteFile(sealedFile, seal(t, a.pub, msg), 0o600); err != nil {
				t.Fatal(err)
			}
			// The exported key is protected: a wrong pass phrase does
			// not decrypt.
			if out, _, err := g.try(nil, "--passphrase", "wrong", "--decrypt", sealedFile); err == nil {
				t.Fatalf("gpg decrypted with a wrong pass phrase (%d bytes)", len(out))
			}
			out, stderr, err := g.try(nil, "--passphrase", exportPW, "--status-fd", "2", "--decrypt", sealedFile)
			if err != nil {
				t.Fatalf("gpg --decrypt: %v\n%s", err, stderr)
			}
			if !bytes.Equal(out, msg) {
				t.Fatalf("gpg decrypted %d bytes, want %d", len(out), len(msg))
			}
			for _, status := range []string{"[GNUPG:] DECRYPTION_OKAY", "[GNUPG:] GOODMDC"} {
				if !bytes.Contains(stderr, []byte(status)) {
					t.Fatalf("gpg status lacks %s:\n%s", status, stderr)
				}
			}

			// Encrypted by gpg (compressed, as gpg does by default, and
			// not; AES-128 and CAST5, which users may force, opened by
			// seipd1Reader and by go-crypto), opened by us.
			for _, extra := range [][]string{nil, {"--compress-algo", "none"},
				{"--cipher-algo", "AES128", "--compress-algo", "none"}, {"--cipher-algo", "CAST5"}} {
				args := append([]string{"--trust-model", "always", "--recipient", "alice@example.org", "--encrypt"}, extra...)
				enc := g.run(msg, args...)
				plain, sk, err := a.kr.Open(bytes.NewReader(enc))
				if err != nil {
					t.Fatalf("Open(gpg message %v): %v", extra, err)
				}
				got, err := io.ReadAll(plain)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("Open(gpg message %v): %d bytes, %v", extra, len(got), err)
				}
				plain, err = a.kr.OpenWithSessionKey(bytes.NewReader(enc), sk)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(plain); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("OpenWithSessionKey(gpg message %v): %d bytes, %v", extra, len(got), err)
				}
				// A gpg message with one flipped bit fails integrity.
				bad := bytes.Clone(enc)
				bad[len(bad)-5] ^= 0x10
				if p, _, err := a.kr.Open(bytes.NewReader(bad)); err == nil {
					if _, err = io.Copy(io.Discard, p); err == nil {
						t.Fatalf("tampered gpg message %v opened cleanly", extra)
					}
				}
			}
		})
	}
}

// TestGnuPGImportsPublicKey checks that the public key as served by WKD
// imports into GnuPG 2.2 with the address as its user ID.
func TestGnuPGImportsPublicKey(t *testing.T) {
	g := newGnuPG(t)
	a := testAccount(t, KeyEd25519)
	pubFile := filepath.Join(g.home, "pub.gpg")
	if err := os.WriteFile(pubFile, a.sec.PublicKey, 0o600); err != nil {
		t.Fatal(err)
	}
	g.run(nil, "--import", pubFile)
	colons := string(g.run(nil, "--with-colons", "--list-keys", "alice@example.org"))
	if !strings.Contains(colons, "uid:") || !strings.Contains(colons, "<alice@example.org>") {
		t.Fatalf("gpg --list-keys:\n%s", colons)
	}
	// Both the primary (ed25519) and the subkey (cv25519) are there.
	if !strings.Contains(colons, ":ed25519:") || !strings.Contains(colons, ":cv25519:") {
		t.Fatalf("gpg does not see ed25519 + cv25519:\n%s", colons)
	}
}
