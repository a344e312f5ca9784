package badgerstore

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

func TestCodecRoundTrip(t *testing.T) {
	md := meta{Date: time.Date(1969, 7, 20, 20, 17, 40, 123, time.UTC), ModSeq: 1 << 40, SealedSize: 12345, Blob: 77,
		Flags: []string{"$Label", `\Seen`}}
	got, err := decodeMeta(md.encode(), nil)
	if err != nil || !got.Date.Equal(md.Date) || got.ModSeq != md.ModSeq || got.SealedSize != md.SealedSize ||
		got.Blob != md.Blob || !store.SameFlags(got.Flags, md.Flags) {
		t.Errorf("meta %+v, %v", got, err)
	}
	mb := mailboxRec{store.Mailbox{ID: 9, Name: "Ä/b", SpecialUse: `\Sent`, Subscribed: true, UIDValidity: 1 << 31,
		UIDNext: 1<<32 - 1, HighestModSeq: 1 << 50, Messages: 3, Unseen: 2, Deleted: 1, SealedSize: 1 << 40}}
	gm, err := decodeMailbox(9, mb.encode())
	if err != nil || gm != mb {
		t.Errorf("mailbox %+v, %v", gm, err)
	}
	sl := store.Slot{ID: 4, Kind: store.SlotRecovery, Label: "paper", Created: time.Unix(1e9, 5).UTC(), Data: []byte{1, 2}}
	gs, err := decodeSlot(4, encodeSlot(sl))
	if err != nil || gs.Kind != sl.Kind || gs.Label != sl.Label || !gs.Created.Equal(sl.Created) || !bytes.Equal(gs.Data, sl.Data) {
		t.Errorf("slot %+v, %v", gs, err)
	}
	s, k, err := decodeSummary(encodeSummary([]byte("s"), nil))
	if err != nil || string(s) != "s" || k != nil {
		t.Errorf("summary %q %q %v", s, k, err)
	}
	a := accountRec{ID: 5, Created: time.Unix(1e9, 7).UTC(), KeyFingerprint: "ab", PublicKey: []byte{0, 1},
		WrappedKey: []byte("wrapped"), PublishWKD: true, QuotaBytes: 7, NextSlot: 2, AutocryptOff: true}
	b := a.encode()
	ga, err := decodeAccount(b, true)
	if err != nil || !sameAccountRec(ga, a) {
		t.Errorf("account %+v, %v", ga, err)
	}
	if id, err := decodeAccountID(b); err != nil || id != 5 {
		t.Errorf("account ID %d, %v", id, err)
	}
	// Without the key: the same record minus the wrapped key.
	pub, err := decodeAccount(b, false)
	want := a
	want.WrappedKey = nil
	if err != nil || !sameAccountRec(pub, want) {
		t.Errorf("public account %+v, %v", pub, err)
	}
	// The last byte is the Autocrypt setting, an optional field: a record
	// written before it existed (one byte shorter) reads as Autocrypt on;
	// any other truncation is refused.
	before := a
	before.AutocryptOff = false
	if old, err := decodeAccount(b[:len(b)-1], true); err != nil || !sameAccountRec(old, before) {
		t.Errorf("record without the Autocrypt byte: %+v, %v", old, err)
	}
	for i := range len(b) - 1 {
		if _, err := decodeAccount(b[:i], true); err == nil {
			t.Errorf("account truncated to %d bytes decoded", i)
		}
	}
	// Version 1 records (JSON) are still read.
	v1 := append(binary.BigEndian.AppendUint64([]byte{vAccountJSON}, 5),
		`{"created":"2001-09-09T01:46:40.000000007Z","fpr":"ab","pub":"AAE=","wrapped":"d3JhcHBlZA==","wkd":true,"quota":7,"nextSlot":2,"nextMailbox":6}`...)
	if g1, err := decodeAccount(v1, true); err != nil || !sameAccountRec(g1, before) {
		t.Errorf("version 1 account %+v, %v", g1, err)
	}
	if g1, err := decodeAccount(v1, false); err != nil || g1.WrappedKey != nil || !bytes.Equal(g1.PublicKey, a.PublicKey) {
		t.Errorf("version 1 public account %+v, %v", g1, err)
	}
	u := usage{Used: 1 << 40, LastBlob: 3}
	if gu, err := decodeUsage(u.encode()); err != nil || gu != u {
		t.Errorf("usage %+v, %v", gu, err)
	}
	// Truncations and a wrong version are refused.
	enc := md.encode()
	for i := range enc {
		if _, err := decodeMeta(enc[:i], nil); err == nil {
			t.Errorf("meta truncated to %d bytes decoded", i)
		}
	}
	if _, err := decodeMeta(append([]byte{9}, enc[1:]...), nil); err == nil {
		t.Errorf("meta with unknown version decoded")
	}
	if _, err := decodeMeta(append(enc, 0), nil); err == nil {
		t.Errorf("meta with trailing byte decoded")
	}
}

// The decoders read what is on disk; a damaged or hostile data directory
// must give errors, never panics. These fuzz targets check that and that
// whatever decodes re-encodes to the same bytes.

func FuzzDecodeMeta(f *testing.F) {
	md := meta{Date: time.Unix(1700000000, 0), ModSeq: 3, SealedSize: 10, Blob: 1, Flags: []string{`\Seen`}}
	f.Add(md.encode())
	f.Add([]byte{vMeta})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b, nil)
		if err != nil {
			return
		}
		if again := m.encode(); !bytes.Equal(again, b) {
			// Non-minimal varints decode but re-encode shorter; accept
			// only that.
			m2, err := decodeMeta(again, nil)
			if err != nil || m2.ModSeq != m.ModSeq || m2.Blob != m.Blob || !store.SameFlags(m2.Flags, m.Flags) {
				t.Fatalf("re-encoding changed the meta: %+v vs %+v (%v)", m, m2, err)
			}
		}
	})
}

func FuzzDecodeMailbox(f *testing.F) {
	mb := mailboxRec{store.Mailbox{Name: "INBOX", UIDValidity: 1, UIDNext: 1}}
	f.Add(mb.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMailbox(1, b)
		if err != nil {
			return
		}
		m2, err := decodeMailbox(1, m.encode())
		if err != nil || m2 != m {
			t.Fatalf("round trip: %+v vs %+v (%v)", m, m2, err)
		}
	})
}

func FuzzDecodeSlotAndSummary(f *testing.F) {
	f.Add(encodeSlot(store.Slot{Kind: store.SlotPassword, Label: "x", Data: []byte("d")}))
	f.Add(encodeSummary([]byte("s"), []byte("k")))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeSlot(1, b)
		decodeSummary(b)
		decodeAccount(b, true)
		decodeUsage(b)
	})
}

func sameAccountRec(a, b accountRec) bool {
	return a.ID == b.ID && a.Created.Equal(b.Created) && a.KeyFingerprint == b.KeyFingerprint &&
		bytes.Equal(a.PublicKey, b.PublicKey) && bytes.Equal(a.WrappedKey, b.WrappedKey) &&
		a.PublishWKD == b.PublishWKD && a.QuotaBytes == b.QuotaBytes && a.NextSlot == b.NextSlot &&
		a.AutocryptOff == b.AutocryptOff
}

func FuzzDecodeAccount(f *testing.F) {
	a := accountRec{ID: 3, Created: time.Unix(1700000000, 0).UTC(), KeyFingerprint: "ff", PublicKey: []byte("pub"), WrappedKey: []byte("w")}
	f.Add(a.encode())
	f.Add(append(binary.BigEndian.AppendUint64([]byte{vAccountJSON}, 3), `{"pub":"AA=="}`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		full, err := decodeAccount(b, true)
		pub, perr := decodeAccount(b, false)
		if (err == nil) != (perr == nil) {
			t.Fatalf("full decode %v, public decode %v", err, perr)
		}
		if err != nil {
			return
		}
		want := full
		want.WrappedKey = nil
		if !sameAccountRec(pub, want) {
			t.Fatalf("public %+v, full %+v", pub, full)
		}
		again, err := decodeAccount(full.encode(), true)
		if err != nil || !sameAccountRec(again, full) {
			t.Fatalf("round trip: %+v vs %+v (%v)", full, again, err)
		}
	})
}
