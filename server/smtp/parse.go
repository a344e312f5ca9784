package smtp

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxCommandLine bounds a command line, CRLF included: RFC 5321
// §4.5.3.1.4's 512 octets plus room for the parameters of SIZE, BODY,
// SMTPUTF8 and (for submission) AUTH and DSN, as Postfix's
// line_length_limit does.
const maxCommandLine = 2048

// maxPathLen is RFC 5321 §4.5.3.1.3's limit on a reverse or forward path,
// angle brackets not counted.
const maxPathLen = 256

// maxVerbLen bounds what is taken for a command verb.
const maxVerbLen = 16

// command is one command line, split into its verb and its argument.
type command struct {
	verb string // upper case; "" for an empty line
	arg  string // what follows the verb and one space, as sent
}

// parseCommand splits a command line (line ending removed). It refuses
// control characters anywhere (a NUL or bare CR has no business in a
// command) and verbs that are not letters.
func parseCommand(line []byte) (command, *Reply) {
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return command{}, replyBadCharacter
		}
	}
	s := string(line)
	verb, arg, _ := strings.Cut(s, " ")
	if len(verb) > maxVerbLen {
		return command{}, replyUnknownCmd
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return command{}, replyUnknownCmd
		}
	}
	return command{verb: strings.ToUpper(verb), arg: arg}, nil
}

// path is a reverse or forward path (RFC 5321 §4.1.2) as the client gave
// it, decoded: quotes and quoted-pairs removed from the local part.
type path struct {
	local  string // decoded local part; "postmaster" for <postmaster>
	domain string // as sent, also an address literal "[…]"; "" for <> and <postmaster>
	quoted bool   // the local part was a quoted string
	route  bool   // a source route (<@a,@b:mailbox>) preceded the mailbox; it is ignored
}

// isNull reports the null reverse path <>.
func (p path) isNull() bool { return p.local == "" && p.domain == "" }

// addr returns the mailbox as policy reads it: local@domain with the
// local part decoded, so a quoted local part hiding an '@' or a quote
// shows its routing characters, and one equal to a dot-string ("alice")
// is that dot-string (RFC 5321 §4.1.2: quoting changes no meaning).
func (p path) addr() string {
	if p.domain == "" {
		return p.local
	}
	return p.local + "@" + p.domain
}

// errPath is parsePath's refusal; the caller picks the reply.
type errPath string

func (e errPath) Error() string { return "smtp: path: " + string(e) }

// parsePath reads a path at the start of s (after optional spaces, which
// some clients send after the colon) and returns it with the rest of s.
// It is lenient where policy is strict (the characters of the local part
// and domain are judged by policy.Recipients), and strict where the wire
// format is at stake: angle brackets, quoting, length, controls, UTF-8.
// rcpt allows the bare <postmaster> of RFC 5321 §4.1.1.3.
func parsePath(s string, rcpt bool) (path, string, error) {
	s = strings.TrimLeft(s, " ")
	if !strings.HasPrefix(s, "<") {
		return path{}, "", errPath("no '<'")
	}
	end := -1
	inQuote := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\':
			i++ // quoted-pair: the next byte is literal
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '>':
			end = i
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return path{}, "", errPath("no '>'")
	}
	inner, rest := s[1:end], s[end+1:]
	if len(inner) > maxPathLen {
		return path{}, "", errPath("too long")
	}
	if !utf8.ValidString(inner) {
		return path{}, "", errPath("invalid UTF-8")
	}
	if inner == "" {
		return path{}, rest, nil
	}
	var p path
	if inner[0] == '@' {
		// A-d-l ":" (RFC 5321 §4.1.2): ignored, as §3.3 says servers
		// SHOULD; the final mailbox alone is judged.
		colon := strings.IndexByte(inner, ':')
		if colon < 0 {
			return path{}, "", errPath("source route without ':'")
		}
		for _, hop := range strings.Split(inner[:colon], ",") {
			if len(hop) < 2 || hop[0] != '@' || strings.ContainsAny(hop[1:], "@\" \\") {
				return path{}, "", errPath("bad source route")
			}
		}
		p.route = true
		inner = inner[colon+1:]
	}
	var local string
	if strings.HasPrefix(inner, `"`) {
		dec, n, ok := unquote(inner)
		if !ok {
			return path{}, "", errPath("bad quoted string")
		}
		local, inner = dec, inner[n:]
		p.quoted = true
		if !strings.HasPrefix(inner, "@") {
			return path{}, "", errPath("quoted local part without domain")
		}
		p.domain = inner[1:]
	} else {
		at := strings.LastIndexByte(inner, '@')
		if at < 0 {
			if rcpt && !p.route && strings.EqualFold(inner, "postmaster") {
				return path{local: "postmaster"}, rest, nil
			}
			return path{}, "", errPath("no '@'")
		}
		local, p.domain = inner[:at], inner[at+1:]
		if strings.ContainsAny(local, ` "\`) {
			return path{}, "", errPath("unquoted special in local part")
		}
	}
	if local == "" || p.domain == "" {
		return path{}, "", errPath("empty local part or domain")
	}
	if strings.ContainsAny(p.domain, ` "\<>`) {
		return path{}, "", errPath("bad domain")
	}
	for _, r := range local + p.domain {
		if r < 0x20 || r == 0x7f {
			return path{}, "", errPath("control character")
		}
	}
	p.local = local
	return p, rest, nil
}

// unquote decodes the RFC 5321 Quoted-string at the start of s and
// returns the decoded content and the bytes consumed. A quoted-pair
// escapes one printable ASCII character (RFC 5321 §4.1.2).
func unquote(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, true
		case c == '\\':
			if i+1 >= len(s) || s[i+1] < 0x20 || s[i+1] > 0x7e {
				return "", 0, false
			}
			i++
			b.WriteByte(s[i])
		case c < 0x20 || c == 0x7f:
			return "", 0, false
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// params are the ESMTP parameters of MAIL or RCPT (RFC 5321 §4.1.2
// Mail-parameters), keyword upper-cased.
type params map[string]string

// parseParams reads space-separated keyword[=value] parameters. It
// refuses repeated keywords and values with spaces, '=' or controls.
func parseParams(s string) (params, bool) {
	ps := params{}
	for _, f := range strings.Split(s, " ") {
		if f == "" {
			continue
		}
		k, v, hasValue := strings.Cut(f, "=")
		if k == "" || len(k) > 32 || hasValue && v == "" {
			return nil, false
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
				return nil, false
			}
		}
		for _, r := range v {
			if r < 0x21 || r == '=' || r == 0x7f || r == utf8.RuneError {
				return nil, false
			}
		}
		k = strings.ToUpper(k)
		if _, dup := ps[k]; dup {
			return nil, false
		}
		ps[k] = v
	}
	return ps, true
}

// mailArgs is a parsed MAIL command.
type mailArgs struct {
	from path
	size int64 // SIZE=, 0 if absent (RFC 1870)
	utf8 bool  // SMTPUTF8 (RFC 6531 §3.4)
	// Submission only:
	ret        string // RET= (RFC 3461 §4.3): "FULL", "HDRS" or ""
	envid      string // ENVID= decoded (RFC 3461 §4.4), "" if absent
	requireTLS bool   // REQUIRETLS (RFC 8689 §4)
}

// mailParams says which MAIL and RCPT parameters a listener takes.
type mailParams struct {
	esmtp      bool // the client said EHLO: parameters may be given at all
	dsn        bool // RET, ENVID, NOTIFY, ORCPT (RFC 3461) and AUTH= (RFC 4954 §5)
	requireTLS bool // REQUIRETLS (RFC 8689; only over TLS)
}

// parseMail parses the argument of MAIL ("FROM:<path> params").
func parseMail(arg string, mp mailParams) (mailArgs, *Reply) {
	if len(arg) < 5 || !strings.EqualFold(arg[:5], "FROM:") {
		return mailArgs{}, replySyntax
	}
	p, rest, err := parsePath(arg[5:], false)
	if err != nil {
		return mailArgs{}, replyBadSenderSyntax
	}
	m := mailArgs{from: p}
	ps, ok := parseParams(rest)
	if !ok {
		return mailArgs{}, replyParamSyntax
	}
	if len(ps) > 0 && !mp.esmtp {
		return mailArgs{}, replyParamUnknown
	}
	for k, v := range ps {
		switch {
		case k == "SIZE":
			n, ok := parseSize(v)
			if !ok {
				return mailArgs{}, replyParamSyntax
			}
			m.size = n
		case k == "BODY":
			// 7BIT and 8BITMIME (RFC 6152) are stored alike; BINARYMIME
			// is not offered (binary bodies would defeat the bare CR/LF
			// rule).
			if !strings.EqualFold(v, "7BIT") && !strings.EqualFold(v, "8BITMIME") {
				return mailArgs{}, replyParamUnknown
			}
		case k == "SMTPUTF8":
			if v != "" {
				return mailArgs{}, replyParamSyntax
			}
			m.utf8 = true
		case k == "RET" && mp.dsn:
			m.ret = strings.ToUpper(v)
			if m.ret != "FULL" && m.ret != "HDRS" {
				return mailArgs{}, replyParamSyntax
			}
		case k == "ENVID" && mp.dsn:
			// RFC 3461 §4.4: xtext, at most 100 characters.
			id, ok := decodeXtext(v)
			if !ok || len(v) > 100 || id == "" {
				return mailArgs{}, replyParamSyntax
			}
			m.envid = id
		case k == "AUTH" && mp.dsn:
			// RFC 4954 §5: the submitter's identity as another server saw
			// it; the authenticated session decides here.
			if _, ok := decodeXtext(v); !ok {
				return mailArgs{}, replyParamSyntax
			}
		case k == "REQUIRETLS" && mp.requireTLS:
			if v != "" {
				return mailArgs{}, replyParamSyntax
			}
			m.requireTLS = true
		default:
			return mailArgs{}, replyParamUnknown
		}
	}
	return m, nil
}

// replyBadSenderSyntax and replyBadRcptSyntax answer paths that do not
// parse at all (RFC 3463 X.1.7, X.1.3).
var (
	replyBadSenderSyntax = &Reply{501, "5.1.7", "Bad sender address syntax"}
	replyBadRcptSyntax   = &Reply{501, "5.1.3", "Bad recipient address syntax"}
)

// parseSize reads a SIZE value: decimal digits only. Values too large
// for an int64 are the largest int64 (they are over any limit anyway).
func parseSize(v string) (int64, bool) {
	if v == "" || len(v) > 20 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 1<<63 - 1, true
	}
	return n, true
}

// rcptArgs are RCPT's DSN parameters (RFC 3461 §4.1, §4.2).
type rcptArgs struct {
	notify []string // upper case; nil if absent
	orcpt  string   // "addr-type;address", decoded; "" if absent
}

// parseRcpt parses the argument of RCPT ("TO:<path> params"). Only a
// listener with dsn takes parameters (NOTIFY and ORCPT); the MX takes
// none.
func parseRcpt(arg string, dsn bool) (path, rcptArgs, *Reply) {
	var ra rcptArgs
	if len(arg) < 3 || !strings.EqualFold(arg[:3], "TO:") {
		return path{}, ra, replySyntax
	}
	p, rest, err := parsePath(arg[3:], true)
	if err != nil || p.isNull() {
		return path{}, ra, replyBadRcptSyntax
	}
	ps, ok := parseParams(rest)
	if !ok {
		return path{}, ra, replyParamSyntax
	}
	for k, v := range ps {
		switch {
		case k == "NOTIFY" && dsn:
			n, ok := parseNotify(v)
			if !ok {
				return path{}, ra, replyParamSyntax
			}
			ra.notify = n
		case k == "ORCPT" && dsn:
			o, ok := parseORcpt(v)
			if !ok {
				return path{}, ra, replyParamSyntax
			}
			ra.orcpt = o
		default:
			return path{}, ra, replyParamUnknown
		}
	}
	return p, ra, nil
}

// parseNotify reads NOTIFY's value (RFC 3461 §4.1): NEVER alone, or a
// list of SUCCESS, FAILURE and DELAY, each once.
func parseNotify(v string) ([]string, bool) {
	var out []string
	for _, f := range strings.Split(strings.ToUpper(v), ",") {
		switch f {
		case "NEVER", "SUCCESS", "FAILURE", "DELAY":
		default:
			return nil, false
		}
		if slices.Contains(out, f) {
			return nil, false
		}
		out = append(out, f)
	}
	if slices.Contains(out, "NEVER") && len(out) > 1 {
		return nil, false
	}
	return out, true
}

// parseORcpt reads ORCPT's value (RFC 3461 §4.2, RFC 6533 §3):
// addr-type ";" xtext, decoded, at most 500 characters.
func parseORcpt(v string) (string, bool) {
	typ, enc, ok := strings.Cut(v, ";")
	if !ok || len(v) > 500 || enc == "" {
		return "", false
	}
	typ = strings.ToLower(typ)
	var addr string
	switch typ {
	case "rfc822":
		addr, ok = decodeXtext(enc)
	case "utf-8":
		addr, ok = decodeUTF8Xtext(enc)
	default:
		return "", false
	}
	if !ok || addr == "" {
		return "", false
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return "", false
		}
	}
	return typ + ";" + addr, true
}

// decodeXtext decodes xtext (RFC 3461 §4): printable ASCII but "+" and
// "=", and "+XX" hex escapes of any byte.
func decodeXtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", false
			}
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case c >= '!' && c <= '~' && c != '=':
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", false
	}
	return out, true
}

// decodeUTF8Xtext decodes utf-8-addr-xtext and utf-8-addr-unitext (RFC
// 6533 §3): "\x{HEX}" escapes of code points, the rest as it is.
func decodeUTF8Xtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], `\x{`) {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 || end > 10 {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+3:i+end], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", false
			}
			b.WriteRune(rune(v))
			i += end
			continue
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	return out, utf8.ValidString(out)
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// parseBDAT parses the argument of BDAT ("size [LAST]", RFC 3030 §2).
func parseBDAT(arg string) (size int64, last bool, ok bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f[0]) > 19 {
		return 0, false, false
	}
	for i := 0; i < len(f[0]); i++ {
		if f[0][i] < '0' || f[0][i] > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	return n, last, true
}
