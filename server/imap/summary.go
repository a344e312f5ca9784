package imap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// summary is what a session keeps about a message so that FETCH and SEARCH
// need no public-key work: the plaintext size, the raw header block, the
// envelope and the body structure. It is stored sealed under the account's
// index key (Keyring.SealIndex) with associated data bound to the account,
// not to the UID, because store.CopyMessages copies summaries to new UIDs.
type summary struct {
	Size      int64  // plaintext size in bytes (RFC822.SIZE)
	Header    []byte // raw header block, including the blank line that ends it
	Envelope  *imap.Envelope
	Structure imap.BodyStructure
}

// summaryVersion is the first byte of an encoded summary. Persisted: a new
// layout gets a new version; old ones stay readable.
const summaryVersion = 1

// Bounds applied when decoding, so corrupted or hostile bytes cannot make
// the decoder allocate or recurse without limit.
const (
	maxSummaryDepth = 32
	maxSummaryItems = 1 << 16
)

var errSummary = errors.New("imap: malformed summary")

// summaryAD is the associated data of sealed summaries of account.
func summaryAD(account string) []byte {
	return []byte("sealmail imap summary v1\x00" + account)
}

// buildSummary parses a complete plaintext message.
func buildSummary(plain []byte) *summary {
	hdrLen := headerLen(plain)
	h, _ := textproto.ReadHeader(headerReader(plain[:hdrLen]))
	return &summary{
		Size:      int64(len(plain)),
		Header:    plain[:hdrLen:hdrLen],
		Envelope:  imapserver.ExtractEnvelope(h),
		Structure: imapserver.ExtractBodyStructure(bytes.NewReader(plain)),
	}
}

// headerLen returns the length of the header block of msg: up to and
// including the first empty line, or all of msg if there is none.
func headerLen(msg []byte) int {
	pos := 0
	for pos < len(msg) {
		if msg[pos] == '\n' {
			return pos + 1
		}
		if msg[pos] == '\r' && pos+1 < len(msg) && msg[pos+1] == '\n' {
			return pos + 2
		}
		nl := bytes.IndexByte(msg[pos:], '\n')
		if nl < 0 {
			return len(msg)
		}
		pos += nl + 1
	}
	return len(msg)
}

// encodeSummary serialises sm.
func encodeSummary(sm *summary) []byte {
	e := &encoder{b: make([]byte, 0, 256+len(sm.Header))}
	e.b = append(e.b, summaryVersion)
	e.uvarint(uint64(sm.Size))
	e.bytes(sm.Header)
	e.envelope(sm.Envelope)
	e.structure(sm.Structure)
	return e.b
}

// decodeSummary parses what encodeSummary made. It never panics; bad input
// gives an error wrapping errSummary.
func decodeSummary(b []byte) (*summary, error) {
	if len(b) == 0 || b[0] != summaryVersion {
		return nil, fmt.Errorf("%w: unknown version", errSummary)
	}
	d := &decoder{b: b[1:]}
	sm := &summary{}
	sm.Size = int64(d.uvarint())
	sm.Header = d.bytes()
	sm.Envelope = d.envelope()
	sm.Structure = d.structure(0)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 || sm.Size < 0 || int64(len(sm.Header)) > sm.Size {
		return nil, fmt.Errorf("%w: inconsistent", errSummary)
	}
	return sm, nil
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

func (e *encoder) params(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) addrs(l []imap.Address) {
	e.uvarint(uint64(len(l)))
	for _, a := range l {
		e.str(a.Name)
		e.str(a.Mailbox)
		e.str(a.Host)
	}
}

func (e *encoder) envelope(env *imap.Envelope) {
	e.bool(env != nil)
	if env == nil {
		return
	}
	e.bool(!env.Date.IsZero())
	if !env.Date.IsZero() {
		_, off := env.Date.Zone()
		e.varint(env.Date.Unix())
		e.varint(int64(off))
	}
	e.str(env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.addrs(l)
	}
	e.strs(env.InReplyTo)
	e.str(env.MessageID)
}

func (e *encoder) disposition(d *imap.BodyStructureDisposition) {
	e.bool(d != nil)
	if d != nil {
		e.str(d.Value)
		e.params(d.Params)
	}
}

// Body structure kinds.
const (
	kindNone   = 0
	kindSingle = 1
	kindMulti  = 2
)

func (e *encoder) structure(bs imap.BodyStructure) {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		e.b = append(e.b, kindSingle)
		e.str(bs.Type)
		e.str(bs.Subtype)
		e.params(bs.Params)
		e.str(bs.ID)
		e.str(bs.Description)
		e.str(bs.Encoding)
		e.uvarint(uint64(bs.Size))
		e.bool(bs.MessageRFC822 != nil)
		if m := bs.MessageRFC822; m != nil {
			e.envelope(m.Envelope)
			e.structure(m.BodyStructure)
			e.varint(m.NumLines)
		}
		e.bool(bs.Text != nil)
		if bs.Text != nil {
			e.varint(bs.Text.NumLines)
		}
		e.bool(bs.Extended != nil)
		if x := bs.Extended; x != nil {
			e.disposition(x.Disposition)
			e.strs(x.Language)
			e.str(x.Location)
		}
	case *imap.BodyStructureMultiPart:
		e.b = append(e.b, kindMulti)
		e.uvarint(uint64(len(bs.Children)))
		for _, c := range bs.Children {
			e.structure(c)
		}
		e.str(bs.Subtype)
		e.bool(bs.Extended != nil)
		if x := bs.Extended; x != nil {
			e.params(x.Params)
			e.disposition(x.Disposition)
			e.strs(x.Language)
			e.str(x.Location)
		}
	default:
		e.b = append(e.b, kindNone)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errSummary, what)
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

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool {
	switch d.byte() {
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
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.bytes()) }

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

func (d *decoder) params() map[string]string {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *decoder) addrs() []imap.Address {
	n := d.count(3)
	if n == 0 {
		return nil
	}
	l := make([]imap.Address, n)
	for i := range l {
		l[i] = imap.Address{Name: d.str(), Mailbox: d.str(), Host: d.str()}
	}
	return l
}

func (d *decoder) envelope() *imap.Envelope {
	if !d.bool() {
		return nil
	}
	env := &imap.Envelope{}
	if d.bool() {
		sec := d.varint()
		off := d.varint()
		if off < -24*3600 || off > 24*3600 {
			d.fail("zone")
			return nil
		}
		env.Date = time.Unix(sec, 0).In(time.FixedZone("", int(off)))
	}
	env.Subject = d.str()
	for _, p := range []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		*p = d.addrs()
	}
	env.InReplyTo = d.strs()
	env.MessageID = d.str()
	return env
}

func (d *decoder) disposition() *imap.BodyStructureDisposition {
	if !d.bool() {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.str(), Params: d.params()}
}

func (d *decoder) structure(depth int) imap.BodyStructure {
	if depth > maxSummaryDepth {
		d.fail("too deep")
		return nil
	}
	switch d.byte() {
	case kindNone:
		return nil
	case kindSingle:
		bs := &imap.BodyStructureSinglePart{
			Type:    d.str(),
			Subtype: d.str(),
			Params:  d.params(),
		}
		bs.ID = d.str()
		bs.Description = d.str()
		bs.Encoding = d.str()
		size := d.uvarint()
		if size > 1<<32-1 {
			d.fail("size")
		}
		bs.Size = uint32(size)
		if d.bool() {
			m := &imap.BodyStructureMessageRFC822{Envelope: d.envelope()}
			m.BodyStructure = d.structure(depth + 1)
			m.NumLines = d.varint()
			if m.Envelope == nil || m.BodyStructure == nil {
				d.fail("message/rfc822")
			}
			bs.MessageRFC822 = m
		}
		if d.bool() {
			bs.Text = &imap.BodyStructureText{NumLines: d.varint()}
		}
		// imapserver panics when BODYSTRUCTURE lacks extension data, so it is
		// required here.
		if !d.bool() {
			d.fail("extension data")
		} else {
			bs.Extended = &imap.BodyStructureSinglePartExt{
				Disposition: d.disposition(),
				Language:    d.strs(),
				Location:    d.str(),
			}
		}
		if d.err != nil {
			return nil
		}
		return bs
	case kindMulti:
		n := d.count(1)
		bs := &imap.BodyStructureMultiPart{}
		for range n {
			c := d.structure(depth + 1)
			if c == nil {
				d.fail("child")
				return nil
			}
			bs.Children = append(bs.Children, c)
		}
		bs.Subtype = d.str()
		if !d.bool() {
			d.fail("extension data")
		} else {
			bs.Extended = &imap.BodyStructureMultiPartExt{
				Params:      d.params(),
				Disposition: d.disposition(),
				Language:    d.strs(),
				Location:    d.str(),
			}
		}
		if d.err != nil {
			return nil
		}
		return bs
	}
	d.fail("kind")
	return nil
}
