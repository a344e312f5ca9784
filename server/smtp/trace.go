package smtp

import (
	"bytes"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/policy"
)

// traceInfo is what goes into the Return-Path and Received fields.
type traceInfo struct {
	reversePath string    // MAIL FROM address, "" for the null path
	heloName    string    // as the client sent it; sanitised when written
	remoteIP    net.IP    // may be nil (non-TCP listener)
	hostname    string    // ours, validated by New
	tls         bool      // the transaction ran under TLS
	helo        bool      // the client said HELO, not EHLO
	utf8        bool      // MAIL FROM carried SMTPUTF8
	id          string    // transaction id, [0-9a-z]
	rcpt        string    // the one recipient, "" when there were several
	when        time.Time // arrival
	// Submission: no Return-Path, "A" for an authenticated client (RFC
	// 3848), and, with hideClient, no from-clause.
	submission bool
	auth       bool
	hideClient bool
}

// writeTrace writes the Return-Path (RFC 5321 §4.4) and Received (RFC 5321
// §4.4, RFC 3848, RFC 6531 §4.3) fields that precede the message. The
// envelope addresses have passed checkPath (length, UTF-8, no controls)
// when the client sent them; every value is further validated or
// sanitised here, so the result is a well-formed header block: lines end
// in CRLF, continuation lines start with a tab, no line exceeds 998 bytes.
func writeTrace(w *bytes.Buffer, t traceInfo) {
	if !t.submission {
		writeReturnPath(w, t.reversePath)
	}

	ip := "unknown"
	if t.remoteIP != nil {
		ip = addressLiteral(t.remoteIP)
	}
	helo := "unknown"
	if validHelo(t.heloName) {
		helo = t.heloName
	}
	with := "ESMTP"
	switch {
	case t.utf8:
		with = "UTF8SMTP"
	case t.helo:
		with = "SMTP"
	}
	if t.tls {
		with += "S"
	}
	if t.auth {
		with += "A"
	}
	if t.hideClient {
		w.WriteString("Received: by ")
	} else {
		w.WriteString("Received: from ")
		w.WriteString(helo)
		w.WriteString(" (")
		w.WriteString(ip)
		w.WriteString(")\r\n\tby ")
	}
	w.WriteString(t.hostname)
	w.WriteString(" (sealmail) with ")
	w.WriteString(with)
	w.WriteString(" id ")
	w.WriteString(t.id)
	if t.rcpt != "" {
		w.WriteString("\r\n\tfor <")
		w.WriteString(pathText(t.rcpt))
		w.WriteString(">")
	}
	w.WriteString(";\r\n\t")
	w.WriteString(t.when.Format(time.RFC1123Z))
	w.WriteString("\r\n")
}

// writeReturnPath writes the Return-Path field (RFC 5321 §4.4) of final
// delivery.
func writeReturnPath(w *bytes.Buffer, reversePath string) {
	w.WriteString("Return-Path: <")
	w.WriteString(pathText(reversePath))
	w.WriteString(">\r\n")
}

// addressLiteral writes ip as an RFC 5321 §4.1.3 address literal.
func addressLiteral(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// pathText renders an address from the envelope for a header: a local
// part that is not a dot-atom is quoted (go-smtp hands it over unquoted),
// and any byte that could break the header (controls, invalid UTF-8) is
// replaced. Addresses are bounded by the command line length.
func pathText(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr, ""
	if at >= 0 {
		local, domain = addr[:at], addr[at:]
	}
	if !dotAtom(local) {
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range local {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
		local = b.String()
	}
	return sanitize(local + domain)
}

// sanitize replaces control characters, '<', '>' and invalid UTF-8 by '?'.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '<' || r == '>' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '<' || r == '>' {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dotAtom reports whether s is an RFC 5322 dot-atom (UTF-8 allowed, RFC
// 6532).
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 0x80:
			if r == utf8.RuneError {
				return false
			}
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}

// validHelo reports whether h is a domain name or an address literal,
// which is all a Received field's from-clause may carry.
func validHelo(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		lit := strings.TrimPrefix(h[1:len(h)-1], "IPv6:")
		return net.ParseIP(lit) != nil
	}
	return validDomain(h)
}

// validDomain reports whether d is an ASCII domain name, as
// policy.NormalizeDomain accepts them (RFC 1035 §2.3.1 letters, digits
// and hyphens, or A-labels; digits allowed first).
func validDomain(d string) bool {
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			return false
		}
	}
	_, err := policy.NormalizeDomain(d)
	return err == nil
}
