package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeBanner: issue 14 found the start-up banner saying "add a user"
// although accounts existed, naming the self-signed certificate only in
// a warning, and the certificate covering only the host name. The banner
// says "add a user" only while there are no accounts, prints the
// certificate's path and SHA-256 fingerprint (those of the file), and the
// certificate verifies for every name the keyserver answers for.
func TestServeBanner(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	out := s.stdout()
	if !strings.Contains(out, "no accounts yet; add a user: sealmail user add you@example.org") {
		t.Errorf("banner of an empty server lacks how to add a user:\n%s", out)
	}
	certPath := filepath.Join(te.dataDir, "tls", selfSignedCert)
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("no PEM in the certificate file")
	}
	if want := "TLS certificate: self-signed, " + certPath + "\n  SHA-256 fingerprint: " + fingerprintSHA256(block.Bytes); !strings.Contains(out, want) {
		t.Errorf("banner lacks %q:\n%s", want, out)
	}
	if !regexp.MustCompile(`SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}\n`).MatchString(out) {
		t.Errorf("fingerprint not in openssl's form:\n%s", out)
	}
	// The certificate serves every keyserver name of every domain.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	for _, host := range []string{"localhost", "example.org", "openpgpkey.example.org", "autoconfig.example.org", "mta-sts.example.org", "openpgpkey.localhost"} {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}}}
		req, _ := http.NewRequest("GET", "https://"+s.addr("https")+"/.well-known/openpgpkey/example.org/policy", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("HTTPS as %s with the self-signed certificate as CA: %v", host, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s = te.serve()
	out = s.stdout()
	if strings.Contains(out, "add a user") || !strings.Contains(out, "accounts: 1\n") {
		t.Errorf("banner with an account:\n%s", out)
	}
}
