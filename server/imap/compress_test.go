package imap

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestCompressDeflate: COMPRESS=DEFLATE (RFC 4978) is advertised, and
// Python's imaplib, its socket wrapped in zlib's raw DEFLATE after
// COMPRESS, selects, fetches a message whole, is refused a second
// COMPRESS (COMPRESSIONACTIVE) and logs out cleanly.
func TestCompressDeflate(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	msg := testMessage("deflate", strings.Repeat("A compressible line of text.\r\n", 200))
	env.deliver(alice, "", msg)

	out := pyOutput(t, env.python(context.Background(), env.tlsAddr, "imaplib_compress.py", alice, alicePW))
	var got struct {
		Caps     string   `json:"caps"`
		Compress string   `json:"compress"`
		Select   []string `json:"select"`
		Fetch    []string `json:"fetch"`
		Again    []string `json:"again"`
		Noop     string   `json:"noop"`
		WireIn   int      `json:"wire_in"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !strings.Contains(got.Caps, "COMPRESS=DEFLATE") {
		t.Fatalf("COMPRESS=DEFLATE not advertised: %q", got.Caps)
	}
	if got.Compress != "OK" {
		t.Fatalf("COMPRESS DEFLATE = %q", got.Compress)
	}
	if len(got.Select) != 2 || got.Select[0] != "OK" || got.Select[1] != "1" {
		t.Errorf("SELECT over DEFLATE = %q", got.Select)
	}
	if len(got.Fetch) != 2 || got.Fetch[0] != "OK" || got.Fetch[1] != string(msg) {
		t.Errorf("FETCH BODY.PEEK[] over DEFLATE = %q", got.Fetch)
	}
	if len(got.Again) != 2 || got.Again[0] == "OK" || !strings.Contains(got.Again[1], "COMPRESSIONACTIVE") {
		t.Errorf("second COMPRESS = %q, want NO [COMPRESSIONACTIVE]", got.Again)
	}
	if got.Noop != "OK" {
		t.Errorf("NOOP over DEFLATE = %q", got.Noop)
	}
	// The message alone is 6 KB of repeated text: compressed, everything
	// after COMPRESS is far smaller.
	if got.WireIn == 0 || got.WireIn >= len(msg) {
		t.Errorf("%d bytes received after COMPRESS for a %d-byte message: not compressed", got.WireIn, len(msg))
	}
}
