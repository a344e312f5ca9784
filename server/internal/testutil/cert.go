package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

var (
	certMu    sync.Mutex
	certCache = map[string]certEntry{} // guarded by certMu; by names
)

type certEntry struct {
	cert tls.Certificate
	pool *x509.CertPool
}

// Cert is NewCert made once per list of names: calls with the same names
// return the same certificate, so that a test's client can trust the
// server a helper started.
func Cert(names ...string) (tls.Certificate, *x509.CertPool) {
	key := strings.Join(names, " ")
	certMu.Lock()
	defer certMu.Unlock()
	if e, ok := certCache[key]; ok {
		return e.cert, e.pool
	}
	cert, pool := NewCert(names...)
	certCache[key] = certEntry{cert, pool}
	return cert, pool
}

// NewCert returns a new self-signed server certificate for names (host
// names, or IP addresses such as "127.0.0.1"), valid from an hour ago
// for a day, and a pool that trusts it alone. The first name is also its
// common name. It panics if the certificate cannot be made (no
// randomness), which no test could recover from.
func NewCert(names ...string) (tls.Certificate, *x509.CertPool) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(names) > 0 {
		tmpl.Subject = pkix.Name{CommonName: names[0]}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool
}

// ServeTLS starts serve on a new listener on 127.0.0.1 behind implicit
// TLS with Cert("127.0.0.1", "localhost"), as a benchmark's fixture
// serves, and returns the listener's address, a client configuration
// trusting the certificate, and a channel closed once serve returns (the
// caller shuts the server down).
func ServeTLS(serve func(net.Listener) error) (addr string, client *tls.Config, done <-chan struct{}, err error) {
	cert, pool := Cert("127.0.0.1", "localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	return ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ch, nil
}
