package mailbox

import (
	"strings"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// maxAddresses bounds the addresses kept of one header field.
const maxAddresses = 2000

// missingDomain stands for the domain of an address that has none
// ("undisclosed-recipients" without a colon), as Dovecot writes it: an
// address with an empty host would read as a group marker.
const missingDomain = "MISSING_DOMAIN"

// ParseAddressList parses an address-list header value (RFC 5322 §3.4,
// obsolete syntax included) into envelope addresses: display names as
// written (quotes and escapes removed, encoded-words kept), source routes
// kept as ADL, groups as start and end markers. A display name missing,
// the last comment stands in for it ("user@host (Real Name)"). Malformed
// input gives what can be recognised; it never fails.
func ParseAddressList(v string) []structure.Address {
	p := &addrParser{s: v}
	var out []structure.Address
	inGroup := false
	for len(out) < maxAddresses {
		p.skipCFWS()
		if p.eof() {
			break
		}
		switch p.peek() {
		case ',':
			p.pos++
			continue
		case ';':
			p.pos++
			if inGroup {
				out = append(out, structure.Address{})
				inGroup = false
			}
			continue
		}
		start := p.pos
		a, group, ok := p.address()
		if group != "" && !inGroup {
			out = append(out, structure.Address{Mailbox: group})
			inGroup = true
			continue
		}
		if ok {
			out = append(out, a)
		}
		if p.pos == start {
			p.pos++ // never loop on a stray character
		}
	}
	if inGroup {
		out = append(out, structure.Address{})
	}
	return out
}

type addrParser struct {
	s        string
	pos      int
	comments []string // comments met since the last reset
}

func (p *addrParser) eof() bool  { return p.pos >= len(p.s) }
func (p *addrParser) peek() byte { return p.s[p.pos] }

// skipCFWS skips white space and comments, remembering the comments.
func (p *addrParser) skipCFWS() {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.pos++
		case c == '(':
			p.comments = append(p.comments, p.comment())
		default:
			return
		}
	}
}

// comment reads a (possibly nested) comment and returns its text.
func (p *addrParser) comment() string {
	p.pos++ // (
	depth := 1
	var sb strings.Builder
	for !p.eof() {
		c := p.peek()
		p.pos++
		switch c {
		case '\\':
			if !p.eof() {
				sb.WriteByte(p.peek())
				p.pos++
			}
			continue
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return strings.TrimSpace(sb.String())
			}
		}
		sb.WriteByte(c)
	}
	return strings.TrimSpace(sb.String())
}

// isSpecial reports the characters that end an atom here. '.' is part of
// atoms (dot-atom and obsolete phrases alike).
func isSpecial(c byte) bool {
	return strings.IndexByte("()<>[]:;@\\,\" \t\r\n", c) >= 0
}

// word reads an atom or quoted string; ok is false if none is next.
func (p *addrParser) word() (string, bool, bool) {
	p.skipCFWS()
	if p.eof() {
		return "", false, false
	}
	if p.peek() == '"' {
		return p.quoted(), true, true
	}
	start := p.pos
	for !p.eof() && !isSpecial(p.peek()) {
		p.pos++
	}
	if p.pos == start {
		return "", false, false
	}
	return p.s[start:p.pos], false, true
}

func (p *addrParser) quoted() string {
	p.pos++ // "
	var sb strings.Builder
	for !p.eof() {
		c := p.peek()
		p.pos++
		switch c {
		case '\\':
			if !p.eof() {
				sb.WriteByte(p.peek())
				p.pos++
			}
		case '"':
			return sb.String()
		case '\r', '\n':
			// folding inside a quoted string
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// address reads one mailbox, or the name of a group (then group is set
// and the colon consumed).
func (p *addrParser) address() (a structure.Address, group string, ok bool) {
	p.comments = p.comments[:0]
	var words []string
	anyQuoted := false
	for {
		w, q, got := p.word()
		if !got {
			break
		}
		words = append(words, w)
		anyQuoted = anyQuoted || q
	}
	p.skipCFWS()
	if p.eof() {
		return p.bare(words, anyQuoted)
	}
	switch p.peek() {
	case ':':
		p.pos++
		name := strings.Join(words, " ")
		if name == "" {
			name = " " // a nameless group still needs a marker
		}
		return structure.Address{}, name, false
	case '<':
		p.pos++
		before := p.lastComment()
		a = p.angle()
		a.Name = strings.Join(words, " ")
		if a.Name == "" {
			// A comment before or after the brackets, not inside them.
			p.comments = p.comments[:0]
			p.skipCFWS()
			if a.Name = before; a.Name == "" {
				a.Name = p.lastComment()
			}
		}
		return a, "", a.Mailbox != ""
	case '@':
		p.pos++
		local := strings.Join(words, "")
		if anyQuoted && len(words) == 1 {
			local = words[0]
		}
		a = structure.Address{Mailbox: local, Host: p.domain()}
		p.skipCFWS()
		a.Name = p.lastComment()
		if a.Host == "" {
			a.Host = missingDomain
		}
		return a, "", local != ""
	}
	return p.bare(words, anyQuoted)
}

// bare is an address without '@': a local part alone.
func (p *addrParser) bare(words []string, quoted bool) (structure.Address, string, bool) {
	if len(words) == 0 {
		return structure.Address{}, "", false
	}
	local := strings.Join(words, " ")
	if !quoted {
		local = strings.Join(words, "")
	}
	return structure.Address{Mailbox: local, Host: missingDomain, Name: p.lastComment()}, "", true
}

func (p *addrParser) lastComment() string {
	for i := len(p.comments) - 1; i >= 0; i-- {
		if p.comments[i] != "" {
			return p.comments[i]
		}
	}
	return ""
}

// angle reads what follows "<": [route ":"] addr-spec ">".
func (p *addrParser) angle() structure.Address {
	var a structure.Address
	p.skipCFWS()
	// obs-route: "@a,@b:" before the addr-spec.
	if !p.eof() && p.peek() == '@' {
		var route []string
		for !p.eof() && p.peek() == '@' {
			p.pos++
			route = append(route, "@"+p.domain())
			p.skipCFWS()
			for !p.eof() && p.peek() == ',' {
				p.pos++
				p.skipCFWS()
			}
		}
		if !p.eof() && p.peek() == ':' {
			p.pos++
		}
		a.ADL = strings.Join(route, ",")
	}
	var local []string
	quoted := false
	for {
		w, q, got := p.word()
		if !got {
			break
		}
		local = append(local, w)
		quoted = quoted || q
	}
	a.Mailbox = strings.Join(local, "")
	if quoted && len(local) == 1 {
		a.Mailbox = local[0]
	}
	p.skipCFWS()
	if !p.eof() && p.peek() == '@' {
		p.pos++
		a.Host = p.domain()
	}
	// Skip to the closing bracket.
	for !p.eof() {
		c := p.peek()
		p.pos++
		if c == '>' {
			break
		}
	}
	if a.Mailbox != "" && a.Host == "" {
		a.Host = missingDomain
	}
	return a
}

// domain reads a dot-atom or domain literal.
func (p *addrParser) domain() string {
	p.skipCFWS()
	if p.eof() {
		return ""
	}
	if p.peek() == '[' {
		start := p.pos
		for !p.eof() && p.peek() != ']' {
			p.pos++
		}
		if !p.eof() {
			p.pos++
		}
		return p.s[start:p.pos]
	}
	var parts []string
	for {
		w, _, got := p.word()
		if !got {
			break
		}
		parts = append(parts, w)
		save := p.pos
		p.skipCFWS()
		if p.eof() || isSpecial(p.peek()) {
			p.pos = save
			break
		}
	}
	return strings.Join(parts, "")
}
