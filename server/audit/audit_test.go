package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

var ctxBg = context.Background()

func openStore(t testing.TB, dir string) *badgerstore.DB {
	t.Helper()
	db, err := badgerstore.Open(dir, badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newService(t testing.TB, st Store, opt Options) *Service {
	t.Helper()
	opt.Store = st
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// records returns the whole log.
func records(t *testing.T, s *Service) []store.AuditRecord {
	t.Helper()
	var rs []store.AuditRecord
	if err := s.Records(ctxBg, 1, func(r store.AuditRecord) error { rs = append(rs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRecord(t *testing.T) {
	db := openStore(t, t.TempDir())
	defer db.Close()
	var logs bytes.Buffer
	clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := newService(t, db, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return clock }})

	ctx := WithActor(ctxBg, "cli:alice")
	detail := map[string]string{"matter": "ACME v. Example", "from": "2025-01-01"}
	if err := s.Record(ctx, Event{Action: "hold.place", Scope: "user:bob@example.org", Reason: "litigation", Detail: detail}); err != nil {
		t.Fatal(err)
	}
	detail["matter"] = "changed after Record"
	// An explicit actor beats the context's; a time before the head's
	// is raised to it; invalid UTF-8 is replaced.
	early := clock.Add(-time.Hour)
	if err := s.Record(ctx, Event{Time: early, Actor: "sweeper", Action: "retention.destroy", Scope: "message:bob@example.org/3/7", Reason: "max \xff passed"}); err != nil {
		t.Fatal(err)
	}
	// No actor anywhere: "unknown".
	if err := s.Record(ctxBg, Event{Time: clock.Add(time.Minute), Action: "account.create", Scope: "user:carol@example.org"}); err != nil {
		t.Fatal(err)
	}
	rs := records(t, s)
	if len(rs) != 3 {
		t.Fatalf("%d records", len(rs))
	}
	if r := rs[0]; r.Seq != 1 || r.Actor != "cli:alice" || !r.Time.Equal(clock) || r.Detail["matter"] != "ACME v. Example" ||
		!bytes.Equal(r.Prev, crypto.AuditGenesis()) {
		t.Errorf("record 1: %+v", r)
	}
	if r := rs[1]; r.Actor != "sweeper" || !r.Time.Equal(clock) || r.Reason != "max \uFFFD passed" || r.Detail != nil {
		t.Errorf("record 2: %+v", r)
	}
	if r := rs[2]; r.Actor != "unknown" || !r.Time.Equal(clock.Add(time.Minute)) {
		t.Errorf("record 3: %+v", r)
	}
	for i, r := range rs {
		h, err := crypto.AuditHash(r.Prev, entryOf(r))
		if err != nil || !bytes.Equal(h, r.Hash) {
			t.Errorf("record %d: stored hash is not the chain hash", i+1)
		}
		if i > 0 && !bytes.Equal(r.Prev, rs[i-1].Hash) {
			t.Errorf("record %d does not link to %d", i+1, i)
		}
	}
	head, err := s.Head(ctxBg)
	if err != nil || head.Seq != 3 || !bytes.Equal(head.Hash, rs[2].Hash) {
		t.Fatalf("head %+v %v", head, err)
	}
	// Every record's number and hash are logged: an anchor outside the
	// data directory.
	for _, r := range rs {
		if !strings.Contains(logs.String(), fmt.Sprintf("audit #%d %s %s by %s; hash %x", r.Seq, r.Action, r.Scope, r.Actor, r.Hash)) {
			t.Errorf("record %d not logged:\n%s", r.Seq, logs.String())
		}
	}
	if rep, err := s.VerifyStore(ctxBg); err != nil || rep.Records != 3 || rep.Head.Seq != 3 {
		t.Fatalf("VerifyStore: %+v %v", rep, err)
	}
}

func TestRecordRefusesBadEvents(t *testing.T) {
	db := openStore(t, t.TempDir())
	defer db.Close()
	s := newService(t, db, Options{})
	long := strings.Repeat("x", MaxReasonBytes+1)
	many := map[string]string{}
	for i := range MaxDetails + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for name, e := range map[string]Event{
		"no action":     {Scope: "org"},
		"no dot":        {Action: "destroy"},
		"upper case":    {Action: "Hold.Place"},
		"empty part":    {Action: "hold..place"},
		"space":         {Action: "hold.place now"},
		"many details":  {Action: "hold.place", Detail: many},
		"bad key":       {Action: "hold.place", Detail: map[string]string{"Key With Space": "v"}},
		"too many":      {}, // replaced below
		"second is bad": {},
	} {
		var err error
		switch name {
		case "too many":
			err = s.RecordAll(ctxBg, make([]Event, MaxBatch+1))
		case "second is bad":
			err = s.RecordAll(ctxBg, []Event{{Action: "hold.place"}, {Action: "BAD"}})
		default:
			err = s.Record(ctxBg, e)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if h, _ := s.Head(ctxBg); h.Seq != 0 {
		t.Errorf("refused events stored %d records", h.Seq)
	}
	if err := s.RecordAll(ctxBg, []Event{{Action: "policy.assign", Scope: "org"}, {Action: "account.password-change", Scope: "user:a@b"}}); err != nil {
		t.Fatal(err)
	}
	// Text that is too long is cut, not refused: the act happened.
	longUTF8 := strings.Repeat("ü", MaxReasonBytes)
	if err := s.Record(ctxBg, Event{Action: "hold.place", Actor: long, Scope: long, Reason: longUTF8, Detail: map[string]string{"k": long}}); err != nil {
		t.Fatal(err)
	}
	rs := records(t, s)
	r := rs[len(rs)-1]
	for name, c := range map[string]struct {
		s   string
		max int
	}{"actor": {r.Actor, MaxActorBytes}, "scope": {r.Scope, MaxScopeBytes}, "reason": {r.Reason, MaxReasonBytes}, "detail": {r.Detail["k"], MaxDetailValue}} {
		if len(c.s) > c.max || !strings.HasSuffix(c.s, "…[truncated]") || !utf8.ValidString(c.s) || len(c.s) < c.max-8 {
			t.Errorf("%s cut to %d bytes: %q…", name, len(c.s), c.s[:20])
		}
	}
	if _, err := s.VerifyStore(ctxBg); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWriters: many goroutines record at once, through one
// Service and through two Services on the same store (as two processes
// or nodes would). The log is one chain holding each event once.
func TestConcurrentWriters(t *testing.T) {
	db := openStore(t, t.TempDir())
	defer db.Close()
	services := []*Service{newService(t, db, Options{}), newService(t, db, Options{})}
	const (
		writers = 16
		each    = 30
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			s := services[w%2]
			for i := range each {
				var err error
				if i%5 == 4 {
					// A batch of two.
					err = s.RecordAll(ctxBg, []Event{
						{Action: "test.batch", Actor: fmt.Sprintf("w%d", w), Scope: fmt.Sprint(i), Detail: map[string]string{"part": "1"}},
						{Action: "test.batch", Actor: fmt.Sprintf("w%d", w), Scope: fmt.Sprint(i), Detail: map[string]string{"part": "2"}},
					})
				} else {
					err = s.Record(ctxBg, Event{Action: "test.write", Actor: fmt.Sprintf("w%d", w), Scope: fmt.Sprint(i)})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rs := records(t, services[0])
	want := writers * (each + each/5)
	if len(rs) != want {
		t.Fatalf("%d records, want %d", len(rs), want)
	}
	seen := map[string]bool{}
	for i, r := range rs {
		key := r.Actor + "/" + r.Scope + "/" + r.Detail["part"]
		if seen[key] {
			t.Fatalf("%s recorded twice", key)
		}
		seen[key] = true
		if r.Action == "test.batch" && r.Detail["part"] == "2" {
			// The two records of a batch are adjacent.
			if p := rs[i-1]; p.Actor != r.Actor || p.Scope != r.Scope || p.Detail["part"] != "1" {
				t.Fatalf("batch split: #%d %+v after %+v", r.Seq, r, p)
			}
		}
	}
	rep, err := services[1].VerifyStore(ctxBg)
	if err != nil || rep.Records != want {
		t.Fatalf("VerifyStore: %+v %v", rep, err)
	}
}

// TestSeqAt: --since finds the first record at or after a time.
func TestSeqAt(t *testing.T) {
	db := openStore(t, t.TempDir())
	defer db.Close()
	s := newService(t, db, Options{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := s.Record(ctxBg, Event{Time: t0.Add(time.Duration(i/2) * time.Hour), Action: "test.write"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{t0.Add(-time.Hour), 1},
		{t0, 1},
		{t0.Add(time.Minute), 3},
		{t0.Add(2 * time.Hour), 5},
		{t0.Add(4 * time.Hour), 9},
		{t0.Add(5 * time.Hour), 11},
	} {
		if got, err := s.SeqAt(ctxBg, tc.at); err != nil || got != tc.want {
			t.Errorf("SeqAt(%v) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
}

// TestRecordSurvivesCancelledCaller: the act happened; its record is
// written even if the caller's context ends.
func TestRecordSurvivesCancelledCaller(t *testing.T) {
	db := openStore(t, t.TempDir())
	defer db.Close()
	s := newService(t, db, Options{})
	ctx, cancel := context.WithCancel(WithActor(ctxBg, "cli:root"))
	cancel()
	if err := s.Record(ctx, Event{Action: "account.delete", Scope: "user:a@example.org"}); err != nil {
		t.Fatal(err)
	}
	if rs := records(t, s); len(rs) != 1 || rs[0].Actor != "cli:root" {
		t.Fatalf("records %+v", rs)
	}
}

// BenchmarkRecord: one durable append per event (an fsync each), from
// one goroutine and from many; and batches (RecordAll), which share one.
func BenchmarkRecord(b *testing.B) {
	e := Event{Actor: "sweeper", Action: "retention.destroy", Scope: "message:alice@example.org/7/42",
		Reason: "DE-HGB-AO business-letter max 6y passed", Detail: map[string]string{"class": "business-letter", "size": "10240"}}
	// The same store's cheapest durable write, for comparison: the
	// append costs one transaction like it.
	b.Run("baseline-setquota", func(b *testing.B) {
		db := openStore(b, b.TempDir())
		defer db.Close()
		if err := db.CreateAccount(ctxBg, store.Account{Address: "a@example.org", PublicKey: []byte("k")}, nil); err != nil {
			b.Fatal(err)
		}
		n := int64(0)
		for b.Loop() {
			n++
			if err := db.SetQuota(ctxBg, "a@example.org", n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("serial", func(b *testing.B) {
		db := openStore(b, b.TempDir())
		defer db.Close()
		s := newService(b, db, Options{})
		for b.Loop() {
			if err := s.Record(ctxBg, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		db := openStore(b, b.TempDir())
		defer db.Close()
		s := newService(b, db, Options{})
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Record(ctxBg, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("batch100", func(b *testing.B) {
		db := openStore(b, b.TempDir())
		defer db.Close()
		s := newService(b, db, Options{})
		batch := make([]Event, 100)
		for i := range batch {
			batch[i] = e
		}
		for b.Loop() {
			if err := s.RecordAll(ctxBg, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
	})
}
