package testutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
)

func TestCert(t *testing.T) {
	cert, pool := Cert("127.0.0.1", "localhost")
	for _, name := range []string{"127.0.0.1", "localhost"} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name})
		if err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.org"}); err == nil {
		t.Error("verified for a name it does not have")
	}
	again, _ := Cert("127.0.0.1", "localhost")
	if !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("Cert made a second certificate for the same names")
	}
	other, otherPool := NewCert("127.0.0.1", "localhost")
	if bytes.Equal(other.Certificate[0], cert.Certificate[0]) {
		t.Error("NewCert returned the cached certificate")
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: otherPool, DNSName: "localhost"}); err == nil {
		t.Error("a new certificate's pool trusts another")
	}
}

func TestServeTLS(t *testing.T) {
	addr, client, done, err := ServeTLS(func(ln net.Listener) error {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.WriteString(c, "hello\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	got, _ := io.ReadAll(c)
	if string(got) != "hello\n" {
		t.Errorf("read %q", got)
	}
	<-done
}

func TestFlakyListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e1, e2 := errors.New("one"), errors.New("two")
	fl := NewFlakyListener(ln, e1)
	fl.Fail(e2)
	for _, want := range []error{e1, e2} {
		if _, err := fl.Accept(); err != want {
			t.Fatalf("Accept = %v, want %v", err, want)
		}
	}
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := fl.Accept()
	if err != nil {
		t.Fatalf("Accept after the errors: %v", err)
	}
	c.Close()
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(time.Hour)
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("Now = %v", got)
	}
}

func TestLogBuffer(t *testing.T) {
	var l LogBuffer
	l.Logger().Debug("hello", "k", "v")
	if s := l.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, "k=v") {
		t.Errorf("log = %q", s)
	}
}

func TestSealAll(t *testing.T) {
	const pw = "pw"
	sec, err := crypto.NewAccount("u@example.org", []byte(pw), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := crypto.ParsePublicKey(sec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.Unlock([][]byte{sec.Slot}, []byte(pw), sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Wipe()
	msg := func(i int) []byte { return []byte(fmt.Sprintf("message %d\r\n", i)) }
	sealed, err := SealAll(pk, 20, msg)
	if err != nil || len(sealed) != 20 {
		t.Fatalf("SealAll: %d, %v", len(sealed), err)
	}
	for i, s := range sealed {
		r, _, err := kr.Open(bytes.NewReader(s))
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if got, _ := io.ReadAll(r); !bytes.Equal(got, msg(i)) {
			t.Errorf("message %d opens to %q", i, got)
		}
	}
}
