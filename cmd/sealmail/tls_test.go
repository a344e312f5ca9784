package main

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/acme"
)

func TestSelfSignedGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	c1, err := selfSigned(dir, selfSignedNames("mx.example.org", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{selfSignedCert, selfSignedKey} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	leaf := c1.Leaf
	if leaf == nil || !strings.Contains(strings.Join(leaf.DNSNames, " "), "mx.example.org") ||
		!strings.Contains(strings.Join(leaf.DNSNames, " "), "localhost") {
		t.Fatalf("certificate names: %v", leaf)
	}
	c2, err := selfSigned(dir, selfSignedNames("mx.example.org", nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("certificate regenerated instead of reused")
	}
	// A new host name gets a new certificate.
	c3, err := selfSigned(dir, selfSignedNames("mail.example.net", nil))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1.Certificate[0], c3.Certificate[0]) {
		t.Error("certificate not replaced for a new hostname")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A pair that does not load (a crash between the two writes left a
	// new key with the old certificate) is replaced, not fatal.
	if err := os.WriteFile(filepath.Join(dir, selfSignedKey), strayKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	c4, err := selfSigned(dir, selfSignedNames("mail.example.net", nil))
	if err != nil {
		t.Fatalf("mismatched pair: %v", err)
	}
	if bytes.Equal(c3.Certificate[0], c4.Certificate[0]) {
		t.Error("mismatched pair kept")
	}
}

// TestSelfSignedNames: issue 14 found the self-signed certificate
// covering only the host name, so local tests of WKD and autoconfig
// could not pass it to curl --cacert. It covers the host name,
// localhost, every domain and its openpgpkey., autoconfig. and mta-sts.
// names; an existing certificate that lacks a name (made by an older
// version, or before a domain was added) is replaced.
func TestSelfSignedNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	// A certificate as older versions made it: the host name only.
	certPEM, keyPEM, err := makeSelfSigned([]string{"mx.example.org", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, selfSignedCert), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, selfSignedKey), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	names := selfSignedNames("mx.example.org", []string{"example.org", "xn--bcher-kva.example"})
	want := []string{"mx.example.org", "localhost", "example.org", "xn--bcher-kva.example",
		"openpgpkey.example.org", "autoconfig.example.org", "mta-sts.example.org",
		"openpgpkey.xn--bcher-kva.example", "autoconfig.xn--bcher-kva.example", "mta-sts.xn--bcher-kva.example"}
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("selfSignedNames lacks %s: %v", n, names)
		}
	}
	if names[0] != "mx.example.org" {
		t.Errorf("first name %s, want the host name", names[0])
	}
	cert, err := selfSigned(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range want {
		if err := cert.Leaf.VerifyHostname(n); err != nil {
			t.Errorf("regenerated certificate: %v", err)
		}
	}
	if cert.Leaf.Subject.CommonName != "mx.example.org" {
		t.Errorf("subject %s", cert.Leaf.Subject)
	}
	// Reused once it covers them all.
	again, err := selfSigned(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("certificate that covers every name was replaced")
	}
}

// strayKeyPEM is a fresh key that matches no stored certificate.
func strayKeyPEM(t *testing.T) []byte {
	t.Helper()
	_, key, err := makeSelfSigned([]string{"other.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestLoadTLSConfiguredFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := selfSigned(dir, selfSignedNames("mx.example.org", nil)); err != nil {
		t.Fatal(err)
	}
	c := &Config{DataDir: t.TempDir(), Hostname: "mx.example.org"}
	c.TLS.CertFile = filepath.Join(dir, selfSignedCert)
	c.TLS.KeyFile = filepath.Join(dir, selfSignedKey)
	var log bytes.Buffer
	conf, ci, err := loadTLS(c, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil || len(conf.Certificates) != 1 {
		t.Fatalf("loadTLS: %v", err)
	}
	if ci.Source != "files" || ci.Path != c.TLS.CertFile || len(ci.Fingerprint) != 95 || ci.NotAfter.IsZero() {
		t.Errorf("certificate info %+v", ci)
	}
	if strings.Contains(log.String(), "self-signed") {
		t.Error("configured certificate reported as self-signed")
	}
	c.TLS.KeyFile = filepath.Join(dir, "missing.key")
	if _, _, err := loadTLS(c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Errorf("missing key file: %v", err)
	}
}

func TestWarnInsecure(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *Config)
		warns []string
	}{
		{"loopback defaults", func(c *Config) {}, nil},
		{"public self-signed", func(c *Config) { c.Listen.IMAPS = "0.0.0.0:993" },
			[]string{"listen.imaps 0.0.0.0:993: listener on a public address uses a self-signed certificate"}},
		{"public plaintext start", func(c *Config) {
			c.Listen.SMTP = ":25"
			c.TLS.CertFile, c.TLS.KeyFile = "/x.crt", "/x.key"
		}, []string{"listen.smtp :25: listener on a public address starts in plaintext"}},
		{"kdf override", func(c *Config) { c.KDF = KDFConfig{Time: 1, MemoryKiB: 1024} }, []string{"kdf.time"}},
		{"kdf less memory", func(c *Config) { c.KDF = KDFConfig{Time: 6, MemoryKiB: 32 * 1024} }, []string{"kdf.time"}},
		// config show prints the default's values; reading them back is
		// not an override, nor is a higher cost.
		{"kdf as config show prints it", func(c *Config) { c.KDF = KDFConfig{Time: 3, MemoryKiB: 64 * 1024} }, nil},
		{"kdf costlier", func(c *Config) { c.KDF = KDFConfig{Time: 4, MemoryKiB: 128 * 1024} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			c, err := parseConfigBytes(nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(c)
			var log bytes.Buffer
			warnInsecure(c, slog.New(slog.NewTextHandler(&log, nil)))
			got := strings.Count(log.String(), "level=WARN")
			if got != len(tt.warns) {
				t.Errorf("%d warnings, want %d:\n%s", got, len(tt.warns), log.String())
			}
			for _, w := range tt.warns {
				if !strings.Contains(log.String(), w) {
					t.Errorf("no warning %q in:\n%s", w, log.String())
				}
			}
		})
	}
}

// TestServerTLSACME: with tls.acme the HTTPS listener answers the
// tls-alpn-01 challenge, and every listener only asks for certificates of
// the names sealmail serves (checked without contacting a CA).
func TestServerTLSACME(t *testing.T) {
	clearEnv(t)
	c, err := parseConfigBytes([]byte("hostname: mx.example.org\ndomains: [example.org]\ntls:\n  acme: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = t.TempDir()
	var log bytes.Buffer
	confs, err := serverTLS(c, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mail, https := confs.mx, confs.https
	if !slices.Contains(https.NextProtos, acme.ALPNProto) {
		t.Errorf("HTTPS NextProtos %v lack %s", https.NextProtos, acme.ALPNProto)
	}
	if mail.GetCertificate == nil || https.GetCertificate == nil || len(mail.Certificates) != 0 {
		t.Fatal("ACME configs do not get certificates from the manager")
	}
	for _, conf := range []*tls.Config{mail, confs.client, https} {
		if _, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example.com"}); err == nil {
			t.Error("certificate requested for a name sealmail does not serve")
		}
	}
	if strings.Contains(log.String(), "self-signed") {
		t.Errorf("ACME reported as self-signed:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "tls")); !os.IsNotExist(err) {
		t.Errorf("a self-signed certificate was made with ACME on: %v", err)
	}
}

func TestFlagsHint(t *testing.T) {
	tests := []struct {
		f    cmdFlags
		want string
	}{
		{cmdFlags{}, ""},
		{cmdFlags{dataDir: "/srv/mail"}, "--data-dir /srv/mail "},
		{cmdFlags{config: "my conf.yaml", dataDir: "it's"}, `--config 'my conf.yaml' --data-dir 'it'\''s' `},
	}
	for _, tt := range tests {
		if got := tt.f.hint(); got != tt.want {
			t.Errorf("hint(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// TestServeCipherSuites (issue 9 item 15): a TLS 1.2 client that offers
// only an AES-CBC-SHA suite is refused where people log in or fetch keys
// (IMAPS, IMAP STARTTLS, HTTPS) and still served by the MX, where the
// alternative for an old sender is plaintext; an AEAD suite works
// everywhere.
func TestServeCipherSuites(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	trust := trustSelfSigned(t, te.dataDir)
	with := func(suite uint16) *tls.Config {
		c := trust.Clone()
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{suite}
		return c
	}
	cbc, gcm := with(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA), with(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	handshake := map[string]func(*tls.Config) error{
		"imaps": func(c *tls.Config) error {
			conn, err := tls.Dial("tcp", s.addr("imaps"), c)
			if err == nil {
				conn.Close()
			}
			return err
		},
		"https": func(c *tls.Config) error {
			conn, err := tls.Dial("tcp", s.addr("https"), c)
			if err == nil {
				conn.Close()
			}
			return err
		},
		"imap STARTTLS": func(c *tls.Config) error {
			cl, err := imapclient.DialStartTLS(s.addr("imap"), &imapclient.Options{TLSConfig: c})
			if err == nil {
				err = cl.Noop().Wait()
				cl.Close()
			}
			return err
		},
		"smtp STARTTLS": func(c *tls.Config) error {
			cl, err := gosmtp.DialStartTLS(s.addr("smtp"), c)
			if err == nil {
				err = cl.Noop()
				cl.Close()
			}
			return err
		},
	}
	for name, hs := range handshake {
		if err := hs(gcm); err != nil {
			t.Errorf("%s with AES-GCM: %v", name, err)
		}
		err := hs(cbc)
		if name == "smtp STARTTLS" {
			if err != nil {
				t.Errorf("MX refused a CBC-only sender: %v", err)
			}
		} else if err == nil {
			t.Errorf("%s accepted a client offering only AES-CBC-SHA", name)
		}
	}
}
