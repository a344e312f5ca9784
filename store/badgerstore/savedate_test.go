package badgerstore

import (
	"bytes"
	"testing"
	"time"
)

// TestMetaOptionalFields: a meta record written before the save date and
// email ID existed decodes with neither (the email ID falls back to the
// blob), and one with them round-trips.
func TestMetaOptionalFields(t *testing.T) {
	date := time.Date(2026, 11, 2, 3, 4, 5, 6, time.UTC)
	old := meta{Date: date, ModSeq: 7, SealedSize: 100, Blob: 42, Flags: []string{`\Seen`, "$x"}}
	// The layout of version 1 before the optional fields.
	legacy := enc{vMeta}.time(date).uvarint(7).varint(100).uvarint(42).uvarint(2).str(`\Seen`).str("$x")
	if got := old.encode(); !bytes.Equal(got, legacy) {
		t.Fatalf("record without optional fields = %x, want the old layout %x", got, legacy)
	}
	md, err := decodeMeta(legacy, nil)
	if err != nil || !md.Saved.IsZero() || md.Email != 0 || md.emailID() != 42 || len(md.Flags) != 2 {
		t.Fatalf("old record: %+v, %v", md, err)
	}
	saved := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	cur := old
	cur.Saved, cur.Email = saved, 9
	md, err = decodeMeta(cur.encode(), nil)
	if err != nil || !md.Saved.Equal(saved) || md.Email != 9 || md.emailID() != 9 || md.Blob != 42 {
		t.Fatalf("new record: %+v, %v", md, err)
	}
	if _, err := decodeMeta(append(cur.encode(), 1), nil); err == nil {
		t.Error("trailing byte accepted")
	}
}
