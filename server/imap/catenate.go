package imap

import (
	"context"
	"errors"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// CATENATE (RFC 4469): an APPEND whose message is the concatenation of
// TEXT literals and URL parts. A URL part names a message or a section of
// one, in a mailbox of the authenticated user (RFC 5092 IMAP URL,
// absolute or relative); it is read as FETCH BODY.PEEK[section]<partial>
// would read it, verified before use (server/mailbox), and re-sealed in
// the new message. Nothing else can be named: no other user's mailbox,
// no URLAUTH. The appender bounds the whole message by APPENDLIMIT as it
// reads (AddMessage).

// catenateCaps are the capabilities of this file.
var catenateCaps = []imap.Cap{imap.CapCatenate}

// Compile-time check: the appender resolves CATENATE's URL parts.
var _ wire.URLOpener = (*appender)(nil)

// badURL is NO [BADURL url] (RFC 4469 §5): the URL cannot be used. The
// code's argument is made safe as the wire layer makes its own.
func badURL(u, text string) error {
	arg := make([]byte, 0, len(u))
	for i := 0; i < len(u) && len(arg) < 200; i++ {
		if c := u[i]; c > ' ' && c < 0x7f && c != ']' {
			arg = append(arg, c)
		}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + string(arg)), Text: text}
}

// imapURL is what CATENATE reads of an IMAP URL.
type imapURL struct {
	user        string // "" if the URL names none
	mailbox     string
	uidValidity uint32 // 0 if absent
	uid         uint32
	section     *wire.BodySection // Partial included
}

// parseIMAPURL parses an IMAP URL naming a message or part (RFC 5092
// §3): "imap://[user[;AUTH=…]@]host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n
// [/;SECTION=s][/;PARTIAL=o[.l]]", or the same from the path on (a
// relative URL of the user's own server). Keywords are matched without
// regard to case; URLAUTH is refused.
func parseIMAPURL(raw string) (*imapURL, error) {
	u := &imapURL{}
	rest := raw
	if len(rest) >= 7 && strings.EqualFold(rest[:7], "imap://") {
		rest = "//" + rest[7:]
	}
	if strings.HasPrefix(rest, "//") {
		auth, path, ok := strings.Cut(rest[2:], "/")
		if !ok {
			return nil, errors.New("no mailbox")
		}
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			user := auth[:at]
			if i := strings.IndexByte(user, ';'); i >= 0 {
				user = user[:i] // ;AUTH=…: how to log in, not whom
			}
			dec, err := url.PathUnescape(user)
			if err != nil {
				return nil, err
			}
			u.user = dec
		}
		rest = "/" + path
	}
	if !strings.HasPrefix(rest, "/") {
		return nil, errors.New("not an absolute path")
	}
	rest = rest[1:]
	semi := strings.IndexByte(rest, ';')
	if semi < 0 {
		return nil, errors.New("no UID")
	}
	mb, err := url.PathUnescape(strings.TrimSuffix(rest[:semi], "/"))
	if err != nil || mb == "" {
		return nil, errors.New("bad mailbox")
	}
	u.mailbox = mb
	for i, group := range strings.Split(rest[semi:], "/") {
		for _, param := range strings.Split(group, ";") {
			if param == "" {
				continue
			}
			k, v, ok := strings.Cut(param, "=")
			if !ok {
				return nil, errors.New("bad parameter")
			}
			switch strings.ToUpper(k) {
			case "UIDVALIDITY":
				n, err := strconv.ParseUint(v, 10, 32)
				if i != 0 || err != nil || n == 0 {
					return nil, errors.New("bad UIDVALIDITY")
				}
				u.uidValidity = uint32(n)
			case "UID":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil || n == 0 || u.uid != 0 {
					return nil, errors.New("bad UID")
				}
				u.uid = uint32(n)
			case "SECTION":
				dec, err := url.PathUnescape(v)
				if err != nil || u.uid == 0 || u.section != nil {
					return nil, errors.New("bad SECTION")
				}
				if u.section, err = parseURLSection(dec); err != nil {
					return nil, err
				}
			case "PARTIAL":
				if u.uid == 0 {
					return nil, errors.New("PARTIAL without UID")
				}
				p, err := parsePartial(v)
				if err != nil {
					return nil, err
				}
				if u.section == nil {
					u.section = &wire.BodySection{}
				}
				if u.section.Partial != nil {
					return nil, errors.New("two PARTIALs")
				}
				u.section.Partial = p
			default: // URLAUTH, EXPIRE and the rest: not here
				return nil, errors.New("unsupported parameter")
			}
		}
	}
	if u.uid == 0 {
		return nil, errors.New("no UID")
	}
	if u.section == nil {
		u.section = &wire.BodySection{}
	}
	return u, nil
}

// parsePartial parses "offset[.length]".
func parsePartial(v string) (*imap.SectionPartial, error) {
	o, l, hasLen := strings.Cut(v, ".")
	off, err := strconv.ParseInt(o, 10, 64)
	if err != nil || off < 0 {
		return nil, errors.New("bad PARTIAL")
	}
	p := &imap.SectionPartial{Offset: off, Size: math.MaxInt64}
	if hasLen {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n <= 0 {
			return nil, errors.New("bad PARTIAL")
		}
		p.Size = n
	}
	return p, nil
}

// parseURLSection parses a section as FETCH spells it (RFC 9051 §6.4.5):
// "1.2", "HEADER", "TEXT", "1.MIME", "HEADER.FIELDS (A B)",
// "2.HEADER.FIELDS.NOT (C)".
func parseURLSection(s string) (*wire.BodySection, error) {
	sec := &wire.BodySection{Peek: true}
	for s != "" {
		num, rest, _ := strings.Cut(s, ".")
		n, err := strconv.Atoi(num)
		if err != nil {
			break
		}
		if n <= 0 || len(sec.Part) >= 64 {
			return nil, errors.New("bad part number")
		}
		sec.Part = append(sec.Part, n)
		s = rest
	}
	spec, fields, hasFields := strings.Cut(s, " ")
	switch strings.ToUpper(spec) {
	case "":
	case "HEADER":
		sec.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		sec.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(sec.Part) == 0 {
			return nil, errors.New("MIME of the whole message")
		}
		sec.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		sec.Specifier = imap.PartSpecifierHeader
		sec.HeaderFieldsNot = strings.EqualFold(spec, "HEADER.FIELDS.NOT")
		list, ok := strings.CutPrefix(strings.TrimSpace(fields), "(")
		list, ok2 := strings.CutSuffix(list, ")")
		if !ok || !ok2 {
			return nil, errors.New("bad field list")
		}
		sec.HeaderFields = strings.Fields(list)
		if len(sec.HeaderFields) == 0 {
			return nil, errors.New("empty field list")
		}
		return sec, nil
	default:
		return nil, errors.New("bad section")
	}
	if hasFields {
		return nil, errors.New("bad section")
	}
	return sec, nil
}

// OpenURL implements wire.URLOpener: the content a CATENATE URL part
// names, from the user's own mailbox, verified. Anything it cannot
// resolve is NO [BADURL url] and is logged without the URL (it names a
// mailbox and may carry words of the message's header fields).
func (ap *appender) OpenURL(ctx context.Context, raw string) (io.ReadCloser, error) {
	u, err := parseIMAPURL(raw)
	if err != nil {
		return nil, badURL(raw, "Not an IMAP URL of a message this server can use")
	}
	if u.user != "" && !strings.EqualFold(u.user, ap.a.account) {
		return nil, badURL(raw, "URLs can only name the user's own mail")
	}
	name, err := canonicalName(u.mailbox)
	if err != nil {
		return nil, badURL(raw, "No such message")
	}
	st := ap.s.srv.st
	mb, err := st.Mailbox(ctx, ap.a.account, name)
	if err != nil {
		if isNotFound(err) {
			return nil, badURL(raw, "No such message")
		}
		return nil, protoErr(ap.a.log, "catenate", err)
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return nil, badURL(raw, "No such message (UIDVALIDITY)")
	}
	msgs, err := st.Messages(ctx, ap.a.account, mb.ID, store.ListOptions{FromUID: u.uid, ToUID: u.uid, WithSummary: true})
	if err != nil {
		return nil, protoErr(ap.a.log, "catenate", err)
	}
	if len(msgs) != 1 || msgs[0].UID != u.uid {
		return nil, badURL(raw, "No such message")
	}
	rd := ap.a.rd
	sums, _, err := rd.Summaries(ctx, mb.ID, msgs)
	if err != nil {
		return nil, protoErr(ap.a.log, "catenate", err)
	}
	sum := sums[0]
	if sum == nil {
		return nil, badURL(raw, "The message cannot be read")
	}
	ex, err := mailbox.Locate(sum, toSection(u.section))
	if err != nil || ex.Nil {
		return nil, badURL(raw, "No such section")
	}
	var b *mailbox.Body
	if ex.Header == nil || ex.Size < 0 {
		b, err = rd.Open(ctx, mb.ID, &msgs[0], sum.Size)
		if err != nil {
			if errors.Is(err, mailbox.ErrIntegrity) || errors.Is(err, store.ErrNotFound) {
				return nil, badURL(raw, "The message cannot be read")
			}
			return nil, protoErr(ap.a.log, "catenate", err, "uid", u.uid)
		}
	}
	r, size, err := sectionContent(ctx, ex, u.section, b)
	if err != nil {
		if b != nil {
			b.Close()
		}
		return nil, badURL(raw, "No such section")
	}
	off, n := partialRange(size, u.section.Partial)
	if off > 0 {
		if _, err := io.CopyN(io.Discard, r, off); err != nil {
			if b != nil {
				b.Close()
			}
			return nil, protoErr(ap.a.log, "catenate", err, "uid", u.uid)
		}
	}
	return &urlPart{r: io.LimitReader(r, n), b: b}, nil
}

// urlPart is an opened URL part; Close releases the message's plaintext.
type urlPart struct {
	r io.Reader
	b *mailbox.Body // may be nil
}

func (p *urlPart) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *urlPart) Close() error {
	if p.b != nil {
		p.b.Close()
		p.b = nil
	}
	return nil
}
