package keyserver

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// Bounds of the HTTPS server NewServer builds. Everything it serves is a
// few small documents: a client that needs more than these is not one of
// ours.
const (
	// DefaultHeaderTimeout bounds the request line and headers.
	DefaultHeaderTimeout = 10 * time.Second
	// maxHeaderBytes bounds the request line and headers (net/http answers
	// 431 beyond). Browsers and GnuPG send well under 2 KiB.
	maxHeaderBytes = 16 << 10
	// readTimeout bounds a whole request, writeTimeout a whole response.
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	// idleTimeout bounds a kept-alive connection between requests.
	idleTimeout = time.Minute
)

// ServerOptions configures NewServer. The zero value serves plain HTTP
// with the default bounds.
type ServerOptions struct {
	// TLSConfig is the server's TLS configuration, for a caller that
	// serves on a TLS listener of its own (http.Server.Serve) or calls
	// ServeTLS. Its NextProtos lose "h2": only HTTP/1.1 is served. nil:
	// plain HTTP (tests).
	TLSConfig *tls.Config
	// HeaderTimeout bounds the request line and headers.
	// 0: DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Logger gets net/http's own errors (TLS handshake failures, bad
	// requests) as warnings. nil: discard.
	Logger *slog.Logger
}

// NewServer returns an *http.Server for h with sealmail's bounds: header
// time and size, whole-request and response timeouts, idle keep-alive,
// HTTP/1.1 only, and no request bodies (Handler answers 413 to any). The
// number of connections is the listener's to bound: serve it on a guarded
// listener (cmd/sealmail uses server/listener).
//
// HTTP/2 is off: the well-known endpoints serve a few small documents,
// which gain nothing from it, while its stream multiplexing is a second
// parser and a denial-of-service surface of its own (rapid reset,
// CVE-2023-44487) with limits separate from these.
func NewServer(h http.Handler, opt ServerOptions) *http.Server {
	if opt.HeaderTimeout <= 0 {
		opt.HeaderTimeout = DefaultHeaderTimeout
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var conf *tls.Config
	if opt.TLSConfig != nil {
		conf = opt.TLSConfig.Clone()
		conf.NextProtos = slices.DeleteFunc(slices.Clone(conf.NextProtos), func(p string) bool { return p == "h2" })
		if !slices.Contains(conf.NextProtos, "http/1.1") {
			conf.NextProtos = append(conf.NextProtos, "http/1.1")
		}
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         conf,
		ReadHeaderTimeout: opt.HeaderTimeout,
		ReadTimeout:       max(readTimeout, opt.HeaderTimeout),
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(log.With("proto", "https").Handler(), slog.LevelWarn),
	}
}
