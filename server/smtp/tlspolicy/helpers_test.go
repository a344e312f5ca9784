package tlspolicy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/server/internal/testutil"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
)

var ctxBg = context.Background()

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a server certificate for names, valid from notBefore for
// a day; its chain includes the CA certificate.
func (ca *testCA) issue(t *testing.T, notBefore time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// policyServer serves an MTA-STS policy over HTTPS on 127.0.0.1 with a
// certificate for mta-sts.DOMAIN from ca; handler may be replaced.
type policyServer struct {
	*httptest.Server
	mu      sync.Mutex
	handler http.HandlerFunc // guarded by mu
	fetches int              // guarded by mu
}

func startPolicyServer(t *testing.T, ca *testCA, domain, body string) *policyServer {
	t.Helper()
	ps := &policyServer{}
	ps.setPolicy(body)
	ps.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		ps.fetches++
		h := ps.handler
		ps.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts."+domain {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	ps.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, time.Now().Add(-time.Hour), "mta-sts."+domain)}}
	ps.StartTLS()
	t.Cleanup(ps.Close)
	return ps
}

func (ps *policyServer) setPolicy(body string) {
	ps.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
}

func (ps *policyServer) setHandler(h http.HandlerFunc) {
	ps.mu.Lock()
	ps.handler = h
	ps.mu.Unlock()
}

func (ps *policyServer) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.fetches
}

func (ps *policyServer) port() int { return ps.Listener.Addr().(*net.TCPAddr).Port }

// sink is an SMTP server on 127.0.0.1 playing a remote MX: plaintext
// only (tlsCert nil) or with STARTTLS, with or without REQUIRETLS.
type sink struct {
	addr string
	mu   sync.Mutex
	got  []string // guarded by mu; message bodies
	tls  []bool   // guarded by mu; whether each came over TLS
}

func startSink(t *testing.T, cert *tls.Certificate, requireTLS bool) *sink {
	t.Helper()
	sk := &sink{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: sk, conn: c}, nil
	}))
	s.Domain = "mx.example.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.MaxMessageBytes = 1 << 20
	s.MaxRecipients = 10
	if cert != nil {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		s.EnableREQUIRETLS = requireTLS
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sk.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return sk
}

func (sk *sink) messages() int {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return len(sk.got)
}

type sinkSession struct {
	sink *sink
	conn *smtp.Conn
}

func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.sink.mu.Lock()
	s.sink.got = append(s.sink.got, string(b))
	s.sink.tls = append(s.sink.tls, isTLS)
	s.sink.mu.Unlock()
	return nil
}

// outcome is what deliver did.
type outcome struct {
	req     queue.TLSRequirement
	skipped bool
	tls     bool  // delivered over TLS
	err     error // why not delivered; nil if delivered or skipped
}

// deliver plays the delivery engine's part for one host: ask p, then
// connect to the sink and send one message following the requirement:
// STARTTLS when offered (required ones must succeed and verify), the
// REQUIRETLS offer checked for REQUIRETLS messages, and Report called
// after the attempt.
func deliver(t *testing.T, p *Policies, q queue.TLSQuery, sk *sink) outcome {
	t.Helper()
	req, err := p.Require(ctxBg, q)
	if err != nil {
		return outcome{err: err}
	}
	out := outcome{req: req}
	if req.Skip != "" {
		out.skipped = true
		return out
	}
	if q.RequireTLS && !(req.Required && req.Config != nil) {
		// The engine's rule (RFC 8689 §4.2.1): a permanent failure.
		out.err = errors.New("5.7.30 REQUIRETLS: nothing verifies " + q.Host)
		return out
	}
	res := queue.TLSResult{Host: q.Host}
	out.tls, out.err = sendOne(sk.addr, q, req, &res)
	if req.Report != nil {
		req.Report(res)
	}
	return out
}

func sendOne(addr string, q queue.TLSQuery, req queue.TLSRequirement, res *queue.TLSResult) (bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	res.IP = "127.0.0.1"
	c := &smtpConn{r: bufio.NewReader(conn), w: conn}
	if _, err := c.expect(220); err != nil {
		return false, err
	}
	ext, err := c.ehlo()
	if err != nil {
		return false, err
	}
	res.Offered = ext["STARTTLS"]
	isTLS := false
	if res.Offered {
		if err := c.cmd(220, "STARTTLS"); err != nil {
			return false, err
		}
		cfg := req.Config
		if cfg == nil {
			cfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = q.Host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctxBg); err != nil {
			res.Err = err
			return false, fmt.Errorf("TLS: %w", err)
		}
		res.Version = tc.ConnectionState().Version
		isTLS = true
		c = &smtpConn{r: bufio.NewReader(tc), w: tc}
		if ext, err = c.ehlo(); err != nil {
			return false, err
		}
	} else if req.Required {
		return false, errors.New("TLS required, STARTTLS not offered")
	}
	mailParams := ""
	if q.RequireTLS {
		if !ext["REQUIRETLS"] {
			return false, errors.New("REQUIRETLS not offered")
		}
		mailParams = " REQUIRETLS"
	}
	for _, step := range []struct {
		code int
		line string
	}{{250, "MAIL FROM:<a@example.org>" + mailParams}, {250, "RCPT TO:<b@" + q.Domain + ">"}, {354, "DATA"},
		{250, "From: a@example.org\r\n\r\nhello\r\n."}, {221, "QUIT"}} {
		if err := c.cmd(step.code, step.line); err != nil {
			return isTLS, err
		}
	}
	return isTLS, nil
}

type smtpConn struct {
	r *bufio.Reader
	w io.Writer
}

func (c *smtpConn) cmd(code int, line string) error {
	if _, err := io.WriteString(c.w, line+"\r\n"); err != nil {
		return err
	}
	_, err := c.expect(code)
	return err
}

func (c *smtpConn) expect(code int) ([]string, error) {
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 {
			return nil, fmt.Errorf("bad reply %q", l)
		}
		lines = append(lines, l[4:])
		if l[3] == ' ' {
			if l[:3] != fmt.Sprint(code) {
				return lines, fmt.Errorf("reply %q, want %d", l, code)
			}
			return lines, nil
		}
	}
}

func (c *smtpConn) ehlo() (map[string]bool, error) {
	if _, err := io.WriteString(c.w, "EHLO client.example.org\r\n"); err != nil {
		return nil, err
	}
	lines, err := c.expect(250)
	if err != nil {
		return nil, err
	}
	ext := map[string]bool{}
	for _, l := range lines[1:] {
		kw, _, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(kw)] = true
	}
	return ext, nil
}

// env is a test world: DNS for example.test (MX mx.example.test at
// 127.0.0.1, the policy host), a CA, and Policies using them.
type env struct {
	dns   *dnstest.Server
	res   *resolver.Resolver
	ca    *testCA
	log   *testutil.LogBuffer
	clock *testutil.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{ca: newCA(t, "Test CA"), log: &testutil.LogBuffer{}, clock: testutil.NewClock(time.Now())}
	e.dns = dnstest.Start(t,
		"example.test. 300 IN MX 10 mx.example.test.",
		"mx.example.test. 300 IN A 127.0.0.1",
		"mta-sts.example.test. 300 IN A 127.0.0.1",
	)
	r, err := resolver.New(resolver.Options{Server: e.dns.Addr, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.res = r
	return e
}

func (e *env) logged() string {
	return e.log.String()
}

func (e *env) policies(t *testing.T, policyPort int, noDANE bool) *Policies {
	t.Helper()
	p, err := New(Options{
		Resolver:   e.res,
		RootCAs:    e.ca.pool,
		PolicyPort: policyPort,
		NoDANE:     noDANE,
		Logger:     slog.New(slog.NewTextHandler(e.log, nil)),
		Now:        e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publishPolicy sets the _mta-sts TXT record of example.test.
func (e *env) publishPolicy(t *testing.T, id string) {
	t.Helper()
	if err := e.dns.Replace("_mta-sts.example.test", 16, `_mta-sts.example.test. 300 IN TXT "v=STSv1; id=`+id+`;"`); err != nil {
		t.Fatal(err)
	}
}

func mxQuery() queue.TLSQuery {
	return queue.TLSQuery{Domain: "example.test", Host: "mx.example.test", Port: 25}
}
