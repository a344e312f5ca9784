package mailbox

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPreviewPlainReadsAPrefix checks that previewPlain, which decodes
// only as much text as the preview needs, gives what collapsing all of
// the text (up to previewRead bytes) gives, whatever falls at the edges
// of what it reads: runs of white space longer than a read, multi-byte
// and invalid UTF-8 cut in two, Unicode spaces, text shorter than the
// preview.
func TestPreviewPlainReadsAPrefix(t *testing.T) {
	pieces := []string{"a", "word", " ", "   ", "\r\n", "\t", "é", "日本", "\u00a0", "\u2003", "\xe6\x97", "\xff", "😀", "\x01",
		strings.Repeat(" ", 700), strings.Repeat("\r\n", 300), strings.Repeat("x", 250), strings.Repeat("é", 150)}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		var sb strings.Builder
		for n := r.IntN(60); n > 0; n-- {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		if i%7 == 0 {
			// Preview-sized text ending near a read boundary.
			sb.WriteString(strings.Repeat("y ", r.IntN(400)))
		}
		text := sb.String()
		full := text[:min(len(text), previewRead)]
		want := collapse(strings.ToValidUTF8(full, "\uFFFD"), PreviewChars)
		if got := previewPlain(strings.NewReader(full)); got != want {
			t.Fatalf("text %q:\npreview %q\nwant    %q", text, got, want)
		}
	}
}

func BenchmarkPreview(b *testing.B) {
	msg := []byte("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("lorem ipsum dolor sit amet\r\n", 400))
	bs := Structure(msg)
	for b.Loop() {
		Preview(msg, bs)
	}
}
