package wire

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/ianaindex"
)

// errBadCharset lists the charsets every server supports; others that
// golang.org/x/text knows (ISO-8859-*, windows-125x, KOI8-R, Shift_JIS…)
// work too.
var errBadCharset = no("BADCHARSET (US-ASCII UTF-8)", "Unsupported charset")

// charsetDecoder converts search strings of one CHARSET to UTF-8.
type charsetDecoder struct {
	enc encoding.Encoding // nil for US-ASCII and UTF-8
}

// newCharset returns the decoder of a CHARSET name (RFC 9051 §6.4.4).
func newCharset(name string) (*charsetDecoder, error) {
	switch strings.ToUpper(name) {
	case "", "UTF-8", "UTF8", "US-ASCII", "ASCII":
		return &charsetDecoder{}, nil
	}
	enc, err := ianaindex.MIME.Encoding(name)
	if err != nil || enc == nil {
		enc, err = ianaindex.IANA.Encoding(name)
	}
	if err != nil || enc == nil {
		return nil, errBadCharset
	}
	return &charsetDecoder{enc: enc}, nil
}

func (d *charsetDecoder) decode(s string) (string, error) {
	if d.enc == nil {
		if !utf8.ValidString(s) {
			return "", bad("Search string is not valid UTF-8")
		}
		return s, nil
	}
	out, err := d.enc.NewDecoder().String(s)
	if err != nil {
		return "", bad("Search string is not valid in its charset")
	}
	return out, nil
}

// parseSearch reads SEARCH [RETURN (…)] [CHARSET c] keys (RFC 9051
// §6.4.4, ESEARCH RFC 4731, CONTEXT RFC 5267).
func parseSearch(p *parser, c *Command) error {
	s := &Search{UID: c.UID, Tag: c.Tag}
	c.Args = s
	if err := p.sp(); err != nil {
		return err
	}
	if name, err := p.peekFetchName(); err != nil {
		return err
	} else if name == "RETURN" {
		if err := p.searchReturn(&s.Return, false); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	cs, err := p.charsetOpt(&s.Charset, false)
	if err != nil {
		return err
	}
	if s.Key, err = p.searchProgram(cs, c.UID); err != nil {
		return err
	}
	return p.crlf()
}

// charsetOpt reads "CHARSET" SP charset SP when present (or always, when
// required, as in SORT and THREAD, without the keyword).
func (p *parser) charsetOpt(charset *string, required bool) (*charsetDecoder, error) {
	if !required {
		name, err := p.peekFetchName()
		if err != nil {
			return nil, err
		}
		if name != "CHARSET" {
			return newCharset("")
		}
		if _, err := p.atom(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	name, err := p.astring()
	if err != nil {
		return nil, err
	}
	*charset = strings.ToUpper(name)
	cs, err := newCharset(name)
	if err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	return cs, nil
}

// searchReturn reads RETURN (opts).
func (p *parser) searchReturn(ret *SearchReturn, sort bool) error {
	if _, err := p.atom(); err != nil { // RETURN
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	ret.ESearch = true
	context := imap.Cap("CONTEXT=SEARCH")
	if sort {
		context = "CONTEXT=SORT"
	}
	err := p.list(true, func() error {
		k, err := p.keyword()
		if err != nil {
			return err
		}
		switch {
		case k == "MIN":
			ret.Min = true
		case k == "MAX":
			ret.Max = true
		case k == "ALL":
			ret.All = true
		case k == "COUNT":
			ret.Count = true
		case k == "SAVE" && p.has(imap.CapSearchRes):
			ret.Save = true
		case k == "UPDATE" && p.has(context):
			ret.Update = true
		case k == "CONTEXT" && p.has(context):
			ret.Context = true
		case k == "PARTIAL" && (p.has(context) || p.has("PARTIAL")):
			if err := p.sp(); err != nil {
				return err
			}
			part, err := p.partialRange()
			ret.Partial = part
			return err
		default:
			return bad("Unknown RETURN option " + k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !ret.Min && !ret.Max && !ret.Count && !ret.Save && ret.Partial == nil {
		// RFC 4731 §3.1: RETURN () means ALL; with UPDATE alone the
		// client gets the initial result to update (RFC 5267 §4.3).
		ret.All = true
	}
	if ret.Partial != nil && ret.All {
		return bad("PARTIAL and ALL are exclusive (RFC 5267 §4.4)")
	}
	return nil
}

// partialRange reads n1:n2 with both positive or both negative.
func (p *parser) partialRange() (*Partial, error) {
	num := func() (int64, error) {
		neg, err := p.maybe('-')
		if err != nil {
			return 0, err
		}
		n, err := p.nzNumber()
		if neg {
			return -int64(n), err
		}
		return int64(n), err
	}
	a, err := num()
	if err != nil {
		return nil, err
	}
	if err := p.expect(':', ":"); err != nil {
		return nil, err
	}
	b, err := num()
	if err != nil {
		return nil, err
	}
	if (a < 0) != (b < 0) {
		return nil, bad("Syntax error: PARTIAL range mixes signs")
	}
	if a < 0 && a < b || a > 0 && a > b {
		a, b = b, a
	}
	return &Partial{First: a, Last: b}, nil
}

// searchProgram reads 1*(search-key) separated by spaces, to the end of
// the command, as one SearchAnd.
func (p *parser) searchProgram(cs *charsetDecoder, uid bool) (SearchKey, error) {
	and := SearchKey{Op: SearchAnd}
	for {
		k, err := p.searchKey(cs)
		if err != nil {
			return and, err
		}
		and.Keys = append(and.Keys, k)
		if ok, err := p.maybe(' '); err != nil {
			return and, err
		} else if !ok {
			return and, nil
		}
	}
}

// searchKey reads one search-key.
func (p *parser) searchKey(cs *charsetDecoder) (SearchKey, error) {
	if err := p.arg(); err != nil {
		return SearchKey{}, err
	}
	b, err := p.peek()
	if err != nil {
		return SearchKey{}, err
	}
	switch {
	case b == '(':
		if _, err := p.readByte(); err != nil {
			return SearchKey{}, err
		}
		if err := p.enter(); err != nil {
			return SearchKey{}, err
		}
		and := SearchKey{Op: SearchAnd}
		for {
			k, err := p.searchKey(cs)
			if err != nil {
				return and, err
			}
			and.Keys = append(and.Keys, k)
			if ok, err := p.maybe(')'); err != nil {
				return and, err
			} else if ok {
				break
			}
			if err := p.sp(); err != nil {
				return and, err
			}
		}
		p.leave()
		return and, nil
	case b >= '0' && b <= '9' || b == '*' || b == '$':
		set, err := p.numSet(false, p.has(imap.CapSearchRes))
		return SearchKey{Op: SearchSeqSet, Set: set}, err
	}
	k, err := p.keyword()
	if err != nil {
		return SearchKey{}, err
	}
	flag := func(f imap.Flag, not bool) (SearchKey, error) {
		if not {
			return SearchKey{Op: SearchNotFlag, Value: string(f)}, nil
		}
		return SearchKey{Op: SearchFlag, Value: string(f)}, nil
	}
	switch k {
	case "ALL":
		return SearchKey{Op: SearchAll}, nil
	case "ANSWERED", "UNANSWERED":
		return flag(imap.FlagAnswered, k[0] == 'U')
	case "DELETED", "UNDELETED":
		return flag(imap.FlagDeleted, k[0] == 'U')
	case "DRAFT", "UNDRAFT":
		return flag(imap.FlagDraft, k[0] == 'U')
	case "FLAGGED", "UNFLAGGED":
		return flag(imap.FlagFlagged, k[0] == 'U')
	case "SEEN", "UNSEEN":
		return flag(imap.FlagSeen, k[0] == 'U')
	case "RECENT":
		return flag("\\Recent", false)
	case "OLD":
		return flag("\\Recent", true)
	case "NEW":
		return SearchKey{Op: SearchAnd, Keys: []SearchKey{
			{Op: SearchFlag, Value: "\\Recent"}, {Op: SearchNotFlag, Value: string(imap.FlagSeen)},
		}}, nil
	case "KEYWORD", "UNKEYWORD":
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		f, err := p.flag(false)
		if err != nil {
			return SearchKey{}, err
		}
		return flag(f, k[0] == 'U')
	case "BCC", "CC", "FROM", "TO", "SUBJECT", "BODY", "TEXT":
		s, err := p.searchString(cs)
		op := map[string]SearchOp{"BCC": SearchBcc, "CC": SearchCc, "FROM": SearchFrom, "TO": SearchTo,
			"SUBJECT": SearchSubject, "BODY": SearchBody, "TEXT": SearchText}[k]
		return SearchKey{Op: op, Value: s}, err
	case "HEADER":
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		field, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		if !validFieldName(field) {
			return SearchKey{}, bad("Syntax error: invalid header field name")
		}
		s, err := p.searchString(cs)
		return SearchKey{Op: SearchHeader, Field: field, Value: s}, err
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		op := map[string]SearchOp{"BEFORE": SearchBefore, "ON": SearchOn, "SINCE": SearchSince,
			"SENTBEFORE": SearchSentBefore, "SENTON": SearchSentOn, "SENTSINCE": SearchSentSince}[k]
		return p.dateKey(op)
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE", "SAVEDATESUPPORTED":
		if !p.has(imap.CapSaveDate) {
			break
		}
		if k == "SAVEDATESUPPORTED" {
			return SearchKey{Op: SearchSavedDateSupported}, nil
		}
		op := map[string]SearchOp{"SAVEDBEFORE": SearchSavedBefore, "SAVEDON": SearchSavedOn, "SAVEDSINCE": SearchSavedSince}[k]
		return p.dateKey(op)
	case "LARGER", "SMALLER":
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		n, err := p.number64()
		op := SearchLarger
		if k == "SMALLER" {
			op = SearchSmaller
		}
		return SearchKey{Op: op, Num: n}, err
	case "OLDER", "YOUNGER":
		if !p.has(imap.CapWithin) {
			break
		}
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		n, err := p.nzNumber()
		op := SearchOlder
		if k == "YOUNGER" {
			op = SearchYounger
		}
		return SearchKey{Op: op, Num: uint64(n)}, err
	case "UID":
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		set, err := p.numSet(true, p.has(imap.CapSearchRes))
		return SearchKey{Op: SearchUID, Set: set}, err
	case "NOT":
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		if err := p.enter(); err != nil {
			return SearchKey{}, err
		}
		sub, err := p.searchKey(cs)
		p.leave()
		return SearchKey{Op: SearchNot, Keys: []SearchKey{sub}}, err
	case "OR":
		if err := p.enter(); err != nil {
			return SearchKey{}, err
		}
		defer p.leave()
		var keys [2]SearchKey
		for i := range keys {
			if err := p.sp(); err != nil {
				return SearchKey{}, err
			}
			if keys[i], err = p.searchKey(cs); err != nil {
				return SearchKey{}, err
			}
		}
		return SearchKey{Op: SearchOr, Keys: keys[:]}, nil
	case "MODSEQ":
		if !p.has(imap.CapCondStore) {
			break
		}
		return p.modseqKey()
	case "EMAILID", "THREADID":
		if !p.has(imap.CapObjectID) {
			break
		}
		if err := p.sp(); err != nil {
			return SearchKey{}, err
		}
		id, err := p.objectID()
		op := SearchEmailID
		if k == "THREADID" {
			op = SearchThreadID
		}
		return SearchKey{Op: op, Value: id}, err
	}
	return SearchKey{}, bad("Unknown search key " + k)
}

func (p *parser) searchString(cs *charsetDecoder) (string, error) {
	if err := p.sp(); err != nil {
		return "", err
	}
	s, err := p.astring()
	if err != nil {
		return "", err
	}
	return cs.decode(s)
}

func (p *parser) dateKey(op SearchOp) (SearchKey, error) {
	if err := p.sp(); err != nil {
		return SearchKey{}, err
	}
	d, err := p.date()
	return SearchKey{Op: op, Date: d}, err
}

// modseqKey reads MODSEQ's arguments: [SP entry-name SP entry-type-req]
// SP mod-sequence-valzer (RFC 7162 §3.1.5).
func (p *parser) modseqKey() (SearchKey, error) {
	k := SearchKey{Op: SearchModSeq}
	if err := p.sp(); err != nil {
		return k, err
	}
	if b, err := p.peek(); err != nil {
		return k, err
	} else if b == '"' {
		entry, err := p.quoted()
		if err != nil {
			return k, err
		}
		if err := p.sp(); err != nil {
			return k, err
		}
		typ, err := p.atom()
		if err != nil {
			return k, err
		}
		switch t := strings.ToLower(typ); t {
		case "priv", "shared", "all":
			k.ModSeqEntry, k.ModSeqType = entry, t
		default:
			return k, bad("Syntax error: MODSEQ entry type must be priv, shared or all")
		}
		if err := p.sp(); err != nil {
			return k, err
		}
	}
	n, err := p.number64()
	k.Num = n
	return k, err
}

// objectID reads an RFC 8474 objectid: 1*255(ALPHA / DIGIT / "_" / "-").
func (p *parser) objectID() (string, error) {
	id, err := p.chars(func(b byte) bool {
		return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-'
	}, "object ID")
	if err == nil && len(id) > 255 {
		return "", bad("Object ID too long")
	}
	return id, err
}

// sortKeys are the SORT criteria (SORT=DISPLAY's only with it).
var sortKeys = map[string]SortKey{
	"ARRIVAL": SortArrival, "CC": SortCc, "DATE": SortDate, "FROM": SortFrom,
	"SIZE": SortSize, "SUBJECT": SortSubject, "TO": SortTo,
	"DISPLAYFROM": SortDisplayFrom, "DISPLAYTO": SortDisplayTo,
}

// parseSort reads SORT [RETURN (…)] (criteria) charset keys (RFC 5256 §3,
// ESORT RFC 5267 §3).
func parseSort(p *parser, c *Command) error {
	s := &Sort{UID: c.UID, Tag: c.Tag}
	c.Args = s
	if err := p.sp(); err != nil {
		return err
	}
	if name, err := p.peekFetchName(); err != nil {
		return err
	} else if name == "RETURN" {
		if !p.has(imap.CapESort) {
			return bad("Syntax error: SORT RETURN needs ESORT")
		}
		if err := p.searchReturn(&s.Return, true); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	err := p.list(false, func() error {
		k, err := p.keyword()
		if err != nil {
			return err
		}
		var crit SortCriterion
		if k == "REVERSE" {
			crit.Reverse = true
			if err := p.sp(); err != nil {
				return err
			}
			if k, err = p.keyword(); err != nil {
				return err
			}
		}
		key, ok := sortKeys[k]
		if !ok || (key == SortDisplayFrom || key == SortDisplayTo) && !p.has(imap.CapSortDisplay) {
			return bad("Unknown sort criterion " + k)
		}
		crit.Key = key
		s.Criteria = append(s.Criteria, crit)
		return nil
	})
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	cs, err := p.charsetOpt(&s.Charset, true)
	if err != nil {
		return err
	}
	if s.Key, err = p.searchProgram(cs, c.UID); err != nil {
		return err
	}
	return p.crlf()
}

// parseThread reads THREAD algorithm charset keys (RFC 5256 §3).
func parseThread(p *parser, c *Command) error {
	t := &Thread{UID: c.UID}
	c.Args = t
	if err := p.sp(); err != nil {
		return err
	}
	alg, err := p.keyword()
	if err != nil {
		return err
	}
	if !p.has(imap.Cap("THREAD=" + alg)) {
		return bad("Unsupported threading algorithm " + alg)
	}
	t.Algorithm = imap.ThreadAlgorithm(alg)
	if err := p.sp(); err != nil {
		return err
	}
	cs, err := p.charsetOpt(&t.Charset, true)
	if err != nil {
		return err
	}
	if t.Key, err = p.searchProgram(cs, c.UID); err != nil {
		return err
	}
	return p.crlf()
}
