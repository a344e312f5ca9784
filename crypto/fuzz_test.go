package crypto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzUnlockSlot feeds arbitrary slot bytes to the slot parser and to
// Unlock. Nothing may panic, and nothing but the real slot may open.
func FuzzUnlockSlot(f *testing.F) {
	a := testAccount(f, KeyEd25519)
	f.Add(a.sec.Slot)
	f.Add([]byte{})
	f.Add([]byte{slotVersion1})
	f.Add(bytes.Repeat([]byte{0xff}, slotLen))
	f.Fuzz(func(t *testing.T, slot []byte) {
		kdf, err := SlotKDF(slot)
		if err != nil {
			return
		}
		if err := kdf.Validate(); err != nil {
			t.Fatalf("SlotKDF returned invalid parameters %+v: %v", kdf, err)
		}
		// Keep fuzzing fast: only cheap parameters reach argon2.
		if uint64(kdf.Time)*uint64(kdf.MemoryKiB) > 4096 {
			return
		}
		kr, err := Unlock([][]byte{slot}, a.pw, a.sec.WrappedKey)
		if err == nil {
			kr.Wipe()
			if !bytes.Equal(slot, a.sec.Slot) {
				t.Fatalf("a forged slot unlocked the account")
			}
		}
	})
}

// FuzzOpen opens arbitrary bytes with the public-key path and with a real
// session key. Nothing may panic; anything that does not open must fail
// with ErrIntegrity.
func FuzzOpen(f *testing.F) {
	a := testAccount(f, KeyEd25519)
	v6 := testAccount(f, KeyV6Ed25519)
	sealed := seal(f, a.pub, []byte("hello fuzz"))
	_, sk, err := a.kr.Open(bytes.NewReader(sealed))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(seal(f, v6.pub, []byte("hello v6")))
	f.Add([]byte{})
	f.Add([]byte{0xc1, 0x00})
	f.Add(sealed[:len(sealed)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, kr := range []*Keyring{a.kr, v6.kr} {
			p, _, err := kr.Open(bytes.NewReader(in))
			checkOpened(t, p, err)
		}
		p, err := a.kr.OpenWithSessionKey(bytes.NewReader(in), sk)
		checkOpened(t, p, err)
	})
}

func checkOpened(t *testing.T, p io.Reader, err error) {
	t.Helper()
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(p, 16<<20))
	}
	if err != nil && !errors.Is(err, ErrIntegrity) {
		t.Fatalf("error does not wrap ErrIntegrity: %v", err)
	}
}

// FuzzOpenIndex opens arbitrary bytes as index data. Nothing may panic and
// nothing forged may open.
func FuzzOpenIndex(f *testing.F) {
	a := testAccount(f, KeyEd25519)
	good, err := a.kr.SealIndex([]byte("summary"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{indexVersion1}, []byte("ad"))
	f.Fuzz(func(t *testing.T, in, ad []byte) {
		got, err := a.kr.OpenIndex(in, ad)
		if err != nil {
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("error does not wrap ErrIntegrity: %v", err)
			}
			return
		}
		if !bytes.Equal(in, good) || string(ad) != "ad" || string(got) != "summary" {
			t.Fatalf("forged index data opened: %q", got)
		}
	})
}

// FuzzParsePublicKey parses arbitrary bytes as a public key and seals to
// whatever parses.
func FuzzParsePublicKey(f *testing.F) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		f.Add(testAccount(f, kt).sec.PublicKey)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		pk, err := ParsePublicKey(in)
		if err != nil {
			return
		}
		w, err := pk.Seal(io.Discard)
		if err != nil {
			return
		}
		_, _ = w.Write([]byte("x"))
		_ = w.Close()
	})
}

// FuzzParseCode: whatever a client sends as a password, ParseCode neither
// panics nor accepts anything but a code of a known kind, and what it
// accepts is stable: parsing the normalised form again gives the same.
func FuzzParseCode(f *testing.F) {
	f.Add([]byte("ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789"))
	f.Add([]byte("abcd efgh jkmn pqrs tvwx"))
	f.Add([]byte("correct horse battery staple"))
	f.Add([]byte("oOiIlL-0123"))
	f.Add([]byte{0xff, 0x00, '-'})
	f.Fuzz(func(t *testing.T, typed []byte) {
		c, ok := ParseCode(typed)
		if !ok {
			return
		}
		if c.Kind.length() != len(c.Secret) || c.Selector != string(c.Secret[:codeSelectorLen]) {
			t.Fatalf("ParseCode(%q) = %+v", typed, c)
		}
		for _, b := range c.Secret {
			if !bytes.Contains([]byte(crockford), []byte{b}) {
				t.Fatalf("ParseCode(%q) kept %q", typed, b)
			}
		}
		again, ok := ParseCode(c.Secret)
		if !ok || !bytes.Equal(again.Secret, c.Secret) || again.Kind != c.Kind {
			t.Fatalf("ParseCode is not idempotent on %q", typed)
		}
	})
}
