package badgerstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	imapserver "github.com/sealmail/sealmail/server/imap"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// TestModSeqMigrationIMAP: over IMAP, with the go-imap client, an old
// empty mailbox (HighestModSeq 0, from before new mailboxes started at
// 1) gives HIGHESTMODSEQ on SELECT (CONDSTORE) once Open has raised it,
// not NOMODSEQ, which would make a client such as Thunderbird stop
// using CONDSTORE there. (It lives here, not in server/imap, because
// only this package's tests can write an old store.)
func TestModSeqMigrationIMAP(t *testing.T) {
	const addr, pw = "old@example.org", "correct horse battery"
	ctx := context.Background()
	dir := t.TempDir()
	st, err := badgerstore.Open(dir, badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	aopt := account.Options{Store: st, Domains: []string{"example.org"}, KDF: crypto.TestKDF()}
	acc, err := account.New(aopt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Create(ctx, addr, []byte(pw)); err != nil {
		t.Fatal(err)
	}
	acc.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	badgerstore.MakeModSeqOld(t, dir, addr, "Drafts")

	st, err = badgerstore.Open(dir, badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	aopt.Store = st
	if acc, err = account.New(aopt); err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	cert, pool := selfSigned(t)
	srv, err := imapserver.New(imapserver.Options{
		Store: st, Accounts: acc, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(addr, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.Select("Drafts", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.HighestModSeq != 1 {
		t.Errorf("SELECT Drafts (CONDSTORE): HIGHESTMODSEQ %d, want 1 (0: NOMODSEQ)", sd.HighestModSeq)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Error(err)
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
