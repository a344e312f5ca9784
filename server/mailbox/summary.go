package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// Summary is what a session keeps about a message so that FETCH, SEARCH
// and their like need no public-key work and, for most items, no
// decryption of the message: its plaintext size, raw header block,
// envelope, body structure (with the offset of every part) and preview.
// It is stored sealed under the account's index key, bound to the
// message (see AD).
type Summary struct {
	Size      int64  // plaintext size in bytes (RFC822.SIZE)
	Header    []byte // raw header block, the blank line that ends it included
	Envelope  *structure.Envelope
	Structure *structure.BodyStructure
	// Preview is the start of the message's text (RFC 8970): at most
	// PreviewChars characters of its first text part, decoded, white
	// space collapsed; "" if it has none.
	Preview string
}

// summaryVersion is the first byte of an encoded summary. Persisted: a
// new layout gets a new version. Version 1 (go-imap's types, bound only
// to the account) is not read: such summaries are rebuilt.
const summaryVersion = 2

// Bounds applied when decoding, so that corrupted or hostile bytes cannot
// make the decoder allocate or recurse without limit.
const (
	maxSummaryDepth = maxParseDepth + 2
	maxSummaryItems = 1 << 16
)

// ErrSummary is wrapped by errors of DecodeSummary.
var ErrSummary = errors.New("mailbox: malformed summary")

// BuildSummary parses a complete plaintext message. The summary does not
// refer to plain.
func BuildSummary(plain []byte) *Summary {
	hl := HeaderLen(plain)
	hdr := make([]byte, hl)
	copy(hdr, plain[:hl])
	bs := Structure(plain) // its strings are copies, not views of plain
	return &Summary{
		Size:      int64(len(plain)),
		Header:    hdr,
		Envelope:  Envelope(hdr),
		Structure: bs,
		Preview:   Preview(plain, bs),
	}
}

// EncodeSummary serialises sm.
func EncodeSummary(sm *Summary) []byte {
	e := &encoder{b: make([]byte, 0, 512+len(sm.Header))}
	e.b = append(e.b, summaryVersion)
	e.uvarint(uint64(sm.Size))
	e.bytes(sm.Header)
	e.envelope(sm.Envelope)
	e.structure(sm.Structure)
	e.str(sm.Preview)
	return e.b
}

// DecodeSummary parses what EncodeSummary made. It never panics; bad input
// gives an error wrapping ErrSummary.
func DecodeSummary(b []byte) (*Summary, error) {
	if len(b) == 0 || b[0] != summaryVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrSummary)
	}
	d := &decoder{b: b[1:]}
	sm := &Summary{}
	sm.Size = int64(d.uvarint())
	sm.Header = d.bytes()
	sm.Envelope = d.envelope()
	sm.Structure = d.structure(0)
	sm.Preview = d.str()
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 || sm.Size < 0 || int64(len(sm.Header)) > sm.Size || sm.Structure == nil || sm.Envelope == nil {
		return nil, fmt.Errorf("%w: inconsistent", ErrSummary)
	}
	if err := checkOffsets(sm.Structure, 0, sm.Size); err != nil {
		return nil, err
	}
	return sm, nil
}

// checkOffsets makes sure every part lies inside its parent, so that
// section extraction can trust them.
func checkOffsets(bs *structure.BodyStructure, lo, hi int64) error {
	if !(lo <= bs.HeaderStart && bs.HeaderStart <= bs.BodyStart && bs.BodyStart <= bs.End && bs.End <= hi) {
		return fmt.Errorf("%w: part offsets", ErrSummary)
	}
	for _, p := range bs.Parts {
		if err := checkOffsets(p, bs.BodyStart, bs.End); err != nil {
			return err
		}
	}
	if bs.Message != nil {
		return checkOffsets(bs.Message, bs.BodyStart, bs.End)
	}
	return nil
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) strs(l []string) {
	e.uvarint(uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}

func (e *encoder) params(ps []structure.Param) {
	e.uvarint(uint64(len(ps)))
	for _, p := range ps {
		e.str(p.Name)
		e.str(p.Value)
	}
}

func (e *encoder) addrs(l []structure.Address) {
	e.uvarint(uint64(len(l)))
	for _, a := range l {
		e.str(a.Name)
		e.str(a.ADL)
		e.str(a.Mailbox)
		e.str(a.Host)
	}
}

func (e *encoder) envelope(env *structure.Envelope) {
	e.bool(env != nil)
	if env == nil {
		return
	}
	e.str(env.Date)
	e.str(env.Subject)
	for _, l := range [][]structure.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.addrs(l)
	}
	e.str(env.InReplyTo)
	e.str(env.MessageID)
}

func (e *encoder) structure(bs *structure.BodyStructure) {
	e.bool(bs != nil)
	if bs == nil {
		return
	}
	e.str(bs.Type)
	e.str(bs.Subtype)
	e.params(bs.Params)
	e.str(bs.ID)
	e.str(bs.Description)
	e.str(bs.Encoding)
	e.varint(bs.Size)
	e.varint(bs.Lines)
	e.str(bs.MD5)
	e.str(bs.Disposition)
	e.params(bs.DispositionParams)
	e.strs(bs.Language)
	e.str(bs.Location)
	e.varint(bs.HeaderStart)
	e.varint(bs.BodyStart)
	e.varint(bs.End)
	e.varint(bs.DecodedSize)
	e.uvarint(uint64(len(bs.Parts)))
	for _, p := range bs.Parts {
		e.structure(p)
	}
	e.bool(bs.Message != nil)
	if bs.Message != nil {
		e.envelope(bs.Envelope)
		e.structure(bs.Message)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrSummary, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return false
	}
	c := d.b[0]
	d.b = d.b[1:]
	switch c {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bool")
	return false
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	p := make([]byte, n)
	copy(p, d.b)
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length, bounded by the bytes left (each item takes at
// least min bytes) and maxSummaryItems.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > maxSummaryItems || n*uint64(min) > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.str()
	}
	return l
}

func (d *decoder) params() []structure.Param {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	l := make([]structure.Param, n)
	for i := range l {
		l[i] = structure.Param{Name: d.str(), Value: d.str()}
	}
	return l
}

func (d *decoder) addrs() []structure.Address {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	l := make([]structure.Address, n)
	for i := range l {
		l[i] = structure.Address{Name: d.str(), ADL: d.str(), Mailbox: d.str(), Host: d.str()}
	}
	return l
}

func (d *decoder) envelope() *structure.Envelope {
	if !d.bool() {
		return nil
	}
	env := &structure.Envelope{}
	env.Date = d.str()
	env.Subject = d.str()
	for _, p := range []*[]structure.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		*p = d.addrs()
	}
	env.InReplyTo = d.str()
	env.MessageID = d.str()
	return env
}

func (d *decoder) structure(depth int) *structure.BodyStructure {
	if depth > maxSummaryDepth {
		d.fail("too deep")
		return nil
	}
	if !d.bool() {
		return nil
	}
	bs := &structure.BodyStructure{}
	bs.Type = d.str()
	bs.Subtype = d.str()
	bs.Params = d.params()
	bs.ID = d.str()
	bs.Description = d.str()
	bs.Encoding = d.str()
	bs.Size = d.varint()
	bs.Lines = d.varint()
	bs.MD5 = d.str()
	bs.Disposition = d.str()
	bs.DispositionParams = d.params()
	bs.Language = d.strs()
	bs.Location = d.str()
	bs.HeaderStart = d.varint()
	bs.BodyStart = d.varint()
	bs.End = d.varint()
	bs.DecodedSize = d.varint()
	n := d.count(1)
	for range n {
		p := d.structure(depth + 1)
		if p == nil {
			d.fail("part")
			return nil
		}
		bs.Parts = append(bs.Parts, p)
	}
	if d.bool() {
		bs.Envelope = d.envelope()
		bs.Message = d.structure(depth + 1)
		if bs.Envelope == nil || bs.Message == nil {
			d.fail("message part")
		}
	}
	if d.err != nil {
		return nil
	}
	if bs.Size < 0 || bs.Lines < 0 || bs.DecodedSize < -1 {
		d.fail("sizes")
		return nil
	}
	return bs
}
