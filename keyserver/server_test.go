package keyserver_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/keyserver"
)

// startServer serves the world's handler with NewServer's bounds on a
// plain listener (the bounds are the same under TLS).
func startServer(t *testing.T, opt keyserver.ServerOptions) string {
	t.Helper()
	w := newWorld(t)
	srv := keyserver.NewServer(w.h, opt)
	ln := listen(t, "127.0.0.1:0")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawRequest writes req on a new connection, then reads the status line,
// or the error that ended the connection.
func rawHTTP(t *testing.T, addr string, req ...string) (string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, part := range req {
		if _, err := io.WriteString(c, part); err != nil {
			return "ERR " + err.Error(), c
		}
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "ERR " + err.Error(), c
	}
	return line, c
}

// TestServerSlowHeaders: a client that sends its headers a byte at a time
// (slowloris) is cut off after the header timeout, however long it keeps
// trickling.
func TestServerSlowHeaders(t *testing.T) {
	addr := startServer(t, keyserver.ServerOptions{HeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "GET /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\n")
	var werr error
	for i := 0; i < 200 && werr == nil; i++ { // up to 10 s of trickle
		_, werr = io.WriteString(c, "X")
		time.Sleep(50 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			werr = err
		}
	}
	if werr == nil {
		t.Fatalf("slow client still connected after %v", time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow client cut off only after %v", d)
	}
}

// TestServerHugeHeader: headers beyond 16 KiB get 431, not memory.
func TestServerHugeHeader(t *testing.T) {
	addr := startServer(t, keyserver.ServerOptions{})
	got, _ := rawHTTP(t, addr, "GET /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("64 KiB header: %q, want 431", got)
	}
	got, _ = rawHTTP(t, addr, "GET /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("plain request: %q", got)
	}
}

// TestServerRefusesBodies: no endpoint takes a body; one is refused with
// 413 and the connection closed, before the body is read, whatever the
// method.
func TestServerRefusesBodies(t *testing.T) {
	addr := startServer(t, keyserver.ServerOptions{})
	for _, req := range []string{
		"GET /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\nContent-Length: 104857600\r\n\r\n",
		"POST /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\nContent-Length: 104857600\r\n\r\n",
		"GET /.well-known/openpgpkey/policy HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		got, c := rawHTTP(t, addr, req, strings.Repeat("z", 4096))
		if !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Errorf("%q: %q, want 413", strings.SplitN(req, "\r\n", 2)[0], got)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("connection not closed after 413: %v", err)
		}
	}
}

// TestServerHTTP1Only: HTTP/2 is not offered over TLS.
func TestServerHTTP1Only(t *testing.T) {
	srv := keyserver.NewServer(http.NotFoundHandler(), keyserver.ServerOptions{TLSConfig: &tlsConfigWithH2})
	if p := srv.TLSConfig.NextProtos; len(p) != 1 || p[0] != "http/1.1" || len(tlsConfigWithH2.NextProtos) != 2 {
		t.Errorf("NextProtos %v (caller's %v)", p, tlsConfigWithH2.NextProtos)
	}
	if srv.TLSNextProto == nil || srv.MaxHeaderBytes == 0 || srv.ReadHeaderTimeout == 0 || srv.IdleTimeout == 0 {
		t.Errorf("bounds missing: %+v", srv)
	}
}

var tlsConfigWithH2 = tls.Config{NextProtos: []string{"h2", "http/1.1"}}
