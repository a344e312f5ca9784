package wire

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Character classes of RFC 9051 §9.

// isAtomChar reports whether b is an ATOM-CHAR: a 7-bit CHAR that is not
// an atom-special ("(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]").
func isAtomChar(b byte) bool {
	if b <= ' ' || b >= 0x7f {
		return false
	}
	switch b {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAstringChar(b byte) bool { return isAtomChar(b) || b == ']' }

func isListChar(b byte) bool { return isAstringChar(b) || b == '%' || b == '*' }

func isTagChar(b byte) bool { return isAstringChar(b) && b != '+' }

// chars reads 1 or more bytes of class ok.
func (r *reader) chars(ok func(byte) bool, what string) (string, error) {
	var sb strings.Builder
	for {
		b, err := r.peek()
		if err != nil {
			return "", err
		}
		if !ok(b) {
			break
		}
		if _, err := r.readByte(); err != nil {
			return "", err
		}
		sb.WriteByte(b)
	}
	if sb.Len() == 0 {
		return "", r.unexpected(what)
	}
	return sb.String(), nil
}

// lineByte reads one byte that must not end the line (the line end is
// left for crlf or skipCommand to read).
func (r *reader) lineByte() (byte, error) {
	b, err := r.peek()
	if err != nil {
		return 0, err
	}
	if b == '\r' || b == '\n' {
		return 0, r.unexpected("more arguments")
	}
	return r.readByte()
}

// atom reads an atom.
func (r *reader) atom() (string, error) { return r.chars(isAtomChar, "atom") }

// keyword reads an atom and returns it upper-cased (command names, search
// keys, fetch items: all case-insensitive).
func (r *reader) keyword() (string, error) {
	a, err := r.atom()
	return strings.ToUpper(a), err
}

// quoted reads a quoted string. Its bytes are returned as sent (8-bit
// included; RFC 9051 allows UTF-8 there); CR, LF and NUL are refused.
func (r *reader) quoted() (string, error) {
	b, err := r.quotedBytes()
	return string(b), err
}

// quotedBytes reads a quoted string into a byte slice the caller may wipe
// (passwords).
func (r *reader) quotedBytes() ([]byte, error) {
	if err := r.expect('"', "quoted string"); err != nil {
		return nil, err
	}
	var buf []byte
	for {
		b, err := r.peek()
		if err != nil {
			return nil, err
		}
		switch b {
		case '\r', '\n':
			return nil, bad("Syntax error: unterminated quoted string")
		case 0:
			return nil, badCode(imap.ResponseCodeClientBug, "NUL in quoted string")
		}
		if _, err := r.readByte(); err != nil {
			return nil, err
		}
		switch b {
		case '"':
			return buf, nil
		case '\\':
			c, err := r.peek()
			if err != nil {
				return nil, err
			}
			if c != '"' && c != '\\' {
				return nil, bad("Syntax error: invalid escape in quoted string")
			}
			if _, err := r.readByte(); err != nil {
				return nil, err
			}
			b = c
		}
		buf = append(buf, b)
	}
}

// stringBytes reads a string (quoted or literal).
func (r *reader) stringBytes(allow8 bool) ([]byte, error) {
	b, err := r.peek()
	if err != nil {
		return nil, err
	}
	if b == '"' {
		q, err := r.quotedBytes()
		if q == nil && err == nil {
			q = []byte{}
		}
		return q, err
	}
	if r.atLiteral() {
		return r.literal(allow8)
	}
	return nil, r.unexpected("string")
}

// str reads a string (quoted or literal).
func (r *reader) str() (string, error) {
	b, err := r.stringBytes(false)
	return string(b), err
}

// astringBytes reads an astring: 1*ASTRING-CHAR, a quoted string or a
// literal.
func (r *reader) astringBytes() ([]byte, error) {
	b, err := r.peek()
	if err != nil {
		return nil, err
	}
	if b == '"' || r.atLiteral() {
		return r.stringBytes(false)
	}
	s, err := r.chars(isAstringChar, "string")
	return []byte(s), err
}

func (r *reader) astring() (string, error) {
	b, err := r.astringBytes()
	return string(b), err
}

// nstring reads a string or NIL; ok is false for NIL.
func (r *reader) nstring() (s string, ok bool, err error) {
	b, err := r.peek()
	if err != nil {
		return "", false, err
	}
	if b == '"' || r.atLiteral() {
		s, err := r.str()
		return s, true, err
	}
	a, err := r.atom()
	if err != nil {
		return "", false, err
	}
	if !strings.EqualFold(a, "NIL") {
		return "", false, bad("Syntax error: expected string or NIL")
	}
	return "", false, nil
}

// listMailbox reads a LIST pattern: 1*list-char or a string.
func (r *reader) listMailbox() (string, error) {
	b, err := r.peek()
	if err != nil {
		return "", err
	}
	if b == '"' || r.atLiteral() {
		return r.str()
	}
	return r.chars(isListChar, "mailbox pattern")
}

// number reads a 32-bit unsigned number (RFC 9051 "number").
func (r *reader) number() (uint32, error) {
	n, err := r.digits(1<<32 - 1)
	return uint32(n), err
}

// nzNumber reads a non-zero 32-bit number.
func (r *reader) nzNumber() (uint32, error) {
	n, err := r.number()
	if err == nil && n == 0 {
		return 0, bad("Syntax error: zero where a non-zero number is required")
	}
	return n, err
}

// number64 reads a 63-bit unsigned number (RFC 9051 "number64").
func (r *reader) number64() (uint64, error) {
	return r.digits(1<<63 - 1)
}

// digits reads 1*DIGIT not above max.
func (r *reader) digits(max uint64) (uint64, error) {
	var n uint64
	count := 0
	for {
		b, err := r.peek()
		if err != nil {
			return 0, err
		}
		if b < '0' || b > '9' {
			break
		}
		if _, err := r.readByte(); err != nil {
			return 0, err
		}
		d := uint64(b - '0')
		if n > (max-d)/10 {
			return 0, badCode(imap.ResponseCodeClientBug, "Number out of range")
		}
		n = n*10 + d
		count++
	}
	if count == 0 {
		return 0, r.unexpected("number")
	}
	return n, nil
}

// seqNumber reads nz-number or "*" (returned as 0, go-imap's convention).
func (r *reader) seqNumber() (uint32, error) {
	if ok, err := r.maybe('*'); err != nil || ok {
		return 0, err
	}
	return r.nzNumber()
}

// numSet reads a sequence set: a SeqSet, or a UIDSet when uid. "$" (the
// saved search result, RFC 5182) is imap.SearchRes() when allowSaved. Each
// range has Start <= Stop unless one end is "*" (0). The ranges are kept in
// the client's order, not merged; their count is bounded by the line.
func (r *reader) numSet(uid, allowSaved bool) (imap.NumSet, error) {
	if ok, err := r.maybe('$'); err != nil {
		return nil, err
	} else if ok {
		if !allowSaved {
			return nil, bad("Syntax error: $ not allowed here")
		}
		return imap.SearchRes(), nil
	}
	var seq imap.SeqSet
	var uids imap.UIDSet
	for {
		start, err := r.seqNumber()
		if err != nil {
			return nil, err
		}
		stop := start
		if ok, err := r.maybe(':'); err != nil {
			return nil, err
		} else if ok {
			if stop, err = r.seqNumber(); err != nil {
				return nil, err
			}
		}
		if start != 0 && stop != 0 && start > stop {
			start, stop = stop, start
		}
		if uid {
			uids = append(uids, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)})
		} else {
			seq = append(seq, imap.SeqRange{Start: start, Stop: stop})
		}
		if ok, err := r.maybe(','); err != nil {
			return nil, err
		} else if !ok {
			break
		}
	}
	if uid {
		return uids, nil
	}
	return seq, nil
}

// list reads "(" [elem *(SP elem)] ")", calling elem for each element. It
// counts nesting and elements against the limits. allowEmpty permits "()".
func (r *reader) list(allowEmpty bool, elem func() error) error {
	if err := r.expect('(', "("); err != nil {
		return err
	}
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	if ok, err := r.maybe(')'); err != nil {
		return err
	} else if ok {
		if !allowEmpty {
			return bad("Syntax error: empty list")
		}
		return nil
	}
	for {
		if err := r.arg(); err != nil {
			return err
		}
		if err := elem(); err != nil {
			return err
		}
		b, err := r.peek()
		if err != nil {
			return err
		}
		switch b {
		case ')':
			_, err := r.readByte()
			return err
		case ' ':
			if _, err := r.readByte(); err != nil {
				return err
			}
		default:
			return r.unexpected("space or )")
		}
	}
}

// flag reads a flag: "\" atom (a system flag or, if allowWildcard, "\*")
// or a keyword atom. System flags are returned in their canonical case.
func (r *reader) flag(allowWildcard bool) (imap.Flag, error) {
	if ok, err := r.maybe('\\'); err != nil {
		return "", err
	} else if ok {
		if allowWildcard {
			if ok, err := r.maybe('*'); err != nil || ok {
				return imap.FlagWildcard, err
			}
		}
		a, err := r.atom()
		if err != nil {
			return "", err
		}
		return canonicalSystemFlag(a), nil
	}
	a, err := r.atom()
	return imap.Flag(a), err
}

// canonicalSystemFlag gives a known "\"-flag its canonical case; others
// ("\Foo", flag-extension) keep the client's.
func canonicalSystemFlag(a string) imap.Flag {
	for _, f := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, "\\Recent"} {
		if strings.EqualFold(string(f[1:]), a) {
			return f
		}
	}
	return imap.Flag("\\" + a)
}

// flagList reads "(" [flag *(SP flag)] ")".
func (r *reader) flagList() ([]imap.Flag, error) {
	flags := []imap.Flag{}
	err := r.list(true, func() error {
		f, err := r.flag(false)
		flags = append(flags, f)
		return err
	})
	return flags, err
}

var months = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// date reads a search date: d-Mon-yyyy, possibly quoted. It returns
// midnight UTC of that day.
func (r *reader) date() (time.Time, error) {
	quoted, err := r.maybe('"')
	if err != nil {
		return time.Time{}, err
	}
	day, err := r.fixedDigits(1, 2)
	if err != nil {
		return time.Time{}, err
	}
	t, err := r.monthYear(day)
	if err != nil {
		return time.Time{}, err
	}
	if quoted {
		if err := r.expect('"', `"`); err != nil {
			return time.Time{}, err
		}
	}
	return t, nil
}

// monthYear reads "-Mon-yyyy" after the day.
func (r *reader) monthYear(day int) (time.Time, error) {
	if err := r.expect('-', "date"); err != nil {
		return time.Time{}, err
	}
	var mon [3]byte
	for i := range mon {
		b, err := r.lineByte()
		if err != nil {
			return time.Time{}, err
		}
		mon[i] = b &^ 0x20 // upper case (non-letters fail the lookup)
	}
	m := 0
	for i, name := range months {
		if string(mon[:]) == name {
			m = i + 1
		}
	}
	if m == 0 {
		return time.Time{}, bad("Syntax error: invalid month in date")
	}
	if err := r.expect('-', "date"); err != nil {
		return time.Time{}, err
	}
	year, err := r.fixedDigits(4, 4)
	if err != nil {
		return time.Time{}, err
	}
	t := time.Date(year, time.Month(m), day, 0, 0, 0, 0, time.UTC)
	if day < 1 || t.Day() != day {
		return time.Time{}, bad("Syntax error: invalid day in date")
	}
	return t, nil
}

// fixedDigits reads between minN and maxN digits.
func (r *reader) fixedDigits(minN, maxN int) (int, error) {
	n, count := 0, 0
	for count < maxN {
		b, err := r.peek()
		if err != nil {
			return 0, err
		}
		if b < '0' || b > '9' {
			break
		}
		if _, err := r.readByte(); err != nil {
			return 0, err
		}
		n = n*10 + int(b-'0')
		count++
	}
	if count < minN {
		return 0, r.unexpected("digits")
	}
	return n, nil
}

// dateTime reads an APPEND date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (the
// day may be " d").
func (r *reader) dateTime() (time.Time, error) {
	if err := r.expect('"', "date-time"); err != nil {
		return time.Time{}, err
	}
	if _, err := r.maybe(' '); err != nil {
		return time.Time{}, err
	}
	day, err := r.fixedDigits(1, 2)
	if err != nil {
		return time.Time{}, err
	}
	d, err := r.monthYear(day)
	if err != nil {
		return time.Time{}, err
	}
	if err := r.sp(); err != nil {
		return time.Time{}, err
	}
	var hms [3]int
	for i := range hms {
		if i > 0 {
			if err := r.expect(':', "time"); err != nil {
				return time.Time{}, err
			}
		}
		if hms[i], err = r.fixedDigits(2, 2); err != nil {
			return time.Time{}, err
		}
	}
	if hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
		return time.Time{}, bad("Syntax error: invalid time")
	}
	if err := r.sp(); err != nil {
		return time.Time{}, err
	}
	sign, err := r.lineByte()
	if err != nil {
		return time.Time{}, err
	}
	if sign != '+' && sign != '-' {
		return time.Time{}, bad("Syntax error: invalid time zone")
	}
	zone, err := r.fixedDigits(4, 4)
	if err != nil {
		return time.Time{}, err
	}
	if zone%100 > 59 || zone/100 > 23 {
		return time.Time{}, bad("Syntax error: invalid time zone")
	}
	off := (zone/100*60 + zone%100) * 60
	if sign == '-' {
		off = -off
	}
	if err := r.expect('"', `"`); err != nil {
		return time.Time{}, err
	}
	loc := time.FixedZone("", off)
	return time.Date(d.Year(), d.Month(), d.Day(), hms[0], hms[1], hms[2], 0, loc), nil
}
