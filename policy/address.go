package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadAddress is returned for addresses sealmail will not treat as local.
var ErrBadAddress = errors.New("policy: bad address")

// ErrRouting is returned, together with ErrBadAddress, for addresses whose
// local part carries a routing construct (percent hack, bang path, an '@'
// or a quote hiding one, source-route punctuation). Such an address is a
// relay attempt, not a typo; the SMTP server answers it as relaying.
var ErrRouting = errors.New("policy: routing characters in address")

// maxLocalLen and maxDomainLen are RFC 5321 §4.5.3.1.1 and §4.5.3.1.2.
const (
	maxLocalLen  = 64
	maxDomainLen = 255
)

// SplitAddress parses a mailbox address "local@domain" strictly and returns
// its local part (case kept) and its domain in canonical form
// (NormalizeDomain: A-labels, lower case). It refuses quoted local parts,
// source routes, percent hacks, bang paths, and anything outside printable
// ASCII except UTF-8 letters (RFC 6531 addresses are allowed).
func SplitAddress(addr string) (local, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", fmt.Errorf("%w: %q is not local@domain", ErrBadAddress, addr)
	}
	local, domain = addr[:at], addr[at+1:]
	if len(local) > maxLocalLen {
		return "", "", fmt.Errorf("%w: local part longer than %d bytes", ErrBadAddress, maxLocalLen)
	}
	if err := checkLocal(local); err != nil {
		return "", "", err
	}
	domain, err = NormalizeDomain(domain)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	return local, domain, nil
}

// CanonicalAddress returns the form sealmail stores: the local part
// lower-cased, the domain canonical (NormalizeDomain), so
// "Jörg@Bücher.example" is "jörg@xn--bcher-kva.example". Local parts are
// case-insensitive here, as in every common server, although RFC 5321
// allows otherwise.
func CanonicalAddress(addr string) (string, error) {
	local, domain, err := SplitAddress(strings.TrimSpace(addr))
	if err != nil {
		return "", err
	}
	return strings.ToLower(local) + "@" + domain, nil
}

func checkLocal(local string) error {
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return fmt.Errorf("%w: misplaced dot in local part", ErrBadAddress)
	}
	for _, r := range local {
		switch {
		case r == '"' || r == '\\':
			return fmt.Errorf("%w: %w: quoted local parts are not accepted", ErrBadAddress, ErrRouting)
		case r == '@' || r == '%' || r == '!' || r == ':' || r == ',':
			return fmt.Errorf("%w: %w: %q in local part", ErrBadAddress, ErrRouting, r)
		case r == 0xFFFD:
			return fmt.Errorf("%w: invalid UTF-8", ErrBadAddress)
		case r < 0x21 || r == 0x7f:
			return fmt.Errorf("%w: control or space in local part", ErrBadAddress)
		case r < 0x80 && strings.ContainsRune("()<>[];", r):
			return fmt.Errorf("%w: special %q in local part", ErrBadAddress, r)
		}
	}
	return nil
}
