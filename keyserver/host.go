package keyserver

import (
	"net"
	"strings"

	"github.com/sealmail/sealmail/policy"
)

// maxHostLen is the longest DNS name in text form (RFC 1035 §2.3.4).
const maxHostLen = 253

// requestHost returns the host of a Host header without port, in
// canonical form (policy.NormalizeDomain), or "" if it is not a DNS name
// (IP literals included: nothing is served by address).
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
	// A URI's host is ASCII (RFC 3986 §3.2.2): clients send IDNs as
	// A-labels.
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			return ""
		}
	}
	n, err := policy.NormalizeDomain(h)
	if err != nil {
		return ""
	}
	return n
}
