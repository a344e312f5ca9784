package trace

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// TestWriterAndSearch writes inbound and outbound records through the
// Writer, finds them by sender, recipient, address and time, and checks
// that no address is readable in the store's files.
func TestWriterAndSearch(t *testing.T) {
	dir := t.TempDir()
	st, err := badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, KeySize)
	c, err := NewCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(WriterOptions{Codec: c, Store: st, Retention: time.Hour, Kinds: []store.TraceKind{store.TraceInbound}})
	t0 := time.Now().Add(-time.Minute)
	for i := range 40 {
		w.Trace(Record{Kind: store.TraceInbound, Time: t0.Add(time.Duration(i) * time.Second), Ref: fmt.Sprintf("tx%02d", i),
			In: &Inbound{Result: "delivered", IP: fmt.Sprintf("192.0.2.%d", i%4), From: fmt.Sprintf("canary%d@sender.test", i%2),
				Rcpts: []string{"alice@example.org"}, Reasons: []Reason{{Check: "spf", Result: "pass", Detail: "sender.test"}}}})
	}
	w.Trace(Record{Kind: store.TraceOutbound, Time: t0, Ref: "out1", Out: &Outbound{Event: EventDelivered, From: "alice@example.org", Rcpts: []string{"bob@remote.test"}, IP: "198.51.100.7"}})
	w.Close()
	ctx := context.Background()
	for _, c2 := range []struct {
		q    Query
		want int
	}{
		{Query{Limit: 1000}, 41},
		{Query{From: "canary1@SENDER.test", Limit: 1000}, 20},
		{Query{From: "sender.test", Limit: 1000}, 40},
		{Query{To: "@remote.test"}, 1},
		{Query{IP: "192.0.2.0/31", Limit: 1000}, 20},
		{Query{IP: "198.51.100.7"}, 1},
		{Query{Since: t0.Add(30 * time.Second), Limit: 1000}, 10},
		{Query{Kind: store.TraceOutbound}, 1},
		{Query{Limit: 5}, 5},
	} {
		got, err := Search(ctx, st, c, c2.q)
		if err != nil || len(got) != c2.want {
			t.Errorf("Search(%+v): %d records, %v; want %d", c2.q, len(got), err, c2.want)
		}
	}
	got, _ := Search(ctx, st, c, Query{Limit: 2})
	if got[0].Ref != "tx39" || got[0].In.Reasons[0].Detail != "sender.test" {
		t.Errorf("newest first, decoded: %+v", got[0])
	}
	// Another server key opens nothing (and Search skips, not fails).
	other, _ := NewCodec(bytes.Repeat([]byte{8}, KeySize))
	if got, err := Search(ctx, st, other, Query{}); err != nil || len(got) != 0 {
		t.Errorf("search with another key: %d, %v", len(got), err)
	}
	st.Close()
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(path)
			if bytes.Contains(b, []byte("canary")) || bytes.Contains(b, []byte("sender.test")) {
				t.Errorf("%s holds an address in the clear", path)
			}
		}
		return nil
	})
}
