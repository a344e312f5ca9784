package keyserver_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sealmail/sealmail/keyserver"
)

// BenchmarkWKDMiss times the handler for a WKD request naming an account
// that exists but is not published, and one naming no account: both are
// 404, and they must cost the same, or the time tells which addresses
// exist (issue 9 item 11). Compare the two sub-benchmarks side by side.
func BenchmarkWKDMiss(b *testing.B) {
	w := newWorld(b)
	for _, tc := range []struct{ name, local string }{{"unpublished", "bob"}, {"unknown", "nobody"}} {
		url := advancedURL(tc.local, "example.org")
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				w.h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
				if rec.Code != 404 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// TestWKDMissTakesTheFloor: every 404 for a WKD request naming an
// address, unknown or unpublished, takes at least the floor, so neither
// can be told from the other by its time. (Before, an unpublished
// account's 404 came about 40 µs later than an unknown one's.)
func TestWKDMissTakesTheFloor(t *testing.T) {
	w := newWorld(t)
	for _, local := range []string{"bob", "nobody", "alice-not-here"} {
		url := advancedURL(local, "example.org")
		for range 5 {
			start := time.Now()
			rec := httptest.NewRecorder()
			w.h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
			if took := time.Since(start); rec.Code != 404 || took < keyserver.WKDMissFloor {
				t.Fatalf("%s: status %d after %v, want 404 after at least %v", local, rec.Code, took, keyserver.WKDMissFloor)
			}
		}
	}
	// A published key is served as before.
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, httptest.NewRequest("GET", advancedURL("alice", "example.org"), nil))
	if rec.Code != 200 {
		t.Fatalf("alice: status %d", rec.Code)
	}
}
