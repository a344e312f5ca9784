package wire

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// parseFetch reads FETCH (RFC 9051 §6.4.5, CONDSTORE/QRESYNC modifiers RFC
// 7162 §3.1.4 and §3.2.6).
func parseFetch(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	set, err := p.numSet(c.UID, true)
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	f := &Fetch{UID: c.UID, Set: set}
	c.Args = f
	if b, err := p.peek(); err != nil {
		return err
	} else if b == '(' {
		if err := p.list(false, func() error { return p.fetchAtt(&f.Items) }); err != nil {
			return err
		}
	} else {
		name, err := p.peekFetchName()
		if err != nil {
			return err
		}
		switch name {
		case "ALL", "FAST", "FULL":
			if _, err := p.chars(isFetchNameChar, "fetch item"); err != nil {
				return err
			}
			f.Items.Flags, f.Items.InternalDate, f.Items.RFC822Size = true, true, true
			f.Items.Envelope = name != "FAST"
			f.Items.Body = name == "FULL"
		default:
			if err := p.arg(); err != nil {
				return err
			}
			if err := p.fetchAtt(&f.Items); err != nil {
				return err
			}
		}
	}
	if ok, err := p.maybe(' '); err != nil {
		return err
	} else if ok {
		if !p.has(imap.CapCondStore) {
			return bad("Syntax error: unexpected FETCH modifiers")
		}
		err := p.list(false, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			switch k {
			case "CHANGEDSINCE":
				if err := p.sp(); err != nil {
					return err
				}
				v, err := p.number64()
				if err != nil {
					return err
				}
				if v == 0 {
					return bad("Syntax error: CHANGEDSINCE needs a non-zero mod-sequence")
				}
				f.ChangedSince = v
			case "VANISHED":
				if !p.qresync || !c.UID {
					return bad("VANISHED needs UID FETCH with QRESYNC enabled (RFC 7162 §3.2.6)")
				}
				f.Vanished = true
			default:
				return bad("Unknown FETCH modifier " + k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if f.Vanished && f.ChangedSince == 0 {
			return bad("VANISHED needs CHANGEDSINCE (RFC 7162 §3.2.6)")
		}
	}
	if c.UID {
		f.Items.UID = true
	}
	if f.ChangedSince != 0 {
		f.Items.ModSeq = true
	}
	return p.crlf()
}

func isFetchNameChar(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '-'
}

// peekFetchName returns the upper-cased name ahead (up to 16 bytes),
// unread. It peeks one byte more only while the name goes on, so it never
// waits for bytes the client has no reason to send.
func (p *parser) peekFetchName() (string, error) {
	n := 0
	for n < 16 {
		buf, err := p.br.Peek(n + 1)
		if err != nil {
			return "", err
		}
		if !isFetchNameChar(buf[n]) {
			break
		}
		n++
	}
	buf, _ := p.br.Peek(n)
	return strings.ToUpper(string(buf)), nil
}

// peekPrefix reports whether the bytes ahead begin with prefix (ASCII,
// case-insensitive), peeking one byte more only while they match.
func (p *parser) peekPrefix(prefix string) bool {
	for n := 1; n <= len(prefix); n++ {
		buf, err := p.br.Peek(n)
		if err != nil || buf[n-1]|0x20 != prefix[n-1]|0x20 {
			return false
		}
	}
	return true
}

// fetchAtt reads one fetch-att into it.
func (p *parser) fetchAtt(it *FetchItems) error {
	name, err := p.chars(isFetchNameChar, "fetch item")
	if err != nil {
		return err
	}
	switch strings.ToUpper(name) {
	case "UID":
		it.UID = true
	case "FLAGS":
		it.Flags = true
	case "INTERNALDATE":
		it.InternalDate = true
	case "RFC822.SIZE":
		it.RFC822Size = true
	case "ENVELOPE":
		it.Envelope = true
	case "BODYSTRUCTURE":
		it.BodyStructure = true
	case "RFC822":
		it.Sections = append(it.Sections, &BodySection{RFC822: "RFC822"})
	case "RFC822.HEADER":
		it.Sections = append(it.Sections, &BodySection{RFC822: "RFC822.HEADER", Peek: true, Specifier: imap.PartSpecifierHeader})
	case "RFC822.TEXT":
		it.Sections = append(it.Sections, &BodySection{RFC822: "RFC822.TEXT", Specifier: imap.PartSpecifierText})
	case "MODSEQ":
		if !p.has(imap.CapCondStore) {
			return bad("Unknown fetch item MODSEQ")
		}
		it.ModSeq = true
	case "SAVEDATE":
		if !p.has(imap.CapSaveDate) {
			return bad("Unknown fetch item SAVEDATE")
		}
		it.SaveDate = true
	case "EMAILID", "THREADID":
		if !p.has(imap.CapObjectID) {
			return bad("Unknown fetch item " + strings.ToUpper(name))
		}
		if strings.EqualFold(name, "EMAILID") {
			it.EmailID = true
		} else {
			it.ThreadID = true
		}
	case "PREVIEW":
		if !p.has(imap.CapPreview) {
			return bad("Unknown fetch item PREVIEW")
		}
		it.Preview = true
		// "PREVIEW (LAZY)"; look inside the parenthesis, since a bare
		// PREVIEW may be followed by FETCH modifiers.
		if p.peekPrefix(" (LAZY") {
			if err := p.sp(); err != nil {
				return err
			}
			err := p.list(false, func() error {
				k, err := p.keyword()
				if err != nil {
					return err
				}
				if k != "LAZY" {
					return bad("Unknown PREVIEW modifier " + k)
				}
				it.PreviewLazy = true
				return nil
			})
			if err != nil {
				return err
			}
		}
	case "BODY":
		if b, err := p.peek(); err != nil {
			return err
		} else if b != '[' {
			it.Body = true
			return nil
		}
		return p.bodySection(it, &BodySection{})
	case "BODY.PEEK":
		return p.bodySection(it, &BodySection{Peek: true})
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		if !p.has(imap.CapBinary) && !p.has(imap.CapIMAP4rev2) {
			return bad("Unknown fetch item " + strings.ToUpper(name))
		}
		part, err := p.binarySection()
		if err != nil {
			return err
		}
		if strings.EqualFold(name, "BINARY.SIZE") {
			it.BinarySize = append(it.BinarySize, part)
			return nil
		}
		s := &BodySection{Binary: true, Peek: strings.EqualFold(name, "BINARY.PEEK"), Part: part}
		if s.Partial, err = p.partial(); err != nil {
			return err
		}
		it.Sections = append(it.Sections, s)
	default:
		return bad("Unknown fetch item " + strings.ToUpper(name))
	}
	return nil
}

// bodySection reads section [partial] after BODY or BODY.PEEK.
func (p *parser) bodySection(it *FetchItems, s *BodySection) error {
	if err := p.expect('[', "["); err != nil {
		return err
	}
	if ok, err := p.maybe(']'); err != nil {
		return err
	} else if !ok {
		if err := p.sectionSpec(s); err != nil {
			return err
		}
		if err := p.expect(']', "]"); err != nil {
			return err
		}
	}
	var err error
	if s.Partial, err = p.partial(); err != nil {
		return err
	}
	it.Sections = append(it.Sections, s)
	return nil
}

// sectionSpec reads section-spec: section-msgtext, or section-part
// ["." section-text].
func (p *parser) sectionSpec(s *BodySection) error {
	for {
		b, err := p.peek()
		if err != nil {
			return err
		}
		if b < '0' || b > '9' {
			break
		}
		n, err := p.nzNumber()
		if err != nil {
			return err
		}
		s.Part = append(s.Part, int(n))
		if err := p.arg(); err != nil {
			return err
		}
		if ok, err := p.maybe('.'); err != nil {
			return err
		} else if !ok {
			return nil
		}
	}
	k, err := p.chars(func(b byte) bool { return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b == '.' }, "section")
	if err != nil {
		return err
	}
	switch strings.ToUpper(k) {
	case "HEADER":
		s.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		s.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(s.Part) == 0 {
			return bad("Syntax error: MIME needs a part number")
		}
		s.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		s.Specifier = imap.PartSpecifierHeader
		s.HeaderFieldsNot = len(k) > len("HEADER.FIELDS")
		if err := p.sp(); err != nil {
			return err
		}
		err := p.list(false, func() error {
			f, err := p.astring()
			if err != nil {
				return err
			}
			if !validFieldName(f) {
				return bad("Syntax error: invalid header field name")
			}
			s.HeaderFields = append(s.HeaderFields, f)
			return nil
		})
		if err != nil {
			return err
		}
	default:
		return bad("Syntax error: unknown section " + strings.ToUpper(k))
	}
	return nil
}

// validFieldName reports an RFC 5322 field name: printable ASCII but ":".
func validFieldName(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if f[i] <= ' ' || f[i] >= 0x7f || f[i] == ':' {
			return false
		}
	}
	return true
}

// binarySection reads section-binary: "[" [section-part] "]".
func (p *parser) binarySection() ([]int, error) {
	if err := p.expect('[', "["); err != nil {
		return nil, err
	}
	var part []int
	for {
		if ok, err := p.maybe(']'); err != nil {
			return nil, err
		} else if ok {
			return part, nil
		}
		if len(part) > 0 {
			if err := p.expect('.', "."); err != nil {
				return nil, err
			}
		}
		n, err := p.nzNumber()
		if err != nil {
			return nil, err
		}
		if err := p.arg(); err != nil {
			return nil, err
		}
		part = append(part, int(n))
	}
}

// partial reads an optional "<" number64 "." nz-number64 ">".
func (p *parser) partial() (*imap.SectionPartial, error) {
	if ok, err := p.maybe('<'); err != nil || !ok {
		return nil, err
	}
	off, err := p.number64()
	if err != nil {
		return nil, err
	}
	if err := p.expect('.', "."); err != nil {
		return nil, err
	}
	size, err := p.number64()
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, bad("Syntax error: partial size must not be zero")
	}
	if err := p.expect('>', ">"); err != nil {
		return nil, err
	}
	return &imap.SectionPartial{Offset: int64(off), Size: int64(size)}, nil
}
