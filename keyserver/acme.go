package keyserver

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sealmail/sealmail/policy"
)

// AutocertOptions configures NewAutocert.
type AutocertOptions struct {
	// Dir is the certificate cache, e.g. <data_dir>/acme. It is created
	// mode 0700 (and tightened to 0700 if it exists); it holds the ACME
	// account key and certificate keys, each file 0600. "" keeps nothing
	// on disk: every restart orders new certificates, which quickly runs
	// into the CA's rate limits, so only tests should leave it empty.
	Dir string
	// Hostname is the mail server's own name; a certificate is allowed for
	// it (IMAP, SMTP and HTTPS share it).
	Hostname string
	// Domains are the mail domains: certificates are allowed for
	// openpgpkey., autoconfig. and mta-sts. of each, and for nothing else.
	Domains []string
	// Email is the ACME account contact; "" registers without one.
	Email string
	// DirectoryURL is the ACME directory; "" means Let's Encrypt production
	// (autocert.DefaultACMEDirectory).
	DirectoryURL string
	// HTTPClient talks to the ACME server; nil means http.DefaultClient.
	// Tests use it to trust a local test CA.
	HTTPClient *http.Client
}

// NewAutocert returns an ACME certificate manager limited to the names
// sealmail serves. Use it as the HTTPS listener's certificate source with
// m.TLSConfig() (which also answers the tls-alpn-01 challenge, so the
// listener must be reachable on port 443), or m.GetCertificate in a
// tls.Config of your own that lists acme.ALPNProto in NextProtos. Serving
// m.HTTPHandler(nil) on port 80 enables the http-01 challenge as well.
// Terms of service are accepted on the operator's behalf
// (autocert.AcceptTOS): enabling ACME is that decision.
func NewAutocert(opt AutocertOptions) *autocert.Manager {
	allowed := autocert.HostWhitelist(AutocertHosts(opt.Hostname, opt.Domains)...)
	m := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		// DNS names are case-insensitive; HostWhitelist compares exactly.
		HostPolicy: func(ctx context.Context, host string) error {
			return allowed(ctx, strings.ToLower(host))
		},
		Email:  opt.Email,
		Client: &acme.Client{DirectoryURL: opt.DirectoryURL, HTTPClient: opt.HTTPClient},
	}
	if m.Client.DirectoryURL == "" {
		m.Client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if opt.Dir != "" {
		m.Cache = privateDirCache{dir: opt.Dir, cache: autocert.DirCache(opt.Dir)}
	}
	return m
}

// AutocertHosts lists the host names NewAutocert allows, lower case,
// sorted, without duplicates: hostname and openpgpkey., autoconfig. and
// mta-sts. of every domain. Names that are not DNS host names are left out.
func AutocertHosts(hostname string, domains []string) []string {
	var hosts []string
	if h, err := policy.NormalizeDomain(hostname); err == nil {
		hosts = append(hosts, h)
	}
	for _, d := range domains {
		d, err := policy.NormalizeDomain(d)
		if err != nil {
			continue
		}
		for _, p := range []string{"openpgpkey.", "autoconfig.", "mta-sts."} {
			if h, err := policy.NormalizeDomain(p + d); err == nil {
				hosts = append(hosts, h)
			}
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// privateDirCache is autocert.DirCache that makes sure, before every
// write, that its directory exists with mode 0700: DirCache creates a
// missing one so, but leaves an existing directory's mode alone.
type privateDirCache struct {
	dir   string
	cache autocert.DirCache
}

func (c privateDirCache) Get(ctx context.Context, name string) ([]byte, error) {
	return c.cache.Get(ctx, name)
}

func (c privateDirCache) Put(ctx context.Context, name string, data []byte) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("keyserver: acme cache: %w", err)
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return fmt.Errorf("keyserver: acme cache: %w", err)
	}
	return c.cache.Put(ctx, name, data)
}

func (c privateDirCache) Delete(ctx context.Context, name string) error {
	return c.cache.Delete(ctx, name)
}
