package crypto

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// TestAuditHashKnownAnswer pins the chain format: the expected hashes were
// computed independently with the Python construction of docs/audit.md.
func TestAuditHashKnownAnswer(t *testing.T) {
	e1 := AuditEntry{
		Seq:    1,
		Time:   time.Date(2026, 12, 1, 11, 0, 0, 1, time.FixedZone("CET", 3600)),
		Actor:  "cli:root",
		Action: "slot.add",
		Scope:  "user:alice@example.org",
		Detail: map[string]string{"slot": "2", "kind": "app-password", "label": "Jörg's phone"},
	}
	h1, err := AuditHash(AuditGenesis(), e1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h1), "8dd79199b7fe3d236f361ac6f2791afc61cdfdf2d7cbc01cf514c3cb8c9f288a"; got != want {
		t.Errorf("record 1: hash %s, want %s", got, want)
	}
	e2 := AuditEntry{
		Seq:    2,
		Time:   time.Date(2026, 12, 1, 10, 0, 5, 500_000_000, time.UTC),
		Actor:  "sweeper",
		Action: "retention.destroy",
		Scope:  "message:alice@example.org/7/42",
		Reason: "max 0d passed",
	}
	h2, err := AuditHash(h1, e2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h2), "c9f9a1cac30c39181c3b32c370c54b0f08ffe01d3f9b5effcaf64c0efac77947"; got != want {
		t.Errorf("record 2: hash %s, want %s", got, want)
	}
	if got := FormatAuditTime(e1.Time); got != "2026-12-01T10:00:00.000000001Z" {
		t.Errorf("FormatAuditTime = %s", got)
	}
}

// TestAuditHashCoversEverything: every field and the previous hash change
// the hash; moving bytes between adjacent fields does too (the lengths
// are hashed); the order in which the detail map is built does not.
func TestAuditHashCoversEverything(t *testing.T) {
	base := AuditEntry{
		Seq: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Actor: "cli:root", Action: "hold.place", Scope: "user:a@example.org", Reason: "matter 12",
		Detail: map[string]string{"matter": "12", "from": "2026-01-01"},
	}
	prev := bytes.Repeat([]byte{0xab}, AuditHashSize)
	h0, err := AuditHash(prev, base)
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(e *AuditEntry){
		"seq":          func(e *AuditEntry) { e.Seq++ },
		"time":         func(e *AuditEntry) { e.Time = e.Time.Add(time.Nanosecond) },
		"actor":        func(e *AuditEntry) { e.Actor = "cli:alice" },
		"action":       func(e *AuditEntry) { e.Action = "hold.release" },
		"scope":        func(e *AuditEntry) { e.Scope = "user:b@example.org" },
		"reason":       func(e *AuditEntry) { e.Reason = "matter 13" },
		"actor/action": func(e *AuditEntry) { e.Actor, e.Action = "cli:roothold", ".place" },
		"detail value": func(e *AuditEntry) { e.Detail = map[string]string{"matter": "13", "from": "2026-01-01"} },
		"detail key":   func(e *AuditEntry) { e.Detail = map[string]string{"matter": "12", "to": "2026-01-01"} },
		"detail gone":  func(e *AuditEntry) { e.Detail = map[string]string{"matter": "12"} },
		"detail split": func(e *AuditEntry) { e.Detail = map[string]string{"matter1": "2", "from": "2026-01-01"} },
	}
	for name, change := range variants {
		e := base
		change(&e)
		h, err := AuditHash(prev, e)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(h, h0) {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	other := bytes.Clone(prev)
	other[31] ^= 1
	if h, _ := AuditHash(other, base); bytes.Equal(h, h0) {
		t.Error("previous hash not covered")
	}
	// Same content, map built in another order, another time zone.
	same := base
	same.Detail = map[string]string{}
	same.Detail["from"] = "2026-01-01"
	same.Detail["matter"] = "12"
	same.Time = base.Time.In(time.FixedZone("X", -7*3600))
	if h, _ := AuditHash(prev, same); !bytes.Equal(h, h0) {
		t.Error("equal content hashed differently")
	}
	if _, err := AuditHash(prev[:31], base); err == nil {
		t.Error("short previous hash accepted")
	}
}

func BenchmarkAuditHash(b *testing.B) {
	e := AuditEntry{
		Seq: 7, Time: time.Now(), Actor: "sweeper", Action: "retention.destroy",
		Scope: "message:alice@example.org/7/42", Reason: "DE-HGB-AO business-letter max 6y passed",
		Detail: map[string]string{"class": "business-letter", "rule": "DE-HGB-AO@2026.1", "size": "10240"},
	}
	prev := AuditGenesis()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AuditHash(prev, e); err != nil {
			b.Fatal(err)
		}
	}
}
