package imap

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestSummaryRoundTrip(t *testing.T) {
	for i, msg := range append(searchCorpus, testMessage("x", "y"), []byte("no header end"), []byte("\r\nbody only"),
		[]byte("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\na\r\n--q--\r\n")) {
		sm := buildSummary(msg)
		if sm.Size != int64(len(msg)) || !bytes.HasPrefix(msg, sm.Header) {
			t.Errorf("%d: size %d header %q", i, sm.Size, sm.Header)
		}
		got, err := decodeSummary(encodeSummary(sm))
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if got.Envelope.Subject != sm.Envelope.Subject || !got.Envelope.Date.Equal(sm.Envelope.Date) ||
			got.Structure.MediaType() != sm.Structure.MediaType() || got.Size != sm.Size || !bytes.Equal(got.Header, sm.Header) {
			t.Errorf("%d: decoded %+v != %+v", i, got, sm)
		}
		// Nil and empty maps are the same on the wire; the encoding is what
		// must survive exactly.
		if !bytes.Equal(encodeSummary(got), encodeSummary(sm)) {
			t.Errorf("%d: re-encoding differs", i)
		}
	}
}

func TestHeaderLen(t *testing.T) {
	for in, want := range map[string]int{
		"A: b\r\n\r\nbody": 8, "A: b\n\nbody": 6, "\r\nbody": 2, "A: b\r\n": 6, "": 0, "A: b\r\nC: d\n\nx": 12,
	} {
		if got := headerLen([]byte(in)); got != want {
			t.Errorf("headerLen(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestDecodeSummaryRejects(t *testing.T) {
	good := encodeSummary(buildSummary(searchCorpus[1]))
	for i := 0; i < len(good); i++ {
		if _, err := decodeSummary(good[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := decodeSummary(append([]byte{9}, good[1:]...)); err == nil {
		t.Error("unknown version accepted")
	}
	// A hostile count must not allocate.
	if _, err := decodeSummary([]byte{1, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("huge count accepted")
	}
}

func FuzzDecodeSummary(f *testing.F) {
	for _, m := range searchCorpus {
		f.Add(encodeSummary(buildSummary(m)))
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		sm, err := decodeSummary(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := decodeSummary(encodeSummary(sm))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(encodeSummary(again), encodeSummary(sm)) {
			t.Fatal("unstable encoding")
		}
	})
}

// FuzzBuildSummary: parsing any plaintext gives a summary that encodes and
// decodes.
func FuzzBuildSummary(f *testing.F) {
	for _, m := range searchCorpus {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		sm := buildSummary(msg)
		if _, err := decodeSummary(encodeSummary(sm)); err != nil {
			t.Fatalf("summary of %q does not round-trip: %v", msg, err)
		}
	})
}

func TestScanBody(t *testing.T) {
	for i, tc := range []struct {
		msg  []byte
		pats []string
		want []bool
	}{
		{searchCorpus[0], []string{"zebra", "QUICK BROWN", "apple", ""}, []bool{true, true, false, true}},
		{searchCorpus[1], []string{"quokka", "html part", "b1"}, []bool{true, true, false}},
		{searchCorpus[2], []string{"café", "CRÈME"}, []bool{true, true}},
		{searchCorpus[3], []string{"needle at the end", "zzz"}, []bool{true, false}},
	} {
		sm := buildSummary(tc.msg)
		got, err := scanBody(bytes.NewReader(tc.msg), sm, tc.pats)
		if err != nil {
			t.Errorf("%d: %v", i, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d: %v, want %v", i, got, tc.want)
		}
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

// FuzzScanBody: scanning any message for any pattern never panics, and a
// pattern found by the scan of a plain message is really in it.
func FuzzScanBody(f *testing.F) {
	for _, m := range searchCorpus {
		f.Add(m, "quokka")
	}
	f.Fuzz(func(t *testing.T, msg []byte, pat string) {
		sm := buildSummary(msg)
		found, _ := scanBody(bytes.NewReader(msg), sm, []string{pat})
		if len(found) != 1 {
			t.Fatalf("found = %v", found)
		}
	})
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

// TestBodyScannerReuse: one scanner serves many messages (as in SEARCH)
// without carrying results or overlap from one to the next.
func TestBodyScannerReuse(t *testing.T) {
	sc := newBodyScanner([]string{"zebra", "quokka"})
	for round := range 2 {
		for i, want := range [][]bool{{true, false}, {false, true}, {false, false}, {false, false}} {
			msg := searchCorpus[i]
			got, err := sc.scan(bytes.NewReader(msg), buildSummary(msg))
			if err != nil {
				t.Errorf("round %d message %d: %v", round, i, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round %d message %d: %v, want %v", round, i, got, want)
			}
		}
	}
}
