package tlspolicy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/server/smtp/resolver"
)

// TLSA fields (RFC 6698 §2.1, RFC 7218 names).
const (
	usageDANETA = 2 // trust anchor: a CA certificate in the server's chain
	usageDANEEE = 3 // end entity: the server's own certificate or key

	selectorCert = 0 // the whole certificate (DER)
	selectorSPKI = 1 // its SubjectPublicKeyInfo

	matchFull   = 0
	matchSHA256 = 1
	matchSHA512 = 2
)

// usable returns the records DANE for SMTP can use (RFC 7672 §3.1):
// DANE-EE and DANE-TA with known selectors and matching types. PKIX-TA
// and PKIX-EE (usages 0 and 1) are unusable for SMTP (§3.1.3).
func usable(recs []resolver.TLSA) []resolver.TLSA {
	var out []resolver.TLSA
	for _, r := range recs {
		if r.Usage != usageDANEEE && r.Usage != usageDANETA {
			continue
		}
		if r.Selector != selectorCert && r.Selector != selectorSPKI {
			continue
		}
		switch r.MatchingType {
		case matchFull:
		case matchSHA256:
			if len(r.Data) != sha256.Size {
				continue
			}
		case matchSHA512:
			if len(r.Data) != sha512.Size {
				continue
			}
		default:
			continue
		}
		out = append(out, r)
	}
	return out
}

// matches reports whether cert matches the association data of r.
func matches(r resolver.TLSA, cert *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case selectorCert:
		data = cert.Raw
	case selectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case matchSHA256:
		h := sha256.Sum256(data)
		data = h[:]
	case matchSHA512:
		h := sha512.Sum512(data)
		data = h[:]
	case matchFull:
	default:
		return false
	}
	return subtle.ConstantTimeCompare(data, r.Data) == 1
}

// errDANE is the failure of a DANE check; the message says which.
var errDANE = errors.New("DANE")

// verifyDANE checks a server's certificate chain against usable TLSA
// records (RFC 7672 §3): a DANE-EE record must match the server's own
// certificate, and then nothing else is checked (§3.1.1: neither names
// nor dates); a DANE-TA record must match a certificate the server sent
// after its own, and the chain must verify up to that certificate, with
// dates, for one of the reference identifiers (§3.2.2: the MX host name,
// and the recipient's domain).
func verifyDANE(recs []resolver.TLSA, chain []*x509.Certificate, names []string, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: server sent no certificate", errDANE)
	}
	leaf := chain[0]
	for _, r := range recs {
		if r.Usage == usageDANEEE && matches(r, leaf) {
			return nil
		}
	}
	var taErr error
	for _, r := range recs {
		if r.Usage != usageDANETA {
			continue
		}
		for i, ta := range chain[1:] {
			if !matches(r, ta) {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(ta)
			inter := x509.NewCertPool()
			for _, c := range chain[1 : i+1] {
				inter.AddCert(c)
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			if _, err := leaf.Verify(opts); err != nil {
				taErr = err
				continue
			}
			for _, n := range names {
				if n != "" && leaf.VerifyHostname(n) == nil {
					return nil
				}
			}
			taErr = fmt.Errorf("certificate not valid for %v", names)
		}
	}
	if taErr != nil {
		return fmt.Errorf("%w: trust anchor matched, but %v", errDANE, taErr)
	}
	return fmt.Errorf("%w: no TLSA record matches the server's certificates", errDANE)
}

// daneConfig is a client configuration that accepts exactly what
// verifyDANE accepts. Go's own verification is off
// (InsecureSkipVerify): VerifyConnection replaces it.
func (p *Policies) daneConfig(host, domain string, recs []resolver.TLSA) *tls.Config {
	return &tls.Config{
		ServerName:         host, // RFC 7672 §8.1: SNI is the TLSA base domain
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyDANE(recs, cs.PeerCertificates, []string{host, domain}, p.now())
		},
	}
}
