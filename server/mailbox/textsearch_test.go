package mailbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

var scanCorpus = [][]byte{
	// 1: plain text.
	crlf("From: a@b\nSubject: apple pie\nContent-Type: text/plain; charset=utf-8\n\nThe quick brown Zebra jumps.\n"),
	// 2: multipart/alternative, the word only inside a base64 text part.
	[]byte("From: Bob <bob@example.com>\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte("A hidden Quokka lives here.")) + "\r\n" +
		"--b1\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b1--\r\n"),
	// 3: quoted-printable Latin-1.
	[]byte("From: Dave <dave@example.net>\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Un caf=E9 cr=E8me, s'il vous pla=EEt.\r\n"),
	// 4: a long body with the needle at its end.
	[]byte("From: Carol <carol@example.com>\r\nSubject: report\r\n\r\n" +
		strings.Repeat("lorem ipsum dolor sit amet ", 2000) + "needle at the end\r\n"),
}

func scanPlain(sc *Scanner, msg []byte) ([]bool, error) {
	return sc.scan(context.Background(), bytes.NewReader(msg), BuildSummary(msg))
}

func TestScan(t *testing.T) {
	for i, tc := range []struct {
		msg  []byte
		pats []string
		want []bool
	}{
		{scanCorpus[0], []string{"zebra", "QUICK BROWN", "apple", ""}, []bool{true, true, false, true}},
		{scanCorpus[1], []string{"quokka", "html part", "b1"}, []bool{true, true, false}},
		{scanCorpus[2], []string{"café", "CRÈME"}, []bool{true, true}},
		{scanCorpus[3], []string{"needle at the end", "zzz"}, []bool{true, false}},
	} {
		got, err := scanPlain(NewScanner(tc.pats), tc.msg)
		if err != nil {
			t.Errorf("%d: %v", i, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d: %v, want %v", i, got, tc.want)
		}
	}
}

// TestScanTruncated: a plaintext shorter than its summary says (what a
// cut message would give) matches nothing.
func TestScanTruncated(t *testing.T) {
	msg := scanCorpus[0]
	sm := BuildSummary(msg)
	if _, err := NewScanner([]string{"zebra"}).scan(context.Background(), bytes.NewReader(msg[:len(msg)-3]), sm); err == nil {
		t.Errorf("a short plaintext scanned without error")
	}
}

func TestMatcherAcrossWrites(t *testing.T) {
	text := strings.Repeat("x", 1000) + "NeedLe" + strings.Repeat("y", 1000)
	for split := 990; split < 1010; split++ {
		for _, pat := range []string{"needle", "nëedle"} {
			m := newMatcher([]string{pat})
			m.Write([]byte(text[:split]))
			m.Write([]byte(text[split:]))
			if m.found[0] != (pat == "needle") {
				t.Errorf("split %d pattern %q: found=%v", split, pat, m.found[0])
			}
		}
	}
}

// TestMatcherNonASCIIAcrossWrites: a non-ASCII pattern is found
// case-insensitively wherever the writes split the text, even inside a
// UTF-8 sequence.
func TestMatcherNonASCIIAcrossWrites(t *testing.T) {
	text := strings.Repeat("x", 100) + "Un CAFÉ CRÈME" + strings.Repeat("y", 100)
	for split := 95; split < 120; split++ {
		m := newMatcher([]string{"café crème", "thé"})
		m.Write([]byte(text[:split]))
		m.Write([]byte(text[split:]))
		if !m.found[0] || m.found[1] {
			t.Errorf("split %d: found=%v", split, m.found)
		}
	}
}

// TestScannerReuse: one scanner serves many messages (as in SEARCH)
// without carrying results or overlap from one to the next.
func TestScannerReuse(t *testing.T) {
	sc := NewScanner([]string{"zebra", "quokka"})
	for round := range 2 {
		for i, want := range [][]bool{{true, false}, {false, true}, {false, false}, {false, false}} {
			got, err := scanPlain(sc, scanCorpus[i])
			if err != nil {
				t.Errorf("round %d message %d: %v", round, i, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round %d message %d: %v, want %v", round, i, got, want)
			}
		}
	}
}

func TestAddressContains(t *testing.T) {
	env := Envelope(crlf("From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\nTo: group: g1@d1.org;\n\n"))
	for pat, want := range map[string]bool{"jörg": true, "JOERG@EXAMPLE": true, "örg <": false, "nobody": false} {
		if got := AddressContains(env.From, pat); got != want {
			t.Errorf("From %q: %v", pat, got)
		}
	}
	if !AddressContains(env.To, "group") || !AddressContains(env.To, "g1@d1") {
		t.Errorf("To: group or member not found")
	}
}

// FuzzScan: scanning any message for any pattern never panics.
func FuzzScan(f *testing.F) {
	for _, m := range scanCorpus {
		f.Add(m, "quokka")
	}
	f.Fuzz(func(t *testing.T, msg []byte, pat string) {
		found, err := scanPlain(NewScanner([]string{pat}), msg)
		if err == nil && len(found) != 1 {
			t.Fatalf("found = %v", found)
		}
	})
}

// TestMatcherASCIIAcrossWrites compares the ASCII matcher, fed in
// random pieces, with a plain search of the whole text folded: matches
// across write edges, in upper and mixed case, next to bytes that fold
// only outside ASCII, and patterns longer than a write.
func TestMatcherASCIIAcrossWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("abcQUOkkaBerRY \r\n\xc3\xa9\xff-K")
	pats := []string{"quokkaberry", "k", "ab", "q", "berry b", "-k"}
	for range 2000 {
		text := make([]byte, r.IntN(300))
		for i := range text {
			text[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(3) == 0 {
			at := r.IntN(len(text) + 1)
			text = append(text[:at:at], append([]byte("QuOkKaBeRrY"), text[at:]...)...)
		}
		m := newMatcher(pats)
		for rest := text; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(12))
			m.Write(rest[:n])
			rest = rest[n:]
		}
		folded := string(asciiLower(bytes.Clone(text)))
		for i, p := range pats {
			if want := strings.Contains(folded, p); m.found[i] != want {
				t.Fatalf("text %q: pattern %q found %v, want %v", text, p, m.found[i], want)
			}
		}
	}
}

func BenchmarkScanASCII(b *testing.B) {
	msg := scanCorpus[3]
	sc := NewScanner([]string{"quokkaberry"})
	sm := BuildSummary(msg)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := sc.scan(context.Background(), bytes.NewReader(msg), sm); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHeaderContainsShortcut: the shortcut that skips parsing a header
// never turns a match into a miss, over headers that fold, encode,
// carry bare CRs or non-ASCII text, and patterns with white space.
func TestHeaderContainsShortcut(t *testing.T) {
	for _, tc := range []struct {
		h, pat string
		want   bool
	}{
		{"Subject: Apple Pie\r\n\r\n", "apple", true},
		{"Subject: Apple Pie\r\n\r\n", "cherry", false},
		{"Subject: a long\r\n subject line\r\n\r\n", "long subject", true}, // across a fold
		{"Subject: a long\r\n\tsubject\r\n\r\n", "subject", true},
		{"Subject: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\r\n\r\n", "café", true},
		{"Subject: =?us-ascii?q?hidden_word?=\r\n\r\n", "hidden", true},
		{"Subject: one\rtwo\r\n\r\n", "onetwo", true},    // Unfold drops the bare CR
		{"Subject: \u212aelvin\r\n\r\n", "kelvin", true}, // Kelvin sign folds to k
		{"X-Name: ZEBRA\r\n\r\n", "zebra", true},
		{"X-Zebra: none\r\n\r\n", "zebra", false}, // names are not values
	} {
		sm := &Summary{Header: []byte(tc.h)}
		if got := HeaderContains(sm, tc.pat); got != tc.want {
			t.Errorf("HeaderContains(%q, %q) = %v, want %v", tc.h, tc.pat, got, tc.want)
		}
		if got := headerContains(sm.Header, tc.pat); got != tc.want {
			t.Errorf("headerContains(%q, %q) = %v, want %v", tc.h, tc.pat, got, tc.want)
		}
	}
}

// FuzzHeaderContains: the shortcut says "may contain" whenever the full
// parse finds a match.
func FuzzHeaderContains(f *testing.F) {
	f.Add([]byte("Subject: a long\r\n subject\r\n\r\n"), "subject")
	f.Add([]byte("Subject: one\rtwo\r\n\r\n"), "onetwo")
	f.Add([]byte("Subject: =?us-ascii?q?x_y?=\r\n\r\n"), "x y")
	f.Add([]byte("A: \u212aelvin\n\n"), "kelvin")
	f.Fuzz(func(t *testing.T, h []byte, pat string) {
		if headerContains(h, pat) && !headerMayContain(h, pat) {
			t.Fatalf("header %q contains %q, the shortcut says it cannot", h, pat)
		}
	})
}
