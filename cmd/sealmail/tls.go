package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
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

// loadTLS returns the server certificate: the configured files, or a
// self-signed certificate for hostname, generated once and reused. It logs a
// warning for the self-signed case.
func loadTLS(c *Config, log *slog.Logger) (*tls.Config, error) {
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load tls.cert_file/tls.key_file: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	}
	cert, err := selfSigned(c.tlsDir(), c.Hostname)
	if err != nil {
		return nil, err
	}
	log.Warn("using the self-signed TLS certificate " + filepath.Join(c.tlsDir(), selfSignedCert) +
		"; clients will not trust it: set tls.cert_file and tls.key_file, or tls.acme")
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// selfSigned loads the self-signed certificate from dir, or makes one for
// hostname (plus localhost and 127.0.0.1, ::1) when there is none, it has
// expired, it does not name hostname, or the pair does not load (a crash
// between writing the key and the certificate leaves a mismatched pair;
// both files are sealmail's own, so nothing is lost by replacing them).
func selfSigned(dir, hostname string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, selfSignedCert), filepath.Join(dir, selfSignedKey)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && cert.Leaf != nil && time.Now().Add(24*time.Hour).Before(cert.Leaf.NotAfter) &&
		slices.Contains(cert.Leaf.DNSNames, hostname) {
		return cert, nil
	}
	if errors.Is(err, os.ErrPermission) {
		return tls.Certificate{}, fmt.Errorf("tls: load self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := makeSelfSigned(hostname, time.Now())
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

// makeSelfSigned makes an ECDSA P-256 certificate and key in PEM.
func makeSelfSigned(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	// 128 bits: RFC 5280 §4.1.2.2 allows up to 20 octets.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	names := []string{hostname}
	if hostname != "localhost" {
		names = append(names, "localhost")
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"sealmail self-signed"}},
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
}

// serverTLS returns the TLS configurations of the listeners, with the
// certificate from files, ACME or the self-signed one. TLS 1.2 is the
// minimum everywhere.
func serverTLS(c *Config, log *slog.Logger) (serverTLSConfigs, error) {
	if !c.TLS.ACME {
		conf, err := loadTLS(c, log)
		if err != nil {
			return serverTLSConfigs{}, err
		}
		h := strictTLS(conf)
		h.NextProtos = []string{"http/1.1"}
		return serverTLSConfigs{mx: conf, client: strictTLS(conf), https: h}, nil
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
	getCert := func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" {
			h := *hello
			h.ServerName = c.Hostname
			return m.GetCertificate(&h)
		}
		return m.GetCertificate(hello)
	}
	mx := &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12}
	https := strictTLS(m.TLSConfig())
	https.GetCertificate = getCert
	log.Info("TLS certificates from ACME, cached in " + c.acmeDir())
	return serverTLSConfigs{mx: mx, client: strictTLS(mx), https: https}, nil
}

// strictTLS is conf with TLS 1.2 at least and clientCipherSuites.
func strictTLS(conf *tls.Config) *tls.Config {
	s := conf.Clone()
	s.MinVersion = tls.VersionTLS12
	s.CipherSuites = clientCipherSuites
	return s
}
