package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/keyserver"
)

// Self-signed certificate files in <data_dir>/tls.
const (
	selfSignedCert = "selfsigned.crt"
	selfSignedKey  = "selfsigned.key"
	// selfSignedLifetime: long enough not to expire under a test install,
	// short enough that nobody mistakes it for a real certificate.
	selfSignedLifetime = 398 * 24 * time.Hour
)

// certInfo describes the server certificate for the start-up banner and
// `sealmail status`.
type certInfo struct {
	Source      string    `json:"source"`             // "self-signed", "files" or "acme"
	Path        string    `json:"path,omitempty"`     // the certificate file; "" for ACME
	Fingerprint string    `json:"sha256,omitempty"`   // SHA-256 of the DER certificate, as openssl prints it
	Names       []string  `json:"names,omitempty"`    // DNS names and IP addresses it covers
	NotAfter    time.Time `json:"not_after,omitzero"` // expiry; zero for ACME
}

// certInfoOf describes leaf, loaded from path.
func certInfoOf(source, path string, leaf *x509.Certificate) certInfo {
	ci := certInfo{Source: source, Path: path}
	if leaf == nil {
		return ci
	}
	ci.Fingerprint = fingerprintSHA256(leaf.Raw)
	ci.Names = slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		ci.Names = append(ci.Names, ip.String())
	}
	ci.NotAfter = leaf.NotAfter
	return ci
}

// fingerprintSHA256 is the SHA-256 of der in upper-case hex pairs joined
// by colons, as `openssl x509 -noout -fingerprint -sha256` prints it, so
// that an operator can compare it with what a client shows.
func fingerprintSHA256(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// loadTLS returns the server certificate: the configured files, or a
// self-signed certificate for the host name and the names of every
// domain (selfSignedNames), generated once and reused. It logs a warning
// for the self-signed case.
func loadTLS(c *Config, log *slog.Logger) (*tls.Config, certInfo, error) {
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, certInfo{}, fmt.Errorf("tls: load tls.cert_file/tls.key_file: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			certInfoOf("files", c.TLS.CertFile, cert.Leaf), nil
	}
	cert, err := selfSigned(c.tlsDir(), selfSignedNames(c.Hostname, c.Domains))
	if err != nil {
		return nil, certInfo{}, err
	}
	path := filepath.Join(c.tlsDir(), selfSignedCert)
	log.Warn("using the self-signed TLS certificate " + path +
		"; clients will not trust it: set tls.cert_file and tls.key_file, or tls.acme")
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		certInfoOf("self-signed", path, cert.Leaf), nil
}

// selfSignedNames are the DNS names the self-signed certificate covers:
// the host name, localhost, and for every domain the domain itself and
// the names the keyserver answers for (WKD's openpgpkey., autoconfig.,
// mta-sts.), so that local tests of those endpoints can pass the
// certificate to curl --cacert or gpg. hostname comes first.
func selfSignedNames(hostname string, domains []string) []string {
	names := []string{hostname}
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	add("localhost")
	for _, d := range domains {
		add(d)
	}
	for _, n := range keyserver.AutocertHosts(hostname, domains) {
		add(n)
	}
	return names
}

// selfSigned loads the self-signed certificate from dir, or makes one for
// names (the first is the subject; plus 127.0.0.1 and ::1) when there is
// none, it expires within a day, it does not cover every name (the host
// name or a domain changed, or it was made by a version that covered
// fewer names), or the pair does not load (a crash between writing the
// key and the certificate leaves a mismatched pair; both files are
// sealmail's own, so nothing is lost by replacing them).
func selfSigned(dir string, names []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, selfSignedCert), filepath.Join(dir, selfSignedKey)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && cert.Leaf != nil && time.Now().Add(24*time.Hour).Before(cert.Leaf.NotAfter) &&
		!slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(cert.Leaf.DNSNames, n) }) {
		return cert, nil
	}
	if errors.Is(err, os.ErrPermission) {
		return tls.Certificate{}, fmt.Errorf("tls: load self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := makeSelfSigned(names, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	// Key first: a crash between the two leaves a key without its
	// certificate, which the next start replaces.
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, certPEM); err != nil {
		return tls.Certificate{}, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: self-signed certificate: %w", err)
	}
	return cert, nil
}

// makeSelfSigned makes an ECDSA P-256 certificate and key in PEM for
// names, the first of which is the subject.
func makeSelfSigned(names []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	// 128 bits: RFC 5280 §4.1.2.2 allows up to 20 octets.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"sealmail self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writeFileAtomic writes data to path with mode 0600: temp file, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// clientCipherSuites are the TLS 1.2 suites of listeners where people log
// in or fetch keys (IMAP, IMAPS, HTTPS, submission): forward-secret key
// exchange with AEAD only. Go's defaults add the AES-CBC-SHA suites,
// whose MAC-then-encrypt construction is the root of Lucky Thirteen and
// its kin; every client that speaks TLS 1.2 has a GCM or ChaCha20 suite.
// TLS 1.3 suites are all AEAD and not configurable.
var clientCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverTLSConfigs are the TLS configurations of the listeners.
type serverTLSConfigs struct {
	// mx is for SMTP STARTTLS from other servers: Go's default suites
	// (CBC included), because to an old sender that cannot negotiate
	// anything stricter the alternative is plaintext, not better TLS.
	mx *tls.Config
	// client is for IMAP STARTTLS and IMAPS (and submission when it
	// comes): clientCipherSuites.
	client *tls.Config
	// https is the keyserver's: clientCipherSuites, HTTP ALPN and, with
	// ACME, the tls-alpn-01 challenge.
	https *tls.Config
	// cert describes the certificate of the host name as it is now:
	// fixed for files and the self-signed one; with ACME, the one last
	// served for the host name (none before the first handshake).
	cert func() certInfo
}

// serverTLS returns the TLS configurations of the listeners, with the
// certificate from files, ACME or the self-signed one. TLS 1.2 is the
// minimum everywhere.
func serverTLS(c *Config, log *slog.Logger) (serverTLSConfigs, error) {
	if !c.TLS.ACME {
		conf, ci, err := loadTLS(c, log)
		if err != nil {
			return serverTLSConfigs{}, err
		}
		h := strictTLS(conf)
		h.NextProtos = []string{"http/1.1"}
		return serverTLSConfigs{mx: conf, client: strictTLS(conf), https: h, cert: func() certInfo { return ci }}, nil
	}
	m := keyserver.NewAutocert(keyserver.AutocertOptions{
		Dir:          c.acmeDir(),
		Hostname:     c.Hostname,
		Domains:      c.Domains,
		Email:        c.TLS.ACMEEmail,
		DirectoryURL: c.TLS.ACMEDirectory,
	})
	// Mail clients often send no SNI: they get the certificate of the
	// server's own name.
	var hostCert atomic.Pointer[x509.Certificate] // last served for the host name
	getCert := func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		h := *hello
		if h.ServerName == "" {
			h.ServerName = c.Hostname
		}
		cert, err := m.GetCertificate(&h)
		if err == nil && cert != nil && cert.Leaf != nil && strings.EqualFold(h.ServerName, c.Hostname) {
			hostCert.Store(cert.Leaf)
		}
		return cert, err
	}
	mx := &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12}
	https := strictTLS(m.TLSConfig())
	https.GetCertificate = getCert
	log.Info("TLS certificates from ACME, cached in " + c.acmeDir())
	info := func() certInfo { return certInfoOf("acme", "", hostCert.Load()) }
	return serverTLSConfigs{mx: mx, client: strictTLS(mx), https: https, cert: info}, nil
}

// strictTLS is conf with TLS 1.2 at least and clientCipherSuites.
func strictTLS(conf *tls.Config) *tls.Config {
	s := conf.Clone()
	s.MinVersion = tls.VersionTLS12
	s.CipherSuites = clientCipherSuites
	return s
}
