package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore/tamper"
)

// fill records n events in a fresh store in dir and closes it. Events
// alternate between two shapes of equal encoded length, so that swapping
// two records keeps each one decodable.
func fill(t *testing.T, dir string, n int) []store.AuditRecord {
	t.Helper()
	db := openStore(t, dir)
	defer db.Close()
	s := newService(t, db, Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		e := Event{
			Time: t0.Add(time.Duration(i) * time.Second), Actor: "cli:root", Action: "hold.place",
			Scope: fmt.Sprintf("user:u%02d@example.org", i), Reason: "matter 42", Detail: map[string]string{"matter": "42"},
		}
		if err := s.Record(ctxBg, e); err != nil {
			t.Fatal(err)
		}
	}
	return records(t, s)
}

// copyDir copies a closed store.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func verifyDir(t *testing.T, dir string, anchors ...Anchor) (Report, error) {
	t.Helper()
	db := openStore(t, dir)
	defer db.Close()
	return newService(t, db, Options{}).VerifyStore(ctxBg, anchors...)
}

// chainErr asserts err is a *ChainError at seq whose problem mentions
// want.
func chainErr(t *testing.T, what string, err error, seq uint64, want string) {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Errorf("%s: %v, want a broken chain", what, err)
		return
	}
	if ce.Seq != seq || !strings.Contains(ce.Problem, want) {
		t.Errorf("%s: broken at #%d: %q; want #%d and %q", what, ce.Seq, ce.Problem, seq, want)
	}
}

// TestVerifyStoreTampered: each way of damaging the stored log is caught
// at the first bad record, except truncation with the head row moved too,
// which only an anchor catches.
func TestVerifyStoreTampered(t *testing.T) {
	const n = 8
	ref := t.TempDir()
	orig := fill(t, ref, n)
	if rep, err := verifyDir(t, ref); err != nil || rep.Records != n {
		t.Fatalf("intact log: %+v %v", rep, err)
	}
	anchor := Anchor{Seq: n, Hash: orig[n-1].Hash}
	for _, tc := range []struct {
		name    string
		tamper  func(dir string) error
		seq     uint64
		problem string
		anchors []Anchor
	}{
		{"changed scope", func(d string) error { return tamper.Replace(d, 4, "u03@", "u99@") }, 4, "does not match its content", nil},
		{"changed actor", func(d string) error { return tamper.Replace(d, 1, "cli:root", "cli:eve!") }, 1, "does not match its content", nil},
		{"removed", func(d string) error { return tamper.Delete(d, 5) }, 6, "record #5 is missing", nil},
		{"removed first", func(d string) error { return tamper.Delete(d, 1) }, 2, "record #1 was removed", nil},
		{"reordered", func(d string) error { return tamper.Swap(d, 3, 6) }, 3, "its prev is not the hash of record #2", nil},
		{"truncated", func(d string) error { return tamper.Truncate(d, 5, false) }, 0, "head row names record #8 (2026-12-01T10:00:07.000000000Z) but the chain ends at #5", nil},
		{"truncated, head moved, anchored", func(d string) error { return tamper.Truncate(d, 5, true) }, 0, "ends at #5 but anchor 8:", []Anchor{anchor}},
		{"changed, anchored", func(d string) error { return tamper.Replace(d, 2, "u01@", "u77@") }, 2, "does not match its content", []Anchor{anchor}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, ref)
			if err := tc.tamper(dir); err != nil {
				t.Fatal(err)
			}
			_, err := verifyDir(t, dir, tc.anchors...)
			chainErr(t, tc.name, err, tc.seq, tc.problem)
		})
	}
	// What the docs say cannot be caught without an anchor: the end cut
	// off together with the head row.
	dir := copyDir(t, ref)
	if err := tamper.Truncate(dir, 5, true); err != nil {
		t.Fatal(err)
	}
	if rep, err := verifyDir(t, dir); err != nil || rep.Records != 5 {
		t.Fatalf("truncated with its head row: %+v %v (the doc says this passes without an anchor)", rep, err)
	}
	// A wrong anchor for a record that is there.
	_, err := verifyDir(t, ref, Anchor{Seq: 3, Hash: orig[4].Hash})
	chainErr(t, "wrong anchor", err, 3, "is not the one anchor 3:")
	if rep, err := verifyDir(t, ref, Anchor{Seq: 3, Hash: orig[2].Hash}, anchor); err != nil || len(rep.Anchored) != 2 {
		t.Fatalf("good anchors: %+v %v", rep, err)
	}
}

// exportOf writes rs as an export.
func exportOf(t *testing.T, rs []store.AuditRecord) []string {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, r := range rs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	return strings.SplitAfter(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// verifyLines verifies an export given as lines.
func verifyLines(lines []string, anchors ...Anchor) (*Verifier, error) {
	v := NewVerifier(anchors...)
	err := ReadJSON(strings.NewReader(strings.Join(lines, "")), func(line int, r store.AuditRecord) error {
		return v.Check(r)
	})
	if err != nil {
		return v, err
	}
	return v, v.Finish()
}

func TestExportRoundTripAndTampering(t *testing.T) {
	const n = 6
	rs := fill(t, t.TempDir(), n)
	lines := exportOf(t, rs)
	if len(lines) != n {
		t.Fatalf("%d lines", len(lines))
	}
	v, err := verifyLines(lines)
	if err != nil || v.Count() != n || v.Head().Seq != n || !bytes.Equal(v.Head().Hash, rs[n-1].Hash) {
		t.Fatalf("intact export: %d %v", v.Count(), err)
	}
	// Line 1 as the doc shows it.
	if !strings.HasPrefix(lines[0], `{"seq":1,"time":"2026-12-01T10:00:00.000000000Z","actor":"cli:root","action":"hold.place","scope":"user:u00@example.org","reason":"matter 42","detail":{"matter":"42"},"prev":"0000`) {
		t.Errorf("line 1: %s", lines[0])
	}

	edit := func(i int, old, new string) []string {
		out := append([]string(nil), lines...)
		out[i] = strings.Replace(out[i], old, new, 1)
		return out
	}
	remove := func(i int) []string {
		return append(append([]string(nil), lines[:i]...), lines[i+1:]...)
	}
	swap := func(i, j int) []string {
		out := append([]string(nil), lines...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	for _, tc := range []struct {
		name    string
		lines   []string
		seq     uint64
		problem string
	}{
		{"changed reason", edit(2, "matter 42", "matter 43"), 3, "does not match its content"},
		{"changed detail", edit(3, `"matter":"42"`, `"matter":"41"`), 4, "does not match its content"},
		{"changed time", edit(1, "10:00:01.", "10:00:02."), 2, "does not match its content"},
		{"removed", remove(2), 4, "record #3 is missing"},
		{"reordered", swap(1, 2), 3, "record #2 is missing"},
		{"duplicated", append(append([]string(nil), lines[:3]...), lines[2:]...), 3, "repeated"},
		{"renumbered after removal", edit(3, `"seq":4`, `"seq":3`)[0:2:2], 0, ""}, // replaced below
	} {
		if tc.name == "renumbered after removal" {
			// Remove line 3 and renumber the next: the link breaks.
			tc.lines = append(append([]string(nil), lines[:2]...), strings.Replace(lines[3], `"seq":4`, `"seq":3`, 1))
			tc.seq, tc.problem = 3, "its prev is not the hash of record #2"
		}
		_, err := verifyLines(tc.lines)
		chainErr(t, tc.name, err, tc.seq, tc.problem)
	}

	// An export --since starts later: its first link is taken as given
	// and reported; anchors before it are not checkable, later ones are.
	v, err = verifyLines(lines[2:], Anchor{Seq: 1, Hash: rs[0].Hash}, Anchor{Seq: 5, Hash: rs[4].Hash})
	if err != nil || v.Count() != n-2 {
		t.Fatalf("partial export: %v", err)
	}
	if first, prev := v.Start(); first != 3 || !bytes.Equal(prev, rs[1].Hash) {
		t.Errorf("Start = %d %x", first, prev)
	}
	if got := v.Anchored(); len(got) != 1 || got[0] != 5 {
		t.Errorf("anchored %v", got)
	}
	// Truncated export against an anchor from a longer one.
	_, err = verifyLines(lines[:4], Anchor{Seq: 6, Hash: rs[5].Hash})
	chainErr(t, "truncated export", err, 0, "ends at #4 but anchor 6:")
	// A file that claims to start at #1 must start from the genesis.
	_, err = verifyLines(edit(0, `"prev":"00`, `"prev":"01`))
	chainErr(t, "bad genesis", err, 1, "first record's prev")
}

func TestReadJSONStrict(t *testing.T) {
	rs := fill(t, t.TempDir(), 2)
	line := exportOf(t, rs)[0]
	for name, bad := range map[string]string{
		"unknown member":  strings.Replace(line, `"seq":1,`, `"seq":1,"extra":1,`, 1),
		"missing member":  strings.Replace(line, `"reason":"matter 42",`, ``, 1),
		"time not canon":  strings.Replace(line, `.000000000Z`, `Z`, 1),
		"time with zone":  strings.Replace(line, `.000000000Z`, `.000000000+00:00`, 1),
		"hash upper case": strings.Replace(line, `"prev":"0000`, `"prev":"000A`, 1),
		"not json":        "seq=1\n",
		"empty line":      "\n",
		"array":           "[1]\n",
		"two objects":     strings.TrimSuffix(line, "\n") + line,
		"string seq":      strings.Replace(line, `"seq":1`, `"seq":"1"`, 1),
		"too long":        `{"reason":"` + strings.Repeat("x", MaxLineBytes) + "\"}\n",
	} {
		err := ReadJSON(strings.NewReader(bad), func(int, store.AuditRecord) error { return nil })
		var le *LineError
		if !errors.As(err, &le) || le.Line != 1 {
			t.Errorf("%s: %v, want an error on line 1", name, err)
		}
	}
	// CRLF line ends and a missing final newline are fine.
	n := 0
	in := strings.ReplaceAll(strings.Join(exportOf(t, rs), ""), "\n", "\r\n")
	if err := ReadJSON(strings.NewReader(strings.TrimSuffix(in, "\r\n")), func(int, store.AuditRecord) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("CRLF export: %d records, %v", n, err)
	}
}

func TestParseAnchor(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{"12:" + h, "#12:" + h, " 12:" + h + "\n"} {
		a, err := ParseAnchor(s)
		if err != nil || a.Seq != 12 || a.String() != "12:"+h {
			t.Errorf("ParseAnchor(%q) = %v, %v", s, a, err)
		}
	}
	for _, s := range []string{"", "12", "0:" + h, "x:" + h, "12:" + h[:62], "12:" + h + "00", "12:zz" + h[2:]} {
		if _, err := ParseAnchor(s); err == nil {
			t.Errorf("ParseAnchor(%q) accepted", s)
		}
	}
}

func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-12-01T10:00:00.000000000Z","actor":"a","action":"b.c","scope":"","reason":"","detail":{},"prev":"` +
		strings.Repeat("00", 32) + `","hash":"` + strings.Repeat("11", 32) + `"}` + "\n"))
	f.Add([]byte("{}\n{\"seq\":2}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := NewVerifier()
		ReadJSON(bytes.NewReader(b), func(_ int, r store.AuditRecord) error {
			// What parsed must write back as a line that parses the same.
			var out bytes.Buffer
			if err := NewWriter(&out).Write(r); err != nil {
				t.Fatal(err)
			}
			err := ReadJSON(&out, func(_ int, r2 store.AuditRecord) error {
				if ToJSON(r2).Hash != ToJSON(r).Hash || ToJSON(r2).Time != ToJSON(r).Time || r2.Seq != r.Seq {
					t.Fatalf("round trip changed the record")
				}
				return nil
			})
			if err != nil {
				t.Fatalf("re-read: %v", err)
			}
			v.Check(r)
			return nil
		})
		v.Finish()
	})
}

// TestVerifyHeadRow: the head row read before the walk may be behind the
// chain (records appended meanwhile); it must name a record that is
// there, with its hash.
func TestVerifyHeadRow(t *testing.T) {
	rs := fill(t, t.TempDir(), 5)
	walk := func(fn func(store.AuditRecord) error) error {
		for _, r := range rs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	if rep, err := Verify(headOf(rs[2]), walk); err != nil || rep.Records != 5 {
		t.Fatalf("head behind the chain: %+v %v", rep, err)
	}
	if rep, err := Verify(store.AuditHead{}, walk); err != nil || rep.Records != 5 {
		t.Fatalf("empty head row: %+v %v", rep, err)
	}
	other := headOf(rs[2])
	other.Hash = rs[1].Hash
	_, err := Verify(other, walk)
	chainErr(t, "replaced", err, 0, "head row has another hash for record #3")
	_, err = Verify(store.AuditHead{Seq: 9, Hash: rs[4].Hash}, walk)
	chainErr(t, "beyond", err, 0, "names record #9")
	if rep, err := Verify(store.AuditHead{}, func(func(store.AuditRecord) error) error { return nil }); err != nil || rep.Records != 0 {
		t.Fatalf("empty log: %+v %v", rep, err)
	}
}

func headOf(r store.AuditRecord) store.AuditHead {
	return store.AuditHead{Seq: r.Seq, Hash: r.Hash, Time: r.Time}
}

// BenchmarkVerifyStore: reading and checking the whole log, per record.
func BenchmarkVerifyStore(b *testing.B) {
	const n = 50_000
	db := openStore(b, b.TempDir())
	defer db.Close()
	s := newService(b, db, Options{})
	batch := make([]Event, MaxBatch)
	for i := range batch {
		batch[i] = Event{Actor: "sweeper", Action: "retention.destroy", Scope: fmt.Sprintf("message:alice@example.org/7/%d", i),
			Reason: "DE-HGB-AO business-letter max 6y passed", Detail: map[string]string{"class": "business-letter", "size": "10240"}}
	}
	for range n / MaxBatch {
		if err := s.RecordAll(ctxBg, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := s.VerifyStore(ctxBg)
		if err != nil || rep.Records != n {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
