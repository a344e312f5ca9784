// Package trace is the delivery trace's record format: what sealmail
// keeps of each step of a message's way in (the MX's verdicts) and out
// (the outbound queue's attempts, bounces and drops), for the operator
// to see why mail did or did not arrive (`sealmail queue show`,
// `sealmail trace search`). Both directions share one store table
// (store.Tracer) and this one format.
//
// A record's kind, time and Ref (the message's transaction id, which is
// also in its Received field, the logs and its queue IDs) are in the
// clear: the store indexes them. Everything else — addresses, host
// names, remote replies, which often quote addresses — is sealed with
// AES-256-GCM under a key derived (HKDF-SHA256) from the server key, as
// the outbound queue is: a stolen data directory without the server key
// names nobody a user corresponds with. The trace never holds message
// content (no subject, no body).
//
// Implementation notes:
//   - Sealed data is "STR1", the key's 4-byte ID, a random 12-byte
//     nonce, then the sealed JSON of Record's sealed fields; the
//     additional data binds it to the record's kind, time and Ref, so a
//     record cannot be moved to another message.
//   - Fields only grow; a decoder ignores fields it does not know.
package trace

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Record is one step of a message's way, decoded.
type Record struct {
	Kind store.TraceKind `json:"kind"` // in the clear
	Time time.Time       `json:"time"` // in the clear
	Ref  string          `json:"ref"`  // in the clear: the message's transaction id
	Seq  uint64          `json:"seq"`  // the store's; set by Decode

	// Out is set for outbound records (Kind store.TraceOutbound).
	Out *Outbound `json:"out,omitempty"`
	// In is set for inbound records (Kind store.TraceInbound).
	In *Inbound `json:"in,omitempty"`
}

// sealed is what is sealed: the record's payload.
type sealed struct {
	Out *Outbound `json:"out,omitempty"`
	In  *Inbound  `json:"in,omitempty"`
}

// KeySize is the size of the key NewCodec takes: the server key.
const KeySize = 32 // AES-256

// ErrWrongKey: a record was sealed under another server key.
var ErrWrongKey = errors.New("trace: sealed under another server key")

// Codec seals and opens trace records. It is safe for concurrent use.
type Codec struct {
	aead  cipher.AEAD // immutable
	keyID [4]byte     // immutable
}

// NewCodec returns a codec for the server key (KeySize bytes). The key
// is not kept: only the derived trace key is.
func NewCodec(serverKey []byte) (*Codec, error) {
	if len(serverKey) != KeySize {
		return nil, fmt.Errorf("trace: server key is %d bytes, want %d", len(serverKey), KeySize)
	}
	k, err := hkdf.Key(sha256.New, serverKey, nil, "sealmail trace v1", 32)
	if err != nil {
		return nil, fmt.Errorf("trace: derive key: %w", err)
	}
	defer clear(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("trace: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("trace: cipher: %w", err)
	}
	c := &Codec{aead: aead}
	copy(c.keyID[:], KeyID(serverKey, "trace"))
	return c, nil
}

// KeyID is a 4-byte name for a key, per use: it tells a wrong key from
// damaged data without revealing anything of the key.
func KeyID(key []byte, use string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sealmail key id: " + use))
	return m.Sum(nil)[:4]
}

var magic = [4]byte{'S', 'T', 'R', '1'}

// additional binds sealed data to the record's clear fields.
func additional(r *Record) []byte {
	b := []byte{byte(r.Kind)}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	return append(b, r.Ref...)
}

// Encode seals r into a store record. r.Time must be set (the store
// keys by it).
func (c *Codec) Encode(r *Record) (store.TraceRecord, error) {
	if r.Time.IsZero() {
		return store.TraceRecord{}, errors.New("trace: record without a time")
	}
	r.Time = r.Time.UTC().Round(0)
	s := sealed{Out: r.Out, In: r.In}
	plain, err := json.Marshal(s)
	if err != nil {
		return store.TraceRecord{}, fmt.Errorf("trace: encode: %w", err)
	}
	out := make([]byte, 0, 8+12+len(plain)+c.aead.Overhead())
	out = append(out, magic[:]...)
	out = append(out, c.keyID[:]...)
	nonce := make([]byte, 12)
	rand.Read(nonce) // never fails (crypto/rand, Go 1.24+)
	out = append(out, nonce...)
	out = c.aead.Seal(out, nonce, plain, additional(r))
	return store.TraceRecord{Kind: r.Kind, Time: r.Time, Ref: r.Ref, Data: out}, nil
}

// Decode opens a store record.
func (c *Codec) Decode(sr store.TraceRecord) (Record, error) {
	r := Record{Kind: sr.Kind, Time: sr.Time, Ref: sr.Ref, Seq: sr.Seq}
	d := sr.Data
	if len(d) < 8+12+c.aead.Overhead() || [4]byte(d[:4]) != magic {
		return r, errors.New("trace: not a sealed trace record")
	}
	if [4]byte(d[4:8]) != c.keyID {
		return r, ErrWrongKey
	}
	plain, err := c.aead.Open(nil, d[8:20], d[20:], additional(&r))
	if err != nil {
		return r, fmt.Errorf("trace: open record: %w", err)
	}
	var s sealed
	if err := json.Unmarshal(plain, &s); err != nil {
		return r, fmt.Errorf("trace: decode record: %w", err)
	}
	r.Out, r.In = s.Out, s.In
	return r, nil
}
