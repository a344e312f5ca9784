package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrBadDomain is returned for text that is not a DNS domain name sealmail
// can serve mail for.
var ErrBadDomain = errors.New("policy: not a valid domain name")

// domainProfile maps and checks domain names as RFC 5891 §5 (lookup) and
// UTS #46 (non-transitional) say: case, width and compatibility forms are
// mapped, NFC applied, and each label must be letters, digits and hyphens
// (STD3) or a valid U-label, of at most 63 bytes once encoded, with the
// Bidi rule and the ContextJ rules honoured. A-labels ("xn--") are decoded
// and checked the same way, so a bogus one is refused rather than passed
// through.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// NormalizeDomain returns the canonical form of a domain name: A-labels
// (the form in DNS, TLS certificates, HTTP Host headers and every store
// key), lower case, without a trailing dot. It accepts U-labels and
// A-labels in any case, with or without one trailing dot, so
// "Bücher.example.", "bücher.example" and "XN--BCHER-KVA.example" are
// all "xn--bcher-kva.example". It refuses IP addresses and names whose
// last label is all digits (RFC 3696 §2), empty labels, labels of more
// than 63 bytes, names of more than 253 bytes, and anything IDNA2008 does
// not allow (underscores, spaces, symbols, invalid A-labels).
//
// Every package compares and stores domains in this form, so that mail,
// accounts, WKD and certificates agree whichever form a person or a peer
// used. Show DisplayDomain to people.
func NormalizeDomain(d string) (string, error) {
	in := d
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 4*maxDomainLen || !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: %q", ErrBadDomain, clip(in))
	}
	a, err := domainProfile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadDomain, clip(in))
	}
	last := a[strings.LastIndexByte(a, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%w: %q: the last label is all digits (an IP address is not a domain)", ErrBadDomain, clip(in))
	}
	return a, nil
}

// DisplayDomain returns d with its A-labels shown as U-labels, for people:
// "xn--bcher-kva.example" is "bücher.example". A name that does not
// convert is returned as it is.
func DisplayDomain(d string) string {
	u, err := domainProfile.ToUnicode(d)
	if err != nil {
		return d
	}
	return u
}

// IsIDN reports whether the canonical domain d has an A-label, so that it
// reads differently for people (DisplayDomain) than on the wire.
func IsIDN(d string) bool {
	return strings.HasPrefix(d, "xn--") || strings.Contains(d, ".xn--")
}

// clip bounds what an error message repeats of its input.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
