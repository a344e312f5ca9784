package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// The delivery trace (store.Tracer).

func traceData(recs []store.TraceRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func traces(t *testing.T, s store.Store, q store.TraceQuery) []store.TraceRecord {
	t.Helper()
	recs, err := s.Traces(ctxBg, q)
	if err != nil {
		t.Fatalf("Traces(%+v): %v", q, err)
	}
	return recs
}

// testTrace covers appending, listing by kind, ref and time, paging,
// and pruning one kind.
func testTrace(t *testing.T, s store.Store) {
	at := func(min int) time.Time { return date0.Add(time.Duration(min) * time.Minute) }
	recs := []store.TraceRecord{
		{Kind: store.TraceOutbound, Time: at(1), Ref: "msg-a", Data: []byte("a1")},
		{Kind: store.TraceOutbound, Time: at(3), Ref: "msg-b", Data: []byte("b3")},
		{Kind: store.TraceOutbound, Time: at(2), Ref: "msg-a", Data: []byte("a2")},
		{Kind: store.TraceInbound, Time: at(2), Ref: "msg-a", Data: []byte("in2")},
		{Kind: store.TraceOutbound, Time: at(3), Ref: "msg-a", Data: []byte("a3")},
	}
	if err := s.AddTraces(ctxBg, recs); err != nil {
		t.Fatalf("AddTraces: %v", err)
	}
	all := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound})
	// Time order; the same time in commit order.
	if got := traceData(all); !equalStrings(got, []string{"a1", "a2", "b3", "a3"}) {
		t.Fatalf("outbound trace = %v", got)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq == all[i-1].Seq {
			t.Fatalf("Seq repeats: %+v", all)
		}
	}
	if all[0].Kind != store.TraceOutbound || all[0].Ref != "msg-a" || !all[0].Time.Equal(at(1)) {
		t.Fatalf("record = %+v", all[0])
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceInbound})); !equalStrings(got, []string{"in2"}) {
		t.Fatalf("inbound trace = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "msg-a"})); !equalStrings(got, []string{"a1", "a2", "a3"}) {
		t.Fatalf("trace of msg-a = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "msg-a", Since: at(2), Until: at(2)})); !equalStrings(got, []string{"a2"}) {
		t.Fatalf("trace of msg-a at 2 = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Since: at(2)})); !equalStrings(got, []string{"a2", "b3", "a3"}) {
		t.Fatalf("trace since 2 = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "nothing"})); len(got) != 0 {
		t.Fatalf("trace of an unknown ref = %v", got)
	}
	// Paging with the cursor, also inside one time.
	var paged []string
	var cur store.TraceCursor
	for range 10 {
		page := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, After: cur, Limit: 1})
		if len(page) == 0 {
			break
		}
		paged = append(paged, traceData(page)...)
		cur = store.TraceCursor{Time: page[0].Time, Seq: page[0].Seq}
	}
	if !equalStrings(paged, []string{"a1", "a2", "b3", "a3"}) {
		t.Fatalf("paged trace = %v", paged)
	}
	var refPaged []string
	cur = store.TraceCursor{}
	for range 10 {
		page := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "msg-a", After: cur, Limit: 2})
		if len(page) == 0 {
			break
		}
		refPaged = append(refPaged, traceData(page)...)
		last := page[len(page)-1]
		cur = store.TraceCursor{Time: last.Time, Seq: last.Seq}
	}
	if !equalStrings(refPaged, []string{"a1", "a2", "a3"}) {
		t.Fatalf("paged trace of msg-a = %v", refPaged)
	}

	// Pruning removes one kind's records before the time, and their
	// index entries.
	n, err := s.PruneTraces(ctxBg, store.TraceOutbound, at(3))
	if err != nil || n != 2 {
		t.Fatalf("PruneTraces = %d, %v; want 2", n, err)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound})); !equalStrings(got, []string{"b3", "a3"}) {
		t.Fatalf("after prune = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "msg-a"})); !equalStrings(got, []string{"a3"}) {
		t.Fatalf("msg-a after prune = %v", got)
	}
	if got := traceData(traces(t, s, store.TraceQuery{Kind: store.TraceInbound})); !equalStrings(got, []string{"in2"}) {
		t.Fatalf("prune of outbound removed inbound: %v", got)
	}

	// Bad records store nothing.
	bad := [][]store.TraceRecord{
		{{Kind: store.TraceOutbound, Ref: "ok", Data: []byte("x")}, {Kind: 0, Ref: "r"}},
		{{Kind: store.TraceOutbound, Ref: "ok", Data: []byte("x")}, {Kind: store.TraceOutbound, Ref: ""}},
		{{Kind: store.TraceOutbound, Ref: "ok", Data: []byte("x")}, {Kind: store.TraceOutbound, Ref: "with space"}},
	}
	for _, b := range bad {
		if err := s.AddTraces(ctxBg, b); err == nil {
			t.Fatalf("AddTraces(%+v) succeeded", b)
		}
	}
	if got := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "ok"}); len(got) != 0 {
		t.Fatalf("a failed AddTraces stored %v", got)
	}
	if _, err := s.Traces(ctxBg, store.TraceQuery{}); err == nil {
		t.Fatal("Traces without a kind succeeded")
	}
}

// testTraceMany: many records, pruned in more than one transaction.
func testTraceMany(t *testing.T, s store.Store) {
	const n = 5000
	for start := 0; start < n; start += 1000 {
		recs := make([]store.TraceRecord, 1000)
		for i := range recs {
			recs[i] = store.TraceRecord{Kind: store.TraceOutbound, Time: date0.Add(time.Duration(start+i) * time.Second),
				Ref: fmt.Sprintf("m%d", (start+i)%7), Data: []byte("x")}
		}
		if err := s.AddTraces(ctxBg, recs); err != nil {
			t.Fatal(err)
		}
	}
	got := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Limit: n + 1})
	if len(got) != n {
		t.Fatalf("listed %d, want %d", len(got), n)
	}
	if got := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound}); len(got) != 1000 {
		t.Fatalf("default limit listed %d, want 1000", len(got))
	}
	pruned, err := s.PruneTraces(ctxBg, store.TraceOutbound, date0.Add(4500*time.Second))
	if err != nil || pruned != 4500 {
		t.Fatalf("PruneTraces = %d, %v", pruned, err)
	}
	if got := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Limit: n}); len(got) != 500 {
		t.Fatalf("%d left, want 500", len(got))
	}
	if got := traces(t, s, store.TraceQuery{Kind: store.TraceOutbound, Ref: "m3", Limit: n}); len(got) != 71 {
		// 4500..4999 with i%7 == 3: 71 of them
		t.Fatalf("m3 has %d left, want 71", len(got))
	}
}
