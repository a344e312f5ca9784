package badgerstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// errCorrupt reports a record that cannot be decoded.
var errCorrupt = errors.New("badgerstore: corrupt record")

// Record format versions. A record starts with its version byte so that the
// format can grow; decoders refuse versions they do not know.
const (
	vAccountJSON = 1 // read only; see accountRec
	vAccount     = 2
	vSlot        = 1
	vMailbox     = 1
	vMeta        = 1
	vSummary     = 1
)

// enc appends the primitive encodings used by all binary records.
type enc []byte

func (e enc) uvarint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) varint(v int64) enc   { return binary.AppendVarint(e, v) }
func (e enc) bytes(b []byte) enc   { return append(e.uvarint(uint64(len(b))), b...) }
func (e enc) str(s string) enc     { return append(e.uvarint(uint64(len(s))), s...) }
func (e enc) bool(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}
func (e enc) time(t time.Time) enc { return e.varint(t.Unix()).uvarint(uint64(t.Nanosecond())) }

// dec reads what enc wrote. The first error sticks; every read after it
// returns zero values, so callers check err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail()
		return 0
	}
	return uint32(v)
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns a copy, or nil for an empty field.
func (d *dec) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	var out []byte
	if n > 0 {
		out = append([]byte(nil), d.b[:n]...)
	}
	d.b = d.b[n:]
	return out
}

// skipBytes skips what bytes would return, without copying it.
func (d *dec) skipBytes() {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return
	}
	d.b = d.b[n:]
}

func (d *dec) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// strIntern is str, returning the same string for equal values seen
// before (flags repeat across thousands of messages in a listing).
func (d *dec) strIntern(m map[string]string) string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	if s, ok := m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(m) < 1024 {
		m[s] = s
	}
	return s
}

func (d *dec) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *dec) time() time.Time {
	s := d.varint()
	ns := d.uvarint()
	if ns >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}

func (d *dec) version(want byte) {
	if v := d.byte(); d.err == nil && v != want {
		d.err = fmt.Errorf("%w: version %d, want %d", errCorrupt, v, want)
		d.b = nil
	}
}

// finish returns the decoding error, also for trailing bytes.
func (d *dec) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}

// accountRec is the stored account. Slots and UsedBytes live under their
// own keys.
//
// Version 2 (written now): version byte, ID (8 bytes, so that lookups
// needing only the ID decode nothing else), then binary fields: created,
// fingerprint, public key, WKD, quota, last slot ID, the wrapped private
// key, which public lookups skip without copying, and then the optional
// fields, each absent from records written before it existed: the
// Autocrypt setting (one byte, 1 for off).
//
// Version 1 (read only): version byte, ID (8 bytes), then JSON of the
// fields below with the tags given. Records written then may also hold
// "nextMailbox", the account's last mailbox ID; only initMailboxIDs reads
// it. Any change to an account rewrites it as version 2.
type accountRec struct {
	ID             uint64    `json:"-"`
	Created        time.Time `json:"created"`
	KeyFingerprint string    `json:"fpr"`
	PublicKey      []byte    `json:"pub"`
	WrappedKey     []byte    `json:"wrapped,omitempty"`
	PublishWKD     bool      `json:"wkd"`
	QuotaBytes     int64     `json:"quota"`
	NextSlot       uint32    `json:"nextSlot"` // last slot ID handed out
	AutocryptOff   bool      `json:"-"`        // version 2 only
}

func (a *accountRec) encode() []byte {
	e := binary.BigEndian.AppendUint64(enc{vAccount}, a.ID)
	return enc(e).time(a.Created).str(a.KeyFingerprint).bytes(a.PublicKey).bool(a.PublishWKD).
		varint(a.QuotaBytes).uvarint(uint64(a.NextSlot)).bytes(a.WrappedKey).bool(a.AutocryptOff)
}

func decodeAccountID(b []byte) (uint64, error) {
	if len(b) < 9 || (b[0] != vAccount && b[0] != vAccountJSON) {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(b[1:9]), nil
}

// decodeAccount decodes an account record. Without withKey the wrapped
// key is left out (and not copied): public lookups never hold it.
func decodeAccount(b []byte, withKey bool) (accountRec, error) {
	var a accountRec
	id, err := decodeAccountID(b)
	if err != nil {
		return a, err
	}
	if b[0] == vAccountJSON {
		if err := json.Unmarshal(b[9:], &a); err != nil {
			return a, fmt.Errorf("%w: account: %v", errCorrupt, err)
		}
		if !withKey {
			a.WrappedKey = nil
		}
		a.ID = id
		return a, nil
	}
	d := dec{b: b[9:]}
	a.ID = id
	a.Created = d.time()
	a.KeyFingerprint = d.str()
	a.PublicKey = d.bytes()
	a.PublishWKD = d.bool()
	a.QuotaBytes = d.varint()
	a.NextSlot = d.u32()
	if withKey {
		a.WrappedKey = d.bytes()
	} else {
		d.skipBytes()
	}
	if len(d.b) > 0 {
		a.AutocryptOff = d.bool()
	}
	return a, d.finish()
}

func encodeSlot(s store.Slot) []byte {
	return enc{vSlot}.uvarint(uint64(s.Kind)).time(s.Created).str(s.Label).bytes(s.Data)
}

func decodeSlot(id uint32, b []byte) (store.Slot, error) {
	d := dec{b: b}
	d.version(vSlot)
	k := d.uvarint()
	s := store.Slot{ID: id, Kind: store.SlotKind(k), Created: d.time(), Label: d.str(), Data: d.bytes()}
	if k > 255 {
		d.fail()
	}
	return s, d.finish()
}

// mailboxRec is the stored mailbox: its metadata and exact counters.
type mailboxRec struct {
	store.Mailbox
}

func (m *mailboxRec) encode() []byte {
	e := enc{vMailbox}.str(m.Name).str(m.SpecialUse).bool(m.Subscribed).
		uvarint(uint64(m.UIDValidity)).uvarint(uint64(m.UIDNext)).uvarint(m.HighestModSeq).
		uvarint(uint64(m.Messages)).uvarint(uint64(m.Unseen)).uvarint(uint64(m.Deleted)).
		varint(m.SealedSize)
	return e
}

func decodeMailbox(id uint64, b []byte) (mailboxRec, error) {
	d := dec{b: b}
	d.version(vMailbox)
	var m mailboxRec
	m.ID = id
	m.Name = d.str()
	m.SpecialUse = d.str()
	m.Subscribed = d.bool()
	m.UIDValidity = d.u32()
	m.UIDNext = d.u32()
	m.HighestModSeq = d.uvarint()
	m.Messages = d.u32()
	m.Unseen = d.u32()
	m.Deleted = d.u32()
	m.SealedSize = d.varint()
	return m, d.finish()
}

// meta is a message's metadata without its blob or summary: what every
// SELECT lists, so it is kept small and cheap to decode.
//
// After the flags come the optional fields, absent from records written
// before they existed: the save date and the email ID (both or neither).
type meta struct {
	Date       time.Time
	ModSeq     uint64
	SealedSize int64
	Blob       uint64   // key of the blob and summary, unique in the account
	Flags      []string // canonical
	// Saved is when the message was saved into its mailbox (delivery,
	// APPEND, copy, move); zero in records written before it was kept.
	Saved time.Time
	// Email is store.Message.EmailID: the blob ID of the first save,
	// carried by copies and moves; 0 in records written before it was
	// kept (then the blob ID is, see emailID).
	Email uint64
}

func (m *meta) encode() []byte {
	e := enc{vMeta}.time(m.Date).uvarint(m.ModSeq).varint(m.SealedSize).uvarint(m.Blob).
		uvarint(uint64(len(m.Flags)))
	for _, f := range m.Flags {
		e = e.str(f)
	}
	if !m.Saved.IsZero() || m.Email != 0 {
		e = e.time(m.Saved).uvarint(m.Email)
	}
	return e
}

// emailID is the message's store.Message.EmailID.
func (m *meta) emailID() uint64 {
	if m.Email != 0 {
		return m.Email
	}
	return m.Blob
}

// decodeMeta decodes a meta. intern, if non-nil, shares flag strings
// between the metas of one listing.
func decodeMeta(b []byte, intern map[string]string) (meta, error) {
	if intern == nil {
		intern = make(map[string]string)
	}
	d := dec{b: b}
	d.version(vMeta)
	var m meta
	m.Date = d.time()
	m.ModSeq = d.uvarint()
	m.SealedSize = d.varint()
	m.Blob = d.uvarint()
	n := d.uvarint()
	if n > store.MaxFlags || m.SealedSize < 0 {
		d.fail()
		n = 0
	}
	if n > 0 {
		m.Flags = make([]string, n)
		for i := range m.Flags {
			m.Flags[i] = d.strIntern(intern)
		}
	}
	if len(d.b) > 0 {
		m.Saved = d.time()
		m.Email = d.uvarint()
	}
	return m, d.finish()
}

func (m *meta) seen() bool    { return store.HasFlag(m.Flags, store.FlagSeen) }
func (m *meta) deleted() bool { return store.HasFlag(m.Flags, store.FlagDeleted) }

func encodeSummary(summary, sessionKey []byte) []byte {
	return enc{vSummary}.bytes(summary).bytes(sessionKey)
}

func decodeSummary(b []byte) (summary, sessionKey []byte, err error) {
	d := dec{b: b}
	d.version(vSummary)
	summary = d.bytes()
	sessionKey = d.bytes()
	return summary, sessionKey, d.finish()
}

func decodeU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(b), nil
}

// usage is an account's hot counters, kept apart from the account record
// because every delivery changes them.
type usage struct {
	Used     int64  // sealed bytes in use
	LastBlob uint64 // last blob ID handed out
}

func (u *usage) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(u.Used))
	return binary.BigEndian.AppendUint64(b, u.LastBlob)
}

func decodeUsage(b []byte) (usage, error) {
	if len(b) != 16 {
		return usage{}, errCorrupt
	}
	return usage{Used: int64(binary.BigEndian.Uint64(b)), LastBlob: binary.BigEndian.Uint64(b[8:])}, nil
}
