package keyserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/policy"
)

// Request bounds. net/http already bounds the header block
// (http.Server.MaxHeaderBytes); these bound what this handler parses.
const (
	// maxQueryLen bounds the raw query string. The longest legitimate one
	// is Thunderbird's "emailaddress=" with a 254-byte address, some of it
	// percent-encoded.
	maxQueryLen = 1024
	// maxPathLen bounds the path; the longest served path is the advanced
	// WKD one with a 253-byte domain.
	maxPathLen = 512
)

// hostKind is what a request host serves.
type hostKind uint8

const (
	hostDomain     hostKind = iota + 1 // the mail domain itself: WKD direct method, autoconfig well-known path
	hostWKD                            // openpgpkey.<domain>: WKD advanced method
	hostAutoconfig                     // autoconfig.<domain>
	hostMTASTS                         // mta-sts.<domain>
)

// route is what a known host serves and for which domain.
type route struct {
	kind   hostKind
	domain string
}

// Handler serves the well-known HTTP endpoints of sealmail's domains: the
// OpenPGP Web Key Directory, Thunderbird autoconfig and the MTA-STS policy.
// It is safe for concurrent use.
type Handler struct {
	cfg    *config           // immutable
	routes map[string]route  // immutable; key: lower-case host without port
	mtasts []byte            // immutable; nil if no policy
	config map[string][]byte // immutable; autoconfig XML per domain, nil if off
	index  *hashIndex        // may be nil
	cid    atomic.Uint64
}

// New checks opt and returns a Handler. It does no I/O.
func New(opt Options) (*Handler, error) {
	cfg, err := opt.validate()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, routes: make(map[string]route)}
	// The domains themselves first: if a domain also has the form
	// openpgpkey.<other>, being a mail domain wins.
	for _, d := range cfg.domains {
		h.routes[d] = route{hostDomain, d}
	}
	for _, d := range cfg.domains {
		h.addRoute("openpgpkey."+d, route{hostWKD, d})
		h.addRoute("autoconfig."+d, route{hostAutoconfig, d})
		h.addRoute("mta-sts."+d, route{hostMTASTS, d})
	}
	if cfg.mtasts != nil {
		h.mtasts = mtastsText(cfg.mtasts)
	}
	if cfg.autoconfigEnabled() {
		h.config = make(map[string][]byte, len(cfg.domains))
		for _, d := range cfg.domains {
			body, err := cfg.autoconfigXML(d)
			if err != nil {
				return nil, fmt.Errorf("keyserver: autoconfig for %s: %w", d, err)
			}
			h.config[d] = body
		}
	}
	if l, ok := cfg.keys.(AccountLister); ok {
		h.index = &hashIndex{lister: l, ttl: indexTTL}
	}
	if len(cfg.domains) > 0 && !cfg.autoconfigEnabled() && (len(cfg.imap) > 0 || len(cfg.submission) > 0) {
		cfg.log.Info("keyserver: autoconfig not served: clients need an outgoing (submission) server as well as IMAP")
	}
	return h, nil
}

func (h *Handler) addRoute(host string, r route) {
	if len(host) > maxHostLen {
		return
	}
	if _, ok := h.routes[host]; !ok {
		h.routes[host] = r
	}
}

// statusWriter remembers the status code for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	cid := h.cid.Add(1)
	defer func() {
		h.cfg.log.Debug("keyserver: request", slog.String("proto", "https"), slog.Uint64("cid", cid),
			slog.String("remote", r.RemoteAddr), slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)))
	}()
	h.serve(sw, r, cid)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, cid uint64) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Nothing served takes a body: refuse one before anything reads it,
	// and close, so net/http does not read it either (at most 256 KiB of
	// it, when it is announced that small).
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusRequestEntityTooLarge)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	if len(r.URL.RawQuery) > maxQueryLen {
		httpError(w, http.StatusBadRequest)
		return
	}
	p := r.URL.Path
	// A RawPath means the path had escapes that decoding changed (such as
	// %2F): no well-known path needs them.
	if len(p) > maxPathLen || r.URL.RawPath != "" || !strings.HasPrefix(p, "/") {
		httpError(w, http.StatusNotFound)
		return
	}
	rt, ok := h.routes[requestHost(r.Host)]
	if !ok {
		httpError(w, http.StatusNotFound)
		return
	}
	switch rt.kind {
	case hostDomain:
		switch {
		case p == "/.well-known/openpgpkey/policy":
			h.serveWKDPolicy(w)
			return
		case strings.HasPrefix(p, "/.well-known/openpgpkey/hu/"):
			h.serveWKDKey(w, r, cid, rt.domain, strings.TrimPrefix(p, "/.well-known/openpgpkey/hu/"))
			return
		case p == wellKnownAutoconfig:
			h.serveAutoconfig(w, rt.domain)
			return
		}
	case hostWKD:
		if rest, ok := strings.CutPrefix(p, "/.well-known/openpgpkey/"); ok {
			// The domain element names the mail domain, as an A-label or
			// (GnuPG writes the address's domain as given, percent-encoded)
			// a U-label: both name the same domain.
			dom, rest, _ := strings.Cut(rest, "/")
			if d, err := policy.NormalizeDomain(dom); err != nil || d != rt.domain {
				break
			}
			if rest == "policy" {
				h.serveWKDPolicy(w)
				return
			}
			if hash, ok := strings.CutPrefix(rest, "hu/"); ok {
				h.serveWKDKey(w, r, cid, rt.domain, hash)
				return
			}
		}
	case hostAutoconfig:
		if p == "/mail/config-v1.1.xml" || p == wellKnownAutoconfig {
			h.serveAutoconfig(w, rt.domain)
			return
		}
	case hostMTASTS:
		if p == "/.well-known/mta-sts.txt" {
			h.serveMTASTS(w)
			return
		}
	}
	httpError(w, http.StatusNotFound)
}

// httpError answers with a fixed text for the status: no cause, no input
// is ever echoed.
func httpError(w http.ResponseWriter, code int) {
	http.Error(w, http.StatusText(code), code)
}

// writeBody answers 200 with a fixed body; net/http drops the body for
// HEAD and keeps the headers.
func writeBody(w http.ResponseWriter, contentType string, body []byte) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
