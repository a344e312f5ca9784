package keyserver

import (
	"errors"
	"net"
	"strings"
)

var errBadHost = errors.New("keyserver: not a DNS host name")

// maxHostLen is the longest DNS name in text form (RFC 1035 §2.3.4).
const maxHostLen = 253

// normalizeHost lower-cases a DNS host name, drops one trailing dot and
// checks it is letters, digits and hyphens in 1–63 character labels.
// Internationalised names must be given in their A-label (xn--) form.
func normalizeHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" || len(h) > maxHostLen {
		return "", errBadHost
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", errBadHost
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", errBadHost
			}
		}
	}
	return h, nil
}

// requestHost returns the host of a Host header without port, normalised,
// or "" if it is not a DNS name (IP literals included: nothing is served
// by address).
func requestHost(hostHeader string) string {
	h := hostHeader
	if len(h) > maxHostLen+7 { // ":65535" and a dot
		return ""
	}
	if strings.HasPrefix(h, "[") {
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, _, err := net.SplitHostPort(h)
		if err != nil {
			return ""
		}
		h = host
	}
	n, err := normalizeHost(h)
	if err != nil || net.ParseIP(n) != nil {
		return ""
	}
	return n
}

// plausibleAddress is a light check of "local@domain" for configured
// addresses (the policy package does the strict one in cmd).
func plausibleAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at > 64 {
		return false
	}
	for i := 0; i < at; i++ {
		if c := a[i]; c <= ' ' || c == 0x7f || c == ';' || c == ',' || c == '"' || c == '\\' {
			return false
		}
	}
	_, err := normalizeHost(a[at+1:])
	return err == nil
}
